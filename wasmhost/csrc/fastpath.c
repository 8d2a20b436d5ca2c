/*
 * wasmhost._fastpath: one invocation in one call from Python.
 *
 * Why: a fresh-instance handler call needs about twenty calls into wasmtime (store,
 * limits, fuel, deadline, instantiate, three exports, two calls, memory reads and writes,
 * fuel, delete), and each costs a ctypes call (bench/design-figures.md: ctypes-call).
 * Here the whole sequence runs in C with the GIL released once; Python keeps
 * the decisions (classification, decoding, host functions).
 *
 * The extension does not link against wasmtime: Python hands it the addresses of
 * the C API functions from the library wasmtime-py already loaded (init()), and
 * the sizes of the structs it relies on, which init() checks. If the extension
 * cannot be built or loaded, wasmhost/native.py makes the same calls through ctypes,
 * with the same results (native.call_handler, native.call_export).
 *
 * This file: init, the CallResult type both calls return, the module. The rest: fastpath.h.
 */
#include "fastpath.h"

#include <structmember.h>

api_t api;
int fp_ready = 0;
int64_t fp_max_table_elements = 0;

static PyObject *fp_init(PyObject *self, PyObject *args) {
    PyObject *table;
    unsigned long long sizes[3];
    long long table_elements;
    if (!PyArg_ParseTuple(args, "O!(KKK)L", &PyTuple_Type, &table, &sizes[0], &sizes[1], &sizes[2],
                          &table_elements))
        return NULL;
    if (table_elements <= 0) {
        PyErr_SetString(PyExc_ValueError, "max_table_elements must be positive");
        return NULL;
    }
    fp_max_table_elements = table_elements;
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
    fp_ready = 1;
    Py_RETURN_NONE;
}

/* ---- CallResult: what one call did (native.RawCall has the same fields, for the ctypes path) ----
 *
 * A small object with its numbers kept as C values: making one is one allocation, and a field
 * becomes a Python object only when it is read (a call reads about half of them); a struct
 * sequence of the same fields was measurably slower (bench/design-figures.md: call-result). */

typedef struct {
    PyObject_HEAD
    PyObject *response, *stdout_, *log;   /* bytes or NULL (read as None) */
    unsigned long long error, trap, memory_size, pointer, length, fuel_used;
    long long instantiate_ns, run_ns;
    int outcome, export_;
    char stdout_overflow, log_truncated, over_budget;
} result_t;

static void result_dealloc(result_t *r) {
    Py_XDECREF(r->response);
    Py_XDECREF(r->stdout_);
    Py_XDECREF(r->log);
    PyObject_Free(r);
}

