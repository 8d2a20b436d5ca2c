// In-process cost of one fresh-instance `handler` call on Node (V8), the Node.js peer of
// bench_core's per-call figures.
//
// Usage: node percall.mjs N REPEATS name=/path/to/a.wasm [name2=...]
// For each module: compile once, warm up (min(N, 2000) calls), then REPEATS runs of N calls of
// callHandler(module, <a fixed GET / request>). Each call encodes the request, instantiates,
// calls alloc/handle and decodes + validates the response, as wasmhost does per call.
// Prints ONE JSON object: {"<name>": {"us_per_call_runs": [...], "us_median": x, "compile_ms": y},
// ..., "node": process.version}.

import fs from "node:fs";
import { callHandler } from "./handler_abi.mjs";

// The request bench/common.RawClient sends (GET /fn/<name> with Host, User-Agent, Accept), as the guest sees it.
function request() {
  return {
    method: "GET", path: "/", query: "",
    headers: [["host", "127.0.0.1"], ["user-agent", "bench-http"], ["accept", "*/*"]],
    body: new Uint8Array(0), config: {},
  };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const [nArg, repeatsArg, ...specs] = process.argv.slice(2);
const n = Number(nArg);
const repeats = Number(repeatsArg);
if (!(n > 0) || !(repeats > 0) || !specs.length) {
  process.stderr.write("usage: node percall.mjs N REPEATS name=/path/to/a.wasm [name2=...]\n");
  process.exit(2);
}

const out = {};
for (const spec of specs) {
  const eq = spec.indexOf("=");
  const name = spec.slice(0, eq);
  if (eq <= 0 || name === "node") {
    process.stderr.write(`bad module spec ${spec}\n`);
    process.exit(2);
  }
  const bytes = fs.readFileSync(spec.slice(eq + 1));
  const t0 = process.hrtime.bigint();
  const module = new WebAssembly.Module(bytes);
  const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const first = callHandler(module, request());
  if (first.status !== 200) throw new Error(`${name}: status ${first.status}: ${first.body}`);
  for (let i = 0, w = Math.min(n, 2000); i < w; i++) callHandler(module, request());
  const runs = [];
  for (let r = 0; r < repeats; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) callHandler(module, request());
    runs.push(Number(process.hrtime.bigint() - start) / 1e3 / n);
  }
  out[name] = {
    us_per_call_runs: runs.map((v) => Math.round(v * 100) / 100),
    us_median: Math.round(median(runs) * 100) / 100,
    compile_ms: Math.round(compileMs * 100) / 100,
  };
}
out.node = process.version;
process.stdout.write(JSON.stringify(out) + "\n");
