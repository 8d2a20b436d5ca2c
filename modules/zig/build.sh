#!/usr/bin/env bash
# Builds every Zig example (modules/zig/<example>/main.zig) into modules/wasm/zig-<example>.wasm
# against the SDK in guest-sdk/zig/wasmhost.zig, after running the SDK's codec tests natively.
#
# Toolchain (Zig 0.17.1 from PyPI, run as `python -m ziglang`):
#   pip install ziglang==0.17.1
# The script uses $ZIG if set, else `<repo>/.venv/bin/python -m ziglang`, else `python3 -m ziglang`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SDK="$ROOT/guest-sdk/zig/wasmhost.zig"
OUT="$ROOT/modules/wasm"
export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-/tmp/zig-cache}"

if [[ -n "${ZIG:-}" ]]; then
    read -r -a zig <<<"$ZIG"
elif [[ -x "$ROOT/.venv/bin/python" ]] && "$ROOT/.venv/bin/python" -m ziglang version >/dev/null 2>&1; then
    zig=("$ROOT/.venv/bin/python" -m ziglang)
elif command -v python3 >/dev/null && python3 -m ziglang version >/dev/null 2>&1; then
    zig=(python3 -m ziglang)
else
    echo "missing toolchain: zig 0.17 (pip install ziglang); run scripts/install-toolchains.sh" >&2
    exit 3
fi
version="$("${zig[@]}" version 2>/dev/null || true)"
if [[ "$version" != 0.17.* ]]; then
    echo "missing toolchain: zig 0.17 (found '${version:-nothing}' from ${zig[*]}); run scripts/install-toolchains.sh" >&2
    exit 3
fi

echo "zig test guest-sdk/zig/wasmhost.zig" >&2
"${zig[@]}" test "$SDK"

mkdir -p "$OUT"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for dir in "$ROOT"/modules/zig/*/; do
    name="$(basename "$dir")"
    [[ -f "$dir/main.zig" ]] || continue
    # The example's own `test` blocks (if any), natively.
    "${zig[@]}" test --dep wasmhost -Mroot="$dir/main.zig" -Mwasmhost="$SDK" >/dev/null
    (cd "$tmp" && "${zig[@]}" build-exe -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall \
        -fstrip --name "zig-$name" --dep wasmhost -Mroot="$dir/main.zig" -Mwasmhost="$SDK" \
        -femit-bin="$tmp/zig-$name.wasm")
    chmod 644 "$tmp/zig-$name.wasm"
    mv "$tmp/zig-$name.wasm" "$OUT/zig-$name.wasm"
    echo "built modules/wasm/zig-$name.wasm ($(wc -c <"$OUT/zig-$name.wasm") bytes)" >&2
done
