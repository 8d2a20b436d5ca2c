/* Unit tests for wasmhost.h's msgpack codec, request decoder and response encoder.
 * Native build (the codec is plain C; the allocator is malloc here):
 *     gcc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined -g -o t test_wasmhost.c && ./t
 * Prints "ok: N checks" and exits 0, or prints each failure and exits 1.
 * Every malformed input is copied into a buffer of exactly its size, so AddressSanitizer catches
 * any read past the end. */
#include "wasmhost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The SDK never frees (each wasm call gets a fresh instance): leaks are by design. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }

static int checks, failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

static void hex(const char *what, const uint8_t *b, size_t n) {
    fprintf(stderr, "%s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %02x", b[i]);
    fprintf(stderr, "\n");
}

#define CHECK_BYTES(w, ...)                                                    \
    do {                                                                       \
        static const uint8_t want_[] = {__VA_ARGS__};                          \
        checks++;                                                              \
        if ((w)->err || (w)->len != sizeof want_ || memcmp((w)->buf, want_, sizeof want_)) { \
            failures++;                                                        \
            fprintf(stderr, "%s:%d: bytes differ\n", __FILE__, __LINE__);      \
            hex("  got ", (w)->buf, (w)->len);                                 \
            hex("  want", want_, sizeof want_);                                \
        }                                                                      \
    } while (0)

/* An exact-size heap copy: reading one byte past it is an ASan error. */
static uint8_t *exact(const void *data, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    if (n) memcpy(p, data, n);
    return p;
}

/* ---------------------------------------------------------------- ints */

static void roundtrip_int(int64_t v, size_t want_len, uint8_t want_tag) {
    wh_writer w;
    wh_writer_init(&w, 1);
    wh_mp_write_int(&w, v);
    CHECK(w.err == WH_OK);
    CHECK(w.len == want_len);
    if (want_tag) CHECK(w.buf[0] == want_tag);
    uint8_t *copy = exact(w.buf, w.len);
    wh_reader r;
    wh_reader_init(&r, copy, w.len);
    int64_t got = 0;
    CHECK(wh_mp_read_int(&r, &got) == WH_OK);
    CHECK(got == v);
    CHECK(wh_reader_left(&r) == 0);
    /* every strict prefix is truncated */
    for (size_t cut = 0; cut < w.len; cut++) {
        uint8_t *pre = exact(w.buf, cut);
        wh_reader_init(&r, pre, cut);
        CHECK(wh_mp_read_int(&r, &got) == WH_ERR_EOF);
        free(pre);
    }
    free(copy);
    free(w.buf);
}

