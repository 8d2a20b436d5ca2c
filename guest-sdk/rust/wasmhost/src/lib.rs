//! Guest SDK for wasmhost's `handler` interface (guest-sdk/ABI.md), with no dependencies.
//!
//! ```ignore
//! use wasmhost::{Request, Response};
//!
//! fn handle(req: Request) -> Response {
//!     wasmhost::log(&format!("{} {}", req.method, req.path));
//!     Response::text(200, "hi\n")
//! }
//! wasmhost::handler!(handle);
//! ```
//!
//! Build as a `cdylib` for `wasm32-unknown-unknown`; the macro exports
//! `wasmhost_alloc` and `wasmhost_handle`, and the linker exports `memory`.

pub mod json;
pub mod msgpack;

use msgpack::{Encoder, Value};

/// An HTTP request as the function sees it.
///
/// Text fields that the host sent as msgpack `bin` (bytes that are not UTF-8) are
/// converted with U+FFFD replacement; `headers_raw` keeps the exact bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, ... (upper case)
    pub method: String,
    /// The path after the function's prefix, starting with `/`, still percent-encoded.
    pub path: String,
    /// The raw query string without `?`.
    pub query: String,
    /// `(lower-case name, value)` in order, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The same headers, byte for byte as received.
    pub headers_raw: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request body.
    pub body: Vec<u8>,
    /// The function's configuration variables, in the order the host sent them.
    pub config: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
    /// The configuration variable `key`.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// The body as UTF-8 text, if it is.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
    /// The raw (still percent-encoded) value of query parameter `name`, if present.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            if k == name {
                Some(v)
            } else {
                None
            }
        })
    }

    /// Decodes the msgpack request map of ABI.md §1. Unknown keys are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        let top = msgpack::decode(bytes).map_err(|e| e.to_string())?;
        let entries = match top {
            Value::Map(m) => m,
            _ => return Err("request is not a msgpack map".into()),
        };
        let mut req = Request::default();
        for (key, value) in entries {
            let key = match key.as_str() {
                Some(k) => k.to_owned(),
                None => continue,
            };
            match key.as_str() {
                "method" => req.method = text(&value, "method")?,
                "path" => req.path = text(&value, "path")?,
                "query" => req.query = text(&value, "query")?,
                "body" => {
                    req.body = match value {
                        Value::Bin(b) => b,
                        Value::Str(s) => s.into_bytes(),
                        Value::Nil => Vec::new(),
                        _ => return Err("request body must be bin".into()),
                    }
                }
                "headers" => {
                    let items = match value {
                        Value::Array(items) => items,
                        Value::Nil => Vec::new(),
                        _ => return Err("request headers must be an array".into()),
                    };
                    for item in items {
                        match item {
                            Value::Array(pair) if pair.len() == 2 => {
                                let name = pair[0].as_bytes().ok_or("header name must be str or bin")?;
                                let val = pair[1].as_bytes().ok_or("header value must be str or bin")?;
                                req.headers.push((
                                    String::from_utf8_lossy(name).into_owned(),
                                    String::from_utf8_lossy(val).into_owned(),
                                ));
                                req.headers_raw.push((name.to_vec(), val.to_vec()));
                            }
                            _ => return Err("each request header must be a [name, value] pair".into()),
                        }
                    }
                }
                "config" => match value {
                    Value::Map(items) => {
                        for (k, v) in items {
                            req.config.push((text(&k, "config key")?, text(&v, "config value")?));
                        }
                    }
                    Value::Nil => {}
                    _ => return Err("request config must be a map".into()),
                },
                _ => {}
            }
        }
        Ok(req)
    }
}

fn text(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::Nil => Ok(String::new()),
        _ => v.to_text_lossy().ok_or_else(|| format!("request {} must be str or bin", what)),
    }
}

/// An HTTP response: build it with `Response::text`, `Response::json`, `Response::bytes`
/// or `Response::new`, then chain `.with_header(..)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// 200-599 (the host refuses anything else with `bad_response`).
    pub status: u16,
    /// `(name, value)`: names must be HTTP tokens, values without CR, LF or NUL.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Self {
        Response::new(200)
    }
}

