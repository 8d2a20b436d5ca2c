/* The handler interface's msgpack in C (the request encoder, the common response's decoder):
 * see fastpath.h. */
#include "fastpath.h"

/* ---- the handler request in msgpack (what abi/handler.encode_request writes) ----------------
 *
 * Why in C: building a Request and packing it with msgpack-python was a fifth of the function
 * route's time per call (bench/design-figures.md: c-encode); this walks the inputs once.
 * The bytes are exactly msgpack.packb(fields, use_bin_type=True) of handler.encode_request,
 * including its fallback: text that is not valid UTF-8 (request bytes kept as surrogates)
 * goes to the guest as bin. tests/test_fastpath_encode.py compares the two. */

typedef struct { char *buf; size_t len, cap; } wbuf_t;

static int wb_grow(wbuf_t *w, size_t extra) {
    if (extra > PY_SSIZE_T_MAX - w->len) { PyErr_NoMemory(); return -1; }
    size_t need = w->len + extra;
    if (need <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need) cap = cap > PY_SSIZE_T_MAX / 2 ? need : cap * 2;
    char *p = PyMem_Realloc(w->buf, cap);
    if (p == NULL) { PyErr_NoMemory(); return -1; }
    w->buf = p;
    w->cap = cap;
    return 0;
}

static int wb_put(wbuf_t *w, const void *data, size_t n) {
    if (wb_grow(w, n) < 0) return -1;
    if (n) memcpy(w->buf + w->len, data, n);
    w->len += n;
    return 0;
}

/* A msgpack header: `fix` (fixstr/fixarray/fixmap base) when n < fixmax, else the 8/16/32-bit forms. */
static int wb_head(wbuf_t *w, size_t n, uint8_t fix, size_t fixmax, uint8_t m8, uint8_t m16, uint8_t m32) {
    uint8_t h[5];
    size_t k;
    if (n > 0xFFFFFFFFu) { PyErr_SetString(PyExc_ValueError, "request field too large for msgpack"); return -1; }
    if (fix && n < fixmax) { h[0] = (uint8_t)(fix | n); k = 1; }
    else if (m8 && n < 256) { h[0] = m8; h[1] = (uint8_t)n; k = 2; }
    else if (n < 65536) { h[0] = m16; h[1] = (uint8_t)(n >> 8); h[2] = (uint8_t)n; k = 3; }
    else { h[0] = m32; h[1] = (uint8_t)(n >> 24); h[2] = (uint8_t)(n >> 16); h[3] = (uint8_t)(n >> 8);
           h[4] = (uint8_t)n; k = 5; }
    return wb_put(w, h, k);
}

static int wb_str(wbuf_t *w, const char *s, size_t n) {
    if (wb_head(w, n, 0xa0, 32, 0xd9, 0xda, 0xdb) < 0) return -1;
    return wb_put(w, s, n);
}

static int wb_bin(wbuf_t *w, const char *s, size_t n) {
    if (wb_head(w, n, 0, 0, 0xc4, 0xc5, 0xc6) < 0) return -1;
    return wb_put(w, s, n);
}

/* Strict UTF-8 as Python decodes it: no overlongs, no surrogates, nothing above U+10FFFF. */
bool fp_valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return false;
        if (n - i - 1 < k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* Text as the guest sees it. bytes: str when valid UTF-8, else bin (the bytes as received);
 * with `latin1`, bytes are Latin-1 text (header names, as the route decodes them).
 * str: its UTF-8; a str holding surrogates (undecodable request bytes) becomes bin of its
 * surrogateescape encoding, which is the original bytes. */
static int wb_text(wbuf_t *w, PyObject *obj, bool latin1) {
    if (PyBytes_Check(obj)) {
        const uint8_t *s = (const uint8_t *)PyBytes_AS_STRING(obj);
        size_t n = (size_t)PyBytes_GET_SIZE(obj);
        if (!latin1) {
            return fp_valid_utf8(s, n) ? wb_str(w, (const char *)s, n) : wb_bin(w, (const char *)s, n);
        }
        size_t high = 0;
        for (size_t i = 0; i < n; i++) high += s[i] >> 7;
        if (high == 0) return wb_str(w, (const char *)s, n);
        if (wb_head(w, n + high, 0xa0, 32, 0xd9, 0xda, 0xdb) < 0 || wb_grow(w, n + high) < 0) return -1;
        char *out = w->buf + w->len;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < 0x80) *out++ = (char)s[i];
            else { *out++ = (char)(0xC0 | (s[i] >> 6)); *out++ = (char)(0x80 | (s[i] & 0x3F)); }
        }
        w->len += n + high;
        return 0;
    }
    if (PyUnicode_Check(obj)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
        if (s != NULL) return wb_str(w, s, (size_t)n);
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        PyObject *raw = PyUnicode_AsEncodedString(obj, "utf-8", "surrogateescape");
        if (raw == NULL) return -1;
        int rc = wb_bin(w, PyBytes_AS_STRING(raw), (size_t)PyBytes_GET_SIZE(raw));
        Py_DECREF(raw);
        return rc;
    }
    PyErr_Format(PyExc_TypeError, "request text must be str or bytes, not %.80s", Py_TYPE(obj)->tp_name);
    return -1;
}