static void test_ints(void) {
    roundtrip_int(0, 1, 0x00);
    roundtrip_int(127, 1, 0x7f);
    roundtrip_int(128, 2, 0xcc);
    roundtrip_int(255, 2, 0xcc);
    roundtrip_int(256, 3, 0xcd);
    roundtrip_int(65535, 3, 0xcd);
    roundtrip_int(65536, 5, 0xce);
    roundtrip_int(4294967295LL, 5, 0xce);
    roundtrip_int(4294967296LL, 9, 0xcf);
    roundtrip_int(INT64_MAX, 9, 0xcf);
    roundtrip_int(-1, 1, 0xff);
    roundtrip_int(-32, 1, 0xe0);
    roundtrip_int(-33, 2, 0xd0);
    roundtrip_int(-128, 2, 0xd0);
    roundtrip_int(-129, 3, 0xd1);
    roundtrip_int(-32768, 3, 0xd1);
    roundtrip_int(-32769, 5, 0xd2);
    roundtrip_int(INT32_MIN, 5, 0xd2);
    roundtrip_int((int64_t)INT32_MIN - 1, 9, 0xd3);
    roundtrip_int(INT64_MIN, 9, 0xd3);

    wh_writer w;
    wh_writer_init(&w, 4);
    wh_mp_write_int(&w, 200);
    CHECK_BYTES(&w, 0xcc, 0xc8);
    free(w.buf);
    wh_writer_init(&w, 4);
    wh_mp_write_int(&w, -2);
    wh_mp_write_int(&w, 1000);
    wh_mp_write_int(&w, -200);
    CHECK_BYTES(&w, 0xfe, 0xcd, 0x03, 0xe8, 0xd1, 0xff, 0x38);
    free(w.buf);

    /* signed forms holding positive values, unsigned forms decoded by read_int */
    {
        static const uint8_t in[] = {0xd0, 0x05, 0xd1, 0x01, 0x00, 0xd2, 0x00, 0x01, 0x00, 0x00, 0xcc, 0xff};
        wh_reader r;
        int64_t a, b, c, d;
        wh_reader_init(&r, in, sizeof in);
        CHECK(wh_mp_read_int(&r, &a) == 0 && a == 5);
        CHECK(wh_mp_read_int(&r, &b) == 0 && b == 256);
        CHECK(wh_mp_read_int(&r, &c) == 0 && c == 65536);
        CHECK(wh_mp_read_int(&r, &d) == 0 && d == 255);
    }
    /* uint64 above INT64_MAX: RANGE for read_int, fine for read_uint */
    {
        static const uint8_t in[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        wh_reader r;
        int64_t v;
        uint64_t u;
        wh_reader_init(&r, in, sizeof in);
        CHECK(wh_mp_read_int(&r, &v) == WH_ERR_RANGE);
        wh_reader_init(&r, in, sizeof in);
        CHECK(wh_mp_read_uint(&r, &u) == WH_OK && u == UINT64_MAX);
        static const uint8_t neg[] = {0xff};
        wh_reader_init(&r, neg, 1);
        CHECK(wh_mp_read_uint(&r, &u) == WH_ERR_RANGE);
    }
    /* wrong types */
    {
        static const uint8_t in[] = {0xa1, 'x'};
        wh_reader r;
        int64_t v;
        wh_reader_init(&r, in, sizeof in);
        CHECK(wh_mp_read_int(&r, &v) == WH_ERR_TYPE);
        CHECK(r.p == in); /* nothing consumed */
        CHECK(wh_mp_read_nil(&r) == WH_ERR_TYPE); /* sticky */
    }
}

/* ---------------------------------------------------------------- str / bin / nil / bool */

static void roundtrip_str(uint32_t len, int bin, size_t header, uint8_t tag) {
    char *s = malloc(len + 1);
    for (uint32_t i = 0; i < len; i++) s[i] = (char)('a' + i % 26);
    wh_writer w;
    wh_writer_init(&w, 8);
    if (bin) wh_mp_write_bin(&w, s, len);
    else wh_mp_write_str(&w, s, len);
    CHECK(w.err == WH_OK);
    CHECK(w.len == header + len);
    CHECK(w.buf[0] == tag);
    uint8_t *copy = exact(w.buf, w.len);
    wh_reader r;
    const uint8_t *data = NULL;
    uint32_t got = 0;
    wh_reader_init(&r, copy, w.len);
    if (bin) {
        CHECK(wh_mp_read_bin(&r, &data, &got) == WH_OK);
    } else {
        const char *cs = NULL;
        CHECK(wh_mp_read_str(&r, &cs, &got) == WH_OK);
        data = (const uint8_t *)cs;
    }
    CHECK(got == len && data && memcmp(data, s, len) == 0);
    CHECK(wh_reader_left(&r) == 0);
    /* the other strict reader refuses it; read_bytes accepts both */
    wh_reader_init(&r, copy, w.len);
    if (bin) {
        const char *cs;
        CHECK(wh_mp_read_str(&r, &cs, &got) == WH_ERR_TYPE);
    } else {
        CHECK(wh_mp_read_bin(&r, &data, &got) == WH_ERR_TYPE);
    }
    wh_reader_init(&r, copy, w.len);
    CHECK(wh_mp_read_bytes(&r, &data, &got) == WH_OK && got == len);
    /* truncations: inside the header and inside the payload */
    size_t cuts[] = {0, 1, header - 1, header, header + len / 2, header + len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t cut = cuts[i];
        if (cut >= w.len) continue;
        uint8_t *pre = exact(w.buf, cut);
        wh_reader_init(&r, pre, cut);
        CHECK(wh_mp_read_bytes(&r, &data, &got) == WH_ERR_EOF);
        wh_reader_init(&r, pre, cut);
        CHECK(wh_mp_skip(&r) == WH_ERR_EOF);
        free(pre);
    }
    wh_reader_init(&r, copy, w.len);
    CHECK(wh_mp_skip(&r) == WH_OK && wh_reader_left(&r) == 0);
    free(copy);
    free(w.buf);
    free(s);
}

static void test_strings(void) {
    roundtrip_str(0, 0, 1, 0xa0);
    roundtrip_str(31, 0, 1, 0xbf);
    roundtrip_str(32, 0, 2, 0xd9);
    roundtrip_str(255, 0, 2, 0xd9);
    roundtrip_str(256, 0, 3, 0xda);
    roundtrip_str(65535, 0, 3, 0xda);
    roundtrip_str(65536, 0, 5, 0xdb);
    roundtrip_str(0, 1, 2, 0xc4);
    roundtrip_str(255, 1, 2, 0xc4);
    roundtrip_str(256, 1, 3, 0xc5);
    roundtrip_str(65535, 1, 3, 0xc5);
    roundtrip_str(70000, 1, 5, 0xc6);

    wh_writer w;
    wh_writer_init(&w, 1);
    wh_mp_write_cstr(&w, "hi");
    wh_mp_write_bin(&w, "ok", 2);
    wh_mp_write_nil(&w);
    wh_mp_write_bool(&w, 1);
    wh_mp_write_bool(&w, 0);
    CHECK_BYTES(&w, 0xa2, 'h', 'i', 0xc4, 0x02, 'o', 'k', 0xc0, 0xc3, 0xc2);
    wh_reader r;
    const char *s;
    const uint8_t *b;
    uint32_t n;
    int t = -1, f = -1;
    wh_reader_init(&r, w.buf, w.len);
    CHECK(wh_mp_peek(&r) == WH_MP_STR);
    CHECK(wh_mp_read_str(&r, &s, &n) == 0 && n == 2 && !memcmp(s, "hi", 2));
    CHECK(wh_mp_peek(&r) == WH_MP_BIN);
    CHECK(wh_mp_read_bin(&r, &b, &n) == 0 && n == 2 && !memcmp(b, "ok", 2));
    CHECK(wh_mp_peek(&r) == WH_MP_NIL);
    CHECK(wh_mp_read_nil(&r) == 0);
    CHECK(wh_mp_peek(&r) == WH_MP_BOOL);
    CHECK(wh_mp_read_bool(&r, &t) == 0 && t == 1);
    CHECK(wh_mp_read_bool(&r, &f) == 0 && f == 0);
    CHECK(wh_mp_peek(&r) == WH_MP_INVALID);
    CHECK(wh_mp_read_nil(&r) == WH_ERR_EOF);
    free(w.buf);

    /* a str32 claiming 4 GiB in a 6-byte buffer */
    static const uint8_t huge[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    uint8_t *h = exact(huge, sizeof huge);
    wh_reader_init(&r, h, sizeof huge);
    CHECK(wh_mp_read_bytes(&r, &b, &n) == WH_ERR_EOF);
    free(h);
}

/* ---------------------------------------------------------------- containers */

static void roundtrip_container(uint32_t count, int map, size_t header, uint8_t tag) {
    wh_writer w;
    wh_writer_init(&w, 1);
    if (map) wh_mp_write_map(&w, count);
    else wh_mp_write_array(&w, count);
    for (uint32_t i = 0; i < count * (map ? 2u : 1u); i++) wh_mp_write_int(&w, i & 0x7f);
    CHECK(w.err == WH_OK);
    CHECK(w.buf[0] == tag);
    CHECK(w.len == header + count * (map ? 2u : 1u));
    uint8_t *copy = exact(w.buf, w.len);
    wh_reader r;
    uint32_t got = 0;
    wh_reader_init(&r, copy, w.len);
    CHECK((map ? wh_mp_read_map(&r, &got) : wh_mp_read_array(&r, &got)) == WH_OK && got == count);
    int ok = 1;
    for (uint32_t i = 0; i < count * (map ? 2u : 1u); i++) {
        int64_t v;
        if (wh_mp_read_int(&r, &v) || v != (int64_t)(i & 0x7f)) ok = 0;
    }
    CHECK(ok && wh_reader_left(&r) == 0);
    wh_reader_init(&r, copy, w.len);
    CHECK((map ? wh_mp_read_array(&r, &got) : wh_mp_read_map(&r, &got)) == WH_ERR_TYPE);
    wh_reader_init(&r, copy, w.len);
    CHECK(wh_mp_skip(&r) == WH_OK && wh_reader_left(&r) == 0);
    if (w.len > 1) { /* one element missing: skip reports it (count check or EOF) */
        uint8_t *pre = exact(w.buf, w.len - 1);
        wh_reader_init(&r, pre, w.len - 1);
        int e = wh_mp_skip(&r);
        CHECK(e == WH_ERR_EOF || e == WH_ERR_RANGE);
        free(pre);
    }
    free(copy);
    free(w.buf);
}

static void test_containers(void) {
    roundtrip_container(0, 0, 1, 0x90);
    roundtrip_container(15, 0, 1, 0x9f);
    roundtrip_container(16, 0, 3, 0xdc);
    roundtrip_container(65535, 0, 3, 0xdc);
    roundtrip_container(65536, 0, 5, 0xdd);
    roundtrip_container(0, 1, 1, 0x80);
    roundtrip_container(15, 1, 1, 0x8f);
    roundtrip_container(16, 1, 3, 0xde);
    roundtrip_container(70000, 1, 5, 0xdf);

    wh_reader r;
    uint32_t n;
    /* counts larger than the input are refused before anyone allocates for them */
    static const uint8_t big_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    wh_reader_init(&r, big_array, sizeof big_array);
    CHECK(wh_mp_read_array(&r, &n) == WH_ERR_RANGE);
    wh_reader_init(&r, big_array, sizeof big_array);
    CHECK(wh_mp_skip(&r) == WH_ERR_RANGE);
    static const uint8_t big_map[] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0x01, 0x01};
    wh_reader_init(&r, big_map, sizeof big_map);
    CHECK(wh_mp_read_map(&r, &n) == WH_ERR_RANGE);
    static const uint8_t fixmap_short[] = {0x82, 0xa1, 'a', 0x01, 0xa1};
    wh_reader_init(&r, fixmap_short, sizeof fixmap_short);
    CHECK(wh_mp_skip(&r) != WH_OK);
    /* 0xc1 is never valid */
    static const uint8_t c1[] = {0x91, 0xc1};
    wh_reader_init(&r, c1, sizeof c1);
    CHECK(wh_mp_skip(&r) == WH_ERR_FORMAT);

    /* skip handles every other type: float32/64, ext forms, nested values */
    static const uint8_t misc[] = {
        0x93, 0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x82, 0xd4, 1, 2, 0xc7, 2, 5, 'a', 'b', 0xd8, 1,
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0x91, 0x90, 0xc0};
    wh_reader_init(&r, misc, sizeof misc - 1);
    CHECK(wh_mp_skip(&r) == WH_OK && wh_reader_left(&r) == 0);
    CHECK(wh_mp_peek(&r) == WH_MP_INVALID);
    for (size_t cut = 0; cut < sizeof misc - 1; cut++) {
        uint8_t *pre = exact(misc, cut);
        wh_reader_init(&r, pre, cut);
        CHECK(wh_mp_skip(&r) != WH_OK);
        free(pre);
    }

    /* 200,000 nested arrays: skip is iterative, no stack overflow */
    size_t depth = 200000;
    uint8_t *deep = malloc(depth + 1);
    memset(deep, 0x91, depth);
    deep[depth] = 0xc0;
    wh_reader_init(&r, deep, depth + 1);
    CHECK(wh_mp_skip(&r) == WH_OK && wh_reader_left(&r) == 0);
    wh_reader_init(&r, deep, depth);
    CHECK(wh_mp_skip(&r) != WH_OK);
    free(deep);
}

/* ---------------------------------------------------------------- request */

/* ABI.md's worked example: GET /hi?x=1, accept: * / *, body "ok", config {K: v}. 73 bytes. */
static const uint8_t ABI_EXAMPLE[] = {
    0x86, 0xa6, 'm', 'e', 't', 'h', 'o', 'd', 0xa3, 'G', 'E', 'T', 0xa4, 'p', 'a', 't', 'h', 0xa3, '/', 'h', 'i',
    0xa5, 'q', 'u', 'e', 'r', 'y', 0xa3, 'x', '=', '1', 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's', 0x91, 0x92, 0xa6,
    'a', 'c', 'c', 'e', 'p', 't', 0xa3, '*', '/', '*', 0xa4, 'b', 'o', 'd', 'y', 0xc4, 0x02, 'o', 'k', 0xa6, 'c',
    'o', 'n', 'f', 'i', 'g', 0x81, 0xa1, 'K', 0xa1, 'v'};

static void test_request_example(void) {
    CHECK(sizeof ABI_EXAMPLE == 73);
    uint8_t *in = exact(ABI_EXAMPLE, sizeof ABI_EXAMPLE);
    wh_request req;
    CHECK(wh_request_decode(&req, in, sizeof ABI_EXAMPLE) == WH_OK);
    CHECK(wh_str_eq(req.method, "GET") && req.method.ptr[3] == 0);
    CHECK(wh_str_eq(req.path, "/hi"));
    CHECK(wh_str_eq(req.query, "x=1"));
    CHECK(req.header_count == 1);
    CHECK(wh_str_eq(req.headers[0].name, "accept") && wh_str_eq(req.headers[0].value, "*/*"));
    CHECK(req.body_len == 2 && memcmp(req.body, "ok", 2) == 0);
    CHECK(req.config_count == 1);
    CHECK(wh_header(&req, "accept") && strcmp(wh_header(&req, "accept"), "*/*") == 0);
    CHECK(wh_header(&req, "Accept") && strcmp(wh_header(&req, "ACCEPT"), "*/*") == 0);
    CHECK(wh_header(&req, "accep") == NULL && wh_header(&req, "content-type") == NULL);
    CHECK(wh_config(&req, "K") && strcmp(wh_config(&req, "K"), "v") == 0);
    CHECK(wh_config(&req, "k") == NULL);

    /* every strict prefix fails cleanly (ASan: no read past the exact-size buffer) */
    for (size_t cut = 0; cut < sizeof ABI_EXAMPLE; cut++) {
        uint8_t *pre = exact(ABI_EXAMPLE, cut);
        CHECK(wh_request_decode(&req, pre, cut) != WH_OK);
        free(pre);
    }
    /* trailing bytes after the map */
    uint8_t *more = malloc(sizeof ABI_EXAMPLE + 1);
    memcpy(more, ABI_EXAMPLE, sizeof ABI_EXAMPLE);
    more[sizeof ABI_EXAMPLE] = 0xc0;
    CHECK(wh_request_decode(&req, more, sizeof ABI_EXAMPLE + 1) == WH_ERR_FORMAT);
    free(more);
    free(in);
}

/* Builds a request with the writer, the way the host does (plus unknown keys). */
static void test_request_built(void) {
    wh_writer w;
    wh_writer_init(&w, 16);
    wh_mp_write_map(&w, 9);
    wh_mp_write_cstr(&w, "future"); /* unknown key with a nested value */
    wh_mp_write_map(&w, 1);
    wh_mp_write_cstr(&w, "x");
    wh_mp_write_array(&w, 2);
    wh_mp_write_nil(&w);
    wh_mp_write_bin(&w, "zz", 2);
    wh_mp_write_int(&w, 7); /* a non-string key */
    wh_mp_write_bool(&w, 1);
    wh_mp_write_cstr(&w, "method");
    wh_mp_write_cstr(&w, "POST");
    wh_mp_write_cstr(&w, "path");
    wh_mp_write_bin(&w, "/a\xff" "b", 4); /* not UTF-8: sent as bin */
    wh_mp_write_cstr(&w, "query");
    wh_mp_write_cstr(&w, "");
    wh_mp_write_cstr(&w, "headers");
    wh_mp_write_array(&w, 3);
    wh_mp_write_array(&w, 2);
    wh_mp_write_cstr(&w, "content-type");
    wh_mp_write_cstr(&w, "application/json");
    wh_mp_write_array(&w, 2);
    wh_mp_write_cstr(&w, "x-raw");
    wh_mp_write_bin(&w, "a\0b\xfe", 4);
    wh_mp_write_array(&w, 2);
    wh_mp_write_cstr(&w, "content-type");
    wh_mp_write_cstr(&w, "second");
    wh_mp_write_cstr(&w, "body");
    char body[300];
    for (int i = 0; i < 300; i++) body[i] = (char)i;
    wh_mp_write_bin(&w, body, sizeof body);
    wh_mp_write_cstr(&w, "config");
    wh_mp_write_map(&w, 2);
    wh_mp_write_cstr(&w, "GREETING");
    wh_mp_write_cstr(&w, "hej");
    wh_mp_write_cstr(&w, "EMPTY");
    wh_mp_write_cstr(&w, "");
    wh_mp_write_cstr(&w, "zzz_unknown_last");
    wh_mp_write_cstr(&w, "ignored");
    CHECK(w.err == WH_OK);

    uint8_t *in = exact(w.buf, w.len);
    wh_request req;
    CHECK(wh_request_decode(&req, in, w.len) == WH_OK);
    CHECK(wh_str_eq(req.method, "POST"));
    CHECK(req.path.len == 4 && memcmp(req.path.ptr, "/a\xff" "b", 5) == 0);
    CHECK(req.query.len == 0 && req.query.ptr[0] == 0);
    CHECK(req.header_count == 3);
    CHECK(strcmp(wh_header(&req, "Content-Type"), "application/json") == 0); /* first wins */
    const wh_str *raw = wh_header_str(&req, "x-raw");
    CHECK(raw && raw->len == 4 && memcmp(raw->ptr, "a\0b\xfe", 5) == 0);
    CHECK(req.body_len == 300 && memcmp(req.body, body, 300) == 0);
    CHECK(req.config_count == 2);
    CHECK(strcmp(wh_config(&req, "GREETING"), "hej") == 0);
    CHECK(wh_config(&req, "EMPTY") && wh_config(&req, "EMPTY")[0] == 0);
    CHECK(wh_config(&req, "MISSING") == NULL);

    for (size_t cut = 0; cut < w.len; cut++) {
        uint8_t *pre = exact(w.buf, cut);
        CHECK(wh_request_decode(&req, pre, cut) != WH_OK);
        free(pre);
    }
    free(in);
    free(w.buf);

    /* an empty map: defaults */
    static const uint8_t empty[] = {0x80};
    CHECK(wh_request_decode(&req, empty, 1) == WH_OK);
    CHECK(wh_str_eq(req.method, "") && wh_str_eq(req.path, "/") && req.header_count == 0 && req.body_len == 0);
    CHECK(wh_header(&req, "a") == NULL && wh_config(&req, "a") == NULL);
}

static void expect_bad_request(const uint8_t *data, size_t len, int line) {
    uint8_t *in = exact(data, len);
    wh_request req;
    int e = wh_request_decode(&req, in, len);
    checks++;
    if (e == WH_OK) {
        failures++;
        fprintf(stderr, "%s:%d: malformed request accepted\n", __FILE__, line);
    }
    free(in);
}
#define BAD(...)                                                   \
    do {                                                           \
        static const uint8_t in_[] = {__VA_ARGS__};                \
        expect_bad_request(in_, sizeof in_, __LINE__);             \
    } while (0)

static void test_request_malformed(void) {
    BAD(0x90);                                                  /* not a map */
    BAD(0xa3, 'G', 'E', 'T');                                   /* a str */
    BAD(0x81, 0xa6, 'm', 'e', 't', 'h', 'o', 'd', 0x01);        /* method is an int */
    BAD(0x81, 0xa4, 'p', 'a', 't', 'h', 0xc0);                  /* path is nil */
    BAD(0x81, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's', 0x80);   /* headers is a map */
    BAD(0x81, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's', 0x91, 0x93, 0xa1, 'a', 0xa1, 'b', 0xa1, 'c'); /* triple */
    BAD(0x81, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's', 0x91, 0x92, 0xa1, 'a', 0x05); /* int value */
    BAD(0x81, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's', 0x91, 0xa1, 'a');            /* not a pair */
    BAD(0x81, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's', 0xdd, 0x10, 0, 0, 0, 0x92);  /* huge count */
    BAD(0x81, 0xa4, 'b', 'o', 'd', 'y', 0x2a);                  /* body is an int */
    BAD(0x81, 0xa4, 'b', 'o', 'd', 'y', 0xc6, 0x7f, 0xff, 0xff, 0xff, 'x'); /* bin32 past the end */
    BAD(0x81, 0xa6, 'c', 'o', 'n', 'f', 'i', 'g', 0x91, 0xa1, 'a');         /* config is an array */
    BAD(0x81, 0xa6, 'c', 'o', 'n', 'f', 'i', 'g', 0x81, 0xa1, 'a', 0xc3);   /* config value is a bool */
    BAD(0x82, 0xa6, 'm', 'e', 't', 'h', 'o', 'd', 0xa3, 'G', 'E', 'T');     /* map of 2 holding 1 */
    BAD(0x81, 0xa3, 'f', 'o', 'o', 0xc1);                       /* unknown key, invalid value */
    BAD(0x81, 0xa3, 'f', 'o', 'o', 0x92, 0x01);                 /* unknown key, truncated value */
    BAD(0xdf, 0xff, 0xff, 0xff, 0xff);                          /* map32, nothing inside */
    BAD(0x81, 0xa6, 'm', 'e', 't', 'h', 'o');                   /* truncated key */
}

/* Deterministic mutation fuzzing of the worked example: never crash, never over-read. */
static void test_request_fuzz(void) {
    uint32_t x = 2463534242u;
    size_t accepted = 0;
    for (int iter = 0; iter < 50000; iter++) {
        uint8_t buf[sizeof ABI_EXAMPLE];
        memcpy(buf, ABI_EXAMPLE, sizeof buf);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            buf[x % sizeof buf] = (uint8_t)(x >> 8);
        }
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        size_t len = (iter & 1) ? sizeof buf : x % (sizeof buf + 1);
        uint8_t *in = exact(buf, len);
        wh_request req;
        if (wh_request_decode(&req, in, len) == WH_OK) {
            accepted++;
            /* what was accepted is usable */
            (void)wh_header(&req, "accept");
            (void)wh_config(&req, "K");
            for (uint32_t i = 0; i < req.header_count; i++) CHECK(req.headers[i].name.ptr[req.headers[i].name.len] == 0);
        }
        free(in);
    }
    CHECK(accepted > 0);
}

