//go:build wasip1

package wasmhost

import "unsafe"

//go:wasmimport wasmhost log
func hostLog(ptr unsafe.Pointer, n uint32)

// Log appends msg as one line to the invocation's log (`wasmhost logs NAME`).
func Log(msg string) {
	if len(msg) == 0 {
		hostLog(nil, 0)
		return
	}
	hostLog(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

// The buffers handed to or returned to the host stay referenced until the instance is dropped.
var (
	requestBuf  []byte
	responseBuf []byte
)

//go:wasmexport wasmhost_alloc
func wasmhostAlloc(size int32) int32 {
	requestBuf = make([]byte, size+1) // +1: a valid pointer even for size 0
	return int32(uintptr(unsafe.Pointer(&requestBuf[0])))
}

//go:wasmexport wasmhost_handle
func wasmhostHandle(ptr, n int32) int64 {
	base := int32(uintptr(unsafe.Pointer(&requestBuf[0])))
	request := requestBuf[ptr-base : ptr-base+n]
	responseBuf = Serve(request)
	if len(responseBuf) == 0 {
		return 0
	}
	return int64(uintptr(unsafe.Pointer(&responseBuf[0])))<<32 | int64(len(responseBuf))
}
