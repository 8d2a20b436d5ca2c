/* One fresh-instance call in one Python call, the GIL released once: see fastpath.h. */
#include <time.h>

#include "fastpath.h"

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    void *store, *ctx;
    instance_t instance;
    extern_t memory;
    bool has_memory;
} call_t;

/* Store with fuel, memory cap, deadline and (optionally) WASI; returns 0 or an error ptr. */
static void *open_store(call_t *c, void *engine, void *key, uint64_t fuel, int64_t memory_bytes,
                        uint64_t ticks, void *wasi) {
    c->store = api.store_new(engine, key, NULL);
    c->ctx = api.store_context(c->store);
    c->has_memory = false;
    /* One memory, one table, one instance: enough for any core module we accept. */
    api.store_limiter(c->store, memory_bytes, fp_max_table_elements, 1, 1, 1);
    void *err = api.set_fuel(c->ctx, fuel);
    api.set_epoch_deadline(c->ctx, ticks);
    if (wasi != NULL) {
        void *werr = api.set_wasi(c->ctx, wasi); /* takes ownership of the config */
        if (err == NULL) err = werr; else if (werr) api.error_delete(werr);
    }
    return err;
}

/* open_store + instantiate; returns FAULT_INSTANTIATE (err/trap set) or OK. */
static int start(call_t *c, void *engine, void *pre, void *key, uint64_t fuel, int64_t memory_bytes,
                 uint64_t ticks, void *wasi, void **err, void **trap) {
    *err = open_store(c, engine, key, fuel, memory_bytes, ticks, wasi);
    if (*err == NULL) *err = api.instantiate_pre(pre, c->ctx, &c->instance, trap);
    return (*err || *trap) ? FAULT_INSTANTIATE : OK;
}

static uint64_t close_store(call_t *c, uint64_t fuel) {
    uint64_t left = 0;
    void *err = api.get_fuel(c->ctx, &left);
    if (err) { api.error_delete(err); left = 0; }
    api.store_delete(c->store);
    return fuel - left;
}

static bool find(call_t *c, const char *name, size_t len, uint8_t kind, extern_t *out) {
    return api.export_get(c->ctx, &c->instance, name, len, out) && out->kind == kind;
}

static size_t memory_size(call_t *c) {
    if (!c->has_memory) {
        if (!find(c, "memory", 6, EXTERN_MEMORY, &c->memory)) return 0;
        c->has_memory = true;
    }
    return api.memory_data_size(c->ctx, &c->memory.of);
}

/* Whether a function takes and returns nothing. Deploy checks this already; this is
 * the second line of defence, because an unchecked call with the wrong arity
 * corrupts memory instead of failing. */
static bool is_nullary(call_t *c, const extern_t *func) {
    void *ty = api.func_type(c->ctx, &func->of);
    bool ok = ty != NULL && api.functype_params(ty)->size == 0 && api.functype_results(ty)->size == 0;
    if (ty != NULL) api.functype_delete(ty);
    return ok;
}

/* Call `name`, a () -> () export; used by WAGI and _initialize. */
static int run_export(call_t *c, const char *name, size_t len, void **err, void **trap) {
    extern_t func;
    if (!find(c, name, len, EXTERN_FUNC, &func) || !is_nullary(c, &func)) return MISSING_EXPORT;
    val_raw_t args[1];
    *err = api.call_unchecked(c->ctx, &func.of, args, 0, trap);
    return (*err || *trap) ? FAULT_RUN : OK;
}

/* call_handler(engine, pre, key, fuel, memory_bytes, ticks, wasi, initialize, request, max_response,
 *              host_calls_left, max_log_bytes) -> CallResult */
