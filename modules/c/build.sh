#!/usr/bin/env bash
# Builds every C example into modules/wasm/c-<example>.wasm (committed; rebuild with this script).
#
# Toolchain (install commands):
#   apt-get install -y --no-install-recommends clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32
#   .venv/bin/python -m pip install ziglang==0.17.1
#
#   handler examples: clang-14 --target=wasm32-unknown-unknown -nostdlib (no libc, the SDK's bump allocator)
#   wagi_hello:       clang-14 --target=wasm32-wasi with wasi-libc (a plain CGI program)
#   c-hello-zigcc:    the hello example again with `zig cc --target=wasm32-freestanding`
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SDK="$ROOT/guest-sdk/c"
OUT="$ROOT/modules/wasm"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
CLANG="${CLANG:-clang-14}"

missing() {
    echo "missing toolchain: $1; run scripts/install-toolchains.sh" >&2
    exit 3
}

command -v "$CLANG" >/dev/null 2>&1 || missing "$CLANG (apt-get install clang-14)"
command -v wasm-ld-14 >/dev/null 2>&1 || command -v wasm-ld >/dev/null 2>&1 || missing "wasm-ld (apt-get install lld-14)"
[ -f /usr/include/wasm32-wasi/stdio.h ] || [ -n "${WASI_SYSROOT:-}" ] || missing "wasi-libc (apt-get install wasi-libc)"
ls /usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || [ -n "${WASI_SYSROOT:-}" ] \
    || missing "compiler-rt for wasm32 (apt-get install libclang-rt-14-dev-wasm32)"
"$PY" -m ziglang version >/dev/null 2>&1 || missing "zig (pip install ziglang==0.17.1 into .venv)"

export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-/tmp/zig-cache}"
export ZIG_LOCAL_CACHE_DIR="${ZIG_LOCAL_CACHE_DIR:-/tmp/zig-cache}"
export SOURCE_DATE_EPOCH=0

mkdir -p "$OUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

CFLAGS=(-std=c11 -Os -Wall -Wextra -Werror -mbulk-memory -I "$SDK")
LDFLAGS=(-Wl,--no-entry -Wl,--strip-all -Wl,--gc-sections)

# handler examples: freestanding, no libc
for example in hello router sha256; do
    "$CLANG" --target=wasm32-unknown-unknown -nostdlib "${CFLAGS[@]}" "${LDFLAGS[@]}" \
        -o "$TMP/c-$example.wasm" "$HERE/$example/main.c"
    install -m 644 "$TMP/c-$example.wasm" "$OUT/c-$example.wasm"
    echo "built modules/wasm/c-$example.wasm ($(wc -c <"$OUT/c-$example.wasm") bytes)"
done

# WAGI: a WASI command with wasi-libc
WASI_FLAGS=()
[ -n "${WASI_SYSROOT:-}" ] && WASI_FLAGS=(--sysroot "$WASI_SYSROOT")
"$CLANG" --target=wasm32-wasi "${WASI_FLAGS[@]}" -std=c11 -Os -Wall -Wextra -Werror -Wl,--strip-all \
    -o "$TMP/c-wagi_hello.wasm" "$HERE/wagi_hello/main.c"
install -m 644 "$TMP/c-wagi_hello.wasm" "$OUT/c-wagi_hello.wasm"
echo "built modules/wasm/c-wagi_hello.wasm ($(wc -c <"$OUT/c-wagi_hello.wasm") bytes)"

# the same hello with zig cc: the header builds with both compilers
(cd "$TMP" && "$PY" -m ziglang cc --target=wasm32-freestanding -nostdlib -std=c11 -Os -Wall -Wextra -Werror \
    -mbulk-memory -I "$SDK" -Wl,--no-entry -Wl,--strip-all -Wl,--export-memory -Wl,-z,stack-size=65536 \
    -o "$TMP/c-hello-zigcc.wasm" "$HERE/hello/main.c")
install -m 644 "$TMP/c-hello-zigcc.wasm" "$OUT/c-hello-zigcc.wasm"
echo "built modules/wasm/c-hello-zigcc.wasm ($(wc -c <"$OUT/c-hello-zigcc.wasm") bytes)"
