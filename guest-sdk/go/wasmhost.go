// Package wasmhost is the Go guest SDK for wasmhost's `handler` interface (guest-sdk/ABI.md).
//
//	package main
//
//	import "wasmhost"
//
//	func init() { wasmhost.Handle(hello) }
//
//	func hello(req *wasmhost.Request) *wasmhost.Response {
//		wasmhost.Log("called: " + req.Method + " " + req.Path)
//		return wasmhost.Text(200, "Hello!\n")
//	}
//
//	func main() {}
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags="-s -w -buildid=" -o f.wasm
// The SDK itself exports wasmhost_alloc and wasmhost_handle (//go:wasmexport) and imports wasmhost.log.
package wasmhost

// Header is one HTTP header. Request header names are lower-case; repeats are kept in order.
type Header struct {
	Name, Value string
}

// Request is the request as the host sent it. Strings hold the bytes as received: a header
// value, path or query that is not valid UTF-8 (sent as msgpack bin) is kept byte for byte.
type Request struct {
	Method  string            // GET, POST, … (upper case)
	Path    string            // after /fn/NAME, starts with "/", still percent-encoded
	Query   string            // raw query string without "?"
	Headers []Header          // in order, names lower-case
	Body    []byte            // the request body
	Config  map[string]string // the function's configuration variables
}

// Header returns the first value of header name (case-insensitive), or "".
func (r *Request) Header(name string) string {
	v, _ := r.LookupHeader(name)
	return v
}

// LookupHeader returns the first value of header name (case-insensitive) and whether it was present.
func (r *Request) LookupHeader(name string) (string, bool) {
	name = lower(name)
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}

// HeaderValues returns every value of header name (case-insensitive), in order.
func (r *Request) HeaderValues(name string) []string {
	name = lower(name)
	var out []string
	for _, h := range r.Headers {
		if h.Name == name {
			out = append(out, h.Value)
		}
	}
	return out
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Response is what a handler returns. Status 0 means 200.
type Response struct {
	Status  int
	Headers []Header
	Body    []byte
}

// Text returns a text/plain; charset=utf-8 response.
func Text(status int, text string) *Response {
	return &Response{Status: status, Headers: []Header{{"content-type", "text/plain; charset=utf-8"}}, Body: []byte(text)}
}

// Bytes returns a response with the given body and content type.
func Bytes(status int, body []byte, contentType string) *Response {
	return &Response{Status: status, Headers: []Header{{"content-type", contentType}}, Body: body}
}

// AddHeader appends a header (repeats allowed) and returns r.
func (r *Response) AddHeader(name, value string) *Response {
	r.Headers = append(r.Headers, Header{name, value})
	return r
}

// DecodeRequest decodes the msgpack request map of ABI.md. Unknown keys, and known keys with
// an unexpected type, are skipped.
func DecodeRequest(b []byte) (*Request, error) {
	d := NewDecoder(b)
	req := &Request{Path: "/", Config: map[string]string{}}
	n := d.MapHeader()
	for i := 0; i < n && d.err == nil; i++ {
		if k := d.Peek(); k != KindStr && k != KindBin {
			d.Skip()
			d.Skip()
			continue
		}
		key := string(d.Bytes())
		kind := d.Peek()
		text := kind == KindStr || kind == KindBin
		switch {
		case key == "method" && text:
			req.Method = d.String()
		case key == "path" && text:
			req.Path = d.String()
		case key == "query" && text:
			req.Query = d.String()
		case key == "body" && text:
			req.Body = d.Bytes()
		case key == "headers" && kind == KindArray:
			count := d.ArrayHeader()
			req.Headers = make([]Header, 0, count)
			for j := 0; j < count && d.err == nil; j++ {
				if d.Peek() != KindArray {
					d.Skip()
					continue
				}
				m := d.ArrayHeader()
				if m < 2 {
					for ; m > 0; m-- {
						d.Skip()
					}
					continue
				}
				name, value := d.String(), d.String()
				for ; m > 2; m-- {
					d.Skip()
				}
				req.Headers = append(req.Headers, Header{name, value})
			}
		case key == "config" && kind == KindMap:
			count := d.MapHeader()
			for j := 0; j < count && d.err == nil; j++ {
				k := d.String()
				req.Config[k] = d.String()
			}
		default:
			d.Skip()
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return req, nil
}

// Encode appends {"status": int, "headers": [[str, str], …], "body": bin} to buf.
func (r *Response) Encode(buf []byte) []byte {
	e := Encoder{Buf: buf}
	status := r.Status
	if status == 0 {
		status = 200
	}
	e.MapHeader(3)
	e.String("status")
	e.Int(int64(status))
	e.String("headers")
	e.ArrayHeader(len(r.Headers))
	for _, h := range r.Headers {
		e.ArrayHeader(2)
		e.String(h.Name)
		e.String(h.Value)
	}
	e.String("body")
	e.Bin(r.Body)
	return e.Buf
}

var handler func(*Request) *Response

// Handle registers the function that answers every request. Call it from init():
// a c-shared (reactor) module runs package initialisers in _initialize, but never main.
func Handle(h func(*Request) *Response) { handler = h }

// Serve decodes a request, runs the registered handler and returns the encoded response.
func Serve(request []byte) []byte {
	var res *Response
	req, err := DecodeRequest(request)
	switch {
	case err != nil:
		res = Text(400, "wasmhost guest: malformed request\n")
	case handler == nil:
		res = Text(500, "wasmhost guest: no handler registered (call wasmhost.Handle in init)\n")
	default:
		res = handler(req)
		if res == nil {
			res = &Response{Status: 204}
		}
	}
	return res.Encode(make([]byte, 0, 64+len(res.Body)))
}
