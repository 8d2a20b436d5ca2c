/* Host functions in C (wasmhost.log, WASI fd_write) and the WASI config: see fastpath.h. */
#include "fastpath.h"

/* wasmhost.log(ptr, len): one line for the invocation's log; never more than log_cap bytes. */
void *fp_c_log(void *env, void *caller, val_raw_t *args, size_t nargs) {
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
void *fp_c_fd_write(void *env, void *caller, val_raw_t *args, size_t nargs) {
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
PyObject *fp_define_wasi_stdio(PyObject *self, PyObject *args) {
    unsigned long long linker, fd_write_type, log_type;
    if (!fp_ready) return NOT_READY();
    if (!PyArg_ParseTuple(args, "KKK", &linker, &fd_write_type, &log_type)) return NULL;
    void *err = api.linker_define_func_unchecked((void *)linker, "wasi_snapshot_preview1", 22, "fd_write", 8,
                                                 (void *)fd_write_type, (void *)fp_c_fd_write, NULL, NULL);
    if (err == NULL)
        err = api.linker_define_func_unchecked((void *)linker, "wasmhost", 8, "log", 3, (void *)log_type,
                                               (void *)fp_c_log, NULL, NULL);
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
PyObject *fp_wasi_config(PyObject *self, PyObject *args) {
    PyObject *argv, *env;
    Py_buffer stdin_buf;
    if (!fp_ready) return NOT_READY();
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

PyObject *fp_define_log(PyObject *self, PyObject *args) {
    unsigned long long linker, functype;
    if (!fp_ready) return NOT_READY();
    if (!PyArg_ParseTuple(args, "KK", &linker, &functype)) return NULL;
    void *err = api.linker_define_func_unchecked((void *)linker, "wasmhost", 8, "log", 3, (void *)functype,
                                                 (void *)fp_c_log, NULL, NULL);
    if (err) {
        api.error_delete(err);
        PyErr_SetString(PyExc_RuntimeError, "could not define wasmhost.log");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The log bytes as a Python object (the caller holds the GIL), then free them. */
PyObject *fp_take_log(hoststate_t *st) {
    PyObject *out = PyBytes_FromStringAndSize(st->log ? st->log : "", (Py_ssize_t)st->log_len);
    free(st->log);
    st->log = NULL;
    return out;
}

/* The captured stdout likewise. */
PyObject *fp_take_out(hoststate_t *st) {
    PyObject *out = PyBytes_FromStringAndSize(st->out ? st->out : "", (Py_ssize_t)st->out_len);
    free(st->out);
    st->out = NULL;
    return out;
}

