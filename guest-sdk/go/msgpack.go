package wasmhost

// The small MessagePack subset wasmhost needs, dependency-free: a bounds-checked
// decoder that can skip any value, and an encoder that writes the shortest forms.

import (
	"encoding/binary"
	"errors"
)

// ErrMalformed reports msgpack input that is truncated or not well-formed.
var ErrMalformed = errors.New("wasmhost: malformed msgpack")

// Decoder reads msgpack values from a byte slice.
type Decoder struct {
	buf []byte
	pos int
	err error
}

// NewDecoder returns a decoder over b (not copied).
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Err is the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Done reports whether all input was read.
func (d *Decoder) Done() bool { return d.pos >= len(d.buf) }

func (d *Decoder) fail() {
	if d.err == nil {
		d.err = ErrMalformed
	}
	d.pos = len(d.buf)
}

func (d *Decoder) take(n uint64) []byte {
	if d.err != nil || uint64(len(d.buf)-d.pos) < n {
		d.fail()
		return nil
	}
	b := d.buf[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b
}

func (d *Decoder) u8() uint64 {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return uint64(b[0])
}

func (d *Decoder) u16() uint64 {
	b := d.take(2)
	if b == nil {
		return 0
	}
	return uint64(binary.BigEndian.Uint16(b))
}

func (d *Decoder) u32() uint64 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return uint64(binary.BigEndian.Uint32(b))
}

