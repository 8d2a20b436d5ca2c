// msgpack.ts -- the small MessagePack subset wasmhost needs, dependency-free.
//
// Decoder: reads any well-formed msgpack value (so unknown request keys of any
// type can be skipped), with typed readers for str / bin / int / map / array.
// Encoder: a growable byte buffer that always writes the shortest form.
// Every read is bounds-checked: malformed input makes `ok` false (and readers
// return empty values) instead of reading past the end.

// ---------------------------------------------------------------- decoding

export const enum Kind {
  Nil, Bool, Int, Float, Str, Bin, Array, Map, Ext, Invalid,
}

export class Decoder {
  pos: usize;
  end: usize;
  ok: bool = true;

  constructor(ptr: usize, len: usize) {
    this.pos = ptr;
    this.end = ptr + len;
  }

  get done(): bool { return this.pos >= this.end; }

  private fail(): void {
    this.ok = false;
    this.pos = this.end;
  }

  private need(n: usize): bool {
    if (!this.ok || this.end - this.pos < n) { this.fail(); return false; }
    return true;
  }

  private u8(): u32 {
    if (!this.need(1)) return 0;
    let v = <u32>load<u8>(this.pos);
    this.pos += 1;
    return v;
  }

  private u16(): u32 {
    if (!this.need(2)) return 0;
    let v = <u32>bswap<u16>(load<u16>(this.pos));
    this.pos += 2;
    return v;
  }

  private u32(): u32 {
    if (!this.need(4)) return 0;
    let v = bswap<u32>(load<u32>(this.pos));
    this.pos += 4;
    return v;
  }

  private u64(): u64 {
    if (!this.need(8)) return 0;
    let v = bswap<u64>(load<u64>(this.pos));
    this.pos += 8;
    return v;
  }

  /** The kind of the next value, without consuming it. */
  peek(): Kind {
    if (!this.ok || this.pos >= this.end) return Kind.Invalid;
    let b = <u32>load<u8>(this.pos);
    if (b <= 0x7f || b >= 0xe0) return Kind.Int;
    if (b <= 0x8f) return Kind.Map;
    if (b <= 0x9f) return Kind.Array;
    if (b <= 0xbf) return Kind.Str;
    switch (b) {
      case 0xc0: return Kind.Nil;
      case 0xc2: case 0xc3: return Kind.Bool;
      case 0xc4: case 0xc5: case 0xc6: return Kind.Bin;
      case 0xc7: case 0xc8: case 0xc9: return Kind.Ext;
      case 0xca: case 0xcb: return Kind.Float;
      case 0xcc: case 0xcd: case 0xce: case 0xcf:
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: return Kind.Int;
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return Kind.Ext;
      case 0xd9: case 0xda: case 0xdb: return Kind.Str;
      case 0xdc: case 0xdd: return Kind.Array;
      case 0xde: case 0xdf: return Kind.Map;
    }
    return Kind.Invalid; // 0xc1 is never used
  }

  /** Map header: the number of key/value pairs, or -1 (and ok = false) if not a map. */
  readMapHeader(): i32 {
    let b = this.u8();
    if (!this.ok) return -1;
    if ((b & 0xf0) == 0x80) return <i32>(b & 0x0f);
    if (b == 0xde) return <i32>this.u16();
    if (b == 0xdf) return this.count(this.u32(), 2);
    this.fail();
    return -1;
  }

  /** Array header: the number of elements, or -1 (and ok = false) if not an array. */
  readArrayHeader(): i32 {
    let b = this.u8();
    if (!this.ok) return -1;
    if ((b & 0xf0) == 0x90) return <i32>(b & 0x0f);
    if (b == 0xdc) return <i32>this.u16();
    if (b == 0xdd) return this.count(this.u32(), 1);
    this.fail();
    return -1;
  }

  // Each element takes at least one byte: a count larger than what is left is malformed.
  private count(n: u32, perElement: u32): i32 {
    if (<u64>n * perElement > <u64>(this.end - this.pos)) { this.fail(); return -1; }
    return <i32>n;
  }

  /** Length of a str or bin payload and moves to its first byte; -1 if the next value is neither. */
  readBytesHeader(): i32 {
    let b = this.u8();
    if (!this.ok) return -1;
    let n: u32;
    if ((b & 0xe0) == 0xa0) n = b & 0x1f;
    else if (b == 0xd9 || b == 0xc4) n = this.u8();
    else if (b == 0xda || b == 0xc5) n = this.u16();
    else if (b == 0xdb || b == 0xc6) n = this.u32();
    else { this.fail(); return -1; }
    if (!this.need(n)) return -1;
    return <i32>n;
  }

  /** A str, or a bin decoded as UTF-8 (invalid sequences become U+FFFD). */
  readString(): string {
    let n = this.readBytesHeader();
    if (n < 0) return "";
    let s = decodeUtf8(this.pos, <usize>n);
    this.pos += <usize>n;
    return s;
  }

