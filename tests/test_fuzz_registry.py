"""Property tests (hypothesis) of function names and versions.

Names: any string either is a valid name, and then round-trips deploy -> resolve -> list ->
delete in a real Host, or is refused with `bad_request` and a message that says what a name is,
by every entry point (Host and Registry). Versions: a RuleBasedStateMachine runs deploy / update
/ rollback / delete / pinned resolve against a real Registry and a plain model; the active
version and the version list always match the model, and `name@N` resolves exactly version N
or is not_found (also seen through a second Registry on the same files, with no cache).
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule  # noqa: F401

from tests.conftest import small_settings
from wasmhost import errors
from wasmhost.host import Host
from wasmhost.http.invoke import parse_target
from wasmhost.models import Limits
from wasmhost.inputs import validate_name
from wasmhost.store.registry import Registry

VALID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
valid_names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)
# Near misses as well as noise: upper case, leading '-', 64 characters, '@', '/', '.', NUL,
# trailing newline, Unicode look-alikes and digits (Arabic-Indic), percent-encoding.
near_misses = st.one_of(
    valid_names.map(str.upper).filter(lambda n: n != n.lower()),
    valid_names.map(lambda n: "-" + n),
    valid_names.map(lambda n: n + "\n"),
    valid_names.map(lambda n: (n * 64)[:64]),
    st.tuples(valid_names, st.sampled_from(["@", "/", ".", "\0", " ", "%2F", "_", "é", "\u0661", "ı", "K"]),
              valid_names).map("".join),
    st.just(""),
)
any_names = st.one_of(valid_names, near_misses, st.text(max_size=70))


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory):
    with Host(small_settings(tmp_path_factory.mktemp("fuzz-registry") / "data")) as h:
        yield h


@pytest.fixture(scope="module")
def hello(wasm) -> bytes:
    return wasm("hello_handler")


def _refused(call, name: str) -> None:
    with pytest.raises(errors.BadRequest) as info:
        call()
    assert info.value.code == "bad_request"
    assert "invalid function name" in info.value.message
    assert "1-63 characters of a-z, 0-9 and '-'" in info.value.message
    assert len(info.value.message) < 300  # a huge name is cut short, not echoed whole


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=any_names)
def test_names_round_trip_or_are_refused(host: Host, hello: bytes, name: str) -> None:
    if VALID.fullmatch(name):
        assert validate_name(name) == name
        dep = host.deploy(name, hello)
        assert dep.version.name == name and dep.version.version == 1
        assert host.registry.resolve(name).version == 1
        assert host.registry.resolve(name, 1).digest == dep.version.digest
        assert name in [f.name for f in host.list()]
        assert host.get(name).active.version == 1
        host.delete(name)
        assert name not in [f.name for f in host.list()]
        with pytest.raises(errors.NotFound):
            host.registry.resolve(name)
        return
    _refused(lambda: validate_name(name), name)
    _refused(lambda: host.deploy(name, hello), name)
    for call in (lambda: host.resolve(name), lambda: host.resolve(name, 1), lambda: host.get(name),
                 lambda: host.delete(name), lambda: host.rollback(name), lambda: host.update(name, config={}),
                 lambda: host.set_policy(name, private=False)):
        _refused(call, name)


@pytest.mark.parametrize("name", [None, 1, b"abc", ["abc"], 1.5])
def test_non_string_names_are_bad_requests(host: Host, name) -> None:
    for call in (lambda: validate_name(name), lambda: host.resolve(name), lambda: host.get(name),
                 lambda: host.delete(name)):
        with pytest.raises(errors.BadRequest, match="function name must be a string"):
            call()


@given(version=st.one_of(st.integers(max_value=0), st.integers(min_value=2**63), st.booleans(), st.floats(),
                         st.text(max_size=3)))
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_bad_versions_are_bad_requests(host: Host, version) -> None:
    with pytest.raises(errors.BadRequest, match="invalid version"):
        host.resolve("some-name", version)
    with pytest.raises(errors.BadRequest, match="invalid version"):
        host.rollback("some-name", version)


@given(name=valid_names, version=st.integers(1, 10**18 - 1))  # the HTTP layer takes up to 18 digits
def test_pinned_targets_parse_to_name_and_version(name: str, version: int) -> None:
    assert parse_target(name) == (name, None)
    assert parse_target(f"{name}@{version}") == (name, version)


@given(raw=st.text(max_size=30) | st.tuples(valid_names, st.text(max_size=8)).map(lambda t: f"{t[0]}@{t[1]}"))
def test_any_target_parses_or_is_a_bad_request(raw: str) -> None:
    """`NAME@N` with N a positive decimal without leading zeros; anything else after '@' is refused."""
    try:
        name, version = parse_target(raw)
    except errors.BadRequest as exc:
        assert "@" in raw and "use NAME@N with N >= 1" in exc.message
        return
    if version is None:
        assert name == raw and "@" not in raw
    else:
        assert f"{name}@{version}" == raw and version >= 1


# ------------------------------------------------------------------ versions: a state machine

NAMES = ("a", "b-2", "c")
LIMITS = Limits(fuel=1000, timeout_ms=100, memory_mb=1)


class Versions(RuleBasedStateMachine):
    """Deploy / update / rollback / delete against a model: name -> (versions, active)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.registry = Registry(Path(self.tmp.name) / "data")
        self.other = Registry(Path(self.tmp.name) / "data", recheck_s=0)  # another process's view
        self.third = Registry(Path(self.tmp.name) / "data")  # another one, with the default recheck delay
        self.blobs = [self.registry.put_blob(b"\0asm" + bytes([i]) * i) for i in (1, 2)]
        self.model: dict[str, tuple[list[int], int]] = {}
        self.retired: dict[str, int] = {}  # name -> its highest number before it was deleted
        self.digests: dict[tuple[str, int], str] = {}  # (name, version) -> digest: catches stale caches

    def teardown(self) -> None:
        self.registry.close()
        self.other.close()
        self.third.close()
        self.tmp.cleanup()

    def _expect_missing(self, call) -> None:
        with pytest.raises(errors.NotFound):
            call()

    @rule(name=st.sampled_from(NAMES), blob=st.sampled_from([0, 1]),
          config=st.dictionaries(st.sampled_from(["K", "L"]), st.text(max_size=5), max_size=2))
    def deploy(self, name: str, blob: int, config: dict) -> None:
        digest = self.blobs[blob]
        fv = self.registry.create_version(name, digest=digest, size=blob + 1 + 4, abi="handler", imports=(),
                                          exports=("memory",), limits=LIMITS, config=config)
        versions, _ = self.model.get(name, ([], 0))
        expected = max(versions, default=self.retired.get(name, 0)) + 1  # numbers go on after a delete
        assert fv.version == expected
        self.model[name] = (versions + [expected], expected)
        self.digests[(name, expected)] = digest

    @rule(name=st.sampled_from(NAMES), config=st.dictionaries(st.sampled_from(["K"]), st.text(max_size=3)))
    def update(self, name: str, config: dict) -> None:
        if name not in self.model:
            return self._expect_missing(lambda: self.registry.update(name, config=config))
        fv = self.registry.update(name, config=config)
        versions, _ = self.model[name]
        assert fv.version == max(versions) + 1 and fv.config == config
        self.digests[(name, fv.version)] = self.digests[(name, self.model[name][1])]
        self.model[name] = (versions + [fv.version], fv.version)

    @rule(name=st.sampled_from(NAMES), to=st.none() | st.integers(1, 8))
    def rollback(self, name: str, to: int | None) -> None:
        target = to
        if name not in self.model:
            return self._expect_missing(lambda: self.registry.rollback(name, target))
        versions, active = self.model[name]
        if target is None:
            below = [v for v in versions if v < active]
            target = max(below) if below else None
            if target is None:
                return self._expect_missing(lambda: self.registry.rollback(name))
            fv = self.registry.rollback(name)
        elif target not in versions:
            return self._expect_missing(lambda: self.registry.rollback(name, target))
        else:
            fv = self.registry.rollback(name, target)
        assert fv.version == target
        self.model[name] = (versions, target)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        if name not in self.model:
            return self._expect_missing(lambda: self.registry.delete(name))
        self.registry.delete(name)
        self.retired[name] = max(self.model[name][0])
        del self.model[name]

    @rule(name=st.sampled_from(NAMES), version=st.integers(1, 10))
    def resolve_pinned(self, name: str, version: int) -> None:
        versions = self.model.get(name, ([], 0))[0]
        time.sleep(0.002)  # past the third registry's recheck delay
        for reg in (self.registry, self.other, self.third):
            if version in versions:
                fv = reg.resolve(name, version)
                assert (fv.name, fv.version, fv.digest) == (name, version, self.digests[(name, version)])
            else:
                self._expect_missing(lambda: reg.resolve(name, version))

    @invariant()
    def matches_the_model(self) -> None:
        listed = self.registry.list()
        assert [f.name for f in listed] == sorted(self.model)
        for info in listed:
            versions, active = self.model[info.name]
            assert info.active.version == active
            assert [v.version for v in info.versions] == versions
        time.sleep(0.002)
        for name in NAMES:
            for reg in (self.registry, self.other, self.third):
                if name in self.model:
                    fv = reg.resolve(name)
                    assert (fv.version, fv.digest) == (self.model[name][1], self.digests[(name, fv.version)])
                else:
                    self._expect_missing(lambda: reg.resolve(name))


