// The wasmhost `handler` interface (guest-sdk/ABI.md §1) on Node's own WebAssembly engine (V8),
// for the benchmark's Node.js peer: a msgpack request map in, a msgpack response map out, a FRESH
// WebAssembly.Instance per call from a WebAssembly.Module compiled once.
//
// No npm packages: the msgpack below covers exactly what the ABI needs (map, str, bin, array,
// positive/negative int, nil, bool; floats are decoded too so that a guest sending one gets a
// clear type error rather than a parse error).

const textEncoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8");
const utf8Fatal = new TextDecoder("utf-8", { fatal: true });

export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024; // wasmhost's default response limit
const MAX_HEADERS = 1000;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/; // controls other than TAB break HTTP

// ------------------------------------------------------------------------------------ msgpack

class Writer {
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
    this.pos = 0;
  }
  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }
  u8(v) { this.ensure(1); this.buf[this.pos++] = v; }
  head8(tag, v) { this.ensure(2); this.buf[this.pos++] = tag; this.buf[this.pos++] = v; }
  head16(tag, v) { this.ensure(3); this.buf[this.pos++] = tag; this.buf.writeUInt16BE(v, this.pos); this.pos += 2; }
  head32(tag, v) { this.ensure(5); this.buf[this.pos++] = tag; this.buf.writeUInt32BE(v, this.pos); this.pos += 4; }
  bytes(b) { this.ensure(b.length); this.buf.set(b, this.pos); this.pos += b.length; }
}

function writeInt(w, v) {
  if (v >= 0) {
    if (v < 0x80) w.u8(v);
    else if (v < 0x100) w.head8(0xcc, v);
    else if (v < 0x10000) w.head16(0xcd, v);
    else if (v < 0x100000000) w.head32(0xce, v);
    else { w.ensure(9); w.buf[w.pos++] = 0xcf; w.buf.writeBigUInt64BE(BigInt(v), w.pos); w.pos += 8; }
  } else {
    if (v >= -32) w.u8(v & 0xff);
    else if (v >= -0x80) { w.ensure(2); w.buf[w.pos++] = 0xd0; w.buf.writeInt8(v, w.pos); w.pos += 1; }
    else if (v >= -0x8000) { w.ensure(3); w.buf[w.pos++] = 0xd1; w.buf.writeInt16BE(v, w.pos); w.pos += 2; }
    else if (v >= -0x80000000) { w.ensure(5); w.buf[w.pos++] = 0xd2; w.buf.writeInt32BE(v, w.pos); w.pos += 4; }
    else { w.ensure(9); w.buf[w.pos++] = 0xd3; w.buf.writeBigInt64BE(BigInt(v), w.pos); w.pos += 8; }
  }
}

function writeStr(w, s) {
  const len = s.length;
  if (len < 32) {
    // Short ASCII (every key and most values): byte by byte, no encoder call.
    w.ensure(1 + len * 3);
    const buf = w.buf;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) break;
      buf[w.pos + 1 + i] = c;
    }
    if (i === len) { buf[w.pos] = 0xa0 | len; w.pos += 1 + len; return; }
  }
  // At most 3 bytes per UTF-16 unit: reserve the worst case, write, then fix up the header.
  const max = len * 3;
  const headLen = max < 32 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
  w.ensure(headLen + max);
  const start = w.pos + headLen;
  const n = w.buf.write(s, start, "utf8");
  const need = n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  if (need !== headLen) w.buf.copy(w.buf, w.pos + need, start, start + n);
  if (need === 1) w.buf[w.pos] = 0xa0 | n;
  else if (need === 2) { w.buf[w.pos] = 0xd9; w.buf[w.pos + 1] = n; }
  else if (need === 3) { w.buf[w.pos] = 0xda; w.buf.writeUInt16BE(n, w.pos + 1); }
  else { w.buf[w.pos] = 0xdb; w.buf.writeUInt32BE(n, w.pos + 1); }
  w.pos += need + n;
}

function writeBin(w, b) {
  const n = b.length;
  if (n < 0x100) w.head8(0xc4, n);
  else if (n < 0x10000) w.head16(0xc5, n);
  else w.head32(0xc6, n);
  w.bytes(b);
}