func (d *Decoder) u64() uint64 {
	b := d.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Kind classifies the next value.
type Kind int

const (
	KindInvalid Kind = iota
	KindNil
	KindBool
	KindInt
	KindFloat
	KindStr
	KindBin
	KindArray
	KindMap
	KindExt
)

// Peek returns the kind of the next value without consuming it.
func (d *Decoder) Peek() Kind {
	if d.err != nil || d.pos >= len(d.buf) {
		return KindInvalid
	}
	b := d.buf[d.pos]
	switch {
	case b <= 0x7f || b >= 0xe0:
		return KindInt
	case b <= 0x8f:
		return KindMap
	case b <= 0x9f:
		return KindArray
	case b <= 0xbf:
		return KindStr
	}
	switch b {
	case 0xc0:
		return KindNil
	case 0xc2, 0xc3:
		return KindBool
	case 0xc4, 0xc5, 0xc6:
		return KindBin
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return KindExt
	case 0xca, 0xcb:
		return KindFloat
	case 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
		return KindInt
	case 0xd9, 0xda, 0xdb:
		return KindStr
	case 0xdc, 0xdd:
		return KindArray
	case 0xde, 0xdf:
		return KindMap
	}
	return KindInvalid
}

// count checks that n elements of at least min bytes each can fit in the rest of the input.
func (d *Decoder) count(n, min uint64) int {
	if d.err != nil || n*min > uint64(len(d.buf)-d.pos) {
		d.fail()
		return 0
	}
	return int(n)
}

// MapHeader reads a map header and returns the number of key/value pairs.
func (d *Decoder) MapHeader() int {
	b := d.u8()
	switch {
	case d.err != nil:
		return 0
	case b&0xf0 == 0x80:
		return d.count(b&0x0f, 2)
	case b == 0xde:
		return d.count(d.u16(), 2)
	case b == 0xdf:
		return d.count(d.u32(), 2)
	}
	d.fail()
	return 0
}

// ArrayHeader reads an array header and returns the number of elements.
func (d *Decoder) ArrayHeader() int {
	b := d.u8()
	switch {
	case d.err != nil:
		return 0
	case b&0xf0 == 0x90:
		return d.count(b&0x0f, 1)
	case b == 0xdc:
		return d.count(d.u16(), 1)
	case b == 0xdd:
		return d.count(d.u32(), 1)
	}
	d.fail()
	return 0
}

// Bytes reads a str or bin value and returns its payload (a sub-slice of the input, not copied).
func (d *Decoder) Bytes() []byte {
	b := d.u8()
	var n uint64
	switch {
	case d.err != nil:
		return nil
	case b&0xe0 == 0xa0:
		n = b & 0x1f
	case b == 0xd9 || b == 0xc4:
		n = d.u8()
	case b == 0xda || b == 0xc5:
		n = d.u16()
	case b == 0xdb || b == 0xc6:
		n = d.u32()
	default:
		d.fail()
		return nil
	}
	return d.take(n)
}

// String reads a str or bin value; its bytes are kept as they are (Go strings may hold any bytes).
func (d *Decoder) String() string { return string(d.Bytes()) }

// Int reads any msgpack integer.
func (d *Decoder) Int() int64 {
	b := d.u8()
	if d.err != nil {
		return 0
	}
	switch {
	case b <= 0x7f:
		return int64(b)
	case b >= 0xe0:
		return int64(int8(b))
	}
	switch b {
	case 0xcc:
		return int64(d.u8())
	case 0xcd:
		return int64(d.u16())
	case 0xce:
		return int64(d.u32())
	case 0xcf:
		return int64(d.u64())
	case 0xd0:
		return int64(int8(d.u8()))
	case 0xd1:
		return int64(int16(d.u16()))
	case 0xd2:
		return int64(int32(d.u32()))
	case 0xd3:
		return int64(d.u64())
	}
	d.fail()
	return 0
}

// Skip reads one complete value of any type, nested ones included, without recursion.
func (d *Decoder) Skip() {
	pending := uint64(1)
	for pending > 0 && d.err == nil {
		pending--
		b := d.u8()
		if d.err != nil {
			return
		}
		switch {
		case b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
		case b&0xf0 == 0x80:
			pending += (b & 0x0f) * 2
		case b&0xf0 == 0x90:
			pending += b & 0x0f
		case b&0xe0 == 0xa0:
			d.take(b & 0x1f)
		default:
			switch b {
			case 0xc4, 0xd9:
				d.take(d.u8())
			case 0xc5, 0xda:
				d.take(d.u16())
			case 0xc6, 0xdb:
				d.take(d.u32())
			case 0xc7:
				d.take(d.u8() + 1)
			case 0xc8:
				d.take(d.u16() + 1)
			case 0xc9:
				d.take(d.u32() + 1)
			case 0xca, 0xce, 0xd2:
				d.take(4)
			case 0xcb, 0xcf, 0xd3:
				d.take(8)
			case 0xcc, 0xd0:
				d.take(1)
			case 0xcd, 0xd1:
				d.take(2)
			case 0xd4:
				d.take(2)
			case 0xd5:
				d.take(3)
			case 0xd6:
				d.take(5)
			case 0xd7:
				d.take(9)
			case 0xd8:
				d.take(17)
			case 0xdc:
				pending += d.u16()
			case 0xdd:
				pending += d.u32()
			case 0xde:
				pending += d.u16() * 2
			case 0xdf:
				pending += d.u32() * 2
			default: // 0xc1
				d.fail()
			}
		}
		if pending > uint64(len(d.buf)-d.pos) { // every pending value needs a byte
			d.fail()
		}
	}
}

// Encoder appends msgpack values to Buf, always in the shortest form.
type Encoder struct {
	Buf []byte
}

// head writes a length header: the fix form (fix|n) when hasFix and n <= fixMax,
// else the 8-bit form when c8 != 0, else the 16- or 32-bit form.
func (e *Encoder) head(hasFix bool, fix byte, fixMax uint64, c8, c16, c32 byte, n uint64) {
	switch {
	case hasFix && n <= fixMax:
		e.Buf = append(e.Buf, fix|byte(n))
	case c8 != 0 && n <= 0xff:
		e.Buf = append(e.Buf, c8, byte(n))
	case n <= 0xffff:
		e.Buf = append(e.Buf, c16, byte(n>>8), byte(n))
	default:
		e.Buf = append(e.Buf, c32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// MapHeader writes a map header for n pairs.
func (e *Encoder) MapHeader(n int) { e.head(true, 0x80, 15, 0, 0xde, 0xdf, uint64(n)) }

// ArrayHeader writes an array header for n elements.
func (e *Encoder) ArrayHeader(n int) { e.head(true, 0x90, 15, 0, 0xdc, 0xdd, uint64(n)) }

// String writes s as a msgpack str (its bytes as they are).
func (e *Encoder) String(s string) {
	e.head(true, 0xa0, 31, 0xd9, 0xda, 0xdb, uint64(len(s)))
	e.Buf = append(e.Buf, s...)
}

// Bin writes b as a msgpack bin.
func (e *Encoder) Bin(b []byte) {
	e.head(false, 0, 0, 0xc4, 0xc5, 0xc6, uint64(len(b)))
	e.Buf = append(e.Buf, b...)
}

// Nil writes nil.
func (e *Encoder) Nil() { e.Buf = append(e.Buf, 0xc0) }

// Bool writes a boolean.
func (e *Encoder) Bool(v bool) {
	if v {
		e.Buf = append(e.Buf, 0xc3)
	} else {
		e.Buf = append(e.Buf, 0xc2)
	}
}

// Int writes v as the shortest msgpack integer.
func (e *Encoder) Int(v int64) {
	switch {
	case v >= 0 && v <= 0x7f:
		e.Buf = append(e.Buf, byte(v))
	case v >= 0 && v <= 0xff:
		e.Buf = append(e.Buf, 0xcc, byte(v))
	case v >= 0 && v <= 0xffff:
		e.Buf = append(e.Buf, 0xcd, byte(v>>8), byte(v))
	case v >= 0 && v <= 0xffffffff:
		e.Buf = append(e.Buf, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	case v >= 0:
		e.Buf = binary.BigEndian.AppendUint64(append(e.Buf, 0xcf), uint64(v))
	case v >= -32:
		e.Buf = append(e.Buf, byte(v))
	case v >= -128:
		e.Buf = append(e.Buf, 0xd0, byte(v))
	case v >= -32768:
		e.Buf = append(e.Buf, 0xd1, byte(v>>8), byte(v))
	case v >= -2147483648:
		e.Buf = append(e.Buf, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		e.Buf = binary.BigEndian.AppendUint64(append(e.Buf, 0xd3), uint64(v))
	}
}
