//! hello: logs one line and answers `Hello from Rust!\n`.
use wasmhost::{Request, Response};

fn handle(req: Request) -> Response {
    wasmhost::log(&format!("hello called: {} {}", req.method, req.path));
    Response::text(200, "Hello from Rust!\n")
}

wasmhost::handler!(handle);
