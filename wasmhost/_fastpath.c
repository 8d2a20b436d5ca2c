/*
 * wasmhost._fastpath: one invocation in one call from Python.
 *
 * Why: every ctypes call costs ~0.75 us on these machines, and a fresh-instance
 * handler call needs about twenty of them (store, limits, fuel, deadline,
 * instantiate, three exports, two calls, memory reads and writes, fuel, delete).
 * Here the whole sequence runs in C with the GIL released once; Python keeps
 * the decisions (classification, decoding, host functions).
 *
 * This file does not link against wasmtime: Python hands it the addresses of
 * the C API functions from the library wasmtime-py already loaded (init()), and
 * the sizes of the structs it relies on, which init() checks. If the extension
 * cannot be built or loaded, wasmhost/native.py does the same through ctypes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { uint64_t store_id; size_t private_; } instance_t;               /* wasmtime_instance_t */
typedef struct { uint8_t kind; uint8_t pad[7]; uint64_t of[3]; } extern_t;      /* wasmtime_extern_t */
typedef union { int32_t i32; int64_t i64; uint8_t v128[16]; } val_raw_t;         /* wasmtime_val_raw_t */

typedef struct { size_t size; void **data; } valtype_vec_t;                      /* wasm_valtype_vec_t */
typedef struct { size_t size; uint8_t *data; } byte_vec_t;                       /* wasm_byte_vec_t */

enum { EXTERN_FUNC = 0, EXTERN_MEMORY = 3 };

/* Outcomes; Python (sandbox.py) turns them into classified errors. */
enum {
    OK = 0,
    FAULT_INSTANTIATE = 1,  /* a = error ptr, b = trap ptr */
    FAULT_RUN = 2,          /* a = error ptr, b = trap ptr, c = memory size at the fault */
    ALLOC_OUT_OF_BOUNDS = 3,/* a = returned ptr, b = memory size */
    RESPONSE_TOO_LARGE = 4, /* a = declared length */
    RESPONSE_OUT_OF_BOUNDS = 5, /* a = ptr, b = length, c = memory size */
    MISSING_EXPORT = 6,     /* a = which (0 alloc, 1 handle, 2 memory, 3 entry, 4 _initialize) */
};

static struct {
    void *(*store_new)(void *engine, void *data, void (*finalizer)(void *));
    void *(*store_context)(void *store);
    void (*store_delete)(void *store);
    void (*store_limiter)(void *store, int64_t memory_size, int64_t table_elements,
                          int64_t instances, int64_t tables, int64_t memories);
    void *(*set_fuel)(void *ctx, uint64_t fuel);
    void *(*get_fuel)(void *ctx, uint64_t *fuel);
    void (*set_epoch_deadline)(void *ctx, uint64_t ticks);
    void *(*set_wasi)(void *ctx, void *wasi_config);
    void *(*instantiate_pre)(void *pre, void *ctx, instance_t *out, void **trap);
    bool (*export_get)(void *ctx, const instance_t *instance, const char *name, size_t len, extern_t *out);
    void *(*call_unchecked)(void *ctx, const void *func, val_raw_t *args, size_t nargs, void **trap);
    uint8_t *(*memory_data)(void *ctx, const void *memory);
    size_t (*memory_data_size)(void *ctx, const void *memory);
    void (*error_delete)(void *error);
    void (*wasi_config_delete)(void *config);
    void *(*func_type)(void *ctx, const void *func);
    const valtype_vec_t *(*functype_params)(const void *functype);
    const valtype_vec_t *(*functype_results)(const void *functype);
    void (*functype_delete)(void *functype);
    void *(*caller_context)(void *caller);
    bool (*caller_export_get)(void *caller, const char *name, size_t len, extern_t *out);
    void *(*context_get_data)(void *ctx);
    void *(*trap_new)(const char *message, size_t len);
    void *(*linker_define_func_unchecked)(void *linker, const char *module, size_t module_len, const char *name,
                                          size_t name_len, const void *ty, void *callback, void *env,
                                          void (*finalizer)(void *));
    void *(*wasi_config_new)(void);
    bool (*wasi_config_set_argv)(void *config, size_t argc, const char *const *argv);
    bool (*wasi_config_set_env)(void *config, size_t envc, const char *const *names, const char *const *values);
    void (*wasi_config_set_stdin_bytes)(void *config, byte_vec_t *bytes);
    void (*byte_vec_new)(byte_vec_t *out, size_t size, const uint8_t *data);
} api;
static int ready = 0;

