/* router: a small router with path parameters.
 *   GET  /users/{id}              -> 200 {"id": "<id>"}
 *   GET  /users/{id}/posts/{post} -> 200 {"id": "<id>", "post": "<post>"}
 *   POST /echo                    -> 200, the request body, with the request's content-type
 *   GET  /config/{key}            -> 200 {"key": "<key>", "value": "<config value>"}, 404 if not configured
 *   a known path, another method  -> 405 {"error": "method not allowed", "allow": "GET"} + allow header
 *   anything else                 -> 404 {"error": "not found", "path": "<path>"}
 * Parameters are percent-decoded after the path is split on "/" (so %2F stays inside one parameter). */
#include "wasmhost.h"

#define MAX_PARAMS 4

typedef struct {
    wh_str names[MAX_PARAMS];
    wh_str values[MAX_PARAMS];
    int count;
} params;

typedef void (*route_fn)(const wh_request *req, wh_response *res, const params *p);

typedef struct {
    const char *method;
    const char *pattern; /* segments; "{name}" captures one segment */
    route_fn fn;
} route;

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static wh_str percent_decode(const char *s, uint32_t len) {
    char *out = (char *)wh_alloc(len + 1);
    uint32_t n = 0;
    for (uint32_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = 0;
    wh_str r = {out, n};
    return r;
}

/* Matches "/users/{id}" against a path; fills the parameters. */
static int match(const char *pattern, wh_str path, params *p) {
    const char *pat = pattern, *s = path.ptr, *end = path.ptr + path.len;
    p->count = 0;
    while (*pat && s < end) {
        if (*pat != '/' || *s != '/') return 0;
        pat++, s++;
        const char *pseg = pat, *seg = s;
        while (*pat && *pat != '/') pat++;
        while (s < end && *s != '/') s++;
        uint32_t plen = (uint32_t)(pat - pseg), slen = (uint32_t)(s - seg);
        if (plen >= 2 && pseg[0] == '{' && pseg[plen - 1] == '}') {
            if (slen == 0 || p->count == MAX_PARAMS) return 0;
            p->names[p->count].ptr = pseg + 1;
            p->names[p->count].len = plen - 2;
            p->values[p->count] = percent_decode(seg, slen);
            p->count++;
        } else if (plen != slen || !wh_mem_eq(pseg, seg, plen)) {
            return 0;
        }
    }
    return *pat == 0 && s == end;
}

/* ------------------------------------------------------------- a tiny JSON builder */

typedef struct {
    char *buf;
    uint32_t len, cap;
} sbuf;

static void put(sbuf *b, const char *s, uint32_t n) {
    if (b->len + n > b->cap) {
        uint32_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        b->buf = (char *)wh_realloc(b->buf, b->cap, cap);
        b->cap = cap;
    }
    wh_memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void puts_(sbuf *b, const char *s) { put(b, s, (uint32_t)wh_strlen(s)); }

static void put_json_string(sbuf *b, wh_str s) {
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(b, e, 6);
        } else {
            put(b, (const char *)&s.ptr[i], 1);
        }
    }
    put(b, "\"", 1);
}

/* {"k1": "v1", "k2": "v2"} */
static void respond_json(wh_response *res, int status, int n, const wh_str *keys, const wh_str *values) {
    sbuf b = {0, 0, 0};
    puts_(&b, "{");
    for (int i = 0; i < n; i++) {
        if (i) puts_(&b, ", ");
        put_json_string(&b, keys[i]);
        puts_(&b, ": ");
        put_json_string(&b, values[i]);
    }
    puts_(&b, "}\n");
    wh_set_status(res, status);
    wh_add_header(res, "content-type", "application/json");
    wh_set_body_ref(res, b.buf, b.len); /* b.buf is heap memory: no copy needed */
}

/* ------------------------------------------------------------- routes */

static void get_user(const wh_request *req, wh_response *res, const params *p) {
    (void)req;
    respond_json(res, 200, p->count, p->names, p->values);
}

static void echo(const wh_request *req, wh_response *res, const params *p) {
    (void)p;
    const char *ct = wh_header(req, "content-type");
    wh_add_header(res, "content-type", ct ? ct : "application/octet-stream");
    wh_set_body_ref(res, req->body, req->body_len); /* the request buffer outlives the call */
}

static void get_config(const wh_request *req, wh_response *res, const params *p) {
    const char *value = wh_config(req, p->values[0].ptr);
    wh_str keys[2] = {wh_s("key"), wh_s("value")};
    wh_str values[2] = {p->values[0], wh_s(value)};
    if (!value) {
        keys[1] = wh_s("error");
        values[1] = wh_s("not configured");
    }
    respond_json(res, value ? 200 : 404, 2, keys, values);
}

static const route routes[] = {
    {"GET", "/users/{id}", get_user},
    {"GET", "/users/{id}/posts/{post}", get_user},
    {"POST", "/echo", echo},
    {"GET", "/config/{key}", get_config},
};

static void router(const wh_request *req, wh_response *res) {
    params p;
    char allow[64];
    uint32_t allow_len = 0;
    for (unsigned i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!match(routes[i].pattern, req->path, &p)) continue;
        if (wh_str_eq(req->method, routes[i].method)) {
            routes[i].fn(req, res, &p);
            return;
        }
        uint32_t n = (uint32_t)wh_strlen(routes[i].method);
        if (allow_len + n + 2 < sizeof allow) {
            if (allow_len) allow[allow_len++] = ',', allow[allow_len++] = ' ';
            wh_memcpy(allow + allow_len, routes[i].method, n);
            allow_len += n;
        }
    }
    if (allow_len) {
        wh_str keys[2] = {wh_s("error"), wh_s("allow")};
        wh_str values[2] = {wh_s("method not allowed"), {allow, allow_len}};
        respond_json(res, 405, 2, keys, values); /* the JSON text is built on the heap */
        wh_add_header_n(res, "allow", 5, allow, allow_len);
        return;
    }
    wh_str keys[2] = {wh_s("error"), wh_s("path")};
    wh_str values[2] = {wh_s("not found"), req->path};
    respond_json(res, 404, 2, keys, values);
}

WASMHOST_HANDLER(router)
