/*
 * The parts of wasmhost._fastpath shared between its files (see fastpath.c for why it exists).
 *
 * fastpath.c        the module: init (wasmtime's function addresses), the CallResult type, methods
 * fastpath_call.c   one fresh-instance call: store, limits, instantiate, run, read the answer
 * fastpath_host.c   host functions in C: wasmhost.log and WASI fd_write, and the WASI config
 * fastpath_codec.c  the handler interface's msgpack: the request encoder, the common response's decoder
 */
#ifndef WASMHOST_FASTPATH_H
#define WASMHOST_FASTPATH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint64_t store_id; size_t private_; } instance_t;               /* wasmtime_instance_t */
typedef struct { uint8_t kind; uint8_t pad[7]; uint64_t of[3]; } extern_t;      /* wasmtime_extern_t */
typedef union { int32_t i32; int64_t i64; uint8_t v128[16]; } val_raw_t;         /* wasmtime_val_raw_t */

typedef struct { size_t size; void **data; } valtype_vec_t;                      /* wasm_valtype_vec_t */
typedef struct { size_t size; uint8_t *data; } byte_vec_t;                       /* wasm_byte_vec_t */

enum { EXTERN_FUNC = 0, EXTERN_MEMORY = 3 };

/* Outcomes of a call (CallResult.outcome). The module exports them by these names; Python
 * (native.Outcome) checks at load that its values are the same, and classifies them. */
enum {
    OK = 0,
    FAULT_INSTANTIATE = 1,      /* error, trap */
    FAULT_RUN = 2,              /* error, trap, memory_size at the fault */
    ALLOC_OUT_OF_BOUNDS = 3,    /* pointer (what wasmhost_alloc returned), memory_size */
    RESPONSE_TOO_LARGE = 4,     /* length (what the guest declared) */
    RESPONSE_OUT_OF_BOUNDS = 5, /* pointer, length, memory_size */
    MISSING_EXPORT = 6,         /* export: 0 alloc, 1 handle, 2 memory, 3 the entry point, 4 _initialize */
};

/* The wasmtime C API, by the addresses init() receives. */
typedef struct {
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
} api_t;
extern api_t api;
extern int fp_ready;
extern int64_t fp_max_table_elements; /* the Store limiter's, from init() (native.MAX_TABLE_ELEMENTS) */

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

/* fastpath_host.c */
void *fp_c_log(void *env, void *caller, val_raw_t *args, size_t nargs);
void *fp_c_fd_write(void *env, void *caller, val_raw_t *args, size_t nargs);
PyObject *fp_define_log(PyObject *self, PyObject *args);
PyObject *fp_define_wasi_stdio(PyObject *self, PyObject *args);
PyObject *fp_wasi_config(PyObject *self, PyObject *args);
PyObject *fp_take_log(hoststate_t *st);
PyObject *fp_take_out(hoststate_t *st);

/* fastpath_call.c */
PyObject *fp_call_handler(PyObject *self, PyObject *args);
PyObject *fp_call_export(PyObject *self, PyObject *args);

/* fastpath_codec.c */
bool fp_valid_utf8(const uint8_t *s, size_t n);
PyObject *fp_encode_request(PyObject *self, PyObject *args);
PyObject *fp_decode_response(PyObject *self, PyObject *arg);

/* fastpath.c: a CallResult; steals `response`, `stdout_` and `log` (NULL: None); the caller
 * has checked that none of them is NULL from a failed allocation. */
PyObject *fp_result(int outcome, PyObject *response, void *error, void *trap, uint64_t memory_size,
                    uint64_t pointer, uint64_t length, int export_, uint64_t fuel_used, int64_t instantiate_ns,
                    int64_t run_ns, PyObject *stdout_, int stdout_overflow, PyObject *log, int log_truncated,
                    int over_budget);

#define NOT_READY() (PyErr_SetString(PyExc_RuntimeError, "_fastpath.init() was not called"), (PyObject *)NULL)

#endif