/* encode_request(method, path, query, headers, body) -> bytes: a msgpack map of six entries
 * whose last, "config", the caller appends (it is per function version, packed once). */
PyObject *fp_encode_request(PyObject *self, PyObject *args) {
    PyObject *method, *path, *query, *headers;
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "OOOOy*", &method, &path, &query, &headers, &body)) return NULL;
    wbuf_t w = {NULL, 0, 0};
    PyObject *seq = NULL, *out = NULL;
    static const char map6 = (char)0x86;
    if (wb_put(&w, &map6, 1) < 0 || wb_str(&w, "method", 6) < 0 || wb_text(&w, method, false) < 0 ||
        wb_str(&w, "path", 4) < 0 || wb_text(&w, path, false) < 0 ||
        wb_str(&w, "query", 5) < 0 || wb_text(&w, query, false) < 0 || wb_str(&w, "headers", 7) < 0)
        goto done;
    seq = PySequence_Fast(headers, "headers must be a sequence of (name, value) pairs");
    if (seq == NULL) goto done;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (wb_head(&w, (size_t)count, 0x90, 16, 0, 0xdc, 0xdd) < 0) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        if (!(PyTuple_Check(pair) || PyList_Check(pair)) || PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair");
            goto done;
        }
        static const char pair2 = (char)0x92;
        if (wb_put(&w, &pair2, 1) < 0 || wb_text(&w, PySequence_Fast_GET_ITEM(pair, 0), true) < 0 ||
            wb_text(&w, PySequence_Fast_GET_ITEM(pair, 1), false) < 0)
            goto done;
    }
    if (wb_str(&w, "body", 4) < 0 || wb_bin(&w, body.buf, (size_t)body.len) < 0) goto done;
    out = PyBytes_FromStringAndSize(w.buf, (Py_ssize_t)w.len);
done:
    Py_XDECREF(seq);
    PyBuffer_Release(&body);
    PyMem_Free(w.buf);
    return out;
}

/* ---- the handler response, the common case only (what abi/handler.decode_response accepts) ----
 *
 * A map of at most `status` (an integer 200-599), `headers` (nil or an array of [name, value]
 * pairs, str or bin, names HTTP tokens, values UTF-8 without control characters other than
 * TAB, Content-Type and Location at most once each) and `body` (bin, UTF-8 str or nil), each at most once, nothing after the map. Anything
 * else returns None and the Python decoder decides (and words the error), so this accepts a
 * subset of what Python accepts and builds the same values (tests/test_fastpath_decode.py). */

typedef struct { const uint8_t *p, *end; } rd_t;

static bool rd_u(rd_t *r, size_t n, uint64_t *out) {
    if ((size_t)(r->end - r->p) < n) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | r->p[i];
    r->p += n;
    *out = v;
    return true;
}

/* A str or bin: its bytes; `is_str` says which. */
static bool rd_raw(rd_t *r, const uint8_t **data, size_t *len, bool *is_str) {
    if (r->p >= r->end) return false;
    uint8_t t = *r->p++;
    uint64_t n;
    if ((t & 0xE0) == 0xA0) { n = t & 0x1F; *is_str = true; }
    else if (t == 0xd9 || t == 0xc4) { if (!rd_u(r, 1, &n)) return false; *is_str = t == 0xd9; }
    else if (t == 0xda || t == 0xc5) { if (!rd_u(r, 2, &n)) return false; *is_str = t == 0xda; }
    else if (t == 0xdb || t == 0xc6) { if (!rd_u(r, 4, &n)) return false; *is_str = t == 0xdb; }
    else return false;
    if ((uint64_t)(r->end - r->p) < n) return false;
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return true;
}

/* An array or map header: its count. */
static bool rd_count(rd_t *r, bool map, uint64_t *n) {
    if (r->p >= r->end) return false;
    uint8_t t = *r->p++;
    if ((t & 0xF0) == (map ? 0x80 : 0x90)) { *n = t & 0x0F; return true; }
    if (t == (map ? 0xde : 0xdc)) return rd_u(r, 2, n);
    if (t == (map ? 0xdf : 0xdd)) return rd_u(r, 4, n);
    return false;
}

