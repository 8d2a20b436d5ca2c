/*
 * wasmhost.h — single-header C SDK for wasmhost's `handler` interface (guest-sdk/ABI.md, version 1).
 *
 *     #include "wasmhost.h"
 *
 *     static void handle(const wh_request *req, wh_response *res) {
 *         wh_log("hello called");
 *         wh_respond_text(res, 200, "text/plain", "Hello from C!\n");
 *     }
 *     WASMHOST_HANDLER(handle)
 *
 * Build without libc (smallest, no imports but `wasmhost.log`):
 *     clang-14 --target=wasm32-unknown-unknown -nostdlib -Os -Wl,--no-entry -Wl,--strip-all -o f.wasm f.c
 * or with wasi-libc (printf, malloc, ... ; stdout/stderr become log lines):
 *     clang-14 --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-all -o f.wasm f.c
 *
 * Everything is `static`: unused parts cost nothing. The header may be included by several
 * translation units; WASMHOST_HANDLER must appear in exactly one.
 *
 * Memory: every call runs in a fresh instance and the instance is dropped afterwards, so nothing is
 * ever freed. Without libc, wh_alloc is a bump allocator over memory.grow starting at __heap_base;
 * with libc (wasi, or native builds for tests) it is malloc.
 *
 * Strings (wh_str) decoded from the request are copies, always NUL-terminated, with their length
 * (a bin-typed header value may contain NUL bytes). The request body points into the request buffer
 * (not copied, not NUL-terminated).
 */
#ifndef WASMHOST_H
#define WASMHOST_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* No libc on wasm32-unknown-unknown / wasm32-freestanding: the SDK brings its own allocator. */
#if defined(__wasm__) && !defined(__wasi__)
#define WH__FREESTANDING 1
#else
#define WH__FREESTANDING 0
#endif

#if defined(WASMHOST_USE_MALLOC)
#undef WH__FREESTANDING
#define WH__FREESTANDING 0
#endif

#if !WH__FREESTANDING
#include <stdlib.h>
#include <string.h>
#if !defined(__wasm__)
#include <stdio.h>
#endif
#endif

#define WH__UNUSED __attribute__((unused))
#define WH__API static WH__UNUSED

#if defined(__wasm__)
#define WH__EXPORT(name) __attribute__((export_name(name), visibility("default")))
#else
#define WH__EXPORT(name) WH__UNUSED
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Memory                                                                                     */
/* ------------------------------------------------------------------------------------------ */

#if WH__FREESTANDING
extern unsigned char __heap_base;
/* weak: one heap pointer shared by every translation unit that includes this header */
__attribute__((weak)) uintptr_t wh__heap_top;

/* The compiler may emit calls to these for struct copies and loops; wasi-libc is absent. */
#ifndef WASMHOST_NO_MEM_SHIMS
__attribute__((weak, no_builtin("memcpy", "memset"))) void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n--) *d++ = *s++;
    return dst;
}
__attribute__((weak, no_builtin("memmove"))) void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}
__attribute__((weak, no_builtin("memset"))) void *memset(void *dst, int c, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
__attribute__((weak)) int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}
#endif

/* Returns 8-byte aligned memory, or NULL when the memory cannot grow. */
WH__API void *wh_alloc(size_t size) {
    uintptr_t top = wh__heap_top;
    if (top == 0) top = (uintptr_t)&__heap_base;
    top = (top + 7u) & ~(uintptr_t)7u;
    if (size > (uintptr_t)-1 - top - 8) return NULL;
    uintptr_t end = top + size;
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        uintptr_t pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
    }
    wh__heap_top = end;
    return (void *)top;
}

/* Grows the most recent allocation in place when possible. */
WH__API void *wh_realloc(void *ptr, size_t old_size, size_t new_size) {
    if (ptr && (uintptr_t)ptr + old_size == wh__heap_top && new_size >= old_size) {
        uintptr_t end = (uintptr_t)ptr + new_size;
        uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
        if (new_size - old_size > (uintptr_t)-1 - wh__heap_top) return NULL;
        if (end > have) {
            uintptr_t pages = (end - have + 65535u) / 65536u;
            if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
        }
        wh__heap_top = end;
        return ptr;
    }
    void *fresh = wh_alloc(new_size);
    if (fresh && ptr) __builtin_memcpy(fresh, ptr, old_size < new_size ? old_size : new_size);
    return fresh;
}
#else
WH__API void *wh_alloc(size_t size) { return malloc(size ? size : 1); }
WH__API void *wh_realloc(void *ptr, size_t old_size, size_t new_size) {
    (void)old_size;
    return realloc(ptr, new_size ? new_size : 1);
}
#endif

