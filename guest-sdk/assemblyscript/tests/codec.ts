// Codec unit tests, compiled and run by run.mjs (`npm test`). Each failure is
// logged through wasmhost.log; run() returns the number of failures.
import { decodeUtf8 } from "../assembly/msgpack";
import { Decoder, Encoder, Request, Response, setHandler, wasmhost_alloc, wasmhost_handle } from "../assembly/index";

let failures = 0;
let checks = 0;

// @ts-ignore: decorator
@external("wasmhost", "log")
declare function hostLog(ptr: usize, len: usize): void;

function say(msg: string): void {
  let b = String.UTF8.encode(msg);
  hostLog(changetype<usize>(b), <usize>b.byteLength);
}

function check(name: string, ok: bool): void {
  checks++;
  if (!ok) { failures++; say("FAIL " + name); }
}

function eqStr(name: string, got: string | null, want: string): void {
  checks++;
  if (got === null) { failures++; say("FAIL " + name + ": got null, want " + want); return; }
  if (got != want) { failures++; say("FAIL " + name + ": got '" + got + "', want '" + want + "'"); }
}

function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) {
    let h = (<u32>b[i]).toString(16);
    s += (h.length < 2 ? "0" : "") + h;
  }
  return s;
}

/** "83 a6 73" → bytes (spaces ignored). */
function hex(s: string): Uint8Array {
  let clean = s.replaceAll(" ", "").replaceAll("\n", "");
  let out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = <u8>U32.parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

function strHex(s: string): string { return toHex(Uint8Array.wrap(String.UTF8.encode(s))); }

function eqBytes(name: string, got: Uint8Array, want: Uint8Array): void {
  eqStr(name, toHex(got), toHex(want));
}

function decode(b: Uint8Array): Request | null {
  return Request.decode(b.dataStart, <usize>b.length);
}

function repeat(c: string, n: i32): string { return c.repeat(n); }

// ABI.md worked example: 73 bytes.
const ABI_REQUEST = "86 a6 6d 65 74 68 6f 64 a3 47 45 54 a4 70 61 74 68 a3 2f 68 69 a5 71 75 65 72 79 a3 78 3d 31"
  + " a7 68 65 61 64 65 72 73 91 92 a6 61 63 63 65 70 74 a3 2a 2f 2a a4 62 6f 64 79 c4 02 6f 6b"
  + " a6 63 6f 6e 66 69 67 81 a1 4b a1 76";

function testAbiExample(): void {
  let b = hex(ABI_REQUEST);
  check("abi example is 73 bytes", b.length == 73);
  let r = decode(b);
  check("abi example decodes", r !== null);
  if (r === null) return;
  eqStr("method", r.method, "GET");
  eqStr("path", r.path, "/hi");
  eqStr("query", r.query, "x=1");
  check("one header", r.headers.length == 1);
  eqStr("header name", r.headers[0].name, "accept");
  eqStr("header value", r.headers[0].value, "*/*");
  eqStr("header()", r.header("Accept"), "*/*");
  check("header() missing", r.header("x-nope") === null);
  eqStr("body", r.text(), "ok");
  check("body length", r.body.length == 2);
  eqStr("config.get", r.config.get("K"), "v");
  eqStr("configValue", r.configValue("K"), "v");
  check("config missing", r.config.get("k") === null);
  check("config length", r.config.length == 1);
}

function testUnknownKeysAndTypes(): void {
  // map16 with 14 entries: unknown keys of every msgpack type around the known ones.
  let m = "de 00 0e";
  m += "a3" + strHex("nil") + "c0";
  m += "a1" + strHex("t") + "c3";
  m += "a1" + strHex("f") + "c2";
  m += "a2" + strHex("f4") + "ca 3f 80 00 00";
  m += "a2" + strHex("f8") + "cb 3f f0 00 00 00 00 00 00";
  m += "a4" + strHex("ints") + "9f 00 7f ff e0 cc ff cd ff ff ce ff ff ff ff cf 01 02 03 04 05 06 07 08 d0 80 d1 80 00 d2 80 00 00 00 d3 01 02 03 04 05 06 07 08 05 06";
  m += "a3" + strHex("ext") + "98 d4 01 aa d5 01 aa bb d6 01 00 00 00 00 d7 01 00 00 00 00 00 00 00 00 d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 c7 02 05 aa bb c8 00 01 05 aa c9 00 00 00 01 05 aa 00";
  m += "a4" + strHex("nest") + "82 a1 61 93 81 a1 62 90 dc 00 01 80 dd 00 00 00 01 de 00 01 a1 63 df 00 00 00 01 c0 c0 a1 64 c4 01 00";
  m += "a4" + strHex("strs") + "93 d9 03 61 62 63 da 00 01 61 db 00 00 00 01 61";
  m += "a4" + strHex("bins") + "93 c4 01 00 c5 00 01 00 c6 00 00 00 01 00";
  m += "a6" + strHex("method") + "a4" + strHex("POST");
  m += "01 a1 78"; // a non-string key (int 1) with a value: skipped
  m += "a4" + strHex("body") + "c5 01 00" + repeat("ab", 256);
  m += "a4" + strHex("path") + "d9 05" + strHex("/x/yz");
  let r = decode(hex(m));
  check("unknown keys decode", r !== null);
  if (r === null) return;
  eqStr("method after unknown keys", r.method, "POST");
  eqStr("path str8", r.path, "/x/yz");
  check("body bin16 length", r.body.length == 256);
  check("body bin16 content", r.body[0] == 0xab && r.body[255] == 0xab);
  eqStr("query default", r.query, "");
  check("headers default", r.headers.length == 0);
  check("config default", r.config.length == 0);
}

function testBinAndLongFields(): void {
  // headers: array16 of 3; a bin value that is valid UTF-8, an invalid one, a repeated name.
  let m = "84";
  m += "a7" + strHex("headers") + "dc 00 03";
  m += "92 a1 61 c4 03" + strHex("é!");
  m += "92 a1 62 c4 02 ff 41";
  m += "92 a1 61 b4" + strHex("xxxxxxxxxxxxxxxxxxxx");
  m += "a4" + strHex("path") + "c4 03 2f ff 61"; // path as bin, not UTF-8
  m += "a6" + strHex("config") + "de 00 02 a1 41 a1 31 a1 42 d9 02" + strHex("ü");
  m += "a5" + strHex("query") + "da 01 2c" + strHex(repeat("q", 300));
  let r = decode(hex(m));
  check("bin fields decode", r !== null);
  if (r === null) return;
  check("three headers", r.headers.length == 3);
  eqStr("bin utf-8 header", r.headers[0].value, "é!");
  eqStr("bin invalid header", r.headers[1].value, "\uFFFDA");
  eqStr("header() first of repeats", r.header("a"), "é!");
  let all = r.headerAll("A");
  check("headerAll", all.length == 2 && all[1] == repeat("x", 20));
  eqStr("bin path", r.path, "/\uFFFDa");
  eqStr("config map16 A", r.config.get("A"), "1");
  eqStr("config map16 B", r.config.get("B"), "ü");
  check("query str16", r.query.length == 300);
  check("empty body", r.body.length == 0);
}

function testUtf8(): void {
  // Invalid UTF-8 becomes U+FFFD per maximal subpart (as Python's errors="replace").
  let cases: string[] = ["ff", "c3", "e2 82", "f0 9f 98", "c0 af", "ed a0 80", "f4 90 80 80", "41 80 42", "e2 82 ac f0 9f 98 80", "e2 28 a1"];
  let want: string[] = ["\uFFFD", "\uFFFD", "\uFFFD", "\uFFFD", "\uFFFD\uFFFD", "\uFFFD\uFFFD\uFFFD",
    "\uFFFD\uFFFD\uFFFD\uFFFD", "A\uFFFDB", "€😀", "\uFFFD(\uFFFD"];
  for (let i = 0; i < cases.length; i++) {
    let b = hex(cases[i]);
    eqStr("utf-8 " + cases[i], decodeUtf8(b.dataStart, <usize>b.length), want[i]);
  }
}

function testMalformed(): void {
  let full = hex(ABI_REQUEST);
  for (let cut = 0; cut < full.length; cut++) {
    let r = Request.decode(full.dataStart, <usize>cut);
    if (r !== null) { check("truncated at " + cut.toString() + " is rejected", false); }
  }
  check("truncations rejected", true);
  check("not a map", decode(hex("93 01 02 03")) === null);
  check("0xc1", decode(hex("81 a1 61 c1")) === null);
  check("huge array count", decode(hex("81 a1 61 dd ff ff ff ff 00")) === null);
  check("huge map count", decode(hex("df 7f ff ff ff a1 61")) === null);
  check("str past end", decode(hex("81 a6" + strHex("method") + "db 00 10 00 00 41")) === null);
  check("huge nested skip", decode(hex("81 a1 61 dc ff ff 90")) === null);
  check("empty map ok", decode(hex("80")) !== null);
  // Deep nesting is skipped iteratively: 10,000 nested arrays do not overflow the stack.
  let deep = new Uint8Array(10005);
  deep[0] = 0x81; deep[1] = 0xa1; deep[2] = 0x61;
  for (let i = 3; i < 10004; i++) deep[i] = 0x91;
  deep[10004] = 0xc0;
  check("deep nesting skipped", decode(deep) !== null);
  // Wrong types for known keys are skipped, not misread.
  let r = decode(hex("83 a6" + strHex("method") + "01 a7" + strHex("headers") + "81 a1 61 a1 62 a4" + strHex("body") + "c0"));
  check("wrong types tolerated", r !== null && r.method == "" && r.headers.length == 0 && r.body.length == 0);
  // Header pairs that are not [str, str]: malformed entries are skipped.
  let h = decode(hex("81 a7" + strHex("headers") + "93 01 91 a1 61 93 a1 61 a1 62 a1 63"));
  check("odd header entries", h !== null && h.headers.length == 1 && h.headers[0].value == "b");
}

function enc(f: (e: Encoder) => void): Uint8Array {
  let e = new Encoder(1);
  f(e);
  return e.toBytes();
}

function testEncoderInts(): void {
  let vals: i32[] = [0, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128, -129, -32768, -32769, 2147483647, -2147483648];
  let want: string[] = ["00", "7f", "cc80", "ccff", "cd0100", "cdffff", "ce00010000", "ff", "e0", "d0df", "d080",
    "d1ff7f", "d18000", "d2ffff7fff", "ce7fffffff", "d280000000"];
  for (let i = 0; i < vals.length; i++) {
    let v = vals[i];
    let e = new Encoder(1);
    e.writeInt(v);
    eqStr("int " + v.toString(), toHex(e.toBytes()), want[i]);
    let d = new Decoder(e.buf, e.len);
    check("int round trip " + v.toString(), d.readInt() == <i64>v && d.ok && d.done);
  }
}

function testEncoderLengths(): void {
  let lens: i32[] = [0, 31, 32, 255, 256, 65535, 65536];
  let strHead: string[] = ["a0", "bf", "d920", "d9ff", "da0100", "daffff", "db00010000"];
  let binHead: string[] = ["c400", "c41f", "c420", "c4ff", "c50100", "c5ffff", "c600010000"];
  for (let i = 0; i < lens.length; i++) {
    let n = lens[i];
    let s = repeat("z", n);
    let e = new Encoder(1);
    e.writeString(s);
    let b = e.toBytes();
    let head = strHead[i];
    check("str len " + n.toString(), b.length == head.length / 2 + n && toHex(b.subarray(0, head.length / 2)) == head);
    let d = new Decoder(e.buf, e.len);
    check("str round trip " + n.toString(), d.readString() == s && d.done);

    let body = new Uint8Array(n);
    for (let j = 0; j < n; j++) body[j] = <u8>j;
    let e2 = new Encoder(1);
    e2.writeBytes(body);
    let b2 = e2.toBytes();
    check("bin len " + n.toString(), b2.length == binHead[i].length / 2 + n && toHex(b2.subarray(0, binHead[i].length / 2)) == binHead[i]);
    let d2 = new Decoder(e2.buf, e2.len);
    let back = d2.readBytes();
    check("bin round trip " + n.toString(), back.length == n && (n == 0 || back[n - 1] == <u8>(n - 1)) && d2.done);
  }
  let a = enc((e: Encoder): void => { e.writeArrayHeader(15); e.writeArrayHeader(16); e.writeArrayHeader(65536); });
  eqStr("array headers", toHex(a), "9fdc0010dd00010000");
  let m = enc((e: Encoder): void => { e.writeMapHeader(15); e.writeMapHeader(16); e.writeMapHeader(65536); });
  eqStr("map headers", toHex(m), "8fde0010df00010000");
  let u = enc((e: Encoder): void => { e.writeString("é€😀"); e.writeNil(); e.writeBool(true); e.writeBool(false); });
  eqStr("utf-8 str", toHex(u), "a9c3a9e282acf09f9880c0c3c2");
}

function testResponse(): void {
  // ABI.md's hello response, with the body as bin (c4 0e) as the SDK always sends it.
  let r = Response.text(200, "Hello, world!\n");
  let e = new Encoder(1);
  r.encode(e);
  let want = "83 a6" + strHex("status") + "cc c8 a7" + strHex("headers") + "91 92 ac" + strHex("content-type")
    + "b9" + strHex("text/plain; charset=utf-8") + "a4" + strHex("body") + "c4 0e" + strHex("Hello, world!\n");
  eqBytes("hello response bytes", e.toBytes(), hex(want));

  let r2 = new Response(404);
  r2.addHeader("set-cookie", "a=1").addHeader("set-cookie", "b=2");
  r2.setHeader("X-A", "1").setHeader("x-a", "2");
  let e2 = new Encoder(1);
  r2.encode(e2);
  let want2 = "83 a6" + strHex("status") + "cd 01 94 a7" + strHex("headers") + "93"
    + "92 aa" + strHex("set-cookie") + "a3" + strHex("a=1")
    + "92 aa" + strHex("set-cookie") + "a3" + strHex("b=2")
    + "92 a3" + strHex("x-a") + "a1" + strHex("2")
    + "a4" + strHex("body") + "c4 00";
  eqBytes("404 response with repeated headers", e2.toBytes(), hex(want2));

  let r3 = Response.bytes(201, hex("00 ff"), "application/octet-stream");
  eqStr("bytes content-type", r3.headers[0].value, "application/octet-stream");
  check("bytes status", r3.status == 201 && r3.body.length == 2);
}

function handleBytes(req: Uint8Array): Uint8Array {
  let p = wasmhost_alloc(req.length);
  check("alloc is 8-aligned and fresh", p != 0);
  memory.copy(<usize>p, req.dataStart, <usize>req.length);
  let packed = wasmhost_handle(p, req.length);
  let out = new Uint8Array(<i32>(packed & 0xffffffff));
  memory.copy(out.dataStart, <usize>(packed >>> 32), <usize>out.length);
  return out;
}

function testHandle(): void {
  // Before setHandler: 500 with a message.
  let none = handleBytes(hex(ABI_REQUEST));
  check("no handler: 500", toHex(none.subarray(0, 10)) == "83a6" + strHex("status") + "cd01");
  setHandler((req: Request): Response => Response.text(200, req.method + " " + req.path + "?" + req.query + " " + req.text() + " " + (req.config.get("K") as string)));
  let out = handleBytes(hex(ABI_REQUEST));
  let want = "83 a6" + strHex("status") + "cc c8 a7" + strHex("headers") + "91 92 ac" + strHex("content-type")
    + "b9" + strHex("text/plain; charset=utf-8") + "a4" + strHex("body") + "c4 10" + strHex("GET /hi?x=1 ok v");
  eqBytes("wasmhost_handle round trip", out, hex(want));
  let bad = handleBytes(hex("92 01 02"));
  check("malformed request: 400", toHex(bad.subarray(0, 10)) == "83a6" + strHex("status") + "cd01" && bad[10] == 0x90);
}

export function run(): i32 {
  testAbiExample();
  testUnknownKeysAndTypes();
  testBinAndLongFields();
  testUtf8();
  testMalformed();
  testEncoderInts();
  testEncoderLengths();
  testResponse();
  testHandle();
  say(checks.toString() + " checks, " + failures.toString() + " failures");
  return failures;
}

// Assertion failures (index out of range, ...) report where they happened.
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  say("ABORT " + (message === null ? "" : message) + " at " + (fileName === null ? "?" : fileName) + ":" + line.toString() + ":" + column.toString());
  unreachable();
}