/* Per-call state, the Store's data. `key` comes first: the Python host functions
 * (native.define_host_func) read it to find their CallState. The rest is for the
 * C host functions wasmhost.log and fd_write, which write here without the GIL. */
typedef struct {
    int64_t key;
    int64_t host_calls_left; /* an inline attempt's budget; < 0: unlimited */
    int32_t over_budget;
    int32_t log_truncated;
    size_t log_len, log_cap;  /* log_cap = the server's max_log_bytes */
    char *log;                /* malloc'd on the first line */
    int32_t capture_stdout;   /* WAGI: fd 1 is the response; otherwise fd 1 is log too */
    int32_t stdout_overflow;
    size_t out_len, out_cap, out_max; /* out_max = the response limit */
    char *out;
} hoststate_t;

#define TRAP(msg) api.trap_new((msg), sizeof(msg) - 1)

/* wasmhost.log(ptr, len): one line for the invocation's log; never more than log_cap bytes. */
static void *c_log(void *env, void *caller, val_raw_t *args, size_t nargs) {
    void *ctx = api.caller_context(caller);
    hoststate_t *st = (hoststate_t *)api.context_get_data(ctx);
    extern_t mem;
    uint32_t ptr = (uint32_t)args[0].i32, len = (uint32_t)args[1].i32;
    if (!api.caller_export_get(caller, "memory", 6, &mem) || mem.kind != EXTERN_MEMORY)
        return TRAP("wasmhost.log: the module exports no memory");
    size_t size = api.memory_data_size(ctx, &mem.of);
    if ((uint64_t)ptr + len > size) return TRAP("wasmhost.log: pointer/length outside linear memory");
    if (st == NULL) return NULL;
    if (st->host_calls_left >= 0) {
        if (st->host_calls_left == 0) {
            st->over_budget = 1;
            return TRAP("inline attempt over its host-call budget (the call is rerun on a worker)");
        }
        st->host_calls_left--;
    }
    size_t room = st->log_cap - st->log_len;
    if (room == 0) { st->log_truncated = 1; return NULL; }
    if (st->log == NULL) {
        st->log = malloc(st->log_cap);
        if (st->log == NULL) { st->log_truncated = 1; return NULL; }
    }
    const uint8_t *base = api.memory_data(ctx, &mem.of);
    size_t n = (size_t)len + 1 <= room ? (size_t)len : room;  /* the line and its newline, as far as they fit */
    memcpy(st->log + st->log_len, base + ptr, n);
    st->log_len += n;
    if (st->log_len < st->log_cap) st->log[st->log_len++] = '\n';
    if ((size_t)len + 1 > room) st->log_truncated = 1;
    return NULL;
}

/* Bytes the guest wrote to the log: what still fits of `len` bytes at `src`. */
static void log_append(hoststate_t *st, const uint8_t *src, size_t len) {
    size_t room = st->log_cap - st->log_len;
    if (room == 0) { st->log_truncated |= len > 0; return; }
    if (st->log == NULL) {
        st->log = malloc(st->log_cap);
        if (st->log == NULL) { st->log_truncated = 1; return; }
    }
    size_t n = len <= room ? len : room;
    memcpy(st->log + st->log_len, src, n);
    st->log_len += n;
    if (len > room) st->log_truncated = 1;
}

enum { ERRNO_SUCCESS = 0, ERRNO_BADF = 8, ERRNO_FAULT = 21, ERRNO_INVAL = 28, MAX_IOVECS = 1024 };

/* WASI fd_write(fd, iovs, iovs_len, nwritten) -> errno, shadowing wasmtime's: fd 1 is the
 * CGI response (WAGI, capped: passing the limit traps at once) or log, fd 2 is log. The same
 * checks, errnos and traps as abi/hostcalls._fd_write, which the ctypes path uses. */