static bool is_token_char(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* One [name, value] pair as (lower-case name, value), or NULL with no error set (not the
 * common case) or with an error set (out of memory). `seen` collects SINGLE_CONTENT_TYPE and
 * SINGLE_LOCATION: a second header of one of those names is not the common case (Python
 * refuses it as bad_response). */
#define SINGLE_CONTENT_TYPE 1u
#define SINGLE_LOCATION 2u
static PyObject *rd_header(rd_t *r, unsigned *seen) {
    uint64_t n;
    const uint8_t *name, *value;
    size_t name_len, value_len;
    bool is_str;
    if (!rd_count(r, false, &n) || n != 2 || !rd_raw(r, &name, &name_len, &is_str) ||
        !rd_raw(r, &value, &value_len, &is_str) || name_len == 0 || name_len > 4096)
        return NULL;
    char lower[4096];
    for (size_t i = 0; i < name_len; i++) {
        if (!is_token_char(name[i])) return NULL;
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    }
    unsigned single = (name_len == 12 && memcmp(lower, "content-type", 12) == 0) ? SINGLE_CONTENT_TYPE
                    : (name_len == 8 && memcmp(lower, "location", 8) == 0) ? SINGLE_LOCATION : 0;
    if (single & *seen) return NULL;
    *seen |= single;
    for (size_t i = 0; i < value_len; i++) {
        uint8_t c = value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return NULL;
    }
    if (!fp_valid_utf8(value, value_len)) return NULL;
    PyObject *k = PyUnicode_DecodeASCII(lower, (Py_ssize_t)name_len, NULL);
    PyObject *v = k ? PyUnicode_DecodeUTF8((const char *)value, (Py_ssize_t)value_len, NULL) : NULL;
    PyObject *pair = v ? PyTuple_Pack(2, k, v) : NULL;
    Py_XDECREF(k);
    Py_XDECREF(v);
    return pair;
}

/* decode_response(raw) -> (status, headers, body) or None (let Python decode it). */
PyObject *fp_decode_response(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    rd_t r = {(const uint8_t *)buf.buf, (const uint8_t *)buf.buf + buf.len};
    long status = 200;
    PyObject *headers = NULL, *body = NULL, *out = NULL;
    bool seen_status = false;
    uint64_t keys;
    if (!rd_count(&r, true, &keys) || keys > 3) goto fallback;
    for (uint64_t k = 0; k < keys; k++) {
        const uint8_t *key;
        size_t key_len;
        bool is_str;
        if (!rd_raw(&r, &key, &key_len, &is_str) || !is_str) goto fallback;
        if (key_len == 6 && memcmp(key, "status", 6) == 0) {
            if (seen_status || r.p >= r.end) goto fallback;
            seen_status = true;
            uint8_t t = *r.p++;
            uint64_t v;
            if (t == 0xcc) { if (!rd_u(&r, 1, &v)) goto fallback; }
            else if (t == 0xcd) { if (!rd_u(&r, 2, &v)) goto fallback; }
            else if (t == 0xce) { if (!rd_u(&r, 4, &v)) goto fallback; }
            else if (t == 0xcf) { if (!rd_u(&r, 8, &v)) goto fallback; }
            else if (t == 0xd1) {  /* int16: msgpack-python packs 200-599 as uint16, others may not */
                if (!rd_u(&r, 2, &v)) goto fallback;
                v = (uint64_t)(int64_t)(int16_t)(uint16_t)v;
            } else if (t == 0xd2) {
                if (!rd_u(&r, 4, &v)) goto fallback;
                v = (uint64_t)(int64_t)(int32_t)(uint32_t)v;
            } else if (t == 0xd3) { if (!rd_u(&r, 8, &v)) goto fallback; }
            else goto fallback;
            if ((int64_t)v < 200 || (int64_t)v > 599) goto fallback;
            status = (long)v;
        } else if (key_len == 7 && memcmp(key, "headers", 7) == 0) {
            if (headers != NULL || r.p >= r.end) goto fallback;
            if (*r.p == 0xc0) { r.p++; headers = PyTuple_New(0); if (headers == NULL) goto done; continue; }
            uint64_t count;
            if (!rd_count(&r, false, &count) || count > 1000) goto fallback;
            headers = PyTuple_New((Py_ssize_t)count);
            if (headers == NULL) goto done;
            unsigned seen = 0;
            for (uint64_t i = 0; i < count; i++) {
                PyObject *pair = rd_header(&r, &seen);
                if (pair == NULL) { if (PyErr_Occurred()) goto done; goto fallback; }
                PyTuple_SET_ITEM(headers, (Py_ssize_t)i, pair);
            }
        } else if (key_len == 4 && memcmp(key, "body", 4) == 0) {
            if (body != NULL || r.p >= r.end) goto fallback;
            if (*r.p == 0xc0) { r.p++; body = PyBytes_FromStringAndSize("", 0); if (body == NULL) goto done; continue; }
            const uint8_t *data;
            size_t len;
            if (!rd_raw(&r, &data, &len, &is_str) || (is_str && !fp_valid_utf8(data, len))) goto fallback;
            body = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
            if (body == NULL) goto done;
        } else {
            goto fallback;
        }
    }
    if (r.p != r.end) goto fallback;
    if (headers == NULL && (headers = PyTuple_New(0)) == NULL) goto done;
    if (body == NULL && (body = PyBytes_FromStringAndSize("", 0)) == NULL) goto done;
    out = Py_BuildValue("(lOO)", status, headers, body);
    goto done;
fallback:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(headers);
    Py_XDECREF(body);
    PyBuffer_Release(&buf);
    return out;
}
