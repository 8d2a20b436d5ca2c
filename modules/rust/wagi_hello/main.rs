//! wagi_hello: a plain wasm32-wasi WAGI (CGI) program, no SDK needed.
//! Prints `Content-Type: text/plain`, a blank line, then a greeting with
//! REQUEST_METHOD, PATH_INFO and the length of the body read from stdin.
use std::io::Read;

fn main() {
    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).expect("read stdin");
    eprintln!("wagi_hello: {} {} ({} bytes)", method, path, body.len());
    println!("Content-Type: text/plain");
    println!();
    println!("Hello from Rust WAGI");
    println!("method: {}", method);
    println!("path: {}", path);
    println!("body: {} bytes", body.len());
}