function writeValue(w, v) {
  if (v === null || v === undefined) w.u8(0xc0);
  else if (v === false) w.u8(0xc2);
  else if (v === true) w.u8(0xc3);
  else if (typeof v === "string") writeStr(w, v);
  else if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new TypeError(`msgpack: only integers are supported, got ${v}`);
    writeInt(w, v);
  } else if (v instanceof Uint8Array) writeBin(w, v);
  else if (Array.isArray(v)) {
    const n = v.length;
    if (n < 16) w.u8(0x90 | n); else if (n < 0x10000) w.head16(0xdc, n); else w.head32(0xdd, n);
    for (let i = 0; i < n; i++) writeValue(w, v[i]);
  } else if (typeof v === "object") {
    const keys = Object.keys(v);
    const n = keys.length;
    if (n < 16) w.u8(0x80 | n); else if (n < 0x10000) w.head16(0xde, n); else w.head32(0xdf, n);
    for (let i = 0; i < n; i++) { writeStr(w, keys[i]); writeValue(w, v[keys[i]]); }
  } else throw new TypeError(`msgpack: cannot encode ${typeof v}`);
}

// One writer reused by every call: callHandler copies the bytes into the guest at once.
const scratch = new Writer(4096);

function encodeScratch(value) {
  scratch.pos = 0;
  writeValue(scratch, value);
  return scratch.buf.subarray(0, scratch.pos); // valid until the next encode
}

/** Encode a JS value (object = map with string keys, string = str, Uint8Array = bin) to msgpack. */
export function encode(value) {
  return Buffer.from(encodeScratch(value));
}

/** A msgpack str decodes to a JS string, a bin to a Uint8Array (a copy), a map to a Map. */
class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  need(n) { if (this.pos + n > this.b.length) throw new MsgpackError("truncated"); }
  str(n) { this.need(n); const s = utf8Fatal.decode(this.b.subarray(this.pos, this.pos + n)); this.pos += n; return s; }
  bin(n) { this.need(n); const s = Uint8Array.prototype.slice.call(this.b, this.pos, this.pos + n); this.pos += n; return s; }
  array(n) { const a = new Array(n); for (let i = 0; i < n; i++) a[i] = this.value(); return a; }
  map(n) { const m = new Map(); for (let i = 0; i < n; i++) { const k = this.value(); m.set(k, this.value()); } return m; }
  value() {
    this.need(1);
    const t = this.b[this.pos++];
    const dv = this.dv;
    let v;
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xe0) === 0xa0) return this.str(t & 0x1f);
    if ((t & 0xf0) === 0x90) return this.array(t & 0x0f);
    if ((t & 0xf0) === 0x80) return this.map(t & 0x0f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: this.need(1); return this.bin(this.b[this.pos++]);
      case 0xc5: this.need(2); v = dv.getUint16(this.pos); this.pos += 2; return this.bin(v);
      case 0xc6: this.need(4); v = dv.getUint32(this.pos); this.pos += 4; return this.bin(v);
      case 0xca: this.need(4); v = dv.getFloat32(this.pos); this.pos += 4; return v;
      case 0xcb: this.need(8); v = dv.getFloat64(this.pos); this.pos += 8; return v;
      case 0xcc: this.need(1); return this.b[this.pos++];
      case 0xcd: this.need(2); v = dv.getUint16(this.pos); this.pos += 2; return v;
      case 0xce: this.need(4); v = dv.getUint32(this.pos); this.pos += 4; return v;
      case 0xcf: this.need(8); v = dv.getBigUint64(this.pos); this.pos += 8; return Number(v);
      case 0xd0: this.need(1); v = dv.getInt8(this.pos); this.pos += 1; return v;
      case 0xd1: this.need(2); v = dv.getInt16(this.pos); this.pos += 2; return v;
      case 0xd2: this.need(4); v = dv.getInt32(this.pos); this.pos += 4; return v;
      case 0xd3: this.need(8); v = dv.getBigInt64(this.pos); this.pos += 8; return Number(v);
      case 0xd9: this.need(1); return this.str(this.b[this.pos++]);
      case 0xda: this.need(2); v = dv.getUint16(this.pos); this.pos += 2; return this.str(v);
      case 0xdb: this.need(4); v = dv.getUint32(this.pos); this.pos += 4; return this.str(v);
      case 0xdc: this.need(2); v = dv.getUint16(this.pos); this.pos += 2; return this.array(v);
      case 0xdd: this.need(4); v = dv.getUint32(this.pos); this.pos += 4; return this.array(v);
      case 0xde: this.need(2); v = dv.getUint16(this.pos); this.pos += 2; return this.map(v);
      case 0xdf: this.need(4); v = dv.getUint32(this.pos); this.pos += 4; return this.map(v);
      default: throw new MsgpackError(`unsupported type byte 0x${t.toString(16)}`);
    }
  }
}

