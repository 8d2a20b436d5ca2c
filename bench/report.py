"""Turns one run's results (bench/run.py) into goal verdicts, a Markdown report and PNG charts.

Only reads the results dict: nothing here measures, so a report can be rebuilt from any saved
JSON (`python bench/report.py bench/results/<file>.json`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"


def get(d: Any, *keys: str | int, default: Any = None) -> Any:
    """d[k1][k2]... or `default` where a section is missing (a skipped or failed section)."""
    for k in keys:
        try:
            d = d[k]
        except (KeyError, IndexError, TypeError):
            return default
    return d


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        x = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"
    return f"{x}{unit}"


def node_us(r: dict, name: str) -> float | None:
    return get(r, "peers", "node", "per_call", name, "us_median")


# --------------------------------------------------------------------------- goals

def goals(r: dict) -> list[dict]:
    """Each goal of the benchmark issue with this run's figure and whether it is met (None: not measured)."""
    out: list[dict] = []

    def goal(text: str, figure: float | None, target: float, lower_is_better: bool = True, unit: str = "") -> None:
        met = None if figure is None else (figure <= target if lower_is_better else figure >= target)
        out.append({"goal": text, "figure": figure, "target": target, "unit": unit, "met": met,
                    "op": "≤" if lower_is_better else "≥"})

    mem = get(r, "host", "memory", default={})
    goal("memory tier, handler hello, host side (µs per Host.invoke, p50)", get(mem, "hello", "wall", "p50_us"), 30, unit="µs")
    goal("memory tier, Rust WAGI hello, host side (µs per Host.invoke, p50)", get(mem, "rust-wagi", "wall", "p50_us"), 120,
         unit="µs")
    restart = get(r, "host", "restart", default={})
    examples = [v for k, v in restart.items() if not k.startswith("_")]
    worst = max((get(v, "disk", "host_overhead", "p50_us") or 0 for v in examples), default=None)
    goal("first call after a restart (disk tier): host's load + instantiate, worst example (µs, p50)", worst or None,
         2000, unit="µs")
    worst = max((get(v, "disk", "host_total", "p50_us") or 0 for v in examples), default=None)
    goal("… the same including the guest's own first run, worst example (µs, p50)", worst or None, 2000, unit="µs")
    goal("large module: code load, compile / disk (host side, p50)", get(restart, "large", "compile_over_disk"), 500,
         lower_is_better=False, unit="×")
    goal("… whole first call, compile / disk", get(restart, "large", "compile_over_disk_first_call"), 500,
         lower_is_better=False, unit="×")
    lat = get(r, "http", "latency", default={})
    goal("HTTP p50, hello / floor", ratio(get(lat, "wasmhost hello", "p50_us"), get(lat, "floor", "p50_us")), 1.3, unit="×")
    tput = [p["ratio_rps"] for p in load_points(r.get("load")) if p["target"] == "wasmhost" and p["ratio_rps"]]
    goal("throughput, wasmhost hello / floor (worst concurrency and worker count)", min(tput) if tput else None, 0.75,
         lower_is_better=False, unit="×")
    handlers = [w["name"] for w in r.get("workloads", []) if w["interface"] == "handler"]
    node_ratios = [ratio(get(mem, n, "wall", "p50_us"), node_us(r, n)) for n in handlers]
    node_ratios = [x for x in node_ratios if x is not None]
    goal("per fresh-instance call, wasmhost / Node.js (worst module)", max(node_ratios) if node_ratios else None, 1.0,
         unit="×")
    goal("per fresh-instance call, wasmhost / Extism (hello; Extism compiled once, fresh plugin per call)",
         get(r, "peers", "extism", "per_call", "ratios_wasmhost_over_extism",
             "wasmhost_hello_handler/extism_fresh_from_compiled"), 1.0, unit="×")
    return out


# --------------------------------------------------------------------------- markdown

def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines + [""]