/* ---------------------------------------------------------------- response */

static void test_response(void) {
    wh_response res;
    wh_writer w;
    wh_response_init(&res);
    CHECK(wh_response_encode(&res, &w) == WH_OK);
    /* {"status": 200, "headers": [], "body": bin ""} */
    CHECK_BYTES(&w, 0x83, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xcc, 0xc8, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's',
                0x90, 0xa4, 'b', 'o', 'd', 'y', 0xc4, 0x00);
    free(w.buf);

    wh_response_init(&res);
    wh_respond_text(&res, 404, "text/plain", "hi");
    wh_add_header(&res, "set-cookie", "a=1");
    wh_add_header(&res, "set-cookie", "b=2");
    CHECK(res.err == WH_OK);
    CHECK(wh_response_encode(&res, &w) == WH_OK);
    CHECK_BYTES(&w, 0x83, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xcd, 0x01, 0x94, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r',
                's', 0x93, 0x92, 0xac, 'c', 'o', 'n', 't', 'e', 'n', 't', '-', 't', 'y', 'p', 'e', 0xaa, 't', 'e',
                'x', 't', '/', 'p', 'l', 'a', 'i', 'n', 0x92, 0xaa, 's', 'e', 't', '-', 'c', 'o', 'o', 'k', 'i', 'e',
                0xa3, 'a', '=', '1', 0x92, 0xaa, 's', 'e', 't', '-', 'c', 'o', 'o', 'k', 'i', 'e', 0xa3, 'b', '=',
                '2', 0xa4, 'b', 'o', 'd', 'y', 0xc4, 0x02, 'h', 'i');
    free(w.buf);

    /* many headers and a large body: decode it back with the reader */
    wh_response_init(&res);
    char name[32], value[64];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "x-h%d", i);
        snprintf(value, sizeof value, "value number %d", i);
        wh_add_header(&res, name, value); /* copies: the stack buffers are reused */
    }
    size_t big = 100000;
    uint8_t *body = malloc(big);
    for (size_t i = 0; i < big; i++) body[i] = (uint8_t)(i * 7);
    wh_set_body(&res, body, (uint32_t)big);
    memset(body, 0, big); /* wh_set_body copied */
    wh_set_status(&res, 599);
    CHECK(wh_response_encode(&res, &w) == WH_OK);
    wh_reader r;
    uint32_t n, hc, two, len;
    const char *s;
    const uint8_t *b;
    int64_t status;
    wh_reader_init(&r, w.buf, w.len);
    CHECK(wh_mp_read_map(&r, &n) == 0 && n == 3);
    CHECK(wh_mp_read_str(&r, &s, &len) == 0 && len == 6 && !memcmp(s, "status", 6));
    CHECK(wh_mp_read_int(&r, &status) == 0 && status == 599);
    CHECK(wh_mp_read_str(&r, &s, &len) == 0 && len == 7 && !memcmp(s, "headers", 7));
    CHECK(wh_mp_read_array(&r, &hc) == 0 && hc == 40);
    int ok = 1;
    for (uint32_t i = 0; i < hc; i++) {
        snprintf(name, sizeof name, "x-h%u", i);
        snprintf(value, sizeof value, "value number %u", i);
        if (wh_mp_read_array(&r, &two) || two != 2) ok = 0;
        if (wh_mp_read_str(&r, &s, &len) || len != strlen(name) || memcmp(s, name, len)) ok = 0;
        if (wh_mp_read_str(&r, &s, &len) || len != strlen(value) || memcmp(s, value, len)) ok = 0;
    }
    CHECK(ok);
    CHECK(wh_mp_read_str(&r, &s, &len) == 0 && len == 4 && !memcmp(s, "body", 4));
    CHECK(wh_mp_read_bin(&r, &b, &len) == 0 && len == big);
    ok = 1;
    for (size_t i = 0; i < big; i++)
        if (b[i] != (uint8_t)(i * 7)) ok = 0;
    CHECK(ok && wh_reader_left(&r) == 0);
    free(body);
    free(w.buf);
}