static void *c_fd_write(void *env, void *caller, val_raw_t *args, size_t nargs) {
    void *ctx = api.caller_context(caller);
    hoststate_t *st = (hoststate_t *)api.context_get_data(ctx);
    uint32_t fd = (uint32_t)args[0].i32, iovs = (uint32_t)args[1].i32, count = (uint32_t)args[2].i32,
             nwritten = (uint32_t)args[3].i32;
    extern_t mem;
    const uint8_t *base = NULL;
    uint64_t size = 0;
    if (api.caller_export_get(caller, "memory", 6, &mem) && mem.kind == EXTERN_MEMORY) {
        base = api.memory_data(ctx, &mem.of);
        size = api.memory_data_size(ctx, &mem.of);
    }
    if (st == NULL || (fd != 1 && fd != 2)) { args[0].i32 = ERRNO_BADF; return NULL; }
    if (count > MAX_IOVECS) { args[0].i32 = ERRNO_INVAL; return NULL; }
    if ((uint64_t)iovs + 8 * (uint64_t)count > size || (uint64_t)nwritten + 4 > size) {
        args[0].i32 = ERRNO_FAULT;
        return NULL;
    }
    uint64_t written = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t span[2];
        memcpy(span, base + iovs + 8 * (uint64_t)i, 8);
        if ((uint64_t)span[0] + span[1] > size) { args[0].i32 = ERRNO_FAULT; return NULL; }
        written += span[1];
    }
    if (fd == 1 && st->capture_stdout) {
        if (st->out_len + written > st->out_max) {
            st->stdout_overflow = 1;
            return TRAP("output exceeds the response size limit");
        }
        size_t need = st->out_len + (size_t)written;
        if (need > st->out_cap) {
            size_t cap = st->out_cap ? st->out_cap : 4096;
            while (cap < need) cap *= 2;
            if (cap > st->out_max) cap = st->out_max;
            char *p = realloc(st->out, cap);
            if (p == NULL) return TRAP("host function wasi_snapshot_preview1.fd_write failed: MemoryError");
            st->out = p;
            st->out_cap = cap;
        }
        for (uint32_t i = 0; i < count; i++) {
            uint32_t span[2];
            memcpy(span, base + iovs + 8 * (uint64_t)i, 8);
            memcpy(st->out + st->out_len, base + span[0], span[1]);
            st->out_len += span[1];
        }
    } else {
        for (uint32_t i = 0; i < count; i++) {
            uint32_t span[2];
            memcpy(span, base + iovs + 8 * (uint64_t)i, 8);
            if (st->log_len >= st->log_cap) { st->log_truncated |= span[1] > 0; break; }
            log_append(st, base + span[0], span[1]);
        }
    }
    if (written > 0xFFFFFFFFu)  /* as the Python one: struct.pack("<I") fails, the call traps */
        return TRAP("host function wasi_snapshot_preview1.fd_write failed: error");
    uint32_t w = (uint32_t)written;
    memcpy((uint8_t *)base + nwritten, &w, 4);
    args[0].i32 = ERRNO_SUCCESS;
    return NULL;
}

/* define_wasi_stdio(linker, fd_write_type, log_type): fd_write and wasmhost.log in C on the
 * WASI linker (which must allow shadowing), so stdio and log lines share one ordered buffer. */
