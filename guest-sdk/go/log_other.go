//go:build !wasip1

package wasmhost

import "os"

// Log writes msg as one line to stderr (outside wasm: for `go test` and native runs).
func Log(msg string) { os.Stderr.WriteString(msg + "\n") }