PyObject *fp_call_handler(PyObject *self, PyObject *args) {
    unsigned long long engine, pre, key, fuel, ticks, wasi, max_response, log_cap;
    long long memory_bytes, host_calls_left;
    int initialize;
    Py_buffer request;
    if (!fp_ready) return NOT_READY();
    if (!PyArg_ParseTuple(args, "KKKKLKKpy*KLK", &engine, &pre, &key, &fuel, &memory_bytes, &ticks, &wasi,
                          &initialize, &request, &max_response, &host_calls_left, &log_cap))
        return NULL;
    hoststate_t st = {.key = (int64_t)key, .host_calls_left = host_calls_left, .log_cap = (size_t)log_cap};
    call_t c;
    int outcome = OK, which = 0;
    uint64_t pointer = 0, length = 0, msize = 0;
    int64_t t0, t1 = 0, t2 = 0;
    uint32_t out_ptr = 0, out_len = 0;
    uint8_t *base = NULL;
    void *err = NULL, *trap = NULL;

    Py_BEGIN_ALLOW_THREADS
    t0 = now_ns();
    outcome = start(&c, (void *)engine, (void *)pre, &st, fuel, memory_bytes, ticks, (void *)wasi,
                    &err, &trap);
    t1 = now_ns();
    if (outcome == OK) {
        extern_t alloc, handle;
        if (initialize && (outcome = run_export(&c, "_initialize", 11, &err, &trap)) != OK) {
            if (outcome == MISSING_EXPORT) which = 4;
        } else if (!find(&c, "wasmhost_alloc", 14, EXTERN_FUNC, &alloc)) {
            outcome = MISSING_EXPORT; which = 0;
        } else if (!find(&c, "wasmhost_handle", 15, EXTERN_FUNC, &handle)) {
            outcome = MISSING_EXPORT; which = 1;
        } else if (!find(&c, "memory", 6, EXTERN_MEMORY, &c.memory)) {
            outcome = MISSING_EXPORT; which = 2;
        } else {
            c.has_memory = true;
            val_raw_t v[2];
            v[0].i32 = (int32_t)request.len;
            err = api.call_unchecked(c.ctx, &alloc.of, v, 2, &trap);
            if (err || trap) {
                outcome = FAULT_RUN;
            } else {
                uint32_t ptr = (uint32_t)v[0].i32;
                size_t size = api.memory_data_size(c.ctx, &c.memory.of);
                if ((uint64_t)ptr + (uint64_t)request.len > size) {
                    outcome = ALLOC_OUT_OF_BOUNDS; pointer = ptr; msize = size;
                } else {
                    base = api.memory_data(c.ctx, &c.memory.of);
                    memcpy(base + ptr, request.buf, (size_t)request.len);
                    v[0].i32 = (int32_t)ptr;
                    v[1].i32 = (int32_t)request.len;
                    err = api.call_unchecked(c.ctx, &handle.of, v, 2, &trap);
                    if (err || trap) {
                        outcome = FAULT_RUN;
                    } else {
                        uint64_t packed = (uint64_t)v[0].i64;
                        out_ptr = (uint32_t)(packed >> 32);
                        out_len = (uint32_t)(packed & 0xFFFFFFFFu);
                        size = api.memory_data_size(c.ctx, &c.memory.of);
                        base = api.memory_data(c.ctx, &c.memory.of);
                        if (out_len > max_response) {
                            outcome = RESPONSE_TOO_LARGE; length = out_len;
                        } else if ((uint64_t)out_ptr + out_len > size) {
                            outcome = RESPONSE_OUT_OF_BOUNDS; pointer = out_ptr; length = out_len; msize = size;
                        }
                    }
                }
            }
        }
        if (outcome == FAULT_RUN) msize = memory_size(&c);
    }
    t2 = now_ns();
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&request);
    PyObject *response = NULL;
    if (outcome == OK) {
        response = PyBytes_FromStringAndSize((const char *)base + out_ptr, out_len);
    }
    uint64_t used;
    Py_BEGIN_ALLOW_THREADS
    used = close_store(&c, fuel);
    Py_END_ALLOW_THREADS
    PyObject *log = fp_take_log(&st);
    if ((outcome == OK && response == NULL) || log == NULL) {  /* out of Python memory */
        Py_XDECREF(response);
        Py_XDECREF(log);
        return NULL;
    }
    bool fault = outcome == FAULT_INSTANTIATE || outcome == FAULT_RUN;
    return fp_result(outcome, response, fault ? err : NULL, fault ? trap : NULL, msize, pointer, length, which,
                     used, t1 - t0, t2 - t1, NULL, 0, log, st.log_truncated, st.over_budget);
}

/* call_export(engine, pre, key, fuel, memory_bytes, ticks, wasi, export, capture_stdout, max_stdout,
 *             max_log_bytes) -> CallResult */
PyObject *fp_call_export(PyObject *self, PyObject *args) {
    unsigned long long engine, pre, key, fuel, ticks, wasi, max_stdout, log_cap;
    long long memory_bytes;
    const char *name;
    Py_ssize_t name_len;
    int capture;
    if (!fp_ready) return NOT_READY();
    if (!PyArg_ParseTuple(args, "KKKKLKKy#pKK", &engine, &pre, &key, &fuel, &memory_bytes, &ticks, &wasi,
                          &name, &name_len, &capture, &max_stdout, &log_cap))
        return NULL;
    hoststate_t st = {.key = (int64_t)key, .host_calls_left = -1, .log_cap = (size_t)log_cap,
                      .capture_stdout = capture, .out_max = (size_t)max_stdout};
    call_t c;
    int outcome = OK, which = 0;
    uint64_t msize = 0;
    int64_t t0, t1, t2;
    void *err = NULL, *trap = NULL;
    uint64_t used;
    Py_BEGIN_ALLOW_THREADS
    t0 = now_ns();
    outcome = start(&c, (void *)engine, (void *)pre, &st, fuel, memory_bytes, ticks, (void *)wasi,
                    &err, &trap);
    t1 = now_ns();
    if (outcome == OK) {
        outcome = run_export(&c, name, (size_t)name_len, &err, &trap);
        if (outcome == MISSING_EXPORT) which = 3;
        if (outcome == FAULT_RUN) msize = memory_size(&c);
    }
    t2 = now_ns();
    used = close_store(&c, fuel);
    Py_END_ALLOW_THREADS
    bool fault = outcome == FAULT_INSTANTIATE || outcome == FAULT_RUN;
    PyObject *out = fp_take_out(&st), *log = fp_take_log(&st);
    if (out == NULL || log == NULL) {  /* out of Python memory; err/trap leak, as nothing owns them */
        Py_XDECREF(out);
        Py_XDECREF(log);
        return NULL;
    }
    return fp_result(outcome, NULL, fault ? err : NULL, fault ? trap : NULL, msize, 0, 0, which, used,
                     t1 - t0, t2 - t1, out, st.stdout_overflow, log, st.log_truncated, 0);
}