static PyObject *fp_define_wasi_stdio(PyObject *self, PyObject *args) {
    unsigned long long linker, fd_write_type, log_type;
    if (!ready) { PyErr_SetString(PyExc_RuntimeError, "_fastpath.init() was not called"); return NULL; }
    if (!PyArg_ParseTuple(args, "KKK", &linker, &fd_write_type, &log_type)) return NULL;
    void *err = api.linker_define_func_unchecked((void *)linker, "wasi_snapshot_preview1", 22, "fd_write", 8,
                                                 (void *)fd_write_type, (void *)c_fd_write, NULL, NULL);
    if (err == NULL)
        err = api.linker_define_func_unchecked((void *)linker, "wasmhost", 8, "log", 3, (void *)log_type,
                                               (void *)c_log, NULL, NULL);
    if (err) {
        api.error_delete(err);
        PyErr_SetString(PyExc_RuntimeError, "could not define fd_write and wasmhost.log");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* wasi_config(argv, env, stdin) -> the address of a new locked-down WASI config (as
 * native.wasi_config builds it: no preopens, no inherited env or stdio, stdin from bytes).
 * argv: bytes; env: (bytes, bytes) pairs. Like the ctypes version, what wasmtime refuses in
 * argv or env (its set_* return false) is not an error here. The caller hands it to a store. */
static PyObject *fp_wasi_config(PyObject *self, PyObject *args) {
    PyObject *argv, *env;
    Py_buffer stdin_buf;
    if (!ready) { PyErr_SetString(PyExc_RuntimeError, "_fastpath.init() was not called"); return NULL; }
    if (!PyArg_ParseTuple(args, "OOy*", &argv, &env, &stdin_buf)) return NULL;
    PyObject *argv_seq = NULL, *env_seq = NULL, *out = NULL;
    const char **ptrs = NULL;
    void *config = NULL;
    argv_seq = PySequence_Fast(argv, "argv must be a sequence of bytes");
    env_seq = argv_seq ? PySequence_Fast(env, "env must be a sequence of (name, value) pairs") : NULL;
    if (env_seq == NULL) goto done;
    Py_ssize_t argc = PySequence_Fast_GET_SIZE(argv_seq), envc = PySequence_Fast_GET_SIZE(env_seq);
    ptrs = PyMem_Malloc(sizeof(char *) * (size_t)(argc + 2 * envc + 1));
    if (ptrs == NULL) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < argc; i++) {
        PyObject *a = PySequence_Fast_GET_ITEM(argv_seq, i);
        if (!PyBytes_Check(a)) { PyErr_SetString(PyExc_TypeError, "argv items must be bytes"); goto done; }
        ptrs[i] = PyBytes_AS_STRING(a);
    }
    const char **names = ptrs + argc, **values = ptrs + argc + envc;
    for (Py_ssize_t i = 0; i < envc; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(env_seq, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "env items must be (bytes, bytes) pairs");
            goto done;
        }
        names[i] = PyBytes_AS_STRING(PyTuple_GET_ITEM(pair, 0));
        values[i] = PyBytes_AS_STRING(PyTuple_GET_ITEM(pair, 1));
    }
    config = api.wasi_config_new();
    if (config == NULL) { PyErr_NoMemory(); goto done; }
    (void)api.wasi_config_set_argv(config, (size_t)argc, ptrs);
    if (envc) (void)api.wasi_config_set_env(config, (size_t)envc, names, values);
    if (stdin_buf.len > 0) {
        byte_vec_t vec;
        api.byte_vec_new(&vec, (size_t)stdin_buf.len, stdin_buf.buf);  /* copies */
        api.wasi_config_set_stdin_bytes(config, &vec);                   /* takes the copy */
    }
    out = PyLong_FromVoidPtr(config);
    if (out == NULL) api.wasi_config_delete(config);
done:
    PyMem_Free(ptrs);
    Py_XDECREF(argv_seq);
    Py_XDECREF(env_seq);
    PyBuffer_Release(&stdin_buf);
    return out;
}