static PyMemberDef result_members[] = {
    {"outcome", T_INT, offsetof(result_t, outcome), READONLY, "OK, FAULT_INSTANTIATE, ... (the module's constants)"},
    {"response", T_OBJECT, offsetof(result_t, response), READONLY, "the handler's answer bytes (OK), else None"},
    {"error", T_ULONGLONG, offsetof(result_t, error), READONLY, "a wasmtime_error_t* of a fault (the reader owns it), else 0"},
    {"trap", T_ULONGLONG, offsetof(result_t, trap), READONLY, "a wasm_trap_t* of a fault (the reader owns it), else 0"},
    {"memory_size", T_ULONGLONG, offsetof(result_t, memory_size), READONLY, "linear memory size at a fault or a bounds refusal"},
    {"pointer", T_ULONGLONG, offsetof(result_t, pointer), READONLY, "what wasmhost_alloc returned, or the answer's pointer"},
    {"length", T_ULONGLONG, offsetof(result_t, length), READONLY, "the answer's declared length"},
    {"export", T_INT, offsetof(result_t, export_), READONLY, "which export was missing (0 alloc, 1 handle, 2 memory, 3 entry, 4 _initialize)"},
    {"fuel_used", T_ULONGLONG, offsetof(result_t, fuel_used), READONLY, "fuel the call consumed"},
    {"instantiate_ns", T_LONGLONG, offsetof(result_t, instantiate_ns), READONLY, "time to make the store and instantiate"},
    {"run_ns", T_LONGLONG, offsetof(result_t, run_ns), READONLY, "time in the guest"},
    {"stdout", T_OBJECT, offsetof(result_t, stdout_), READONLY, "what a WAGI program wrote to fd 1 (call_export), else None"},
    {"stdout_overflow", T_BOOL, offsetof(result_t, stdout_overflow), READONLY, "fd 1 passed its cap"},
    {"log", T_OBJECT, offsetof(result_t, log), READONLY, "log lines and stderr, in order, at most max_log_bytes"},
    {"log_truncated", T_BOOL, offsetof(result_t, log_truncated), READONLY, "the log passed its cap"},
    {"over_budget", T_BOOL, offsetof(result_t, over_budget), READONLY, "an inline attempt ran out of host calls"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject result_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wasmhost._fastpath.CallResult",
    .tp_doc = "What one fresh-instance call did (the fields of native.RawCall).",
    .tp_basicsize = sizeof(result_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)result_dealloc,
    .tp_members = result_members,
};

PyObject *fp_result(int outcome, PyObject *response, void *error, void *trap, uint64_t memory_size,
                    uint64_t pointer, uint64_t length, int export_, uint64_t fuel_used, int64_t instantiate_ns,
                    int64_t run_ns, PyObject *stdout_, int stdout_overflow, PyObject *log, int log_truncated,
                    int over_budget) {
    result_t *r = PyObject_New(result_t, &result_type);
    if (r == NULL) {
        Py_XDECREF(response);
        Py_XDECREF(stdout_);
        Py_XDECREF(log);
        return NULL;
    }
    r->response = response;
    r->stdout_ = stdout_;
    r->log = log;
    r->error = (unsigned long long)(uintptr_t)error;
    r->trap = (unsigned long long)(uintptr_t)trap;
    r->memory_size = memory_size;
    r->pointer = pointer;
    r->length = length;
    r->fuel_used = fuel_used;
    r->instantiate_ns = instantiate_ns;
    r->run_ns = run_ns;
    r->outcome = outcome;
    r->export_ = export_;
    r->stdout_overflow = (char)(stdout_overflow != 0);
    r->log_truncated = (char)(log_truncated != 0);
    r->over_budget = (char)(over_budget != 0);
    return (PyObject *)r;
}

static PyMethodDef methods[] = {
    {"init", fp_init, METH_VARARGS, "init(addresses, (sizeof instance, extern, val_raw), max_table_elements)"},
    {"call_handler", fp_call_handler, METH_VARARGS, "One fresh-instance call of a handler module -> CallResult."},
    {"call_export", fp_call_export, METH_VARARGS, "One fresh-instance run of a () -> () export -> CallResult."},
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
                                    "One wasm invocation per Python call (see csrc/fastpath.c).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastpath(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyType_Ready(&result_type) < 0 || PyModule_AddObjectRef(m, "CallResult", (PyObject *)&result_type) < 0 ||
        PyModule_AddIntConstant(m, "OK", OK) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_INSTANTIATE", FAULT_INSTANTIATE) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_RUN", FAULT_RUN) < 0 ||
        PyModule_AddIntConstant(m, "ALLOC_OUT_OF_BOUNDS", ALLOC_OUT_OF_BOUNDS) < 0 ||
        PyModule_AddIntConstant(m, "RESPONSE_TOO_LARGE", RESPONSE_TOO_LARGE) < 0 ||
        PyModule_AddIntConstant(m, "RESPONSE_OUT_OF_BOUNDS", RESPONSE_OUT_OF_BOUNDS) < 0 ||
        PyModule_AddIntConstant(m, "MISSING_EXPORT", MISSING_EXPORT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