export class MsgpackError extends Error {}

/** Decode one msgpack value that must fill `bytes` exactly. Maps become JS Maps. */
export function decode(bytes) {
  const r = new Reader(bytes);
  let v;
  try {
    v = r.value();
  } catch (e) {
    if (e instanceof TypeError) throw new MsgpackError("invalid UTF-8 in a str"); // TextDecoder fatal
    throw e;
  }
  if (r.pos !== bytes.length) throw new MsgpackError("extra bytes after the value");
  return v;
}

// ------------------------------------------------------------------------------------ guest calls

/** A failed call, as wasmhost classifies it: `trap` / `bad_response` (HTTP 502), `too_large` (413). */
export class GuestError extends Error {
  constructor(code, message, httpStatus = 502) {
    super(message);
    this.code = code;
    this.httpStatus = httpStatus;
  }
}

const ERRNO_SUCCESS = 0;
const ERRNO_NOSYS = 52;

class ProcExit extends Error {
  constructor(code) { super(`proc_exit(${code})`); this.exitCode = code; }
}

// Per module, computed once: which imports it wants.
const importPlans = new WeakMap();

function plan(module) {
  let p = importPlans.get(module);
  if (p === undefined) {
    const wasi = [];
    let log = false;
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.module === "wasmhost" && imp.name === "log" && imp.kind === "function") log = true;
      else if (imp.module === "wasi_snapshot_preview1" && imp.kind === "function") wasi.push(imp.name);
      else throw new GuestError("invalid_module", `unsupported import ${imp.module}.${imp.name} (${imp.kind})`);
    }
    const exportNames = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
    for (const name of ["memory", "wasmhost_alloc", "wasmhost_handle"]) {
      if (!exportNames.has(name)) throw new GuestError("invalid_module", `the module does not export ${name}`);
    }
    p = { log, wasi, initialize: exportNames.has("_initialize") };
    importPlans.set(module, p);
  }
  return p;
}

function importsFor(p, state) {
  const imports = {};
  if (p.log) {
    imports.wasmhost = {
      log(ptr, len) {
        ptr >>>= 0; len >>>= 0;
        const mem = new Uint8Array(state.memory.buffer);
        if (ptr + len > mem.length) throw new GuestError("trap", `wasmhost.log(${ptr}, ${len}) outside linear memory`);
        state.logs.push(utf8.decode(mem.subarray(ptr, ptr + len)));
      },
    };
  }
  if (p.wasi.length) {
    // Minimal WASI preview 1 stubs, NOT a WASI implementation: every function returns
    // ERRNO_NOSYS (52) except fd_write, which reads the iovecs, counts the bytes as written
    // (stores the total in *nwritten, discards the data) and returns success, and proc_exit,
    // which throws to end the call (a guest exiting during a handler call is a failure).
    // Enough for the handler guests here; a runtime that needs clocks, random or args
    // (e.g. Go's) may fail where wasmhost, which implements WASI, does not.
    const wasi = {};
    for (const name of p.wasi) wasi[name] = () => ERRNO_NOSYS;
    if (p.wasi.includes("fd_write")) {
      wasi.fd_write = (fd, iovs, iovsLen, nwritten) => {
        const dv = new DataView(state.memory.buffer);
        let total = 0;
        for (let i = 0; i < iovsLen; i++) total += dv.getUint32(iovs + i * 8 + 4, true);
        dv.setUint32(nwritten, total, true);
        state.wasiBytesWritten += total;
        return ERRNO_SUCCESS;
      };
    }
    if (p.wasi.includes("proc_exit")) wasi.proc_exit = (code) => { throw new ProcExit(code); };
    imports.wasi_snapshot_preview1 = wasi;
  }
  return imports;
}

function text(v, what) {
  if (v instanceof Uint8Array) {
    try { v = utf8Fatal.decode(v); } catch { throw new GuestError("bad_response", `${what} is not valid UTF-8`); }
  }
  if (typeof v !== "string") throw new GuestError("bad_response", `${what} must be a string`);
  return v;
}

