// echo: answers text/plain listing the request as the SDK decoded it (the codec test).
//
//   method: POST
//   path: /a%20b
//   query: x=1
//   headers: 2
//   accept: */*            <- one "name: value" line per header, in order, repeats kept
//   x-r: 1
//   config: 1
//   K=v                     <- one "key=value" line per config variable
//   body-length: 3
//   body-fnv1a32: 1a47e90b  <- FNV-1a 32-bit of the body bytes, 8 hex digits
//   body-text: abc          <- only when the request has header "x-echo-body: text"
//
// Response: status from the request header "x-status" (default 200); headers
// content-type text/plain; charset=utf-8, x-echo-method: <method>, and the
// header "x-echo-repeat: a" then "x-echo-repeat: b" (repeated response headers).
import { Request, Response, setHandler } from "wasmhost/assembly";
export { wasmhost_alloc, wasmhost_handle } from "wasmhost/assembly";

function hex8(v: u32): string {
  let s = v.toString(16);
  while (s.length < 8) s = "0" + s;
  return s;
}

setHandler((req: Request): Response => {
  let out = "method: " + req.method + "\n";
  out += "path: " + req.path + "\n";
  out += "query: " + req.query + "\n";
  out += "headers: " + req.headers.length.toString() + "\n";
  for (let i = 0; i < req.headers.length; i++) {
    out += req.headers[i].name + ": " + req.headers[i].value + "\n";
  }
  out += "config: " + req.config.length.toString() + "\n";
  for (let i = 0; i < req.config.entries.length; i++) {
    out += req.config.entries[i].key + "=" + req.config.entries[i].value + "\n";
  }
  let h: u32 = 0x811c9dc5;
  let body = req.body;
  for (let i = 0; i < body.length; i++) {
    h = (h ^ <u32>body[i]) * 0x01000193;
  }
  out += "body-length: " + body.length.toString() + "\n";
  out += "body-fnv1a32: " + hex8(h) + "\n";
  let mode = req.header("X-Echo-Body");
  if (mode !== null && mode == "text") out += "body-text: " + req.text() + "\n";

  let status = 200;
  let s = req.header("x-status");
  if (s !== null) status = I32.parseInt(s);
  let res = Response.text(status, out);
  res.addHeader("x-echo-method", req.method);
  res.addHeader("x-echo-repeat", "a").addHeader("x-echo-repeat", "b");
  return res;
});