/* ---------------------------------------------------------------- dispatch */

static char logged[256];
static void capture_log(const char *msg, uint32_t len) {
    size_t used = strlen(logged);
    if (used + len + 2 < sizeof logged) {
        memcpy(logged + used, msg, len);
        logged[used + len] = '\n';
        logged[used + len + 1] = 0;
    }
}

static void greet(const wh_request *req, wh_response *res) {
    wh_log("greet called");
    const char *name = wh_config(req, "K");
    char text[64];
    snprintf(text, sizeof text, "%s %s %s", req->method.ptr, req->path.ptr, name ? name : "?");
    wh_respond_text(res, 201, "text/plain", text); /* copies the stack buffer */
}

static void test_dispatch(void) {
    wh_log_hook = capture_log;
    uint32_t len = 0;
    const uint8_t *out = wh_handle_bytes(greet, ABI_EXAMPLE, sizeof ABI_EXAMPLE, &len);
    CHECK(out != NULL);
    CHECK(strcmp(logged, "greet called\n") == 0);
    wh_reader r;
    wh_reader_init(&r, out, len);
    uint32_t n, hl;
    const char *s;
    const uint8_t *b;
    int64_t status = 0;
    CHECK(wh_mp_read_map(&r, &n) == 0 && n == 3);
    CHECK(wh_mp_read_str(&r, &s, &hl) == 0 && wh_mp_read_int(&r, &status) == 0 && status == 201);
    CHECK(wh_mp_read_str(&r, &s, &hl) == 0 && wh_mp_skip(&r) == 0);
    CHECK(wh_mp_read_str(&r, &s, &hl) == 0 && wh_mp_read_bin(&r, &b, &hl) == 0);
    CHECK(hl == 9 && memcmp(b, "GET /hi v", 9) == 0);

    /* a malformed request gets a 400 without calling the handler */
    logged[0] = 0;
    static const uint8_t bad[] = {0x81, 0xa6, 'm', 'e', 't'};
    out = wh_handle_bytes(greet, bad, sizeof bad, &len);
    CHECK(out != NULL);
    CHECK(strstr(logged, "greet") == NULL && strstr(logged, "malformed") != NULL);
    wh_reader_init(&r, out, len);
    CHECK(wh_mp_read_map(&r, &n) == 0 && wh_mp_read_str(&r, &s, &hl) == 0);
    CHECK(wh_mp_read_int(&r, &status) == 0 && status == 400);
    wh_log_hook = NULL;
}