  /** A bin or str payload as a view [ptr, ptr+len) into the input (no copy). Returns ptr; len in lastLength. */
  lastLength: i32 = 0;
  readBytesRef(): usize {
    let n = this.readBytesHeader();
    if (n < 0) { this.lastLength = 0; return 0; }
    let p = this.pos;
    this.pos += <usize>n;
    this.lastLength = n;
    return p;
  }

  /** A bin or str payload copied into a new Uint8Array. */
  readBytes(): Uint8Array {
    let p = this.readBytesRef();
    let out = new Uint8Array(this.lastLength);
    memory.copy(out.dataStart, p, <usize>this.lastLength);
    return out;
  }

  /** Any integer (positive/negative fixint, uint8..64, int8..64); 0 and ok = false otherwise. */
  readInt(): i64 {
    let b = this.u8();
    if (!this.ok) return 0;
    if (b <= 0x7f) return <i64>b;
    if (b >= 0xe0) return <i64><i8><u8>b;
    switch (b) {
      case 0xcc: return <i64>this.u8();
      case 0xcd: return <i64>this.u16();
      case 0xce: return <i64>this.u32();
      case 0xcf: return <i64>this.u64();
      case 0xd0: return <i64><i8><u8>this.u8();
      case 0xd1: return <i64><i16><u16>this.u16();
      case 0xd2: return <i64><i32>this.u32();
      case 0xd3: return <i64>this.u64();
    }
    this.fail();
    return 0;
  }

  /** Skips one complete value of any type (nested arrays and maps included). */
  skip(): void {
    // An explicit count of values still to skip: no recursion, so hostile nesting cannot overflow the stack.
    let pending: u64 = 1;
    while (pending > 0 && this.ok) {
      pending--;
      let b = this.u8();
      if (!this.ok) return;
      if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) continue;
      if ((b & 0xf0) == 0x80) { pending += <u64>(b & 0x0f) * 2; continue; }
      if ((b & 0xf0) == 0x90) { pending += <u64>(b & 0x0f); continue; }
      if ((b & 0xe0) == 0xa0) { this.advance(b & 0x1f); continue; }
      switch (b) {
        case 0xc4: case 0xd9: this.advance(this.u8()); break;
        case 0xc5: case 0xda: this.advance(this.u16()); break;
        case 0xc6: case 0xdb: this.advance(this.u32()); break;
        case 0xc7: this.advance(this.u8() + 1); break;
        case 0xc8: this.advance(this.u16() + 1); break;
        case 0xc9: { let n = this.u32(); this.advance(1); this.advance(n); break; }
        case 0xca: this.advance(4); break;
        case 0xcb: this.advance(8); break;
        case 0xcc: case 0xd0: this.advance(1); break;
        case 0xcd: case 0xd1: this.advance(2); break;
        case 0xce: case 0xd2: this.advance(4); break;
        case 0xcf: case 0xd3: this.advance(8); break;
        case 0xd4: this.advance(2); break;
        case 0xd5: this.advance(3); break;
        case 0xd6: this.advance(5); break;
        case 0xd7: this.advance(9); break;
        case 0xd8: this.advance(17); break;
        case 0xdc: pending += <u64>this.u16(); break;
        case 0xdd: pending += <u64>this.u32(); break;
        case 0xde: pending += <u64>this.u16() * 2; break;
        case 0xdf: pending += <u64>this.u32() * 2; break;
        default: this.fail(); // 0xc1
      }
      // Every pending value needs at least one byte.
      if (pending > <u64>(this.end - this.pos)) this.fail();
    }
  }

  private advance(n: u32): void {
    if (this.need(<usize>n)) this.pos += <usize>n;
  }
}

// ---------------------------------------------------------------- UTF-8

/**
 * Decodes UTF-8 like Python's `bytes.decode("utf-8", "replace")`: each maximal
 * ill-formed subpart becomes one U+FFFD (AssemblyScript's String.UTF8.decode
 * stops at the first bad byte instead).
 */
export function decodeUtf8(ptr: usize, len: usize): string {
  let end = ptr + len;
  // Fast path: ASCII only.
  let p = ptr;
  while (p < end && load<u8>(p) < 0x80) p++;
  if (p == end) return String.UTF8.decodeUnsafe(ptr, len);
  let out = heap.alloc(len << 1); // at most one UTF-16 unit per input byte
  let o = out;
  p = ptr;
  while (p < end) {
    let b0 = <u32>load<u8>(p);
    if (b0 < 0x80) { store<u16>(o, <u16>b0); o += 2; p++; continue; }
    let need = 0;
    let lo: u32 = 0x80, hi: u32 = 0xbf;
    let cp: u32 = 0;
    if (b0 >= 0xc2 && b0 <= 0xdf) { need = 1; cp = b0 & 0x1f; }
    else if (b0 >= 0xe0 && b0 <= 0xef) {
      need = 2; cp = b0 & 0x0f;
      if (b0 == 0xe0) lo = 0xa0;
      else if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      need = 3; cp = b0 & 0x07;
      if (b0 == 0xf0) lo = 0x90;
      else if (b0 == 0xf4) hi = 0x8f;
    } else {
      store<u16>(o, 0xfffd); o += 2; p++; continue;
    }
    let q = p + 1;
    let got = 0;
    while (got < need && q < end) {
      let b = <u32>load<u8>(q);
      if (b < lo || b > hi) break;
      cp = (cp << 6) | (b & 0x3f);
      lo = 0x80; hi = 0xbf;
      q++; got++;
    }
    if (got < need) { store<u16>(o, 0xfffd); o += 2; p = q; continue; }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      store<u16>(o, <u16>(0xd800 | (cp >> 10))); o += 2;
      store<u16>(o, <u16>(0xdc00 | (cp & 0x3ff))); o += 2;
    } else {
      store<u16>(o, <u16>cp); o += 2;
    }
    p = q;
  }
  return String.UTF16.decodeUnsafe(out, o - out);
}

