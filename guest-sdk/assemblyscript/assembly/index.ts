// wasmhost guest SDK for AssemblyScript: the `handler` interface of guest-sdk/ABI.md.
//
// A handler module is two lines plus your function:
//
//   import { Request, Response, setHandler } from "wasmhost/assembly";
//   export { wasmhost_alloc, wasmhost_handle } from "wasmhost/assembly";
//   setHandler((req: Request): Response => Response.text(200, "hi\n"));
//
// Build with: npx asc handler.ts -o handler.wasm -O3 --noAssert --runtime stub --use abort=
// (`memory` is exported by asc by default; `--use abort=` avoids an `env.abort` import).

import { Decoder, Encoder, Kind, decodeUtf8 } from "./msgpack";

export { Decoder, Encoder, Kind, decodeUtf8 } from "./msgpack";

// ---------------------------------------------------------------- host imports

// @ts-ignore: decorator
@external("wasmhost", "log")
declare function _wasmhost_log(ptr: usize, len: usize): void;

/** Appends `msg` as one line to the invocation's log (`wasmhost logs NAME`). */
export function log(msg: string): void {
  let bytes = String.UTF8.encode(msg);
  _wasmhost_log(changetype<usize>(bytes), <usize>bytes.byteLength);
}

// ---------------------------------------------------------------- types

/** One header: name (lower-case in requests) and value. Repeats are kept in order. */
export class Header {
  constructor(public name: string, public value: string) {}
}

/** One configuration variable of the function (`wasmhost deploy --config K=V`). */
export class ConfigEntry {
  constructor(public key: string, public value: string) {}
}

/** The function's configuration variables, in the order the host sent them. */
export class Config {
  entries: ConfigEntry[] = [];

  get length(): i32 { return this.entries.length; }

  /** The value of `key`, or null. */
  get(key: string): string | null {
    for (let i = 0, n = this.entries.length; i < n; i++) {
      let c = unchecked(this.entries[i]);
      if (c.key == key) return c.value;
    }
    return null;
  }

  has(key: string): bool { return this.get(key) !== null; }
}

export class Request {
  /** GET, POST, ... (upper case). */
  method: string = "";
  /** The path after /fn/NAME, starting with "/", still percent-encoded. */
  path: string = "/";
  /** The raw query string without "?" (not decoded). */
  query: string = "";
  /** Headers in order, names lower-case. Values sent as bin (not UTF-8) are decoded with U+FFFD. */
  headers: Header[] = [];
  /** The request body. */
  body: Uint8Array = new Uint8Array(0);
  /** The function's configuration variables: `req.config.get("KEY")`, or iterate `req.config.entries`. */
  config: Config = new Config();

  /** The first value of header `name` (case-insensitive), or null. */
  header(name: string): string | null {
    let lower = name.toLowerCase();
    for (let i = 0, n = this.headers.length; i < n; i++) {
      let h = unchecked(this.headers[i]);
      if (h.name == lower) return h.value;
    }
    return null;
  }

  /** Every value of header `name` (case-insensitive), in order. */
  headerAll(name: string): string[] {
    let lower = name.toLowerCase();
    let out = new Array<string>();
    for (let i = 0, n = this.headers.length; i < n; i++) {
      let h = unchecked(this.headers[i]);
      if (h.name == lower) out.push(h.value);
    }
    return out;
  }

  /** The configuration variable `key`, or null (same as `config.get(key)`). */
  configValue(key: string): string | null { return this.config.get(key); }

  /** The body decoded as UTF-8. */
  text(): string {
    return decodeUtf8(this.body.dataStart, <usize>this.body.length);
  }