static void test_text_builder(void) {
    wh_writer w;
    wh_writer_init(&w, 0);
    wh_write_str(&w, "n=");
    wh_write_int(&w, 0);
    wh_write(&w, ",", 1);
    wh_write_int(&w, -42);
    wh_write(&w, ",", 1);
    wh_write_int(&w, INT64_MIN);
    wh_write(&w, ",", 1);
    wh_write_int(&w, INT64_MAX);
    const char *want = "n=0,-42,-9223372036854775808,9223372036854775807";
    CHECK(w.err == WH_OK && w.len == strlen(want) && memcmp(w.buf, want, w.len) == 0);
    for (int i = 0; i < 1000; i++) wh_write_str(&w, "0123456789"); /* grows */
    CHECK(w.err == WH_OK && w.len == strlen(want) + 10000 && w.buf[w.len - 1] == '9');
    free(w.buf);
}

int main(void) {
    test_text_builder();
    test_ints();
    test_strings();
    test_containers();
    test_request_example();
    test_request_built();
    test_request_malformed();
    test_request_fuzz();
    test_response();
    test_dispatch();
    if (failures) {
        fprintf(stderr, "FAILED: %d of %d checks\n", failures, checks);
        return 1;
    }
    printf("ok: %d checks\n", checks);
    return 0;
}