/** Validate a decoded response map the way wasmhost does (wasmhost/abi/handler.py). */
export function checkResponse(data) {
  if (!(data instanceof Map)) throw new GuestError("bad_response", "response must be a msgpack map");
  const status = data.has("status") ? data.get("status") : 200;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new GuestError("bad_response", `response status must be an integer from 200 to 599, got ${String(status).slice(0, 60)}`);
  }
  const headersIn = data.get("headers") ?? [];
  if (!Array.isArray(headersIn)) throw new GuestError("bad_response", "response headers must be an array of [name, value] pairs");
  if (headersIn.length > MAX_HEADERS) {
    throw new GuestError("bad_response", `response has ${headersIn.length} headers; at most ${MAX_HEADERS} are allowed`);
  }
  const headers = [];
  for (const pair of headersIn) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new GuestError("bad_response", "each response header must be a [name, value] pair");
    const name = text(pair[0], "header name");
    const value = text(pair[1], "header value");
    if (!TOKEN.test(name)) throw new GuestError("bad_response", `invalid response header name ${JSON.stringify(name.slice(0, 60))}`);
    if (BAD_VALUE_CHAR.test(value)) throw new GuestError("bad_response", `response header ${JSON.stringify(name)} contains a control character`);
    headers.push([name.toLowerCase(), value]);
  }
  let body = data.has("body") ? data.get("body") : null;
  if (body === null) body = Buffer.alloc(0);
  else if (typeof body === "string") body = Buffer.from(body, "utf8");
  else if (body instanceof Uint8Array) body = Buffer.from(body.buffer, body.byteOffset, body.length);
  else throw new GuestError("bad_response", `response body must be bin or str, got ${typeof body}`);
  return { status, headers, body };
}

/**
 * One call in a fresh instance: instantiate `module`, `_initialize` if exported,
 * `wasmhost_alloc(len)`, write the msgpack of `requestFields`, `wasmhost_handle(ptr, len)`,
 * decode and validate the response. Returns {status, headers: [[name, value]...], body: Buffer, logs}.
 * Throws GuestError (trap / bad_response / too_large / invalid_module).
 */
export function callHandler(module, requestFields) {
  const p = plan(module);
  const state = { memory: null, logs: [], wasiBytesWritten: 0 };
  const request = requestFields instanceof Uint8Array ? requestFields : encodeScratch(requestFields);
  let raw;
  try {
    const instance = new WebAssembly.Instance(module, importsFor(p, state));
    const ex = instance.exports;
    state.memory = ex.memory;
    if (p.initialize) ex._initialize();
    const len = request.length;
    const ptr = ex.wasmhost_alloc(len) >>> 0;
    let mem = new Uint8Array(ex.memory.buffer);
    if (ptr + len > mem.length) {
      throw new GuestError("bad_response", `wasmhost_alloc(${len}) returned ${ptr}, outside linear memory (${mem.length} bytes)`);
    }
    mem.set(request, ptr);
    const packed = BigInt.asUintN(64, ex.wasmhost_handle(ptr, len));
    const outPtr = Number(packed >> 32n);
    const outLen = Number(packed & 0xffffffffn);
    if (outLen > MAX_RESPONSE_BYTES) {
      throw new GuestError("too_large", `response of ${outLen} bytes exceeds the limit of ${MAX_RESPONSE_BYTES} bytes`, 413);
    }
    mem = new Uint8Array(ex.memory.buffer); // the guest may have grown the memory
    if (outPtr + outLen > mem.length) {
      throw new GuestError("bad_response", `response pointer ${outPtr} + length ${outLen} is outside linear memory (${mem.length} bytes)`);
    }
    raw = mem.subarray(outPtr, outPtr + outLen); // decode copies what it keeps (bin) before the instance goes
  } catch (e) {
    if (e instanceof GuestError) throw e;
    if (e instanceof ProcExit) throw new GuestError("trap", `the guest called proc_exit(${e.exitCode}) during the call`);
    if (e instanceof WebAssembly.RuntimeError || e instanceof RangeError) throw new GuestError("trap", `trap: ${e.message}`);
    throw e;
  }
  let data;
  try {
    data = decode(raw);
  } catch (e) {
    if (e instanceof MsgpackError || e instanceof RangeError) {
      throw new GuestError("bad_response", `response is not valid msgpack (${e.message})`);
    }
    throw e;
  }
  const out = checkResponse(data);
  out.logs = state.logs;
  return out;
}