#define wh_memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define wh_memset(d, c, n) __builtin_memset((d), (c), (n))

WH__API size_t wh_strlen(const char *s) {
    size_t n = 0;
    if (!s) return 0;
    while (s[n]) n++;
    return n;
}

WH__API int wh_mem_eq(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return 0;
    return 1;
}

/* A byte string. `ptr` is NUL-terminated when it comes from the SDK (len excludes the NUL). */
typedef struct {
    const char *ptr;
    uint32_t len;
} wh_str;

/* wh_str from a C string literal or NUL-terminated string */
WH__API wh_str wh_s(const char *s) {
    wh_str r;
    r.ptr = s ? s : "";
    r.len = (uint32_t)wh_strlen(r.ptr);
    return r;
}

WH__API int wh_str_eq(wh_str a, const char *b) {
    size_t n = wh_strlen(b);
    return a.len == n && wh_mem_eq(a.ptr, b, n);
}

/* Copies `len` bytes into a fresh NUL-terminated buffer. */
WH__API char *wh_strndup(const void *src, size_t len) {
    char *d = (char *)wh_alloc(len + 1);
    if (!d) return NULL;
    if (len) wh_memcpy(d, src, len);
    d[len] = 0;
    return d;
}

/* ------------------------------------------------------------------------------------------ */
/* Logging                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#if defined(__wasm__)
__attribute__((import_module("wasmhost"), import_name("log"))) void wh__log_import(const char *ptr, uint32_t len);
/* Appends `len` bytes (UTF-8) as one line to the invocation's log. */
WH__API void wh_log_n(const char *msg, uint32_t len) { wh__log_import(msg, len); }
#elif WH__FREESTANDING
WH__API void wh_log_n(const char *msg, uint32_t len) { (void)msg; (void)len; }
#else
/* Native builds (unit tests): an optional hook, else stderr. */
static void (*wh_log_hook)(const char *msg, uint32_t len) WH__UNUSED;
WH__API void wh_log_n(const char *msg, uint32_t len) {
    if (wh_log_hook) wh_log_hook(msg, len);
    else fprintf(stderr, "%.*s\n", (int)len, msg);
}
#endif
/* Logs a NUL-terminated string (no formatting) as one line. */
WH__API void wh_log(const char *msg) { wh_log_n(msg, (uint32_t)wh_strlen(msg)); }

/* ------------------------------------------------------------------------------------------ */
/* MessagePack reader                                                                         */
/* ------------------------------------------------------------------------------------------ */

enum {
    WH_OK = 0,
    WH_ERR_EOF = -1,    /* truncated input */
    WH_ERR_TYPE = -2,   /* a value of another type than expected */
    WH_ERR_RANGE = -3,  /* an integer that does not fit, a count larger than the input */
    WH_ERR_NOMEM = -4,  /* the allocator failed */
    WH_ERR_FORMAT = -5, /* invalid byte (0xc1), trailing bytes, ... */
};

/* Never reads outside [p, end). Errors are sticky: after the first, every read fails. */
typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    int err;
} wh_reader;

typedef enum {
    WH_MP_NIL, WH_MP_BOOL, WH_MP_INT, WH_MP_UINT, WH_MP_FLOAT, WH_MP_STR, WH_MP_BIN,
    WH_MP_ARRAY, WH_MP_MAP, WH_MP_EXT, WH_MP_INVALID
} wh_mp_type;

WH__API void wh_reader_init(wh_reader *r, const void *data, size_t len) {
    r->p = (const uint8_t *)data;
    r->end = r->p + len;
    r->err = WH_OK;
}

WH__API size_t wh_reader_left(const wh_reader *r) { return (size_t)(r->end - r->p); }

WH__API int wh__fail(wh_reader *r, int err) {
    if (r->err == WH_OK) r->err = err;
    return r->err;
}

