//! A small, dependency-free MessagePack codec: enough of the format for the
//! wasmhost ABI (and general use): every type except timestamps is decoded;
//! the encoder always writes the shortest form.

use std::fmt;

/// A decoded MessagePack value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Any integer (positive fixint, uint 8..64, negative fixint, int 8..64).
    /// uint64 values above i64::MAX are kept in `UInt`.
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Ext(i8, Vec<u8>),
}

impl Value {
    /// The text of a `Str`, or of a `Bin` holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bin(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
    /// The text of a `Str` or `Bin`, with invalid UTF-8 replaced by U+FFFD.
    pub fn to_text_lossy(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bin(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
    /// The bytes of a `Bin` or `Str`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) if u <= i64::MAX as u64 => Some(u as i64),
            _ => None,
        }
    }
}

/// Why a buffer could not be decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum DecodeError {
    /// The input ends in the middle of a value.
    UnexpectedEof,
    /// A byte that starts no MessagePack value (0xc1).
    InvalidMarker(u8),
    /// A `str` whose bytes are not UTF-8.
    InvalidUtf8,
    /// Nesting deeper than `MAX_DEPTH`.
    TooDeep,
    /// Bytes left after the value.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEof => write!(f, "unexpected end of msgpack data"),
            DecodeError::InvalidMarker(b) => write!(f, "invalid msgpack marker 0x{:02x}", b),
            DecodeError::InvalidUtf8 => write!(f, "msgpack str is not valid UTF-8"),
            DecodeError::TooDeep => write!(f, "msgpack nesting deeper than {}", MAX_DEPTH),
            DecodeError::TrailingBytes(n) => write!(f, "{} bytes after the msgpack value", n),
        }
    }
}

/// Maximum nesting of arrays and maps accepted by the decoder.
pub const MAX_DEPTH: usize = 64;

/// Decodes exactly one value filling the whole buffer.
pub fn decode(buf: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder { buf, pos: 0 };
    let v = d.value(0)?;
    if d.pos != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - d.pos));
    }
    Ok(v)
}

/// A cursor over a msgpack buffer.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }
    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Decodes the next value.
    pub fn next_value(&mut self) -> Result<Value, DecodeError> {
        self.value(0)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(DecodeError::UnexpectedEof);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for &b in self.take(n)? {
            v = (v << 8) | b as u64;
        }
        Ok(v)
    }
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, DecodeError> {
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self, n: usize) -> Result<Value, DecodeError> {
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(_) => Err(DecodeError::InvalidUtf8),
        }
    }
    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        // Every element takes at least one byte: do not trust the count for the capacity.
        let mut items = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }
    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let mut items = Vec::with_capacity(n.min((self.buf.len() - self.pos) / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            items.push((k, v));
        }
        Ok(Value::Map(items))
    }
    fn ext(&mut self, n: usize) -> Result<Value, DecodeError> {
        let t = self.u8()? as i8;
        Ok(Value::Ext(t, self.bytes(n)?))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Value::Int(m as i64),
            0x80..=0x8f => return self.map((m & 0x0f) as usize, depth),
            0x90..=0x9f => return self.array((m & 0x0f) as usize, depth),
            0xa0..=0xbf => return self.string((m & 0x1f) as usize),
            0xc0 => Value::Nil,
            0xc1 => return Err(DecodeError::InvalidMarker(m)),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.be(1)? as usize;
                Value::Bin(self.bytes(n)?)
            }
            0xc5 => {
                let n = self.be(2)? as usize;
                Value::Bin(self.bytes(n)?)
            }
            0xc6 => {
                let n = self.be(4)? as usize;
                Value::Bin(self.bytes(n)?)
            }
            0xc7 => {
                let n = self.be(1)? as usize;
                return self.ext(n);
            }
            0xc8 => {
                let n = self.be(2)? as usize;
                return self.ext(n);
            }
            0xc9 => {
                let n = self.be(4)? as usize;
                return self.ext(n);
            }
            0xca => Value::F32(f32::from_bits(self.be(4)? as u32)),
            0xcb => Value::F64(f64::from_bits(self.be(8)?)),
            0xcc => Value::Int(self.be(1)? as i64),
            0xcd => Value::Int(self.be(2)? as i64),
            0xce => Value::Int(self.be(4)? as i64),
            0xcf => {
                let u = self.be(8)?;
                if u <= i64::MAX as u64 {
                    Value::Int(u as i64)
                } else {
                    Value::UInt(u)
                }
            }
            0xd0 => Value::Int(self.be(1)? as u8 as i8 as i64),
            0xd1 => Value::Int(self.be(2)? as u16 as i16 as i64),
            0xd2 => Value::Int(self.be(4)? as u32 as i32 as i64),
            0xd3 => Value::Int(self.be(8)? as i64),
            0xd4 => return self.ext(1),
            0xd5 => return self.ext(2),
            0xd6 => return self.ext(4),
            0xd7 => return self.ext(8),
            0xd8 => return self.ext(16),
            0xd9 => {
                let n = self.be(1)? as usize;
                return self.string(n);
            }
            0xda => {
                let n = self.be(2)? as usize;
                return self.string(n);
            }
            0xdb => {
                let n = self.be(4)? as usize;
                return self.string(n);
            }
            0xdc => {
                let n = self.be(2)? as usize;
                return self.array(n, depth);
            }
            0xdd => {
                let n = self.be(4)? as usize;
                return self.array(n, depth);
            }
            0xde => {
                let n = self.be(2)? as usize;
                return self.map(n, depth);
            }
            0xdf => {
                let n = self.be(4)? as usize;
                return self.map(n, depth);
            }
            0xe0..=0xff => Value::Int(m as i8 as i64),
        })
    }
}