impl Response {
    /// A response with no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }
    /// `text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::bytes(status, "text/plain; charset=utf-8", body.into().into_bytes())
    }
    /// `application/json` with `json` as the body (already serialized; see `wasmhost::json`).
    pub fn json(status: u16, json: &str) -> Response {
        Response::bytes(status, "application/json", json.as_bytes().to_vec())
    }
    /// Any body with the given content type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response::new(status).with_header("content-type", content_type).with_body(body)
    }
    /// Adds a header (repeats are kept, in order).
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Encodes the msgpack response map of ABI.md §1:
    /// `{"status": int, "headers": [[str, str], ...], "body": bin}`.
    pub fn encode(&self) -> Vec<u8> {
        let size = 32 + self.body.len() + self.headers.iter().map(|(k, v)| k.len() + v.len() + 11).sum::<usize>();
        let mut e = Encoder::with_capacity(size);
        e.map_len(3);
        e.str("status");
        e.uint(self.status as u64);
        e.str("headers");
        e.array_len(self.headers.len());
        for (k, v) in &self.headers {
            e.array_len(2);
            e.str(k);
            e.str(v);
        }
        e.str("body");
        e.bin(&self.body);
        e.into_bytes()
    }
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasmhost")]
extern "C" {
    #[link_name = "log"]
    fn wasmhost_log(ptr: *const u8, len: usize);
}

/// Appends one line to the invocation's log (the `wasmhost.log` import).
/// Natively (unit tests), it prints to stderr.
pub fn log(line: &str) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        wasmhost_log(line.as_ptr(), line.len())
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{}", line);
}

/// Implementation of the exported `wasmhost_alloc` (used by `handler!`): a leaked `Vec`.
/// The instance is dropped after the call, so nothing is ever freed.
#[doc(hidden)]
pub fn __alloc(size: u32) -> u32 {
    let mut buf: Vec<u8> = Vec::with_capacity(size.max(1) as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as u32
}

/// Decodes a request, runs the handler and encodes its response (a decoding failure
/// becomes a 500 text response).
pub fn dispatch(input: &[u8], f: fn(Request) -> Response) -> Vec<u8> {
    let response = match Request::decode(input) {
        Ok(req) => f(req),
        Err(e) => Response::text(500, format!("wasmhost SDK: cannot decode the request: {}\n", e)),
    };
    response.encode()
}

/// Implementation of the exported `wasmhost_handle` (used by `handler!`).
#[doc(hidden)]
pub fn __handle(ptr: u32, len: u32, f: fn(Request) -> Response) -> u64 {
    let input: &[u8] = if len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
    };
    let out = dispatch(input, f);
    let out_len = out.len() as u64;
    let out_ptr = out.as_ptr() as usize as u64;
    std::mem::forget(out);
    (out_ptr << 32) | out_len
}

