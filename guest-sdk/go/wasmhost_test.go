package wasmhost

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

func sh(s string) string { return hex.EncodeToString([]byte(s)) }

// ABI.md's worked example (73 bytes).
const abiRequest = "86 a6 6d 65 74 68 6f 64 a3 47 45 54 a4 70 61 74 68 a3 2f 68 69 a5 71 75 65 72 79 a3 78 3d 31" +
	" a7 68 65 61 64 65 72 73 91 92 a6 61 63 63 65 70 74 a3 2a 2f 2a a4 62 6f 64 79 c4 02 6f 6b" +
	" a6 63 6f 6e 66 69 67 81 a1 4b a1 76"

func TestABIExample(t *testing.T) {
	b := h(abiRequest)
	if len(b) != 73 {
		t.Fatalf("len %d", len(b))
	}
	r, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || r.Path != "/hi" || r.Query != "x=1" || string(r.Body) != "ok" || r.Config["K"] != "v" || len(r.Config) != 1 {
		t.Fatalf("%+v", r)
	}
	if len(r.Headers) != 1 || r.Header("Accept") != "*/*" || r.Header("x-none") != "" {
		t.Fatalf("%+v", r.Headers)
	}
	for cut := 0; cut < len(b); cut++ {
		if _, err := DecodeRequest(b[:cut]); err == nil {
			t.Errorf("truncated at %d accepted", cut)
		}
	}
}

func TestUnknownKeysBinAndLongForms(t *testing.T) {
	m := "de 00 0a" +
		"a3" + sh("nil") + "c0" +
		"a1" + sh("f") + "cb 3f f0 00 00 00 00 00 00" +
		"a4" + sh("ints") + "9a 00 ff cc ff cd ff ff ce ff ff ff ff cf 01 02 03 04 05 06 07 08 d0 80 d1 80 00 d2 80 00 00 00 d3 01 02 03 04 05 06 07 08" +
		"a3" + sh("ext") + "96 d4 01 aa d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 c7 02 05 aa bb c8 00 01 05 aa c9 00 00 00 01 05 aa c2" +
		"a4" + sh("nest") + "82 a1 61 93 81 a1 62 90 dc 00 01 80 dd 00 00 00 01 de 00 01 a1 63 df 00 00 00 01 c0 c0 a1 64 c4 01 00" +
		"01 a1 78" +
		"a7" + sh("headers") + "dc 00 03 92 a1 61 c4 02 ff 41 92 a1 62 b4" + sh(strings.Repeat("x", 20)) + "92 a1 61 a1 32" +
		"a4" + sh("path") + "c4 03 2f ff 61" +
		"a6" + sh("config") + "de 00 02 a1 41 a1 31 a1 42 d9 02" + sh("ü") +
		"a4" + sh("body") + "c5 01 00" + strings.Repeat("ab", 256)
	r, err := DecodeRequest(h(m))
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "" || r.Path != "/\xffa" || len(r.Body) != 256 || r.Body[255] != 0xab {
		t.Fatalf("%+v", r)
	}
	if got := r.HeaderValues("A"); len(got) != 2 || got[0] != "\xffA" || got[1] != "2" || len(r.Headers) != 3 {
		t.Fatalf("%q", got)
	}
	if r.Config["A"] != "1" || r.Config["B"] != "ü" {
		t.Fatalf("%v", r.Config)
	}
}