  /** Decodes a msgpack request map (ABI.md); null if it is malformed. Unknown keys are skipped. */
  static decode(ptr: usize, len: usize): Request | null {
    let d = new Decoder(ptr, len);
    let req = new Request();
    let n = d.readMapHeader();
    for (let i = 0; i < n && d.ok; i++) {
      if (d.peek() != Kind.Str) { d.skip(); d.skip(); continue; }
      let key = d.readString();
      let kind = d.peek();
      if (key == "method" && (kind == Kind.Str || kind == Kind.Bin)) {
        req.method = d.readString();
      } else if (key == "path" && (kind == Kind.Str || kind == Kind.Bin)) {
        req.path = d.readString();
      } else if (key == "query" && (kind == Kind.Str || kind == Kind.Bin)) {
        req.query = d.readString();
      } else if (key == "body" && (kind == Kind.Str || kind == Kind.Bin)) {
        req.body = d.readBytes();
      } else if (key == "headers" && kind == Kind.Array) {
        let count = d.readArrayHeader();
        for (let j = 0; j < count && d.ok; j++) {
          if (d.peek() != Kind.Array) { d.skip(); continue; }
          let m = d.readArrayHeader();
          if (m < 2) { for (let k = 0; k < m; k++) d.skip(); continue; }
          let name = d.readString();
          let value = d.readString();
          for (let k = 2; k < m; k++) d.skip();
          req.headers.push(new Header(name, value));
        }
      } else if (key == "config" && kind == Kind.Map) {
        let count = d.readMapHeader();
        for (let j = 0; j < count && d.ok; j++) {
          let k = d.readString();
          let v = d.readString();
          req.config.entries.push(new ConfigEntry(k, v));
        }
      } else {
        d.skip();
      }
    }
    return d.ok ? req : null;
  }
}

export class Response {
  headers: Header[] = [];
  body: Uint8Array;

  constructor(public status: i32 = 200, body: Uint8Array | null = null) {
    this.body = body === null ? new Uint8Array(0) : body;
  }

  /** A text/plain; charset=utf-8 response. */
  static text(status: i32, text: string): Response {
    let r = new Response(status, Uint8Array.wrap(String.UTF8.encode(text)));
    r.headers.push(new Header("content-type", "text/plain; charset=utf-8"));
    return r;
  }

  /** A response with the given bytes and content type. */
  static bytes(status: i32, body: Uint8Array, contentType: string = "application/octet-stream"): Response {
    let r = new Response(status, body);
    r.headers.push(new Header("content-type", contentType));
    return r;
  }

  /** Appends a header (repeats allowed, e.g. set-cookie). Returns this for chaining. */
  addHeader(name: string, value: string): Response {
    this.headers.push(new Header(name, value));
    return this;
  }

  /** Replaces every header `name` (case-insensitive) with one value. */
  setHeader(name: string, value: string): Response {
    let lower = name.toLowerCase();
    let kept = new Array<Header>();
    for (let i = 0, n = this.headers.length; i < n; i++) {
      let h = unchecked(this.headers[i]);
      if (h.name.toLowerCase() != lower) kept.push(h);
    }
    kept.push(new Header(name, value));
    this.headers = kept;
    return this;
  }

  /** Sets the body to the UTF-8 bytes of `text`. */
  setText(text: string): Response {
    this.body = Uint8Array.wrap(String.UTF8.encode(text));
    return this;
  }

  /** Encodes {"status": int, "headers": [[str, str], ...], "body": bin} (ABI.md). */
  encode(e: Encoder): void {
    e.writeMapHeader(3);
    e.writeString("status");
    e.writeInt(this.status);
    e.writeString("headers");
    let n = this.headers.length;
    e.writeArrayHeader(<u32>n);
    for (let i = 0; i < n; i++) {
      let h = unchecked(this.headers[i]);
      e.writeArrayHeader(2);
      e.writeString(h.name);
      e.writeString(h.value);
    }
    e.writeString("body");
    e.writeBytes(this.body);
  }
}

// ---------------------------------------------------------------- exports

let handler: ((req: Request) => Response) | null = null;

/** Registers the function that answers every request (call it once, at the top level of your module). */
export function setHandler(fn: (req: Request) => Response): void {
  handler = fn;
}

/** ABI export: `size` writable bytes for the host to write the request into (never freed). */
export function wasmhost_alloc(size: i32): i32 {
  return <i32>heap.alloc(size > 0 ? <usize>size : 1);
}

/** ABI export: decode the request, run the handler, return (out_ptr << 32) | out_len. */
export function wasmhost_handle(ptr: i32, len: i32): i64 {
  let req = Request.decode(<usize>ptr, <usize>len);
  let res: Response;
  let h = handler;
  if (req === null) {
    res = Response.text(400, "wasmhost guest: malformed request\n");
  } else if (h === null) {
    res = Response.text(500, "wasmhost guest: no handler registered (call setHandler)\n");
  } else {
    res = h(req);
  }
  return respond(res);
}

/** Encodes `res` and packs its location as wasmhost_handle's return value. */
export function respond(res: Response): i64 {
  let e = new Encoder(64 + res.body.length);
  res.encode(e);
  return (<i64>e.buf << 32) | <i64>e.len;
}