/// Exports `fn(Request) -> Response` as the module's handler:
/// `wasmhost::handler!(handle);` generates `wasmhost_alloc` and `wasmhost_handle`.
#[macro_export]
macro_rules! handler {
    ($f:path) => {
        #[no_mangle]
        pub extern "C" fn wasmhost_alloc(size: u32) -> u32 {
            $crate::__alloc(size)
        }
        #[no_mangle]
        pub extern "C" fn wasmhost_handle(ptr: u32, len: u32) -> u64 {
            $crate::__handle(ptr, len, $f)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn decodes_abi_worked_example() {
        // ABI.md §1: GET /hi?x=1, Accept: */*, body "ok", config {"K": "v"} (73 bytes).
        let bytes = hex(
            "86 a6 6d 65 74 68 6f 64 a3 47 45 54 a4 70 61 74 68 a3 2f 68 69
             a5 71 75 65 72 79 a3 78 3d 31 a7 68 65 61 64 65 72 73
             91 92 a6 61 63 63 65 70 74 a3 2a 2f 2a a4 62 6f 64 79 c4 02 6f 6b
             a6 63 6f 6e 66 69 67 81 a1 4b a1 76",
        );
        assert_eq!(bytes.len(), 73);
        let req = Request::decode(&bytes).unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/hi");
        assert_eq!(req.query, "x=1");
        assert_eq!(req.headers, vec![("accept".to_string(), "*/*".to_string())]);
        assert_eq!(req.header("Accept"), Some("*/*"));
        assert_eq!(req.body, b"ok");
        assert_eq!(req.config("K"), Some("v"));
        assert_eq!(req.config("nope"), None);
        assert_eq!(req.query_param("x"), Some("1"));
    }

    #[test]
    fn encodes_abi_worked_example() {
        // ABI.md §1 hello response, except the body is bin (c4 0e) instead of str (ae).
        let out = Response::text(200, "Hello, world!\n").encode();
        let expect = hex(
            "83 a6 73 74 61 74 75 73 cc c8 a7 68 65 61 64 65 72 73 91 92 ac 63 6f 6e 74 65 6e 74 2d
             74 79 70 65 b9 74 65 78 74 2f 70 6c 61 69 6e 3b 20 63 68 61 72 73 65 74 3d 75 74 66 2d
             38 a4 62 6f 64 79 c4 0e 48 65 6c 6c 6f 2c 20 77 6f 72 6c 64 21 0a",
        );
        assert_eq!(out, expect);
    }

    #[test]
    fn tolerates_unknown_keys_bin_values_and_repeats() {
        let mut e = Encoder::new();
        e.map_len(7);
        e.str("future");
        e.map_len(1);
        e.str("x");
        e.array_len(0);
        e.str("method");
        e.str("POST");
        e.str("path");
        e.bin(b"/a\xffb");
        e.str("headers");
        e.array_len(3);
        for (k, v) in [(&b"x-a"[..], &b"1"[..]), (b"x-a", b"\xfe2"), (b"cookie", b"c")] {
            e.array_len(2);
            e.str(std::str::from_utf8(k).unwrap());
            if v.is_ascii() {
                e.str(std::str::from_utf8(v).unwrap());
            } else {
                e.bin(v);
            }
        }
        e.str("body");
        e.bin(&[0, 1, 255]);
        e.str("config");
        e.map_len(2);
        e.str("A");
        e.str("ünï");
        e.str("B");
        e.str("");
        e.str(""); // an empty key: ignored
        e.nil();
        let req = Request::decode(&e.into_bytes()).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/a\u{fffd}b");
        assert_eq!(req.query, "");
        assert_eq!(req.header_all("X-A"), vec!["1", "\u{fffd}2"]);
        assert_eq!(req.headers_raw[1].1, b"\xfe2");
        assert_eq!(req.body, vec![0, 1, 255]);
        assert_eq!(req.config, vec![("A".into(), "ünï".into()), ("B".into(), "".into())]);
    }

    #[test]
    fn rejects_non_maps() {
        assert!(Request::decode(&[0x90]).is_err());
        assert!(Request::decode(&[]).is_err());
        assert!(Request::decode(&hex("81 a4626f6479 01")).is_err());
    }

    #[test]
    fn response_builder_and_encoding() {
        let r = Response::json(201, "{\"a\":1}").with_header("x-k", "v").with_header("x-k", "w");
        assert_eq!(r.status, 201);
        let v = msgpack::decode(&r.encode()).unwrap();
        let expect = Value::Map(vec![
            (Value::Str("status".into()), Value::Int(201)),
            (
                Value::Str("headers".into()),
                Value::Array(vec![
                    Value::Array(vec![Value::Str("content-type".into()), Value::Str("application/json".into())]),
                    Value::Array(vec![Value::Str("x-k".into()), Value::Str("v".into())]),
                    Value::Array(vec![Value::Str("x-k".into()), Value::Str("w".into())]),
                ]),
            ),
            (Value::Str("body".into()), Value::Bin(b"{\"a\":1}".to_vec())),
        ]);
        assert_eq!(v, expect);
        let empty = Response::new(204).encode();
        assert_eq!(empty, hex("83 a6737461747573 cc cc a7686561646572 73 90 a4626f6479 c400"));
    }

    #[test]
    fn handle_roundtrip() {
        fn h(req: Request) -> Response {
            Response::text(200, format!("{} {}", req.method, req.body.len()))
        }
        let mut e = Encoder::new();
        e.map_len(2);
        e.str("method");
        e.str("PUT");
        e.str("body");
        e.bin(&[1; 70000]);
        let bytes = e.into_bytes();
        assert_eq!(dispatch(&bytes, h), Response::text(200, "PUT 70000").encode());
        assert_eq!(dispatch(&[0xc1], h)[..13], Response::text(500, "").encode()[..13]);
    }
}