def markdown(r: dict, chart_files: list[str]) -> str:
    m = r.get("machine", {})
    out = [f"## Results of {r.get('date')} on `{m.get('node')}`{' (quick run)' if r.get('quick') else ''}", "",
           f"{m.get('cpus_usable')} usable CPUs ({m.get('cpu_model')}), Python {m.get('python')}, "
           f"wasmtime {get(m, 'packages', 'wasmtime')}, uvicorn {get(m, 'packages', 'uvicorn')}; "
           f"load average {fmt(get(r, 'loadavg_before', 0))} before, {fmt(get(r, 'loadavg_after', 0))} after; "
           f"{fmt(r.get('elapsed_s'))} s in all. Produced by `bench/run.py`; method in bench/README.md.", ""]
    if r.get("failed"):
        out += ["**Sections that failed:** " + "; ".join(f"{k}: {v}" for k, v in r["failed"].items()), ""]

    out += ["### Goals", ""]
    out += table(["goal", "this run", "target", "met"],
                 [[g["goal"], fmt(g["figure"], g["unit"]), f"{g['op']} {g['target']}{g['unit']}",
                   {True: "yes", False: "**no**", None: "not measured"}[g["met"]]] for g in r.get("goals", [])])

    names = [w["name"] for w in r.get("workloads", [])]
    labels = {w["name"]: f"{w['name']} — {w['label']}, {w['bytes'] / 1024:,.0f} KiB" for w in r.get("workloads", [])}
    mem, restart, naive = (get(r, "host", k, default={}) for k in ("memory", "restart", "naive"))
    if mem:
        out += ["### Cold-start tiers, host side (µs)", "",
                "memory: `Host.invoke` in process, fresh Store and instance, each call timed; disk / compile: the "
                "first call in a new process with / without the artifact (host-reported load + instantiate + run); "
                "naive: wasmtime-py compiling on every request. Compile/disk and naive/memory are the speed-ups "
                "each cache tier buys.", ""]
        rows = []
        for n in names:
            rows.append([labels[n], get(mem, n, "wall", "p50_us"), get(mem, n, "wall", "p99_us"),
                         get(mem, n, "host_reported_median_us", "run"),
                         get(restart, n, "disk", "host_total", "p50_us"), get(restart, n, "disk", "host_total", "p99_us"),
                         get(restart, n, "disk", "host_overhead", "p50_us"), get(restart, n, "disk", "guest_run", "p50_us"),
                         get(restart, n, "compile", "host_total", "p50_us"), get(restart, n, "compile_over_disk"),
                         get(naive, n, "wall", "p50_us"),
                         ratio(get(naive, n, "wall", "p50_us"), get(mem, n, "wall", "p50_us"), 0)])
        out += table(["module", "memory p50", "memory p99", "of which guest run", "disk p50", "disk p99",
                      "disk: load + instantiate", "disk: guest run", "compile p50", "compile / disk (code load)",
                      "naive p50", "naive / memory"], rows)
        base = get(mem, "_baseline_wasmtime_py", "wall", "p50_us")
        out += [f"Plain wasmtime-py fresh-instance call of the same hello (its Python API, module compiled once), "
                f"same process: p50 {fmt(base)} µs; wasmhost's memory tier is "
                f"{fmt(ratio(base, get(mem, 'hello', 'wall', 'p50_us'), 1))}× faster. Process start + `Host()` "
                f"before a disk-tier call: {fmt(get(restart, '_host_start_ms_median'))} ms (not in the figures).", ""]

    lat = get(r, "http", "latency", default={})
    if lat:
        floor = get(lat, "floor", "p50_us")
        out += ["### Over loopback HTTP, one keep-alive connection, sequential (µs)", "",
                "floor: a bare Starlette endpoint answering hello's bytes under the same uvicorn settings. "
                "node: `node:http`, module compiled once, fresh instance per request.", ""]
        rows = [["floor (bare Starlette)", get(lat, "floor", "p50_us"), get(lat, "floor", "p90_us"),
                 get(lat, "floor", "p99_us"), 1.0, "—", "—", get(lat, "floor", "errors")]]
        for n in names:
            w, nd = lat.get(f"wasmhost {n}", {}), lat.get(f"node {n}", {})
            rows.append([f"wasmhost {n}", w.get("p50_us"), w.get("p90_us"), w.get("p99_us"),
                         ratio(w.get("p50_us"), floor), nd.get("p50_us"), ratio(w.get("p50_us"), nd.get("p50_us")),
                         (w.get("errors") or 0) + (nd.get("errors") or 0)])
        out += table(["target", "p50", "p90", "p99", "p50 / floor", "node p50", "wasmhost / node", "errors"], rows)
        hr = get(r, "http", "restart", default={})
        dep = get(r, "http", "deploy_to_first_response", default={})
        rows = [[n, get(hr, n, "disk", "client_p50_us"), get(hr, n, "disk", "host_p50_us"),
                 get(hr, n, "compile", "client_p50_us"), get(dep, n, "p50_ms"), get(dep, n, "compile_ms_p50")]
                for n in names]
        out += ["First response after a server restart, client side (connection already open) and host side "
                "(Server-Timing), µs; deploy of a never-seen module to its first answer, ms:", ""]
        out += table(["module", "disk, client p50", "disk, host p50", "compile, client p50",
                      "deploy → first response p50 (ms)", "of which compile (ms)"], rows)

    out += peers_markdown(r, names)
    out += load_markdown(r)
    if chart_files:
        out += ["### Charts", ""] + [f"![{f}]({f})" for f in chart_files] + [""]
    return "\n".join(out)


