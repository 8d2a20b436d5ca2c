// The Node.js peer of `wasmhost serve` for the benchmarks: node:http serving wasmhost `handler`
// modules, each WebAssembly.Module compiled ONCE at start and a FRESH WebAssembly.Instance per
// request (see handler_abi.mjs).
//
// Usage: node server.mjs PORT name=/path/to/a.wasm [name2=/path/to/b.wasm ...]
//   /fn/<name> and /fn/<name>/<rest>  -> the guest (path "/" or "/<rest>", raw query without "?")
//   anything else, unknown name       -> 404
//   trap or bad response              -> 502 text/plain with the message
// Prints "ready" on stdout once listening on 127.0.0.1:PORT.

import fs from "node:fs";
import http from "node:http";
import { callHandler, GuestError, MAX_RESPONSE_BYTES } from "./handler_abi.mjs";

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });
const NON_ASCII = /[^\x00-\x7f]/;
// Framing/connection headers are the server's (as in wasmhost/http/invoke.py HOP_HEADERS).
const HOP_HEADERS = new Set(["content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
  "upgrade", "proxy-connection", "server", "date"]);
const NO_BODY_STATUSES = new Set([204, 304]);

function usage(msg) {
  process.stderr.write(`${msg}\nusage: node server.mjs PORT name=/path/to/a.wasm [name2=...]\n`);
  process.exit(2);
}

const [portArg, ...specs] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || port > 65535) usage(`bad port ${portArg}`);
if (!specs.length) usage("no modules given");

const modules = new Map();
for (const spec of specs) {
  const eq = spec.indexOf("=");
  if (eq <= 0) usage(`bad module spec ${spec}`);
  const name = spec.slice(0, eq);
  modules.set(name, new WebAssembly.Module(fs.readFileSync(spec.slice(eq + 1))));
}

/** Node hands us header values and the URL as latin-1 strings: recover the bytes, and send them
 * as str when they are UTF-8, as bin otherwise (ABI §1, Request). */
function wire(s) {
  if (!NON_ASCII.test(s)) return s;
  const bytes = Buffer.from(s, "latin1");
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    return bytes;
  }
}

function sendText(res, status, text) {
  const body = Buffer.from(text + "\n", "utf8");
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": body.length });
  res.end(body);
}

function handle(req, res, name, path, query, body) {
  const module = modules.get(name);
  if (module === undefined) return sendText(res, 404, `no function named ${JSON.stringify(name)}`);
  const raw = req.rawHeaders;
  const headers = new Array(raw.length >> 1);
  for (let i = 0; i < raw.length; i += 2) headers[i >> 1] = [raw[i].toLowerCase(), wire(raw[i + 1])];
  let out;
  try {
    out = callHandler(module, {
      method: req.method, path: wire(path), query: wire(query), headers, body, config: {},
    });
  } catch (e) {
    if (e instanceof GuestError) return sendText(res, e.httpStatus, `${e.code}: ${e.message}`);
    return sendText(res, 500, `internal error: ${e && e.message}`);
  }
  const flat = [];
  for (const [k, v] of out.headers) {
    if (!HOP_HEADERS.has(k)) flat.push(k, v);
  }
  const noBody = NO_BODY_STATUSES.has(out.status);
  if (!noBody) flat.push("content-length", String(out.body.length));
  res.writeHead(out.status, flat);
  res.end(noBody ? undefined : out.body);
}

const EMPTY = Buffer.alloc(0);

const server = http.createServer((req, res) => {
  const url = req.url;
  const q = url.indexOf("?");
  const target = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? "" : url.slice(q + 1);
  if (!target.startsWith("/fn/")) return sendText(res, 404, "not found");
  const slash = target.indexOf("/", 4);
  const name = slash < 0 ? target.slice(4) : target.slice(4, slash);
  const path = slash < 0 ? "/" : target.slice(slash);
  const framed = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
  if (!framed) {
    // No body: nothing to wait for (the request's 'end' still has to be consumed for keep-alive).
    req.resume();
    return handle(req, res, name, path, query, EMPTY);
  }
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on("end", () => {
    if (tooLarge) return sendText(res, 413, `request body over ${MAX_RESPONSE_BYTES} bytes`);
    handle(req, res, name, path, query, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  });
});
server.keepAliveTimeout = 65_000; // the bench client keeps one idle connection between phases
server.headersTimeout = 66_000;
server.listen(port, "127.0.0.1", () => {
  process.stdout.write("ready\n");
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