/// Appends msgpack to a byte vector, always in the shortest form.
#[derive(Default, Debug)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { buf: Vec::new() }
    }
    pub fn with_capacity(n: usize) -> Self {
        Encoder { buf: Vec::with_capacity(n) }
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    fn marker_len(&mut self, len: usize, fix: Option<(u8, usize)>, m8: Option<u8>, m16: u8, m32: u8) {
        if let Some((base, max)) = fix {
            if len <= max {
                self.buf.push(base | len as u8);
                return;
            }
        }
        if let Some(m) = m8 {
            if len <= 0xff {
                self.buf.push(m);
                self.buf.push(len as u8);
                return;
            }
        }
        if len <= 0xffff {
            self.buf.push(m16);
            self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.buf.push(m32);
            self.buf.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    pub fn nil(&mut self) {
        self.buf.push(0xc0);
    }
    pub fn bool(&mut self, b: bool) {
        self.buf.push(if b { 0xc3 } else { 0xc2 });
    }
    pub fn uint(&mut self, u: u64) {
        if u <= 0x7f {
            self.buf.push(u as u8);
        } else if u <= 0xff {
            self.buf.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= 0xffff {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= 0xffff_ffff {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&u.to_be_bytes());
        }
    }
    pub fn int(&mut self, i: i64) {
        if i >= 0 {
            self.uint(i as u64);
        } else if i >= -32 {
            self.buf.push(i as i8 as u8);
        } else if i >= i8::MIN as i64 {
            self.buf.extend_from_slice(&[0xd0, i as i8 as u8]);
        } else if i >= i16::MIN as i64 {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&(i as i16).to_be_bytes());
        } else if i >= i32::MIN as i64 {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&(i as i32).to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&i.to_be_bytes());
        }
    }
    pub fn f64(&mut self, f: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&f.to_bits().to_be_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.marker_len(s.len(), Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn bin(&mut self, b: &[u8]) {
        self.marker_len(b.len(), None, Some(0xc4), 0xc5, 0xc6);
        self.buf.extend_from_slice(b);
    }
    pub fn array_len(&mut self, n: usize) {
        self.marker_len(n, Some((0x90, 15)), None, 0xdc, 0xdd);
    }
    pub fn map_len(&mut self, n: usize) {
        self.marker_len(n, Some((0x80, 15)), None, 0xde, 0xdf);
    }
    pub fn ext(&mut self, t: i8, data: &[u8]) {
        match data.len() {
            1 => self.buf.push(0xd4),
            2 => self.buf.push(0xd5),
            4 => self.buf.push(0xd6),
            8 => self.buf.push(0xd7),
            16 => self.buf.push(0xd8),
            n => self.marker_len(n, None, Some(0xc7), 0xc8, 0xc9),
        }
        self.buf.push(t as u8);
        self.buf.extend_from_slice(data);
    }
    /// Encodes any `Value`.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Nil => self.nil(),
            Value::Bool(b) => self.bool(*b),
            Value::Int(i) => self.int(*i),
            Value::UInt(u) => self.uint(*u),
            Value::F32(f) => {
                self.buf.push(0xca);
                self.buf.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::F64(f) => self.f64(*f),
            Value::Str(s) => self.str(s),
            Value::Bin(b) => self.bin(b),
            Value::Array(items) => {
                self.array_len(items.len());
                for i in items {
                    self.value(i);
                }
            }
            Value::Map(items) => {
                self.map_len(items.len());
                for (k, v) in items {
                    self.value(k);
                    self.value(v);
                }
            }
            Value::Ext(t, d) => self.ext(*t, d),
        }
    }
}

/// Encodes one value.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut e = Encoder::new();
    e.value(v);
    e.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn roundtrip(v: Value, expect_hex: &str) {
        let bytes = encode(&v);
        assert_eq!(bytes, hex(expect_hex), "encoding of {:?}", v);
        assert_eq!(decode(&bytes).unwrap(), v);
    }

    #[test]
    fn ints_shortest_form() {
        roundtrip(Value::Int(0), "00");
        roundtrip(Value::Int(127), "7f");
        roundtrip(Value::Int(128), "cc80");
        roundtrip(Value::Int(255), "ccff");
        roundtrip(Value::Int(256), "cd0100");
        roundtrip(Value::Int(65535), "cdffff");
        roundtrip(Value::Int(65536), "ce00010000");
        roundtrip(Value::Int(4294967296), "cf0000000100000000");
        roundtrip(Value::UInt(u64::MAX), "cfffffffffffffffff");
        roundtrip(Value::Int(-1), "ff");
        roundtrip(Value::Int(-32), "e0");
        roundtrip(Value::Int(-33), "d0df");
        roundtrip(Value::Int(-128), "d080");
        roundtrip(Value::Int(-129), "d1ff7f");
        roundtrip(Value::Int(-32769), "d2ffff7fff");
        roundtrip(Value::Int(i64::MIN), "d38000000000000000");
    }

    #[test]
    fn other_int_encodings_decode() {
        assert_eq!(decode(&hex("d000")).unwrap(), Value::Int(0));
        assert_eq!(decode(&hex("d3ffffffffffffffff")).unwrap(), Value::Int(-1));
        assert_eq!(decode(&hex("cf0000000000000005")).unwrap(), Value::Int(5));
        assert_eq!(decode(&hex("cd00c8")).unwrap().as_i64(), Some(200));
    }

    #[test]
    fn scalars() {
        roundtrip(Value::Nil, "c0");
        roundtrip(Value::Bool(false), "c2");
        roundtrip(Value::Bool(true), "c3");
        roundtrip(Value::F64(1.5), "cb3ff8000000000000");
        roundtrip(Value::F32(1.5), "ca3fc00000");
    }

    #[test]
    fn strings_and_bins() {
        roundtrip(Value::Str(String::new()), "a0");
        roundtrip(Value::Str("hi".into()), "a26869");
        roundtrip(Value::Str("x".repeat(31)), &format!("bf{}", "78".repeat(31)));
        roundtrip(Value::Str("x".repeat(32)), &format!("d920{}", "78".repeat(32)));
        roundtrip(Value::Str("x".repeat(256)), &format!("da0100{}", "78".repeat(256)));
        roundtrip(Value::Str("x".repeat(65536)), &format!("db00010000{}", "78".repeat(65536)));
        roundtrip(Value::Str("héllo ✓ 😀".into()), "af68c3a96c6c6f20e29c9320f09f9880");
        roundtrip(Value::Bin(vec![]), "c400");
        roundtrip(Value::Bin(vec![0, 255]), "c40200ff");
        roundtrip(Value::Bin(vec![7; 256]), &format!("c50100{}", "07".repeat(256)));
        roundtrip(Value::Bin(vec![7; 65536]), &format!("c600010000{}", "07".repeat(65536)));
    }

    #[test]
    fn containers() {
        roundtrip(Value::Array(vec![]), "90");
        roundtrip(Value::Array(vec![Value::Int(1), Value::Str("a".into())]), "9201a161");
        roundtrip(Value::Array(vec![Value::Nil; 16]), &format!("dc0010{}", "c0".repeat(16)));
        roundtrip(Value::Array(vec![Value::Nil; 65536]), &format!("dd00010000{}", "c0".repeat(65536)));
        roundtrip(Value::Map(vec![]), "80");
        roundtrip(Value::Map(vec![(Value::Str("a".into()), Value::Int(1))]), "81a16101");
        let big: Vec<(Value, Value)> = (0..16).map(|i| (Value::Int(i), Value::Nil)).collect();
        let mut h = String::from("de0010");
        for i in 0..16 {
            h.push_str(&format!("{:02x}c0", i));
        }
        roundtrip(Value::Map(big), &h);
    }

    #[test]
    fn ext() {
        roundtrip(Value::Ext(-1, vec![0; 4]), "d6ff00000000");
        roundtrip(Value::Ext(5, vec![1, 2, 3]), "c70305010203");
        roundtrip(Value::Ext(5, vec![9; 16]), &format!("d805{}", "09".repeat(16)));
    }

    #[test]
    fn errors() {
        assert_eq!(decode(&[]), Err(DecodeError::UnexpectedEof));
        assert_eq!(decode(&hex("c1")), Err(DecodeError::InvalidMarker(0xc1)));
        assert_eq!(decode(&hex("a3 6869")), Err(DecodeError::UnexpectedEof));
        assert_eq!(decode(&hex("c6ffffffff00")), Err(DecodeError::UnexpectedEof));
        assert_eq!(decode(&hex("ddffffffff")), Err(DecodeError::UnexpectedEof));
        assert_eq!(decode(&hex("dfffffffff")), Err(DecodeError::UnexpectedEof));
        assert_eq!(decode(&hex("a2c328")), Err(DecodeError::InvalidUtf8));
        assert_eq!(decode(&hex("c0c0")), Err(DecodeError::TrailingBytes(1)));
        let deep = vec![0x91u8; 100];
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
        let mut ok = vec![0x91u8; MAX_DEPTH];
        ok.push(0xc0);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn accessors() {
        assert_eq!(Value::Bin(b"ab".to_vec()).as_str(), Some("ab"));
        assert_eq!(Value::Bin(vec![0xff]).as_str(), None);
        assert_eq!(Value::Bin(vec![b'a', 0xff]).to_text_lossy().unwrap(), "a\u{fffd}");
        assert_eq!(Value::UInt(u64::MAX).as_i64(), None);
        assert_eq!(Value::Str("x".into()).as_bytes(), Some(&b"x"[..]));
    }
}