static PyObject *fp_define_log(PyObject *self, PyObject *args) {
    unsigned long long linker, functype;
    if (!ready) { PyErr_SetString(PyExc_RuntimeError, "_fastpath.init() was not called"); return NULL; }
    if (!PyArg_ParseTuple(args, "KK", &linker, &functype)) return NULL;
    void *err = api.linker_define_func_unchecked((void *)linker, "wasmhost", 8, "log", 3, (void *)functype,
                                                 (void *)c_log, NULL, NULL);
    if (err) {
        api.error_delete(err);
        PyErr_SetString(PyExc_RuntimeError, "could not define wasmhost.log");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The log bytes as a Python object (the caller holds the GIL), then free them. */
static PyObject *take_log(hoststate_t *st) {
    PyObject *out = PyBytes_FromStringAndSize(st->log ? st->log : "", (Py_ssize_t)st->log_len);
    free(st->log);
    st->log = NULL;
    return out;
}

/* The captured stdout likewise. */
static PyObject *take_out(hoststate_t *st) {
    PyObject *out = PyBytes_FromStringAndSize(st->out ? st->out : "", (Py_ssize_t)st->out_len);
    free(st->out);
    st->out = NULL;
    return out;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static PyObject *fp_init(PyObject *self, PyObject *args) {
    PyObject *table;
    unsigned long long sizes[3];
    if (!PyArg_ParseTuple(args, "O!(KKK)", &PyTuple_Type, &table, &sizes[0], &sizes[1], &sizes[2]))
        return NULL;
    if (sizes[0] != sizeof(instance_t) || sizes[1] != sizeof(extern_t) || sizes[2] != sizeof(val_raw_t)) {
        PyErr_SetString(PyExc_RuntimeError, "wasmtime struct sizes differ from what _fastpath was written for");
        return NULL;
    }
    const Py_ssize_t n = sizeof(api) / sizeof(void *);
    if (PyTuple_GET_SIZE(table) != n) {
        PyErr_Format(PyExc_ValueError, "expected %zd function addresses", n);
        return NULL;
    }
    void **slots = (void **)&api;
    for (Py_ssize_t i = 0; i < n; i++) {
        void *p = PyLong_AsVoidPtr(PyTuple_GET_ITEM(table, i));
        if (p == NULL) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "function address %zd is NULL", i);
            return NULL;
        }
        slots[i] = p;
    }
    ready = 1;
    Py_RETURN_NONE;
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
    api.store_limiter(c->store, memory_bytes, 100000, 1, 1, 1);
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
 *              host_calls_left, max_log_bytes)
 * -> (outcome, response_or_a, b, c, fuel_used, instantiate_ns, run_ns, log, log_truncated, over_budget) */
static PyObject *fp_call_handler(PyObject *self, PyObject *args) {
    unsigned long long engine, pre, key, fuel, ticks, wasi, max_response, log_cap;
    long long memory_bytes, host_calls_left;
    int initialize;
    Py_buffer request;
    if (!ready) { PyErr_SetString(PyExc_RuntimeError, "_fastpath.init() was not called"); return NULL; }
    if (!PyArg_ParseTuple(args, "KKKKLKKpy*KLK", &engine, &pre, &key, &fuel, &memory_bytes, &ticks, &wasi,
                          &initialize, &request, &max_response, &host_calls_left, &log_cap))
        return NULL;
    hoststate_t st = {.key = (int64_t)key, .host_calls_left = host_calls_left, .log_cap = (size_t)log_cap};
    call_t c;
    int outcome = OK;
    unsigned long long a = 0, b = 0, cc = 0;
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
            if (outcome == MISSING_EXPORT) a = 4;
        } else if (!find(&c, "wasmhost_alloc", 14, EXTERN_FUNC, &alloc)) {
            outcome = MISSING_EXPORT; a = 0;
        } else if (!find(&c, "wasmhost_handle", 15, EXTERN_FUNC, &handle)) {
            outcome = MISSING_EXPORT; a = 1;
        } else if (!find(&c, "memory", 6, EXTERN_MEMORY, &c.memory)) {
            outcome = MISSING_EXPORT; a = 2;
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
                    outcome = ALLOC_OUT_OF_BOUNDS; a = ptr; b = size;
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
                            outcome = RESPONSE_TOO_LARGE; a = out_len;
                        } else if ((uint64_t)out_ptr + out_len > size) {
                            outcome = RESPONSE_OUT_OF_BOUNDS; a = out_ptr; b = out_len; cc = size;
                        }
                    }
                }
            }
        }
        if (outcome == FAULT_RUN) cc = memory_size(&c);
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
    PyObject *log = take_log(&st);
    if ((outcome == OK && response == NULL) || log == NULL) {  /* out of Python memory */
        Py_XDECREF(response);
        Py_XDECREF(log);
        return NULL;
    }
    if (outcome == FAULT_INSTANTIATE || outcome == FAULT_RUN) {
        a = (unsigned long long)(uintptr_t)err;
        b = (unsigned long long)(uintptr_t)trap;
    }
    if (outcome == OK) {
        return Py_BuildValue("(iNKKKLLNii)", outcome, response, b, cc, (unsigned long long)used,
                             (long long)(t1 - t0), (long long)(t2 - t1), log, st.log_truncated, st.over_budget);
    }
    return Py_BuildValue("(iKKKKLLNii)", outcome, a, b, cc, (unsigned long long)used,
                         (long long)(t1 - t0), (long long)(t2 - t1), log, st.log_truncated, st.over_budget);
}

/* call_export(engine, pre, key, fuel, memory_bytes, ticks, wasi, export, capture_stdout, max_stdout,
 *             max_log_bytes)
 * -> (outcome, a, b, c, fuel_used, instantiate_ns, run_ns, stdout, stdout_overflow, log, log_truncated) */