Versions.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_versions_match_the_model = Versions.TestCase


# ------------------------------------------------------------------ config text

_SURROGATE_CONFIG = [{"A": "\ud800"}, {"A": "x\udcffy"}, {"\udc80": "v"}]


@pytest.mark.parametrize("config", _SURROGATE_CONFIG)
def test_the_store_asserts_config_is_unicode_text(tmp_path: Path, config: dict) -> None:
    """The Host refuses such config (below); the store only asserts it never gets any."""
    with Registry(tmp_path / "data") as reg:
        digest = reg.put_blob(b"\0asm\1\0\0\0")
        with pytest.raises(AssertionError):
            reg.create_version("f", digest=digest, size=8, abi="handler", imports=(), exports=(),
                               limits=LIMITS, config=config)
        assert reg.list() == []


@pytest.mark.parametrize("config", _SURROGATE_CONFIG[:2])
def test_host_refuses_config_that_is_not_unicode(host: Host, hello: bytes, config: dict) -> None:
    """A lone surrogate (from a JSON '\\ud800' escape) is not text a WASI environment can carry."""
    host.deploy("surrogates", hello)
    try:
        with pytest.raises(errors.BadRequest):
            host.update("surrogates", config=config)
        with pytest.raises(errors.BadRequest):
            host.deploy("surrogates", hello, config=config)
    finally:
        host.delete("surrogates")


