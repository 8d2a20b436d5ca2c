"""Crash safety: `kill -9` a real server in the middle of concurrent deploys, updates, rollbacks and
deletes, restart it on the same data directory, and check that nothing acknowledged was lost and
nothing unacknowledged is half-visible; then `wasmhost fsck` must pass and find nothing to repair.

How "acknowledged" is judged: every client thread owns its own function names and sends one
request at a time, so each name has a linear history of acknowledged (2xx) changes plus at most
one request in flight when the server died. After the restart, each name must be exactly in the
state after its last acknowledged change, or exactly in the state after the in-flight change (whose
outcome is predictable: the next version number, the known digest). Anything else (a version
missing or extra, another digest or config, another active version) fails. The seed is printed;
rerun one with CRASH_SEED=<seed>.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, Server

THREADS = 8
NAMES_PER_THREAD = 3
HELLO_BODY = b"Hello, world!\n"


def with_nonce(wasm: bytes, nonce: bytes) -> bytes:
    """The module plus a custom section (id 0) named "nonce": same code, different bytes and digest."""
    name = b"nonce"
    payload = bytes([len(name)]) + name + nonce
    assert len(payload) < 128  # one-byte LEB128 size
    return wasm + bytes([0, len(payload)]) + payload


@dataclass(frozen=True)
class State:
    """A function as the clients believe it is: {version: (digest, config, kind)} and the active one."""

    versions: tuple[tuple[int, tuple[str, str, str]], ...] = ()
    active: int | None = None
    last: int = 0  # the highest number the name has had: numbers go on after a delete

    def as_dict(self) -> dict[int, tuple[str, str, str]]:
        return dict(self.versions)

    def with_version(self, digest: str, config: str, kind: str) -> "State":
        number = max(max(self.as_dict(), default=0), self.last) + 1
        return State(self.versions + ((number, (digest, config, kind)),), number, number)

    def deleted(self) -> "State":
        return State(last=max(max(self.as_dict(), default=0), self.last))


@dataclass
class Ledger:
    """Per name: the state after the last acknowledged change, and the state if the in-flight one landed."""

    acked: dict[str, State] = field(default_factory=dict)
    in_flight: dict[str, State] = field(default_factory=dict)
    acknowledged: int = 0  # acknowledged changes, over all rounds
    refused: list[str] = field(default_factory=list)  # unexpected non-2xx answers
    slowest: float = 0.0  # seconds, the slowest acknowledged change
    landed: int = 0  # changes in flight at a kill that turned out committed


def client_thread(url: str, names: list[str], ledger: Ledger, lock: threading.Lock, rng: random.Random,
                  bases: dict[str, bytes], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            name = rng.choice(names)
            with lock:
                state = ledger.acked[name]
            versions = state.as_dict()
            earlier = [v for v in versions if state.active is not None and v < state.active]
            roll = rng.random()
            if state.active is None or roll < 0.45:
                kind = rng.choice(["hello", "hello", "echo"])
                wasm = with_nonce(bases[kind], rng.randbytes(16))
                digest = hashlib.sha256(wasm).hexdigest()
                after = state.with_version(digest, "{}", kind)
                send = lambda: client.put(f"/v1/functions/{name}", content=wasm,  # noqa: E731
                                          headers={"content-type": "application/wasm"})
            elif roll < 0.65:
                config = {"N": str(rng.randrange(10**6))}
                digest, _, kind = versions[state.active]
                after = state.with_version(digest, json.dumps(config, sort_keys=True), kind)
                send = lambda: client.patch(f"/v1/functions/{name}", json={"config": config})  # noqa: E731
            elif roll < 0.85 and earlier:
                after = State(state.versions, max(earlier), state.last)
                send = lambda: client.post(f"/v1/functions/{name}/rollback", json={})  # noqa: E731
            elif roll < 0.93:
                after = state.deleted()
                send = lambda: client.delete(f"/v1/functions/{name}")  # noqa: E731
            else:  # a call: loads modules, writes invocation logs
                try:
                    client.get(f"/fn/{name}")
                except httpx.HTTPError:
                    return
                continue
            with lock:
                ledger.in_flight[name] = after
            started = time.monotonic()
            try:
                response = send()
            except httpx.HTTPError:
                return  # the server died with this change in flight: it stays in `in_flight`
            with lock:
                del ledger.in_flight[name]
                ledger.slowest = max(ledger.slowest, time.monotonic() - started)
                if response.is_success:
                    ledger.acked[name] = after
                    ledger.acknowledged += 1
                    check_answer(response, after, name)
                else:
                    ledger.refused.append(f"{name}: {response.status_code} {response.text[:200]}")


def check_answer(response: httpx.Response, after: State, name: str) -> None:
    """What the server acknowledged is what the model predicted (version number and digest)."""
    if response.status_code == 204:
        assert after.active is None
        return
    body = response.json()
    assert body["version"] == after.active, (name, body, after)
    assert body["digest"] == after.as_dict()[after.active][0], (name, body, after)


def observed(server: Server, name: str) -> State:
    response = server.client.get(f"/v1/functions/{name}")
    if response.status_code == 404:
        return State()
    response.raise_for_status()
    info = response.json()
    kinds = {}
    versions = tuple((v["version"], (v["digest"], json.dumps(v["config"], sort_keys=True), kinds.get(v["digest"], "?")))
                     for v in info["versions"])
    return State(versions, info["active_version"])


def same(a: State, b: State) -> bool:
    """Equal, ignoring the module kind (the server does not know it)."""
    strip = lambda s: ({k: v[:2] for k, v in s.as_dict().items()}, s.active)  # noqa: E731
    return strip(a) == strip(b)


def verify(server: Server, ledger: Ledger, data_dir: Path, seed: int) -> int:
    """Every name is in its acknowledged state or its in-flight state; every version answers over
    HTTP from a blob that hashes to its digest. Adopts what it saw as the new acknowledged state.
    Returns how many versions it called."""
    calls = 0
    for name in sorted(ledger.acked):
        acked, maybe = ledger.acked[name], ledger.in_flight.get(name)
        seen = observed(server, name)
        assert same(seen, acked) or (maybe is not None and same(seen, maybe)), (
            f"seed {seed}: {name} is {seen}, acknowledged {acked}, in flight {maybe}")
        model = acked if same(seen, acked) else maybe
        if model is maybe and not same(acked, maybe):
            ledger.landed += 1
        ledger.acked[name] = model
        if model.active is None:
            assert server.client.get(f"/fn/{name}").status_code == 404, f"seed {seed}: {name} deleted"
            continue
        for number, (digest, config, kind) in model.as_dict().items():
            blob = data_dir / "blobs" / "sha256" / digest[:2] / f"{digest}.wasm"
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest, f"seed {seed}: blob {digest}"
            target = name if number == model.active else f"{name}@{number}"
            response = server.client.post(f"/fn/{target}", content=b"ping")
            # hello answers its fixed text; echo answers the request it saw as msgpack, config included
            wanted = [HELLO_BODY] if kind == "hello" else [b"\xc4\x04ping", *(
                v.encode() for v in json.loads(config).values())]
            assert response.status_code == 200 and all(w in response.content for w in wanted), (
                f"seed {seed}: {target}: {response.status_code} {response.content[:300]!r}")
            assert response.headers["x-wasmhost-version"] == str(number)
            calls += 1
    ledger.in_flight.clear()
    return calls


def run_fsck(data_dir: Path, *args: str) -> tuple[int, dict]:
    """`wasmhost fsck --json` in a subprocess, with the server's environment (same engine fingerprint)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASMHOST_")}
    env["WASMHOST_DATA"] = str(data_dir)
    proc = subprocess.run([sys.executable, "-m", "wasmhost", "fsck", "--json", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout)


def crash_rounds(tmp_path: Path, wasm, rounds: int) -> None:
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2**32))
    print(f"crash-safety seed: {seed} (rerun with CRASH_SEED={seed})")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    bases = {"hello": wasm("hello_handler"), "echo": wasm("echo_handler")}
    names = [f"crash-{t}-{i}" for t in range(THREADS) for i in range(NAMES_PER_THREAD)]
    ledger = Ledger(acked={name: State() for name in names})
    server = Server(data_dir).start()
    try:
        totals = {"acknowledged": 0, "in_flight": 0, "calls": 0, "garbage": 0}
        leftovers: dict[str, int] = {}
        for round_no in range(rounds):
            lock, stop = threading.Lock(), threading.Event()
            threads = [threading.Thread(target=client_thread, daemon=True, args=(
                server.url, names[t * NAMES_PER_THREAD:(t + 1) * NAMES_PER_THREAD], ledger, lock,
                random.Random(rng.randrange(2**32)), bases, stop)) for t in range(THREADS)]
            before = ledger.acknowledged
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while ledger.acknowledged < before + 5 and time.monotonic() < deadline:
                time.sleep(0.01)  # traffic is flowing (clients connect and warm up first) ...
            if round_no % 2 == 1:  # repairs while serving must not disturb traffic (checked below: no refusals)
                run_fsck(data_dir, "--repair")
            pause = rng.uniform(0.0, 1.5)
            time.sleep(pause)  # ... then a random moment in it
            os.killpg(server.proc.pid, signal.SIGKILL)  # the whole process group, mid-traffic
            server.proc.wait(timeout=30)
            server.proc = None
            stop.set()
            for t in threads:
                t.join(timeout=60)
                assert not t.is_alive(), f"seed {seed}: a client hung"
            assert ledger.refused == [], f"seed {seed}: refused: {ledger.refused[:5]}"
            assert ledger.acknowledged > before, (
                f"seed {seed}: round {round_no}: nothing acknowledged in {pause:.2f}s; in flight: {ledger.in_flight}")
            totals["in_flight"] += len(ledger.in_flight)

            # Before the restart: the directory as the crash left it must pass the check.
            code, report = run_fsck(data_dir)
            assert code == 0 and report["ok"], f"seed {seed}: fsck after the crash: {report['findings']}"
            totals["garbage"] += len(report["findings"])
            for finding in report["findings"]:
                leftovers[finding["kind"]] = leftovers.get(finding["kind"], 0) + 1

            server.start()
            totals["calls"] += verify(server, ledger, data_dir, seed)
            code, report = run_fsck(data_dir)  # with the server running again
            assert code == 0, f"seed {seed}: fsck after the restart: {report['findings']}"
        totals["acknowledged"] = ledger.acknowledged

        # Repairs while the server runs (idle): then nothing is left, and everything still answers.
        code, report = run_fsck(data_dir, "--repair", "--min-age", "0")
        assert code == 0 and all(f["repaired"] for f in report["findings"]), f"seed {seed}: {report['findings']}"
        code, report = run_fsck(data_dir)
        assert code == 0 and report["findings"] == [], f"seed {seed}: left after repair: {report['findings']}"
        verify(server, ledger, data_dir, seed)
        print(f"crash-safety: {rounds} kills, {totals['acknowledged']} acknowledged changes checked, "
              f"{totals['in_flight']} in flight at a kill ({ledger.landed} of them committed), slowest ack {ledger.slowest:.2f}s, {totals['calls']} versions called, "
              f"{totals['garbage']} leftovers reported by fsck over the rounds {leftovers}")
    finally:
        server.stop()
        server.client.close()


def test_kill_9_once_loses_nothing_acknowledged(tmp_path: Path, wasm) -> None:
    crash_rounds(tmp_path, wasm, rounds=1)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path: Path, wasm) -> None:
    crash_rounds(tmp_path, wasm, rounds=5)
