#!/usr/bin/env bash
# Builds every AssemblyScript example (modules/assemblyscript/<example>/index.ts) into
# modules/wasm/as-<example>.wasm, after running the SDK's codec tests (which must pass).
#
# Toolchain (node >= 18 with npm; the npm registry must be reachable on first use):
#   apt-get install --no-install-recommends nodejs npm      # or any node 18+ / npm
#   (cd guest-sdk/assemblyscript && npm ci)                   # assemblyscript, pinned in package-lock.json
# This script runs the `npm ci` itself when guest-sdk/assemblyscript/node_modules is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SDK="$ROOT/guest-sdk/assemblyscript"
OUT="$ROOT/modules/wasm"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "missing toolchain: $tool (node 18+ and npm); run scripts/install-toolchains.sh" >&2
    exit 3
  fi
done

if [ ! -x "$SDK/node_modules/.bin/asc" ]; then
  if ! (cd "$SDK" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "missing toolchain: assemblyscript (npm ci in guest-sdk/assemblyscript failed); run scripts/install-toolchains.sh" >&2
    exit 3
  fi
fi
ASC="$SDK/node_modules/.bin/asc"

# 1. The SDK's codec tests: a failure stops the build.
(cd "$SDK" && node tests/run.mjs)

# 2. The examples import the SDK as the package "wasmhost" (as a user's project does
#    after `npm i /path/to/guest-sdk/assemblyscript`): resolve it through a scratch
#    node_modules holding a symlink, so nothing is written into the repository.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$SCRATCH/node_modules"
ln -s "$SDK" "$SCRATCH/node_modules/wasmhost"

mkdir -p "$OUT"
for src in "$HERE"/*/index.ts; do
  name="$(basename "$(dirname "$src")")"
  tmp="$SCRATCH/as-$name.wasm"
  # -O3z: speed level 3, shrink level 2. --runtime stub: bump allocator, nothing freed
  # (each call gets a fresh instance). --use abort=: no env.abort import; an abort is `unreachable`.
  "$ASC" "$src" -o "$tmp" -O3z --noAssert --runtime stub --use abort= --path "$SCRATCH/node_modules"
  # The module may import nothing but wasmhost.log (ABI.md).
  node -e '
    const fs = require("fs");
    const m = new WebAssembly.Module(fs.readFileSync(process.argv[1]));
    const bad = WebAssembly.Module.imports(m).filter(i => !(i.module === "wasmhost" && i.name === "log"));
    const ex = new Set(WebAssembly.Module.exports(m).map(e => e.name));
    const missing = ["memory", "wasmhost_alloc", "wasmhost_handle"].filter(e => !ex.has(e));
    if (bad.length || missing.length) {
      console.error(process.argv[1] + ": unexpected imports " + JSON.stringify(bad) + ", missing exports " + missing);
      process.exit(1);
    }' "$tmp"
  mv "$tmp" "$OUT/as-$name.wasm"
  echo "built modules/wasm/as-$name.wasm ($(wc -c <"$OUT/as-$name.wasm") bytes)"
done
