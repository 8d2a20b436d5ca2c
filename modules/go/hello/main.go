// hello: logs one line and answers "Hello from Go!\n".
package main

import "wasmhost"

func init() { wasmhost.Handle(hello) }

func hello(req *wasmhost.Request) *wasmhost.Response {
	wasmhost.Log("hello called: " + req.Method + " " + req.Path)
	return wasmhost.Text(200, "Hello from Go!\n")
}

func main() {}