def peers_markdown(r: dict, names: list[str]) -> list[str]:
    mem = get(r, "host", "memory", default={})
    node = get(r, "peers", "node", default={})
    ext = get(r, "peers", "extism", default={})
    out: list[str] = []
    if get(node, "per_call"):
        out += [f"### Per fresh-instance call in process: wasmhost against Node.js {node.get('version')} (µs, p50)", "",
                "Node: `new WebAssembly.Instance` of a module compiled once, then alloc/write/handle/read, in "
                "one node process (no fuel, no deadline). wasmhost: `Host.invoke` (fuel, deadline, memory cap).", ""]
        rows = [[n, get(mem, n, "wall", "p50_us"), node_us(r, n), ratio(get(mem, n, "wall", "p50_us"), node_us(r, n))]
                for n in names if node_us(r, n) is not None]
        out += table(["module", "wasmhost", "Node.js", "wasmhost / Node.js"], rows)
    if get(ext, "per_call"):
        pc = ext["per_call"]
        out += [f"### Per call in process: wasmhost against Extism {ext.get('version')} (µs, median of runs)", ""]
        rows = [[k, get(v, "us_median"), get(v, "cpu_us_median"), get(v, "calls_per_run")]
                for k, v in get(pc, "variants", default={}).items()]
        out += table(["variant", "µs per call (wall)", "CPU µs per call", "calls per run"], rows)
        rats = get(pc, "ratios_wasmhost_over_extism", default={})
        out += ["wasmhost / Extism: " + ", ".join(f"{k} = {fmt(v)}" for k, v in rats.items()
                                                 if k.startswith("wasmhost_hello_handler/")), ""]
        out += [f"- {note}" for note in get(pc, "notes", default=[])] + [""]
    return out


def load_points(load: dict | None) -> list[dict]:
    """bench/load.py's nested results as flat rows: one per (target, workers, concurrency)."""
    points = []
    for target, by_workers in get(load, "results", default={}).items():
        for workers, entry in by_workers.items():
            for c, run in entry.get("by_concurrency", {}).items():
                points.append({"target": target, "workers": int(workers), "concurrency": int(c), **run,
                               "ratio_rps": get(load, "ratios_vs_floor", target, workers, c, "rps"),
                               "ratio_p99": get(load, "ratios_vs_floor", target, workers, c, "p99")})
    return sorted(points, key=lambda p: (p["target"] != "floor", p["target"], p["workers"], p["concurrency"]))


def load_markdown(r: dict) -> list[str]:
    load = r.get("load")
    points = load_points(load)
    if not points:
        return []
    st = get(load, "settings", default={})
    out = ["### Throughput and tail latency under load (requests/s; latency in µs)", "",
           f"Load generator: {st.get('client')} ({st.get('client_threads')} threads), {st.get('seconds')} s per point "
           f"after a warm-up; every target answers hello's bytes at /fn/hello. CPU in cores: the load generator's, "
           "the server's (all its processes), the whole machine's (2 vCPUs: what is neither was other work).", ""]
    rows = [[p["target"], p["workers"], p["concurrency"], p.get("rps"), get(p, "latency_us", "p50"),
             get(p, "latency_us", "p99"), get(p, "latency_us", "p99_9"), p.get("ratio_rps"),
             (p.get("errors_total") or 0) + (p.get("non_2xx") or 0) + (p.get("wrong_body") or 0),
             p.get("client_cpu_cores"), p.get("server_cpu_cores"), p.get("machine_cpu_cores")] for p in points]
    out += table(["target", "workers", "connections", "requests/s", "p50", "p99", "p99.9", "rps / floor",
                  "errors", "client CPU", "server CPU", "machine CPU"], rows)
    rss_rows = []
    for target, by_workers in get(load, "results", default={}).items():
        for workers, entry in by_workers.items():
            rss_rows.append([target, workers, ", ".join(fmt(v) for v in entry.get("rss_rest_mib", [])),
                             ", ".join(fmt(v) for v in entry.get("rss_load_mib", [])), entry.get("rss_master_mib")])
    out += ["RSS per worker process (MiB; with 2 workers uvicorn also runs a master process):", ""]
    out += table(["target", "workers", "at rest", "under load (peak)", "master"], rss_rows)
    return out


# --------------------------------------------------------------------------- charts

