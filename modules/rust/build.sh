#!/usr/bin/env bash
# Builds every Rust example into modules/wasm/rust-<example>.wasm against the SDK in
# guest-sdk/rust/wasmhost, after running the SDK's codec unit tests natively.
#
#   modules/rust/<example>/lib.rs   -> handler module (cdylib, wasm32-unknown-unknown)
#   modules/rust/<example>/main.rs  -> WAGI program   (bin, wasm32-wasi)
#
# Toolchain (Debian's rustc 1.63 with the wasm32 standard libraries, and lld for wasm-ld-14):
#   apt-get install --no-install-recommends rustc libstd-rust-dev-wasm32 lld-14
# The script uses $RUSTC if set, else /usr/bin/rustc (rustup toolchains have no wasm target offline),
# and $WASM_LD if set, else wasm-ld-14. Native test builds also need a C linker (gcc's `cc`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SDK="$ROOT/guest-sdk/rust/wasmhost/src/lib.rs"
OUT="$ROOT/modules/wasm"
RUSTC="${RUSTC:-/usr/bin/rustc}"
WASM_LD="${WASM_LD:-wasm-ld-14}"

missing() {
    echo "missing toolchain: $1; run scripts/install-toolchains.sh" >&2
    exit 3
}
[[ -x "$RUSTC" ]] || command -v "$RUSTC" >/dev/null 2>&1 || missing "rustc (apt-get install rustc)"
command -v "$WASM_LD" >/dev/null 2>&1 || missing "$WASM_LD (apt-get install lld-14)"
sysroot="$("$RUSTC" --print sysroot)"
for target in wasm32-unknown-unknown wasm32-wasi; do
    [[ -d "$sysroot/lib/rustlib/$target" ]] || missing "Rust std for $target (apt-get install libstd-rust-dev-wasm32)"
done
command -v cc >/dev/null 2>&1 || missing "a C linker for the native tests (apt-get install gcc)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Paths inside panic messages are written relative to the repository: same bytes from any checkout.
common=(--edition 2021 --remap-path-prefix "$ROOT=." -C opt-level=s -C codegen-units=1 -C debuginfo=0)

echo "rustc --test guest-sdk/rust/wasmhost (codec unit tests, native)" >&2
"$RUSTC" "${common[@]}" --test --crate-name wasmhost -o "$tmp/sdk-tests" "$SDK"
(cd "$tmp" && ./sdk-tests -q)

for target in wasm32-unknown-unknown wasm32-wasi; do
    mkdir -p "$tmp/$target"
    "$RUSTC" "${common[@]}" --target "$target" --crate-type rlib --crate-name wasmhost \
        -o "$tmp/$target/libwasmhost.rlib" "$SDK"
done

link=(-C lto=fat -C panic=abort -C "linker=$WASM_LD" -C strip=symbols -C link-arg=--strip-all)
mkdir -p "$OUT"
for dir in "$ROOT"/modules/rust/*/; do
    name="$(basename "$dir")"
    crate="${name//-/_}"
    if [[ -f "$dir/lib.rs" ]]; then
        target=wasm32-unknown-unknown
        args=(--crate-type cdylib "$dir/lib.rs")
    elif [[ -f "$dir/main.rs" ]]; then
        target=wasm32-wasi
        args=(--crate-type bin "$dir/main.rs")
    else
        continue
    fi
    "$RUSTC" "${common[@]}" "${link[@]}" --target "$target" --crate-name "$crate" \
        --extern "wasmhost=$tmp/$target/libwasmhost.rlib" -L "$tmp/$target" \
        -o "$tmp/$name.wasm" "${args[@]}"
    mv "$tmp/$name.wasm" "$OUT/rust-$name.wasm"
    echo "built modules/wasm/rust-$name.wasm ($(stat -c %s "$OUT/rust-$name.wasm") bytes)" >&2
done