// ---------------------------------------------------------------- encoding

export class Encoder {
  buf: usize;
  len: usize = 0;
  cap: usize;

  constructor(capacity: usize = 256) {
    this.cap = capacity < 16 ? 16 : capacity;
    this.buf = heap.alloc(this.cap);
  }

  private reserve(n: usize): void {
    let want = this.len + n;
    if (want <= this.cap) return;
    let cap = this.cap * 2;
    if (cap < want) cap = want;
    this.buf = heap.realloc(this.buf, cap);
    this.cap = cap;
  }

  @inline private put(b: u32): void {
    this.reserve(1);
    store<u8>(this.buf + this.len, <u8>b);
    this.len += 1;
  }

  private put16(v: u32): void {
    this.reserve(2);
    store<u16>(this.buf + this.len, bswap<u16>(<u16>v));
    this.len += 2;
  }

  private put32(v: u32): void {
    this.reserve(4);
    store<u32>(this.buf + this.len, bswap<u32>(v));
    this.len += 4;
  }

  writeRaw(ptr: usize, n: usize): void {
    this.reserve(n);
    memory.copy(this.buf + this.len, ptr, n);
    this.len += n;
  }

  writeNil(): void { this.put(0xc0); }

  writeBool(v: bool): void { this.put(v ? 0xc3 : 0xc2); }

  /** Shortest encoding of a signed 32-bit integer. */
  writeInt(v: i32): void {
    if (v >= 0) {
      if (v <= 0x7f) this.put(<u32>v);
      else if (v <= 0xff) { this.put(0xcc); this.put(<u32>v); }
      else if (v <= 0xffff) { this.put(0xcd); this.put16(<u32>v); }
      else { this.put(0xce); this.put32(<u32>v); }
    } else {
      if (v >= -32) this.put(<u32>v & 0xff);
      else if (v >= -128) { this.put(0xd0); this.put(<u32>v & 0xff); }
      else if (v >= -32768) { this.put(0xd1); this.put16(<u32>v & 0xffff); }
      else { this.put(0xd2); this.put32(<u32>v); }
    }
  }

  writeMapHeader(n: u32): void {
    if (n <= 15) this.put(0x80 | n);
    else if (n <= 0xffff) { this.put(0xde); this.put16(n); }
    else { this.put(0xdf); this.put32(n); }
  }

  writeArrayHeader(n: u32): void {
    if (n <= 15) this.put(0x90 | n);
    else if (n <= 0xffff) { this.put(0xdc); this.put16(n); }
    else { this.put(0xdd); this.put32(n); }
  }

  writeStrHeader(n: u32): void {
    if (n <= 31) this.put(0xa0 | n);
    else if (n <= 0xff) { this.put(0xd9); this.put(n); }
    else if (n <= 0xffff) { this.put(0xda); this.put16(n); }
    else { this.put(0xdb); this.put32(n); }
  }

  writeBinHeader(n: u32): void {
    if (n <= 0xff) { this.put(0xc4); this.put(n); }
    else if (n <= 0xffff) { this.put(0xc5); this.put16(n); }
    else { this.put(0xc6); this.put32(n); }
  }

  /** A string as msgpack str (UTF-8; lone surrogates become U+FFFD). */
  writeString(s: string): void {
    let n = <usize>String.UTF8.byteLength(s);
    this.writeStrHeader(<u32>n);
    this.reserve(n);
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.buf + this.len);
    this.len += n;
  }

  writeBin(ptr: usize, n: usize): void {
    this.writeBinHeader(<u32>n);
    this.writeRaw(ptr, n);
  }

  writeBytes(b: Uint8Array): void {
    this.writeBin(b.dataStart, <usize>b.length);
  }

  /** The encoded bytes, copied into a new Uint8Array (the handler path uses buf/len directly). */
  toBytes(): Uint8Array {
    let out = new Uint8Array(<i32>this.len);
    memory.copy(out.dataStart, this.buf, this.len);
    return out;
  }
}