def charts(r: dict, base: Path) -> list[Path]:
    """PNG charts next to the JSON; none (and no error) if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made: list[Path] = []
    names = [w["name"] for w in r.get("workloads", [])]

    mem, restart, naive = (get(r, "host", k, default={}) for k in ("memory", "restart", "naive"))
    if mem:
        fig, ax = plt.subplots(figsize=(10, 5))
        series = [("memory", [get(mem, n, "wall", "p50_us") for n in names]),
                  ("disk (first call after restart)", [get(restart, n, "disk", "host_total", "p50_us") for n in names]),
                  ("compile (no artifact)", [get(restart, n, "compile", "host_total", "p50_us") for n in names]),
                  ("naive (compile per request)", [get(naive, n, "wall", "p50_us") for n in names])]
        width = 0.2
        for i, (label, values) in enumerate(series):
            xs = [j + (i - 1.5) * width for j in range(len(names))]
            ax.bar(xs, [v or 0 for v in values], width, label=label)
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("µs per call, host side (p50, log scale)")
        ax.set_title("Cold-start tiers per module")
        ax.legend()
        made.append(save(fig, plt, base, "tiers"))

    lat = get(r, "http", "latency", default={})
    if lat:
        fig, ax = plt.subplots(figsize=(10, 5))
        floor = get(lat, "floor", "p50_us")
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [get(lat, f"wasmhost {n}", "p50_us") or 0 for n in names], 0.4, label="wasmhost")
        ax.bar([x + 0.2 for x in xs], [get(lat, f"node {n}", "p50_us") or 0 for n in names], 0.4, label="Node.js")
        if floor:
            ax.axhline(floor, color="gray", linestyle="--", label=f"floor (bare Starlette) {floor:.0f} µs")
        ax.set_yscale("log")
        ax.set_xticks(list(xs), names)
        ax.set_ylabel("µs per request over loopback HTTP (p50, log scale)")
        ax.set_title("HTTP latency, sequential keep-alive requests")
        ax.legend()
        made.append(save(fig, plt, base, "http"))

    points = load_points(r.get("load"))
    if points:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        keys = sorted({(p["target"], p["workers"]) for p in points})
        for target, workers in keys:
            ps = sorted((p for p in points if p["target"] == target and p["workers"] == workers),
                        key=lambda p: p["concurrency"])
            cs = [p["concurrency"] for p in ps]
            axes[0].plot(cs, [p["rps"] for p in ps], marker="o", label=f"{target}, {workers} worker(s)")
            axes[1].plot(cs, [get(p, "latency_us", "p99") or 0 for p in ps], marker="o",
                         label=f"{target}, {workers} worker(s)")
        for ax, title, ylabel in ((axes[0], "Throughput", "requests/s"), (axes[1], "Tail latency", "p99 µs")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent connections")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.legend(fontsize=8)
        axes[1].set_yscale("log")
        made.append(save(fig, plt, base, "load"))

    peer_rows = [(n, get(mem, n, "wall", "p50_us"), node_us(r, n)) for n in names if node_us(r, n) is not None]
    variants = get(r, "peers", "extism", "per_call", "variants", default={})
    if peer_rows or variants:
        fig, ax = plt.subplots(figsize=(10, 5))
        labels, values, colors = [], [], []
        for n, w, nd in peer_rows:
            labels += [f"wasmhost\n{n}", f"node\n{n}"]
            values += [w or 0, nd or 0]
            colors += ["tab:blue", "tab:orange"]
        for k, v in variants.items():
            labels.append(k.replace("_", "\n"))
            values.append(get(v, "us_median") or 0)
            colors.append("tab:blue" if k.startswith("wasmhost") else "tab:green")
        ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)), labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("µs per fresh-instance call, in process (log scale)")
        ax.set_title("wasmhost against Node.js (orange) and Extism (green)")
        made.append(save(fig, plt, base, "peers"))
    return made


def save(fig: Any, plt: Any, base: Path, what: str) -> Path:
    path = base.with_name(f"{base.name}-{what}.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def update_readme(readme: Path, markdown_text: str, base_name: str) -> None:
    """Replace the part of bench/README.md between the latest-results markers with this run's report."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    body = re.sub(r"!\[([^\]]*)\]\(([^)/]+\.png)\)", r"![\1](results/\2)", markdown_text)
    new = f"{README_START}\n<!-- written by bench/run.py from results/{base_name}.json; do not edit by hand -->\n\n{body}\n{README_END}"
    readme.write_text(text[:text.index(README_START)] + new + text[text.index(README_END) + len(README_END):])


if __name__ == "__main__":  # rebuild the report of a saved run
    path = Path(sys.argv[1])
    results = json.loads(path.read_text())
    results["goals"] = goals(results)
    made = charts(results, path.with_suffix(""))
    path.with_suffix(".md").write_text(markdown(results, [p.name for p in made]))
    print(path.with_suffix(".md").read_text())