# ------------------------------------------------------------------ name@N through a real Host


@pytest.fixture(scope="module")
def pinned(host: Host, wasm) -> str:
    """`pins` with versions 1..4 (config V = the version), then rolled back to 2, then 5 and 6
    (updates of the active version 2), then the active version rolled back to 3."""
    import msgpack  # noqa: F401  (used by the test through the echo body)
    for i in range(1, 5):
        host.deploy("pins", wasm("echo_handler"), config={"V": str(i)})
    host.rollback("pins", 2)
    host.update("pins", config={"V": "5"})
    host.update("pins", config={"V": "6"})
    host.rollback("pins", 3)
    return "pins"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(version=st.none() | st.integers(1, 9))
def test_pinned_invocations_run_exactly_that_version(host: Host, pinned: str, version: int | None) -> None:
    import msgpack
    from wasmhost.models import Request
    if version is not None and version > 6:
        with pytest.raises(errors.NotFound, match=f"no version {version}"):
            inv = host.invoke(pinned, Request(), version)
            raise inv.error or AssertionError("a missing version answered")
        return
    inv = host.invoke(pinned, Request(), version)
    assert inv.ok, inv.error
    expected = 3 if version is None else version
    assert inv.version == expected
    assert msgpack.unpackb(inv.response.body, raw=False)["config"] == {"V": str(expected)}
