//! json_api: a small stateless JSON API built on `wasmhost::json`.
//!
//! - `POST /items` with `{"name": string (1-64 characters), "qty": integer >= 0}` →
//!   201 `{"id": "<16 hex digits: FNV-1a 64 of the name>", "name": ..., "qty": ...}`
//!   with `location: /items/<id>`.
//!   Malformed JSON, a body that is not an object, or an invalid field → 400 `{"error": "..."}`
//!   naming the field.
//! - `GET /items/{id}` → 404 `{"error": "item <id> not found"}` (nothing is stored).
//! - another method on those paths → 405 with `allow`; any other path → 404.
use wasmhost::json::{self, Value};
use wasmhost::{Request, Response};

fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json::object(vec![("error", message.into())]).to_json())
}

fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn create(req: &Request) -> Response {
    if let Some(ct) = req.header("content-type") {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return error(415, "content-type must be application/json");
        }
    }
    let doc = match json::parse(&req.body) {
        Ok(v) => v,
        Err(e) => return error(400, &format!("malformed JSON: {}", e)),
    };
    if !matches!(doc, Value::Object(_)) {
        return error(400, &format!("body must be a JSON object, got {}", doc.type_name()));
    }
    let name = match doc.get("name") {
        None => return error(400, "name is required"),
        Some(Value::Str(s)) => s.clone(),
        Some(other) => return error(400, &format!("name must be a string, got {}", other.type_name())),
    };
    let chars = name.chars().count();
    if chars == 0 || chars > 64 {
        return error(400, &format!("name must be 1-64 characters, got {}", chars));
    }
    let qty = match doc.get("qty") {
        None => return error(400, "qty is required"),
        Some(Value::Int(q)) if *q >= 0 => *q,
        Some(Value::Int(_)) => return error(400, "qty must be >= 0"),
        Some(Value::Float(f)) if f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15 => *f as i64,
        Some(other) => return error(400, &format!("qty must be an integer, got {}", other.type_name())),
    };
    let id = format!("{:016x}", fnv1a64(name.as_bytes()));
    let item = json::object(vec![("id", id.as_str().into()), ("name", name.into()), ("qty", Value::Int(qty))]);
    wasmhost::log(&format!("created item {}", id));
    Response::json(201, &item.to_json()).with_header("location", &format!("/items/{}", id))
}

fn handle(req: Request) -> Response {
    let path = req.path.trim_end_matches('/');
    if path == "/items" {
        return match req.method.as_str() {
            "POST" => create(&req),
            _ => error(405, "method not allowed: use POST /items").with_header("allow", "POST"),
        };
    }
    if let Some(id) = path.strip_prefix("/items/") {
        if !id.is_empty() && !id.contains('/') {
            return match req.method.as_str() {
                "GET" | "HEAD" => error(404, &format!("item {} not found", id)),
                _ => error(405, "method not allowed: use GET /items/{id}").with_header("allow", "GET, HEAD"),
            };
        }
    }
    error(404, &format!("no route for {} {}", req.method, req.path))
}

wasmhost::handler!(handle);