static PyObject *fp_call_export(PyObject *self, PyObject *args) {
    unsigned long long engine, pre, key, fuel, ticks, wasi, max_stdout, log_cap;
    long long memory_bytes;
    const char *name;
    Py_ssize_t name_len;
    int capture;
    if (!ready) { PyErr_SetString(PyExc_RuntimeError, "_fastpath.init() was not called"); return NULL; }
    if (!PyArg_ParseTuple(args, "KKKKLKKy#pKK", &engine, &pre, &key, &fuel, &memory_bytes, &ticks, &wasi,
                          &name, &name_len, &capture, &max_stdout, &log_cap))
        return NULL;
    hoststate_t st = {.key = (int64_t)key, .host_calls_left = -1, .log_cap = (size_t)log_cap,
                      .capture_stdout = capture, .out_max = (size_t)max_stdout};
    call_t c;
    int outcome = OK;
    unsigned long long a = 0, b = 0, cc = 0;
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
        if (outcome == MISSING_EXPORT) a = 3;
        if (outcome == FAULT_RUN) cc = memory_size(&c);
    }
    t2 = now_ns();
    used = close_store(&c, fuel);
    Py_END_ALLOW_THREADS
    if (outcome == FAULT_INSTANTIATE || outcome == FAULT_RUN) {
        a = (unsigned long long)(uintptr_t)err;
        b = (unsigned long long)(uintptr_t)trap;
    }
    PyObject *out = take_out(&st), *log = take_log(&st);
    if (out == NULL || log == NULL) {  /* out of Python memory; err/trap leak, as nothing owns them */
        Py_XDECREF(out);
        Py_XDECREF(log);
        return NULL;
    }
    return Py_BuildValue("(iKKKKLLNiNi)", outcome, a, b, cc, (unsigned long long)used,
                         (long long)(t1 - t0), (long long)(t2 - t1), out, st.stdout_overflow, log,
                         st.log_truncated);
}

/* ---- the handler request in msgpack (what abi/handler.encode_request writes) ----------------
 *
 * Why in C: building a Request and packing it with msgpack-python costs ~20 us of the
 * ~100 us the function route spends per call; this walks the inputs once.
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
static bool valid_utf8(const uint8_t *s, size_t n) {
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
            return valid_utf8(s, n) ? wb_str(w, (const char *)s, n) : wb_bin(w, (const char *)s, n);
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
static PyObject *fp_encode_request(PyObject *self, PyObject *args) {
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
    if (!valid_utf8(value, value_len)) return NULL;
    PyObject *k = PyUnicode_DecodeASCII(lower, (Py_ssize_t)name_len, NULL);
    PyObject *v = k ? PyUnicode_DecodeUTF8((const char *)value, (Py_ssize_t)value_len, NULL) : NULL;
    PyObject *pair = v ? PyTuple_Pack(2, k, v) : NULL;
    Py_XDECREF(k);
    Py_XDECREF(v);
    return pair;
}

/* decode_response(raw) -> (status, headers, body) or None (let Python decode it). */
static PyObject *fp_decode_response(PyObject *self, PyObject *arg) {
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
            if (!rd_raw(&r, &data, &len, &is_str) || (is_str && !valid_utf8(data, len))) goto fallback;
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

static PyMethodDef methods[] = {
    {"init", fp_init, METH_VARARGS, "init(addresses, (sizeof instance, extern, val_raw))"},
    {"call_handler", fp_call_handler, METH_VARARGS, "One fresh-instance call of a handler module."},
    {"call_export", fp_call_export, METH_VARARGS, "One fresh-instance run of a () -> () export."},
    {"define_log", fp_define_log, METH_VARARGS, "define_log(linker, functype): wasmhost.log in C."},
    {"define_wasi_stdio", fp_define_wasi_stdio, METH_VARARGS,
     "define_wasi_stdio(linker, fd_write_type, log_type): fd_write and wasmhost.log in C."},
    {"wasi_config", fp_wasi_config, METH_VARARGS, "wasi_config(argv, env, stdin) -> config address."},
    {"encode_request", fp_encode_request, METH_VARARGS,
     "encode_request(method, path, query, headers, body): the handler request map, config to append."},
    {"decode_response", fp_decode_response, METH_O,
     "decode_response(raw): (status, headers, body) for a plain handler response, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastpath",
                                    "One wasm invocation per Python call (see _fastpath.c).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastpath(void) { return PyModule_Create(&module); }
