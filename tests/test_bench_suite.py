"""`make bench` end to end in its quick form, and the report built from its results.

The suite is a product feature: this keeps it from rotting. Speed is never asserted; what is
checked is that every section ran on real servers and real modules, every answer was right, and
the report states every goal with a figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.common import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench")
    # asyncio load client: a test must not apt-get wrk.
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out-dir", str(out),
                           "--no-readme", "--load-client", "asyncio"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = sorted(out.glob("*.json"))
    assert len(results) == 1, list(out.iterdir())
    return json.loads(results[0].read_text()), out, done.stdout


def test_every_section_ran(quick_run: tuple[dict, Path, str]) -> None:
    r, _, stdout = quick_run
    assert r["failed"] == {}
    names = {w["name"] for w in r["workloads"]}
    assert names == {"hello", "rust-wagi", "as-hello", "sha256", "large"}
    for name in names:
        assert r["host"]["memory"][name]["wall"]["p50_us"] > 0
        assert r["host"]["restart"][name]["disk"]["host_total"]["p50_us"] > 0
        assert r["host"]["restart"][name]["compile"]["host_load"]["p50_us"] > 0
        assert r["host"]["naive"][name]["wall"]["p50_us"] > 0
        assert r["http"]["latency"][f"wasmhost {name}"]["errors"] == 0
        assert r["http"]["restart"][name]["disk"]["n"] >= 1
        assert r["http"]["deploy_to_first_response"][name]["p50_ms"] > 0
    assert r["http"]["latency"]["floor"]["errors"] == 0
    load = r["load"]["results"]
    for target in ("floor", "wasmhost"):
        for workers in ("1", "2"):
            for c in ("1", "8", "32", "128"):
                point = load[target][workers]["by_concurrency"][c]
                assert point["rps"] > 0 and point["non_2xx"] == 0 and point["wrong_body"] == 0, (target, workers, c)
    assert "] == host" in stdout and "] == load" in stdout


def test_peers_ran_when_available(quick_run: tuple[dict, Path, str]) -> None:
    r, _, _ = quick_run
    from bench.peer_extism import extism_version
    from bench.peer_node import node_version

    if node_version():
        assert r["peers"]["node"]["per_call"]["hello"]["us_median"] > 0
        assert r["http"]["latency"]["node hello"]["errors"] == 0
        assert r["load"]["results"]["node"]["1"]["by_concurrency"]["8"]["rps"] > 0
    if extism_version():
        assert r["peers"]["extism"]["per_call"]["variants"]["extism_fresh_from_compiled"]["us_median"] > 0


def test_report_states_every_goal_and_draws_charts(quick_run: tuple[dict, Path, str]) -> None:
    r, out, _ = quick_run
    goals = r["goals"]
    assert len(goals) >= 8
    assert all(g["figure"] is not None for g in goals), [g for g in goals if g["figure"] is None]
    md = next(out.glob("*.md")).read_text()
    for g in goals:
        assert g["goal"] in md
    for chart in ("tiers", "http", "peers", "load"):
        png = next(out.glob(f"*-{chart}.png"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png.name})" in md
    # The report is rebuilt from the saved JSON alone.
    rebuilt = report.markdown(json.loads(next(out.glob("*.json")).read_text()), [])
    assert "### Goals" in rebuilt and "### Cold-start tiers" in rebuilt


def test_readme_section_is_replaced_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# B\n\nbefore\n\n{report.README_START}\nold\n{report.README_END}\n\nafter\n")
    report.update_readme(readme, "## new\n![x](2026-a-tiers.png)\n", "2026-a")
    text = readme.read_text()
    assert "old" not in text and "## new" in text and "before" in text and "after" in text
    assert "](results/2026-a-tiers.png)" in text
