//! echo: answers JSON describing the request as the SDK decoded it, so tests can
//! check the msgpack codec end to end.
//!
//! `{"method", "path", "query", "headers": [[name, value], ...], "config": {..},
//!   "body_len", "body_hex", "body_text" (null unless UTF-8)}`.
//! Each request header `x-echo-<name>: <value>` is also sent back as response
//! header `<name>: <value>`; `?status=N` sets the status; `?raw=1` answers the
//! request body itself (bytes as received, `application/octet-stream`).
use wasmhost::json::{self, Value};
use wasmhost::{Request, Response};

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

fn handle(req: Request) -> Response {
    let status = req.query_param("status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(200);
    let mut resp = if req.query_param("raw") == Some("1") {
        Response::bytes(status, "application/octet-stream", req.body.clone())
    } else {
        let headers = req
            .headers
            .iter()
            .map(|(k, v)| Value::Array(vec![k.as_str().into(), v.as_str().into()]))
            .collect();
        let config = req.config.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        let doc = json::object(vec![
            ("method", req.method.as_str().into()),
            ("path", req.path.as_str().into()),
            ("query", req.query.as_str().into()),
            ("headers", Value::Array(headers)),
            ("config", Value::Object(config)),
            ("body_len", Value::Int(req.body.len() as i64)),
            ("body_hex", hex(&req.body).into()),
            ("body_text", req.body_text().map(Value::from).unwrap_or(Value::Null)),
        ]);
        Response::json(status, &doc.to_json())
    };
    for (k, v) in &req.headers {
        if let Some(name) = k.strip_prefix("x-echo-") {
            resp = resp.with_header(name, v);
        }
    }
    resp
}

wasmhost::handler!(handle);