/* Consumes n bytes; returns a pointer to them or NULL (error set) when fewer remain. */
WH__API const uint8_t *wh__take(wh_reader *r, size_t n) {
    if (r->err) return NULL;
    if (wh_reader_left(r) < n) {
        wh__fail(r, WH_ERR_EOF);
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    return at;
}

WH__API uint64_t wh__be(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | b[i];
    return v;
}

/* The type of the next value, without consuming it (WH_MP_INVALID at the end or after an error). */
WH__API wh_mp_type wh_mp_peek(const wh_reader *r) {
    if (r->err || r->p >= r->end) return WH_MP_INVALID;
    uint8_t b = *r->p;
    if (b <= 0x7f) return WH_MP_UINT;
    if (b <= 0x8f) return WH_MP_MAP;
    if (b <= 0x9f) return WH_MP_ARRAY;
    if (b <= 0xbf) return WH_MP_STR;
    if (b >= 0xe0) return WH_MP_INT;
    switch (b) {
    case 0xc0: return WH_MP_NIL;
    case 0xc2: case 0xc3: return WH_MP_BOOL;
    case 0xc4: case 0xc5: case 0xc6: return WH_MP_BIN;
    case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return WH_MP_EXT;
    case 0xca: case 0xcb: return WH_MP_FLOAT;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: return WH_MP_UINT;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: return WH_MP_INT;
    case 0xd9: case 0xda: case 0xdb: return WH_MP_STR;
    case 0xdc: case 0xdd: return WH_MP_ARRAY;
    case 0xde: case 0xdf: return WH_MP_MAP;
    default: return WH_MP_INVALID; /* 0xc1 */
    }
}

/* A count can never exceed the bytes left (every element takes at least one byte). */
WH__API int wh__count(wh_reader *r, uint64_t n, uint64_t per, uint32_t *out) {
    if (n * per > wh_reader_left(r)) return wh__fail(r, WH_ERR_RANGE);
    *out = (uint32_t)n;
    return WH_OK;
}

WH__API int wh_mp_read_map(wh_reader *r, uint32_t *count) {
    const uint8_t *b = wh__take(r, 1);
    if (!b) return r->err;
    uint64_t n;
    if ((*b & 0xf0) == 0x80) n = *b & 0x0f;
    else if (*b == 0xde) { const uint8_t *x = wh__take(r, 2); if (!x) return r->err; n = wh__be(x, 2); }
    else if (*b == 0xdf) { const uint8_t *x = wh__take(r, 4); if (!x) return r->err; n = wh__be(x, 4); }
    else { r->p--; return wh__fail(r, WH_ERR_TYPE); }
    return wh__count(r, n, 2, count);
}

WH__API int wh_mp_read_array(wh_reader *r, uint32_t *count) {
    const uint8_t *b = wh__take(r, 1);
    if (!b) return r->err;
    uint64_t n;
    if ((*b & 0xf0) == 0x90) n = *b & 0x0f;
    else if (*b == 0xdc) { const uint8_t *x = wh__take(r, 2); if (!x) return r->err; n = wh__be(x, 2); }
    else if (*b == 0xdd) { const uint8_t *x = wh__take(r, 4); if (!x) return r->err; n = wh__be(x, 4); }
    else { r->p--; return wh__fail(r, WH_ERR_TYPE); }
    return wh__count(r, n, 1, count);
}

/* Reads a str (accept_bin: or a bin) and points `out` into the input (not NUL-terminated). */
WH__API int wh__read_raw(wh_reader *r, const uint8_t **out, uint32_t *len, int accept_str, int accept_bin) {
    const uint8_t *b = wh__take(r, 1);
    if (!b) return r->err;
    uint64_t n;
    int hdr = 0, is_str = 1;
    if ((*b & 0xe0) == 0xa0) n = *b & 0x1f;
    else if (*b == 0xd9) hdr = 1;
    else if (*b == 0xda) hdr = 2;
    else if (*b == 0xdb) hdr = 4;
    else if (*b == 0xc4) hdr = 1, is_str = 0;
    else if (*b == 0xc5) hdr = 2, is_str = 0;
    else if (*b == 0xc6) hdr = 4, is_str = 0;
    else { r->p--; return wh__fail(r, WH_ERR_TYPE); }
    if ((is_str && !accept_str) || (!is_str && !accept_bin)) { r->p--; return wh__fail(r, WH_ERR_TYPE); }
    if (hdr) {
        const uint8_t *x = wh__take(r, (size_t)hdr);
        if (!x) return r->err;
        n = wh__be(x, hdr);
    }
    const uint8_t *data = wh__take(r, (size_t)n);
    if (!data) return r->err;
    *out = data;
    *len = (uint32_t)n;
    return WH_OK;
}

WH__API int wh_mp_read_str(wh_reader *r, const char **s, uint32_t *len) {
    const uint8_t *data; /* no cast of `s` itself: char* and uint8_t* objects must not alias */
    int e = wh__read_raw(r, &data, len, 1, 0);
    if (e == WH_OK) *s = (const char *)data;
    return e;
}
WH__API int wh_mp_read_bin(wh_reader *r, const uint8_t **data, uint32_t *len) {
    return wh__read_raw(r, data, len, 0, 1);
}
/* str or bin: what the ABI sends for path, query and header values. */
WH__API int wh_mp_read_bytes(wh_reader *r, const uint8_t **data, uint32_t *len) {
    return wh__read_raw(r, data, len, 1, 1);
}

/* Reads any msgpack integer that fits in int64_t. */
WH__API int wh_mp_read_int(wh_reader *r, int64_t *out) {
    const uint8_t *b = wh__take(r, 1);
    if (!b) return r->err;
    uint8_t t = *b;
    if (t <= 0x7f) { *out = t; return WH_OK; }
    if (t >= 0xe0) { *out = (int8_t)t; return WH_OK; }
    int n;
    switch (t) {
    case 0xcc: case 0xd0: n = 1; break;
    case 0xcd: case 0xd1: n = 2; break;
    case 0xce: case 0xd2: n = 4; break;
    case 0xcf: case 0xd3: n = 8; break;
    default: r->p--; return wh__fail(r, WH_ERR_TYPE);
    }
    const uint8_t *x = wh__take(r, (size_t)n);
    if (!x) return r->err;
    uint64_t v = wh__be(x, n);
    if (t >= 0xd0) { /* signed */
        if (n == 1) *out = (int8_t)v;
        else if (n == 2) *out = (int16_t)v;
        else if (n == 4) *out = (int32_t)v;
        else *out = (int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return wh__fail(r, WH_ERR_RANGE);
        *out = (int64_t)v;
    }
    return WH_OK;
}

WH__API int wh_mp_read_uint(wh_reader *r, uint64_t *out) {
    if (!r->err && r->p < r->end && *r->p == 0xcf) {
        const uint8_t *x;
        r->p++;
        if (!(x = wh__take(r, 8))) return r->err;
        *out = wh__be(x, 8);
        return WH_OK;
    }
    int64_t v;
    int e = wh_mp_read_int(r, &v);
    if (e) return e;
    if (v < 0) return wh__fail(r, WH_ERR_RANGE);
    *out = (uint64_t)v;
    return WH_OK;
}

WH__API int wh_mp_read_bool(wh_reader *r, int *out) {
    const uint8_t *b = wh__take(r, 1);
    if (!b) return r->err;
    if (*b == 0xc2 || *b == 0xc3) { *out = *b == 0xc3; return WH_OK; }
    r->p--;
    return wh__fail(r, WH_ERR_TYPE);
}

WH__API int wh_mp_read_nil(wh_reader *r) {
    const uint8_t *b = wh__take(r, 1);
    if (!b) return r->err;
    if (*b == 0xc0) return WH_OK;
    r->p--;
    return wh__fail(r, WH_ERR_TYPE);
}

/* Skips one complete value of any type. Iterative: nesting depth costs no stack. */
WH__API int wh_mp_skip(wh_reader *r) {
    uint64_t pending = 1;
    while (pending) {
        pending--;
        const uint8_t *b = wh__take(r, 1);
        if (!b) return r->err;
        uint8_t t = *b;
        uint64_t skip = 0, items = 0;
        int hdr = 0, kind = 0; /* kind: 0 bytes follow, 1 array, 2 map */
        if (t <= 0x7f || t >= 0xe0) { /* fixint */ }
        else if (t <= 0x8f) items = 2u * (t & 0x0f);
        else if (t <= 0x9f) items = t & 0x0f;
        else if (t <= 0xbf) skip = t & 0x1f;
        else switch (t) {
            case 0xc0: case 0xc2: case 0xc3: break;
            case 0xc4: case 0xd9: hdr = 1; break;
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xc7: hdr = 1; skip = 1; break; /* ext8: len, type */
            case 0xc8: hdr = 2; skip = 1; break;
            case 0xc9: hdr = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: hdr = 2; kind = 1; break;
            case 0xdd: hdr = 4; kind = 1; break;
            case 0xde: hdr = 2; kind = 2; break;
            case 0xdf: hdr = 4; kind = 2; break;
            default: r->p--; return wh__fail(r, WH_ERR_FORMAT); /* 0xc1 */
            }
        if (hdr) {
            const uint8_t *x = wh__take(r, (size_t)hdr);
            if (!x) return r->err;
            uint64_t n = wh__be(x, hdr);
            if (kind == 1) items = n;
            else if (kind == 2) items = 2 * n;
            else skip += n;
        }
        if (skip && !wh__take(r, (size_t)skip)) return r->err;
        if (items > wh_reader_left(r)) return wh__fail(r, WH_ERR_RANGE);
        pending += items;
    }
    return WH_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* MessagePack writer                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Appends to a growing buffer (wh_alloc). Errors are sticky. */
typedef struct {
    uint8_t *buf;
    uint32_t len;
    uint32_t cap;
    int err;
} wh_writer;

WH__API void wh_writer_init(wh_writer *w, uint32_t initial_cap) {
    w->len = 0;
    w->err = WH_OK;
    w->cap = initial_cap ? initial_cap : 64;
    w->buf = (uint8_t *)wh_alloc(w->cap);
    if (!w->buf) { w->cap = 0; w->err = WH_ERR_NOMEM; }
}

WH__API uint8_t *wh__room(wh_writer *w, uint32_t n) {
    if (w->err) return NULL;
    if (n > UINT32_MAX - w->len) { w->err = WH_ERR_NOMEM; return NULL; }
    if (w->len + n > w->cap) {
        uint64_t cap = w->cap ? w->cap : 64;
        while (cap < (uint64_t)w->len + n) cap *= 2;
        if (cap > UINT32_MAX) cap = UINT32_MAX;
        uint8_t *nb = (uint8_t *)wh_realloc(w->buf, w->cap, (size_t)cap);
        if (!nb) { w->err = WH_ERR_NOMEM; return NULL; }
        w->buf = nb;
        w->cap = (uint32_t)cap;
    }
    uint8_t *at = w->buf + w->len;
    w->len += n;
    return at;
}

WH__API void wh__put_be(uint8_t *at, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) { at[i] = (uint8_t)v; v >>= 8; }
}

/* A type byte followed by an n-byte big-endian value. */
WH__API void wh__tagged(wh_writer *w, uint8_t tag, uint64_t v, int n) {
    uint8_t *at = wh__room(w, (uint32_t)(1 + n));
    if (!at) return;
    at[0] = tag;
    wh__put_be(at + 1, v, n);
}

WH__API void wh_mp_write_raw(wh_writer *w, const void *data, uint32_t len) {
    uint8_t *at = wh__room(w, len);
    if (at && len) wh_memcpy(at, data, len);
}

WH__API void wh_mp_write_nil(wh_writer *w) { wh__tagged(w, 0xc0, 0, 0); }
WH__API void wh_mp_write_bool(wh_writer *w, int v) { wh__tagged(w, v ? 0xc3 : 0xc2, 0, 0); }

WH__API void wh_mp_write_uint(wh_writer *w, uint64_t v) {
    if (v <= 0x7f) wh__tagged(w, (uint8_t)v, 0, 0);
    else if (v <= 0xff) wh__tagged(w, 0xcc, v, 1);
    else if (v <= 0xffff) wh__tagged(w, 0xcd, v, 2);
    else if (v <= 0xffffffffu) wh__tagged(w, 0xce, v, 4);
    else wh__tagged(w, 0xcf, v, 8);
}

/* The smallest form: non-negative values as uint (like msgpack-python), negative as int. */
WH__API void wh_mp_write_int(wh_writer *w, int64_t v) {
    if (v >= 0) wh_mp_write_uint(w, (uint64_t)v);
    else if (v >= -32) wh__tagged(w, (uint8_t)(int8_t)v, 0, 0);
    else if (v >= INT8_MIN) wh__tagged(w, 0xd0, (uint8_t)(int8_t)v, 1);
    else if (v >= INT16_MIN) wh__tagged(w, 0xd1, (uint16_t)(int16_t)v, 2);
    else if (v >= INT32_MIN) wh__tagged(w, 0xd2, (uint32_t)(int32_t)v, 4);
    else wh__tagged(w, 0xd3, (uint64_t)v, 8);
}

WH__API void wh__header(wh_writer *w, uint32_t n, uint8_t fix, uint32_t fixmax, uint8_t t8, uint8_t t16, uint8_t t32) {
    if (n <= fixmax) wh__tagged(w, (uint8_t)(fix | n), 0, 0);
    else if (t8 && n <= 0xff) wh__tagged(w, t8, n, 1);
    else if (n <= 0xffff) wh__tagged(w, t16, n, 2);
    else wh__tagged(w, t32, n, 4);
}

WH__API void wh_mp_write_map(wh_writer *w, uint32_t n) { wh__header(w, n, 0x80, 15, 0, 0xde, 0xdf); }
WH__API void wh_mp_write_array(wh_writer *w, uint32_t n) { wh__header(w, n, 0x90, 15, 0, 0xdc, 0xdd); }

WH__API void wh_mp_write_str(wh_writer *w, const char *s, uint32_t len) {
    wh__header(w, len, 0xa0, 31, 0xd9, 0xda, 0xdb);
    wh_mp_write_raw(w, s, len);
}
WH__API void wh_mp_write_cstr(wh_writer *w, const char *s) { wh_mp_write_str(w, s, (uint32_t)wh_strlen(s)); }

WH__API void wh_mp_write_bin(wh_writer *w, const void *data, uint32_t len) {
    if (len <= 0xff) wh__tagged(w, 0xc4, len, 1);
    else if (len <= 0xffff) wh__tagged(w, 0xc5, len, 2);
    else wh__tagged(w, 0xc6, len, 4);
    wh_mp_write_raw(w, data, len);
}

/* The writer doubles as a text builder for bodies (no printf without libc):
 *     wh_writer w; wh_writer_init(&w, 0);
 *     wh_write_str(&w, "n = "); wh_write_int(&w, 42); wh_write_str(&w, "\n");
 *     wh_respond(res, 200, "text/plain", w.buf, w.len);            */
WH__API void wh_write(wh_writer *w, const void *data, uint32_t len) { wh_mp_write_raw(w, data, len); }
WH__API void wh_write_str(wh_writer *w, const char *s) { wh_mp_write_raw(w, s, (uint32_t)wh_strlen(s)); }
/* decimal */
WH__API void wh_write_int(wh_writer *w, int64_t v) {
    char digits[20];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) wh_mp_write_raw(w, "-", 1);
    while (n) wh_mp_write_raw(w, &digits[--n], 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Request                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    wh_str name;  /* lower case (as the host sends it) */
    wh_str value; /* may contain any byte if the host sent it as bin */
} wh_pair;

typedef struct {
    wh_str method;  /* "GET", "POST", ... */
    wh_str path;    /* after the function's prefix, starts with "/", still percent-encoded */
    wh_str query;   /* raw query string without "?" */
    wh_pair *headers;
    uint32_t header_count;
    const uint8_t *body; /* points into the request buffer; not NUL-terminated */
    uint32_t body_len;
    wh_pair *config; /* name = key, value = value */
    uint32_t config_count;
} wh_request;

WH__API int wh__copy_str(wh_reader *r, wh_str *out) {
    const uint8_t *data;
    uint32_t len;
    if (wh_mp_read_bytes(r, &data, &len)) return r->err;
    char *copy = wh_strndup(data, len);
    if (!copy) return wh__fail(r, WH_ERR_NOMEM);
    out->ptr = copy;
    out->len = len;
    return WH_OK;
}

WH__API int wh__read_pairs_array(wh_reader *r, wh_pair **out, uint32_t *count) {
    uint32_t n;
    if (wh_mp_read_array(r, &n)) return r->err;
    wh_pair *pairs = (wh_pair *)wh_alloc(sizeof(wh_pair) * (n ? n : 1));
    if (!pairs) return wh__fail(r, WH_ERR_NOMEM);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        if (wh_mp_read_array(r, &two)) return r->err;
        if (two != 2) return wh__fail(r, WH_ERR_TYPE);
        if (wh__copy_str(r, &pairs[i].name) || wh__copy_str(r, &pairs[i].value)) return r->err;
    }
    *out = pairs;
    *count = n;
    return WH_OK;
}

WH__API int wh__read_pairs_map(wh_reader *r, wh_pair **out, uint32_t *count) {
    uint32_t n;
    if (wh_mp_read_map(r, &n)) return r->err;
    wh_pair *pairs = (wh_pair *)wh_alloc(sizeof(wh_pair) * (n ? n : 1));
    if (!pairs) return wh__fail(r, WH_ERR_NOMEM);
    for (uint32_t i = 0; i < n; i++)
        if (wh__copy_str(r, &pairs[i].name) || wh__copy_str(r, &pairs[i].value)) return r->err;
    *out = pairs;
    *count = n;
    return WH_OK;
}

/* Decodes the request map. Unknown keys are skipped; missing keys keep their defaults
 * (empty strings, path "/", no headers, empty body, no config). Returns WH_OK or a WH_ERR_*. */
WH__API int wh_request_decode(wh_request *req, const void *data, size_t len) {
    wh_reader rd, *r = &rd;
    wh_memset(req, 0, sizeof *req);
    req->method = wh_s("");
    req->path = wh_s("/");
    req->query = wh_s("");
    req->body = (const uint8_t *)"";
    wh_reader_init(r, data, len);
    uint32_t n;
    if (wh_mp_read_map(r, &n)) return r->err;
    for (uint32_t i = 0; i < n; i++) {
        wh_mp_type kt = wh_mp_peek(r);
        if (kt != WH_MP_STR && kt != WH_MP_BIN) { /* a key we cannot know: skip key and value */
            if (wh_mp_skip(r) || wh_mp_skip(r)) return r->err;
            continue;
        }
        const uint8_t *k;
        uint32_t kl;
        if (wh_mp_read_bytes(r, &k, &kl)) return r->err;
        wh_str key = {(const char *)k, kl};
        if (wh_str_eq(key, "method")) wh__copy_str(r, &req->method);
        else if (wh_str_eq(key, "path")) wh__copy_str(r, &req->path);
        else if (wh_str_eq(key, "query")) wh__copy_str(r, &req->query);
        else if (wh_str_eq(key, "headers")) wh__read_pairs_array(r, &req->headers, &req->header_count);
        else if (wh_str_eq(key, "body")) {
            const uint8_t *b;
            uint32_t bl;
            if (wh_mp_peek(r) == WH_MP_NIL) wh_mp_read_nil(r);
            else if (!wh_mp_read_bytes(r, &b, &bl)) { req->body = b; req->body_len = bl; }
        } else if (wh_str_eq(key, "config")) wh__read_pairs_map(r, &req->config, &req->config_count);
        else wh_mp_skip(r);
        if (r->err) return r->err;
    }
    if (r->p != r->end) return WH_ERR_FORMAT;
    return WH_OK;
}

WH__API int wh__ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* The first header named `name` (case-insensitive), or NULL. */
WH__API const wh_str *wh_header_str(const wh_request *req, const char *name) {
    size_t n = wh_strlen(name);
    for (uint32_t i = 0; i < req->header_count; i++) {
        const wh_str *h = &req->headers[i].name;
        if (h->len != n) continue;
        size_t j = 0;
        while (j < n && wh__ascii_lower((unsigned char)h->ptr[j]) == wh__ascii_lower((unsigned char)name[j])) j++;
        if (j == n) return &req->headers[i].value;
    }
    return NULL;
}

/* The first value of header `name` (case-insensitive) as a C string, or NULL. */
WH__API const char *wh_header(const wh_request *req, const char *name) {
    const wh_str *v = wh_header_str(req, name);
    return v ? v->ptr : NULL;
}

/* A configuration variable (exact name) as a C string, or NULL. */
WH__API const char *wh_config(const wh_request *req, const char *key) {
    size_t n = wh_strlen(key);
    for (uint32_t i = 0; i < req->config_count; i++)
        if (req->config[i].name.len == n && wh_mem_eq(req->config[i].name.ptr, key, n))
            return req->config[i].value.ptr;
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Response                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int status; /* 200 unless set */
    wh_pair *headers;
    uint32_t header_count;
    uint32_t header_cap;
    const uint8_t *body;
    uint32_t body_len;
    int err; /* WH_ERR_NOMEM if an allocation failed while building */
} wh_response;

WH__API void wh_response_init(wh_response *res) {
    wh_memset(res, 0, sizeof *res);
    res->status = 200;
    res->body = (const uint8_t *)"";
}

WH__API void wh_set_status(wh_response *res, int status) { res->status = status; }

/* Adds a header; name and value are copied. Repeats are kept in order. */
WH__API void wh_add_header_n(wh_response *res, const char *name, uint32_t name_len, const char *value,
                             uint32_t value_len) {
    if (res->header_count == res->header_cap) {
        uint32_t cap = res->header_cap ? res->header_cap * 2 : 4;
        wh_pair *h = (wh_pair *)wh_realloc(res->headers, sizeof(wh_pair) * res->header_cap, sizeof(wh_pair) * cap);
        if (!h) { res->err = WH_ERR_NOMEM; return; }
        res->headers = h;
        res->header_cap = cap;
    }
    char *n = wh_strndup(name, name_len), *v = wh_strndup(value, value_len);
    if (!n || !v) { res->err = WH_ERR_NOMEM; return; }
    wh_pair *p = &res->headers[res->header_count++];
    p->name.ptr = n;
    p->name.len = name_len;
    p->value.ptr = v;
    p->value.len = value_len;
}

WH__API void wh_add_header(wh_response *res, const char *name, const char *value) {
    wh_add_header_n(res, name, (uint32_t)wh_strlen(name), value, (uint32_t)wh_strlen(value));
}

/* Sets the body without copying: `data` must stay valid after the handler returns
 * (the request body, a string literal, or memory from wh_alloc). */
WH__API void wh_set_body_ref(wh_response *res, const void *data, uint32_t len) {
    res->body = (const uint8_t *)(data ? data : "");
    res->body_len = data ? len : 0;
}

/* Sets the body to a copy of `len` bytes. */
WH__API void wh_set_body(wh_response *res, const void *data, uint32_t len) {
    void *copy = wh_alloc(len ? len : 1);
    if (!copy) { res->err = WH_ERR_NOMEM; return; }
    if (len) wh_memcpy(copy, data, len);
    wh_set_body_ref(res, copy, len);
}

WH__API void wh_set_body_str(wh_response *res, const char *text) { wh_set_body(res, text, (uint32_t)wh_strlen(text)); }

/* status + content-type header + a copy of the body. */
WH__API void wh_respond(wh_response *res, int status, const char *content_type, const void *body, uint32_t len) {
    wh_set_status(res, status);
    if (content_type) wh_add_header(res, "content-type", content_type);
    wh_set_body(res, body, len);
}

WH__API void wh_respond_text(wh_response *res, int status, const char *content_type, const char *text) {
    wh_respond(res, status, content_type, text, (uint32_t)wh_strlen(text));
}

/* Encodes {"status": int, "headers": [[str, str], ...], "body": bin} (ABI.md §1 Response). */
WH__API int wh_response_encode(const wh_response *res, wh_writer *w) {
    uint32_t size = 32 + res->body_len;
    for (uint32_t i = 0; i < res->header_count; i++) size += 12 + res->headers[i].name.len + res->headers[i].value.len;
    wh_writer_init(w, size);
    wh_mp_write_map(w, 3);
    wh_mp_write_str(w, "status", 6);
    wh_mp_write_int(w, res->status);
    wh_mp_write_str(w, "headers", 7);
    wh_mp_write_array(w, res->header_count);
    for (uint32_t i = 0; i < res->header_count; i++) {
        wh_mp_write_array(w, 2);
        wh_mp_write_str(w, res->headers[i].name.ptr, res->headers[i].name.len);
        wh_mp_write_str(w, res->headers[i].value.ptr, res->headers[i].value.len);
    }
    wh_mp_write_str(w, "body", 4);
    wh_mp_write_bin(w, res->body, res->body_len);
    return w->err;
}

/* ------------------------------------------------------------------------------------------ */
/* Dispatch and export                                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef void (*wh_handler_fn)(const wh_request *req, wh_response *res);

/* Decodes `data`, runs `fn`, encodes its response. Returns the encoded bytes (length in *out_len).
 * A request that cannot be decoded gets a 400; a response that cannot be built gets a 500. */
WH__API const uint8_t *wh_handle_bytes(wh_handler_fn fn, const void *data, size_t len, uint32_t *out_len) {
    wh_request req;
    wh_response res;
    wh_writer w;
    wh_response_init(&res);
    if (wh_request_decode(&req, data, len) != WH_OK) {
        wh_log("wasmhost: malformed request");
        wh_respond_text(&res, 400, "text/plain; charset=utf-8", "malformed request\n");
    } else {
        fn(&req, &res);
        if (res.err) {
            wh_response_init(&res);
            wh_respond_text(&res, 500, "text/plain; charset=utf-8", "out of memory\n");
        }
    }
    if (wh_response_encode(&res, &w) != WH_OK) {
        *out_len = 0;
        return NULL;
    }
    *out_len = w.len;
    return w.buf;
}

WH__API uint64_t wh__handle(wh_handler_fn fn, uint32_t ptr, uint32_t len) {
    uint32_t out_len = 0;
    const uint8_t *out = wh_handle_bytes(fn, (const void *)(uintptr_t)ptr, len, &out_len);
    if (!out) __builtin_trap();
    return ((uint64_t)(uint32_t)(uintptr_t)out << 32) | out_len;
}

WH__API uint32_t wh__alloc_export(uint32_t size) {
    void *p = wh_alloc(size);
    if (!p) __builtin_trap(); /* the memory cannot grow: nothing sensible to answer */
    return (uint32_t)(uintptr_t)p;
}

/* Exports wasmhost_alloc and wasmhost_handle calling `fn(const wh_request *, wh_response *)`.
 * (wasm-ld exports `memory` by default.) Use once per module. */
#define WASMHOST_HANDLER(fn)                                                                             \
    WH__EXPORT("wasmhost_alloc") uint32_t wasmhost_alloc(uint32_t size) { return wh__alloc_export(size); } \
    WH__EXPORT("wasmhost_handle") uint64_t wasmhost_handle(uint32_t ptr, uint32_t len) {                  \
        return wh__handle((fn), ptr, len);                                                               \
    }

#ifdef __cplusplus
}
#endif

#endif /* WASMHOST_H */
