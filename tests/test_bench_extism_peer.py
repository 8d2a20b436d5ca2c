"""The Extism peer benchmark (bench/peer_extism.py) runs and measures what it says.

Skipped where the extism SDK (and its native extism-sys wheel) is not installed.
Speed is not asserted: only that every variant ran, answered right, and was timed.
"""

from __future__ import annotations

import pytest

from bench.peer_extism import EXPECTED, extism_per_call, extism_version, hello_plugin_wasm


@pytest.fixture(scope="module")
def report() -> dict:
    if extism_version() is None:
        pytest.skip("the extism SDK is not installed (pip install extism)")
    return extism_per_call(n=50, repeats=2)


def test_hello_plugin_answers_hello() -> None:
    if extism_version() is None:
        pytest.skip("the extism SDK is not installed (pip install extism)")
    import extism

    wasm = hello_plugin_wasm()
    with extism.Plugin(wasm, functions=[]) as plugin:
        assert plugin.function_exists("hello")
        assert plugin.call("hello", b"") == EXPECTED
        assert plugin.call("hello", b"ignored input") == EXPECTED


def test_every_variant_timed_with_positive_medians(report: dict) -> None:
    variants = report["variants"]
    expected = {"extism_fresh_from_bytes", "extism_fresh_from_manifest", "extism_fresh_from_bytes_nocache",
                "extism_fresh_from_compiled", "extism_reuse_one_plugin",
                "wasmhost_hello_nolog", "wasmhost_hello_handler"}
    assert expected <= set(variants)
    for name, v in variants.items():
        assert len(v["us_runs"]) == 2, name
        assert all(x > 0 for x in v["us_runs"]), name
        assert v["us_median"] > 0, name
        assert v["cpu_us_median"] > 0, name
        assert v["output_ok"] is True, name
    assert report["ratios_wasmhost_over_extism"]["wasmhost_hello_nolog/extism_fresh_from_compiled"] > 0


def test_fresh_variants_are_fresh_and_reuse_is_not(report: dict) -> None:
    state = report["instance_state_across_3_calls"]
    assert state["extism_fresh_from_bytes"] == [1, 1, 1]
    assert state["extism_fresh_from_compiled"] == [1, 1, 1]
    assert state["extism_reuse_one_plugin"] == [1, 2, 3]
