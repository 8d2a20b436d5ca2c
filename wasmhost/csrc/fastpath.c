/*
 * wasmhost._fastpath: one invocation in one call from Python.
 *
 * Why: every ctypes call costs ~0.75 us on these machines, and a fresh-instance
 * handler call needs about twenty of them (store, limits, fuel, deadline,
 * instantiate, three exports, two calls, memory reads and writes, fuel, delete).
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

/* ---- CallResult: what one call did (native.RawCall has the same fields, for the ctypes path) ---- */

static PyStructSequence_Field result_fields[] = {
    {"outcome", "OK, FAULT_INSTANTIATE, ... (the module's constants)"},
    {"response", "the handler's answer bytes (OK), else None"},
    {"error", "a wasmtime_error_t* (faults; the caller owns it), else 0"},
    {"trap", "a wasm_trap_t* (faults; the caller owns it), else 0"},
    {"memory_size", "the linear memory's size at a fault or a bounds refusal"},
    {"pointer", "what wasmhost_alloc returned, or the answer's pointer"},
    {"length", "the answer's declared length"},
    {"export", "which export was missing: 0 alloc, 1 handle, 2 memory, 3 entry point, 4 _initialize"},
    {"fuel_used", "fuel the call consumed"},
    {"instantiate_ns", "time to make the store and instantiate"},
    {"run_ns", "time in the guest"},
    {"stdout", "what a WAGI program wrote to fd 1 (call_export), else None"},
    {"stdout_overflow", "fd 1 passed its cap"},
    {"log", "log lines and stderr, in order, at most max_log_bytes"},
    {"log_truncated", "the log passed its cap"},
    {"over_budget", "an inline attempt ran out of host calls"},
    {NULL, NULL},
};
static PyStructSequence_Desc result_desc = {"wasmhost._fastpath.CallResult", "What one fresh-instance call did.",
                                            result_fields, 16};
static PyTypeObject *result_type = NULL;

PyObject *fp_result(int outcome, PyObject *response, void *error, void *trap, uint64_t memory_size,
                    uint64_t pointer, uint64_t length, int export_, uint64_t fuel_used, int64_t instantiate_ns,
                    int64_t run_ns, PyObject *stdout_, int stdout_overflow, PyObject *log, int log_truncated,
                    int over_budget) {
    PyObject *r = PyStructSequence_New(result_type);
    if (r == NULL) {
        Py_XDECREF(response);
        Py_XDECREF(stdout_);
        Py_XDECREF(log);
        return NULL;
    }
    PyObject *items[16] = {
        PyLong_FromLong(outcome), response ? response : Py_NewRef(Py_None),
        PyLong_FromVoidPtr(error), PyLong_FromVoidPtr(trap), PyLong_FromUnsignedLongLong(memory_size),
        PyLong_FromUnsignedLongLong(pointer), PyLong_FromUnsignedLongLong(length), PyLong_FromLong(export_),
        PyLong_FromUnsignedLongLong(fuel_used), PyLong_FromLongLong(instantiate_ns), PyLong_FromLongLong(run_ns),
        stdout_ ? stdout_ : Py_NewRef(Py_None), PyBool_FromLong(stdout_overflow),
        log ? log : Py_NewRef(Py_None), PyBool_FromLong(log_truncated), PyBool_FromLong(over_budget),
    };
    bool failed = false;
    for (int i = 0; i < 16; i++) {
        if (items[i] == NULL) failed = true;
        PyStructSequence_SET_ITEM(r, i, items[i]);  /* (a NULL item is tolerated by the dealloc) */
    }
    if (failed) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
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
    result_type = PyStructSequence_NewType(&result_desc);
    if (result_type == NULL || PyModule_AddObjectRef(m, "CallResult", (PyObject *)result_type) < 0 ||
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