func TestMalformed(t *testing.T) {
	for _, s := range []string{"93 01 02 03", "81 a1 61 c1", "81 a1 61 dd ff ff ff ff 00", "df 7f ff ff ff a1 61",
		"81 a6" + sh("method") + "db 00 10 00 00 41", "81 a1 61 dc ff ff 90"} {
		if _, err := DecodeRequest(h(s)); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	deep := append(h("81 a1 61"), bytes.Repeat([]byte{0x91}, 100000)...)
	if _, err := DecodeRequest(append(deep, 0xc0)); err != nil {
		t.Errorf("deep nesting: %v", err)
	}
	r, err := DecodeRequest(h("83 a6" + sh("method") + "01 a7" + sh("headers") + "81 a1 61 a1 62 a4" + sh("body") + "c0"))
	if err != nil || r.Method != "" || len(r.Headers) != 0 || len(r.Body) != 0 {
		t.Errorf("wrong types: %v %+v", err, r)
	}
}

func TestEncoderInts(t *testing.T) {
	cases := map[int64]string{0: "00", 127: "7f", 128: "cc80", 255: "ccff", 256: "cd0100", 65535: "cdffff",
		65536: "ce00010000", -1: "ff", -32: "e0", -33: "d0df", -128: "d080", -129: "d1ff7f", -32768: "d18000",
		-32769: "d2ffff7fff", 1 << 32: "cf0000000100000000", -(1 << 31) - 1: "d3ffffffff7fffffff"}
	for v, want := range cases {
		e := Encoder{}
		e.Int(v)
		if got := hex.EncodeToString(e.Buf); got != want {
			t.Errorf("%d: %s, want %s", v, got, want)
		}
		if back := NewDecoder(e.Buf).Int(); back != v {
			t.Errorf("%d: decoded %d", v, back)
		}
	}
}

func TestEncoderLengths(t *testing.T) {
	str := map[int]string{0: "a0", 31: "bf", 32: "d920", 255: "d9ff", 256: "da0100", 65535: "daffff", 65536: "db00010000"}
	bin := map[int]string{0: "c400", 31: "c41f", 32: "c420", 255: "c4ff", 256: "c50100", 65535: "c5ffff", 65536: "c600010000"}
	for n, want := range str {
		e := Encoder{}
		e.String(strings.Repeat("z", n))
		if got := hex.EncodeToString(e.Buf[:len(want)/2]); got != want || len(e.Buf) != n+len(want)/2 {
			t.Errorf("str %d: %s", n, got)
		}
		if NewDecoder(e.Buf).String() != strings.Repeat("z", n) {
			t.Errorf("str %d round trip", n)
		}
		e = Encoder{}
		e.Bin(bytes.Repeat([]byte{7}, n))
		if got := hex.EncodeToString(e.Buf[:len(bin[n])/2]); got != bin[n] || len(e.Buf) != n+len(bin[n])/2 {
			t.Errorf("bin %d: %s", n, got)
		}
	}
	e := Encoder{}
	e.ArrayHeader(15)
	e.ArrayHeader(16)
	e.ArrayHeader(65536)
	e.MapHeader(15)
	e.MapHeader(16)
	e.MapHeader(65536)
	if got := hex.EncodeToString(e.Buf); got != "9fdc0010dd000100008fde0010df00010000" {
		t.Errorf("headers: %s", got)
	}
}

func TestResponseAndServe(t *testing.T) {
	want := "83 a6" + sh("status") + "cc c8 a7" + sh("headers") + "91 92 ac" + sh("content-type") +
		"b9" + sh("text/plain; charset=utf-8") + "a4" + sh("body") + "c4 0e" + sh("Hello, world!\n")
	if got := Text(200, "Hello, world!\n").Encode(nil); !bytes.Equal(got, h(want)) {
		t.Errorf("hello: %x", got)
	}
	r := (&Response{Status: 404}).AddHeader("set-cookie", "a=1").AddHeader("set-cookie", "b=2")
	want2 := "83 a6" + sh("status") + "cd 01 94 a7" + sh("headers") + "92 92 aa" + sh("set-cookie") + "a3" + sh("a=1") +
		"92 aa" + sh("set-cookie") + "a3" + sh("b=2") + "a4" + sh("body") + "c4 00"
	if got := r.Encode(nil); !bytes.Equal(got, h(want2)) {
		t.Errorf("404: %x", got)
	}
	handler = nil
	if got := Serve(h(abiRequest)); !bytes.HasPrefix(got, h("83 a6"+sh("status")+"cd 01 f4")) {
		t.Errorf("no handler: %x", got)
	}
	Handle(func(req *Request) *Response {
		return Text(200, req.Method+" "+req.Path+"?"+req.Query+" "+string(req.Body)+" "+req.Config["K"])
	})
	want3 := "83 a6" + sh("status") + "cc c8 a7" + sh("headers") + "91 92 ac" + sh("content-type") +
		"b9" + sh("text/plain; charset=utf-8") + "a4" + sh("body") + "c4 10" + sh("GET /hi?x=1 ok v")
	if got := Serve(h(abiRequest)); !bytes.Equal(got, h(want3)) {
		t.Errorf("serve: %x", got)
	}
	if got := Serve(h("92 01 02")); !bytes.HasPrefix(got, h("83 a6"+sh("status")+"cd 01 90")) {
		t.Errorf("malformed: %x", got)
	}
}
