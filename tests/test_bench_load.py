"""bench/load.py end to end, in small: real servers, real load, figures that make sense (no speed asserted)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.common import start_bare
from bench.load import ServerTree, load_matrix, throughput_asyncio


def test_load_matrix_small(tmp_path: Path) -> None:
    # wrk when it is installed; otherwise the asyncio fallback (always possible). No apt-get from a test.
    client = "wrk" if shutil.which("wrk") else "asyncio"
    report = load_matrix(tmp_path, concurrencies=(4,), workers=(1,), seconds=1, progress=lambda _: None,
                         client=client)
    assert report["settings"]["client"] == client
    for target in ("floor", "wasmhost"):
        entry = report["results"][target]["1"]
        run = entry["by_concurrency"]["4"]
        assert run["rps"] > 0 and run["requests"] > 0
        assert run["errors_total"] == 0 and run["non_2xx"] == 0 and run["wrong_body"] == 0, run
        assert run["latency_us"]["p50"] > 0
        assert run["server_cpu_cores"] > 0
        assert len(entry["rss_rest_mib"]) == 1 and entry["rss_rest_mib"][0] > 0
        assert entry["rss_load_mib"][0] > 0
    assert report["ratios_vs_floor"]["wasmhost"]["1"]["4"]["rps"] > 0


def test_asyncio_fallback_reports_percentiles(tmp_path: Path) -> None:
    server = start_bare(tmp_path)
    try:
        r = throughput_asyncio(server.port, "/fn/hello", 2, 0.5, ServerTree(server))
    finally:
        server.stop()
    assert r["requests"] > 0 and r["errors"] == 0 and r["non_2xx"] == 0 and r["wrong_body"] == 0
    lat = r["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
