"""The Zig guest SDK (guest-sdk/zig) through its committed examples (modules/wasm/zig-*.wasm).

Zig is not on a fresh machine, so the SDK's own codec tests (`zig test guest-sdk/zig/wasmhost.zig`)
run in modules/zig/build.sh; here the codec is exercised end to end through the built modules on a
real Host and over HTTP. No toolchain is needed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
import pytest

from tests.conftest import small_settings
from tests.server import Server
from wasmhost.host import Host
from wasmhost.models import Request

ROOT = Path(__file__).resolve().parent.parent
WASM = ROOT / "modules" / "wasm"
EXAMPLES = ("hello", "echo", "markdown")
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


def module(name: str) -> bytes:
    return (WASM / f"zig-{name}.wasm").read_bytes()


@pytest.fixture
def zhost(tmp_path: Path):
    with Host(small_settings(tmp_path / "data")) as h:
        for name in EXAMPLES:
            h.deploy(name, module(name), config={"GREETING": "héllo wörld", "EMPTY": "", "A_KEY": "1"}
                     if name == "echo" else None)
        yield h


def test_every_example_is_committed_small_and_speaks_the_handler_abi():
    import wasmtime
    engine = wasmtime.Engine()
    found = sorted(p.name[len("zig-"):-len(".wasm")] for p in WASM.glob("zig-*.wasm"))
    assert set(EXAMPLES) <= set(found)
    for name in found:
        data = module(name)
        assert len(data) < 64 * 1024, name
        m = wasmtime.Module(engine, data)
        exports = {e.name for e in m.exports}
        assert {"memory", "wasmhost_alloc", "wasmhost_handle"} <= exports
        assert "_start" not in exports
        assert {(i.module, i.name) for i in m.imports} <= {("wasmhost", "log")}


def test_hello_body_and_log(zhost):
    inv = zhost.invoke("hello", Request(method="GET", path="/some/where", query="q=1"))
    assert inv.error is None
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", TEXT),)
    assert inv.response.body == b"Hello from Zig!\n"
    assert inv.logs == ["hello called: GET /some/where"]


def echo_lines(inv) -> list[str]:
    assert inv.error is None, inv.error
    assert inv.response.status == 200
    assert dict(inv.response.headers)["content-type"] == TEXT
    return inv.response.body.decode("utf-8", "surrogateescape").split("\n")


def test_echo_round_trips_the_request(zhost):
    body = bytes(range(256)) * 3 + "ünï©ødé".encode()
    headers = (("accept", "*/*"), ("x-multi", "one"), ("x-multi", "two"), ("x-unicode", "日本語 ✓"),
               ("x-multi", "three"))
    inv = zhost.invoke("echo", Request(method="PUT", path="/a%20b/%2F/ü", query="x=1&y=%C3%BC&x=2",
                                       headers=headers, body=body))
    lines = echo_lines(inv)
    config = sorted(ln for ln in lines if ln.startswith("config: "))  # the host's order (it sorts keys)
    assert config == ["config: A_KEY=1", "config: EMPTY=", "config: GREETING=héllo wörld"]
    assert [ln for ln in lines if not ln.startswith("config: ")] == [
        "method: PUT",
        "path: /a%20b/%2F/ü",
        "query: x=1&y=%C3%BC&x=2",
        "header: accept: */*",
        "header: x-multi: one",
        "header: x-multi: two",
        "header: x-unicode: 日本語 ✓",
        "header: x-multi: three",
        f"body-length: {len(body)}",
        f"body-sha256: {hashlib.sha256(body).hexdigest()}",
        "",
    ]
    assert dict(inv.response.headers)["x-echo-header-count"] == "5"


def test_echo_empty_request_and_large_body(zhost):
    inv = zhost.invoke("echo", Request(method="GET", path="/"))
    assert echo_lines(inv)[:3] == ["method: GET", "path: /", "query: "]
    assert "body-length: 0" in echo_lines(inv)
    big = bytes((i * 7) % 251 for i in range(300_000))  # bin32 in the request, several memory pages
    inv = zhost.invoke("echo", Request(method="POST", path="/big", body=big))
    lines = echo_lines(inv)
    assert f"body-length: {len(big)}" in lines
    assert f"body-sha256: {hashlib.sha256(big).hexdigest()}" in lines


def test_echo_many_headers_use_array16(zhost):
    headers = tuple((f"x-h{i}", "v" * 40 + str(i)) for i in range(40))  # array16, str8 values
    lines = echo_lines(zhost.invoke("echo", Request(method="GET", path="/", headers=headers)))
    assert [ln for ln in lines if ln.startswith("header: ")] == [f"header: {k}: {v}" for k, v in headers]


def test_echo_accepts_bin_typed_header_values_and_path(zhost):
    # Bytes that are not UTF-8 arrive as bin (the host keeps them as surrogates internally).
    raw = b"\xff\xfeok\xc3("
    value = raw.decode("utf-8", "surrogateescape")
    path = "/p/" + b"\xe9t\xe9".decode("utf-8", "surrogateescape")
    inv = zhost.invoke("echo", Request(method="GET", path=path, headers=(("x-raw", value), ("x-ok", "fine"))))
    assert inv.error is None
    body = inv.response.body
    assert b"path: /p/\xe9t\xe9\n" in body
    assert b"header: x-raw: \xff\xfeok\xc3(\n" in body
    assert b"header: x-ok: fine\n" in body


def test_echo_status_from_header_proves_integer_encoding(zhost):
    for status in (201, 404, 418, 599):
        inv = zhost.invoke("echo", Request(method="GET", path="/", headers=(("x-echo-status", str(status)),)))
        assert inv.error is None
        assert inv.response.status == status


def test_sdk_request_decoder_ignores_unknown_keys_and_tolerates_bin(tmp_path):
    """Drive wasmhost_handle directly with a request map the host does not (yet) send."""
    import wasmtime
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_func("wasmhost", "log", wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], []),
                       lambda p, n: None)
    inst = linker.instantiate(store, wasmtime.Module(engine, module("echo")))
    ex = inst.exports(store)
    request = msgpack.packb({
        "future": {"nested": [1, -2, 3.5, None, True, b"x", {"deep": [[[]]]}]},
        "method": "PATCH", "path": b"/bin", "query": b"q",
        "headers": [["x-a", b"bin value"], [b"x-b", "str"]],
        "extension": msgpack.ExtType(5, b"abcd"),
        "body": b"\x00\x01", "config": {"K": b"v"}, "zzz": 2 ** 40,
    }, use_bin_type=True)
    ptr = ex["wasmhost_alloc"](store, len(request))
    ex["memory"].write(store, request, ptr)
    packed = ex["wasmhost_handle"](store, ptr, len(request)) & 0xFFFFFFFFFFFFFFFF
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    raw = ex["memory"].read(store, out_ptr, out_ptr + out_len)
    # The exact response map of ABI.md: status int, headers [[str, str]], body bin.
    answer = msgpack.unpackb(raw, raw=False)
    assert list(answer) == ["status", "headers", "body"]
    assert answer["status"] == 200
    assert answer["headers"] == [["content-type", TEXT], ["x-echo-header-count", "2"]]
    assert isinstance(answer["body"], bytes)
    assert answer["body"].decode().split("\n")[:7] == [
        "method: PATCH", "path: /bin", "query: q", "header: x-a: bin value", "header: x-b: str",
        "config: K=v", "body-length: 2"]


def test_sdk_undecodable_request_is_a_400_not_a_trap():
    import wasmtime
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    logs = []
    linker.define_func("wasmhost", "log", wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], []),
                       lambda caller, p, n: logs.append(caller["memory"].read(caller, p, p + n)), access_caller=True)
    inst = linker.instantiate(store, wasmtime.Module(engine, module("echo")))
    ex = inst.exports(store)
    for request in (b"\x93\x01\x02\x03", b"\x81\xa7headers\xdd\x7f\xff\xff\xff", b"\x82\xa6method"):
        ptr = ex["wasmhost_alloc"](store, len(request))
        ex["memory"].write(store, request, ptr)
        packed = ex["wasmhost_handle"](store, ptr, len(request)) & 0xFFFFFFFFFFFFFFFF
        raw = ex["memory"].read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFFFFFF))
        assert msgpack.unpackb(raw)["status"] == 400
    assert logs == [b"cannot decode request: WrongType", b"cannot decode request: Truncated",
                    b"cannot decode request: Truncated"]


MARKDOWN = [
    ("# Title\n\nHello *world* and **bold** text.\nSecond line with `x < y`.\n",
     "<h1>Title</h1>\n<p>Hello <em>world</em> and <strong>bold</strong> text.\n"
     "Second line with <code>x &lt; y</code>.</p>\n"),
    ("## Sub ##\n###### Six\n####### seven\n#nospace\n",
     "<h2>Sub</h2>\n<h6>Six</h6>\n<p>####### seven\n#nospace</p>\n"),
    ("# 1\n## 2\n### 3\n#### 4\n##### 5\n###### 6",
     "<h1>1</h1>\n<h2>2</h2>\n<h3>3</h3>\n<h4>4</h4>\n<h5>5</h5>\n<h6>6</h6>\n"),
    ("- one\n- two *em*\n* three\n\n1. first\n2. second\n\n3. third\n4. fourth\n",
     "<ul>\n<li>one</li>\n<li>two <em>em</em></li>\n<li>three</li>\n</ul>\n"
     "<ol>\n<li>first</li>\n<li>second</li>\n</ol>\n<ol start=\"3\">\n<li>third</li>\n<li>fourth</li>\n</ol>\n"),
    ("```python\nprint(\"<b>\") & x\n\n# not a heading\n```\nafter\n",
     "<pre><code class=\"language-python\">print(&quot;&lt;b&gt;&quot;) &amp; x\n\n# not a heading\n"
     "</code></pre>\n<p>after</p>\n"),
    ("See [the **docs**](https://example.com/a?b=1&c=2) and [bad](javascript:alert(1)).\n",
     "<p>See <a href=\"https://example.com/a?b=1&amp;c=2\">the <strong>docs</strong></a> and "
     "<a href=\"#\">bad</a>).</p>\n"),
    ("Escaped \\*stars\\* and 2 * 3 * 4, *a **b** c*.\r\n\r\n---\r\n- item\r\ncontinued\r\n",
     "<p>Escaped *stars* and 2 * 3 * 4, <em>a <strong>b</strong> c</em>.</p>\n<hr />\n"
     "<ul>\n<li>item\ncontinued</li>\n</ul>\n"),
    ("```\nunterminated <code>\n", "<pre><code>unterminated &lt;code&gt;\n</code></pre>\n"),
    ("Ünïcode **ß** and `**not bold**`", "<p>Ünïcode <strong>ß</strong> and <code>**not bold**</code></p>\n"),
]


@pytest.mark.parametrize("source, html", MARKDOWN)
def test_markdown_documents(zhost, source, html):
    inv = zhost.invoke("markdown", Request(method="POST", path="/", body=source.encode()))
    assert inv.error is None
    assert inv.response.status == 200
    assert inv.response.headers == (("content-type", HTML),)
    assert inv.response.body.decode() == html


def test_markdown_escapes_script_and_html(zhost):
    source = "<script>alert('x')</script>\n\n\"quotes\" & <b>tags</b> [<i>](\"><script>)\n"
    inv = zhost.invoke("markdown", Request(method="POST", path="/", body=source.encode()))
    assert inv.response.body.decode() == (
        "<p>&lt;script&gt;alert('x')&lt;/script&gt;</p>\n"
        "<p>&quot;quotes&quot; &amp; &lt;b&gt;tags&lt;/b&gt; <a href=\"&quot;&gt;&lt;script&gt;\">&lt;i&gt;</a></p>\n")
    assert b"<script" not in inv.response.body


def test_markdown_rejects_empty_body_and_other_methods(zhost):
    inv = zhost.invoke("markdown", Request(method="POST", path="/", body=b""))
    assert inv.error is None
    assert inv.response.status == 400
    assert inv.response.body == b"empty body: POST a Markdown document\n"
    inv = zhost.invoke("markdown", Request(method="GET", path="/"))
    assert inv.response.status == 405
    assert ("allow", "POST") in inv.response.headers


def test_markdown_large_document(zhost):
    source = "".join(f"- item **{i}** with `code {i}`\n" for i in range(5000))
    inv = zhost.invoke("markdown", Request(method="POST", path="/", body=source.encode()))
    assert inv.error is None, inv.error
    body = inv.response.body.decode()
    assert body.startswith("<ul>\n<li>item <strong>0</strong> with <code>code 0</code></li>\n")
    assert body.endswith("<li>item <strong>4999</strong> with <code>code 4999</code></li>\n</ul>\n")
    assert body.count("<li>") == 5000


def test_over_real_http(tmp_path):
    with Server(tmp_path / "data") as srv:
        for name in EXAMPLES:
            assert srv.deploy(name, module(name)).status_code == 201, name
        r = srv.client.get("/fn/hello/x")
        assert r.status_code == 200
        assert r.headers["content-type"] == TEXT
        assert r.text == "Hello from Zig!\n"
        r = srv.client.post("/fn/markdown", content="# Hi\n\n*there* <script>".encode(),
                            headers={"content-type": "text/markdown"})
        assert r.status_code == 200
        assert r.headers["content-type"] == HTML
        assert r.text == "<h1>Hi</h1>\n<p><em>there</em> &lt;script&gt;</p>\n"
        assert srv.client.post("/fn/markdown").status_code == 400
        r = srv.client.post("/fn/echo/p%2Fq?a=1&a=2", content=b"\x00\xff",
                            headers=[("x-rep", "1"), ("x-rep", "2")])
        assert r.status_code == 200
        lines = r.text.split("\n")
        assert lines[:3] == ["method: POST", "path: /p%2Fq", "query: a=1&a=2"]
        assert "header: x-rep: 1" in lines and "header: x-rep: 2" in lines
        assert lines.index("header: x-rep: 1") < lines.index("header: x-rep: 2")
        assert "body-length: 2" in lines
