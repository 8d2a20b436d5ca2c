/*
 * wasmhost._ticker: the epoch ticker as a native thread.
 *
 * Why: wall-clock deadlines are epoch interruption, so they are only as punctual
 * as the thread that increments the epoch. A Python thread needs the GIL for
 * every tick; with the event loop and a few busy threads holding it, a 1 s
 * timeout_ms stretched to 1.4-4.9 s (tests/test_soak.py). This thread never
 * touches Python: it sleeps on CLOCK_MONOTONIC and calls
 * wasmtime_engine_increment_epoch, which is an atomic add.
 *
 * It holds its own reference to the Engine (wasmtime_engine_clone), so the
 * Engine cannot be freed under it however the Python objects are torn down.
 * Like _fastpath, it does not link against wasmtime: Python passes the
 * addresses of the three C API functions from the library wasmtime-py loaded.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    void *engine;                        /* our own clone of the Engine */
    void (*increment)(void *engine);
    void (*drop)(void *engine);
    int64_t interval_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv;                   /* signalled by stop() so it need not wait a tick */
    bool stopping;
    pthread_t thread;
    pid_t pid;                           /* the thread exists only in the process that started it */
} ticker_t;

static const char *CAPSULE = "wasmhost._ticker.ticker";

static void add_ns(struct timespec *t, int64_t ns) {
    t->tv_sec += ns / 1000000000;
    t->tv_nsec += ns % 1000000000;
    if (t->tv_nsec >= 1000000000) {
        t->tv_sec += 1;
        t->tv_nsec -= 1000000000;
    }
}

/* Ticks at absolute times, so a late wake-up does not push every later tick. */
static void *run(void *arg) {
    ticker_t *t = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        add_ns(&next, t->interval_ns);
        int rc = 0;
        while (!t->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&t->cv, &t->mu, &next);
        if (t->stopping) break;
        t->increment(t->engine);
        /* After a long stall (a suspended VM), restart the schedule instead of
           firing a burst of catch-up ticks that would end deadlines early. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t behind = (int64_t)(now.tv_sec - next.tv_sec) * 1000000000 + (now.tv_nsec - next.tv_nsec);
        if (behind > t->interval_ns) next = now;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void stop_and_free(ticker_t *t) {
    /* In a forked child the thread does not exist and the mutex may have been
       held at the fork: touch nothing and leave the struct (a few bytes). */
    if (t->pid != getpid()) return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    t->drop(t->engine);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    PyMem_RawFree(t);
}

/* A capsule dropped without stop() (a WasmEngine never closed) still stops
   its thread; at interpreter exit the thread simply ends with the process. */
static void capsule_destructor(PyObject *capsule) {
    ticker_t *t = PyCapsule_GetPointer(capsule, CAPSULE);
    if (t == NULL) {
        PyErr_Clear();
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    stop_and_free(t);
    Py_END_ALLOW_THREADS
}

static PyObject *tk_start(PyObject *self, PyObject *args) {
    unsigned long long engine, clone, increment, drop;
    long long interval_ns;
    if (!PyArg_ParseTuple(args, "KKKKL", &engine, &clone, &increment, &drop, &interval_ns)) return NULL;
    if (!engine || !clone || !increment || !drop) {
        PyErr_SetString(PyExc_ValueError, "engine and function addresses must not be NULL");
        return NULL;
    }
    if (interval_ns < 100000 || interval_ns > 10000000000LL) {
        PyErr_SetString(PyExc_ValueError, "interval must be between 0.1 ms and 10 s");
        return NULL;
    }
    ticker_t *t = PyMem_RawCalloc(1, sizeof *t);
    if (t == NULL) return PyErr_NoMemory();
    t->engine = ((void *(*)(void *))(uintptr_t)clone)((void *)(uintptr_t)engine);
    t->increment = (void (*)(void *))(uintptr_t)increment;
    t->drop = (void (*)(void *))(uintptr_t)drop;
    t->interval_ns = interval_ns;
    t->pid = getpid();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&t->mu, NULL);
    int rc = pthread_create(&t->thread, NULL, run, t);
    if (rc != 0) {
        t->drop(t->engine);
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        PyMem_RawFree(t);
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *capsule = PyCapsule_New(t, CAPSULE, capsule_destructor);
    if (capsule == NULL) {
        Py_BEGIN_ALLOW_THREADS
        stop_and_free(t);
        Py_END_ALLOW_THREADS
    }
    return capsule;
}

static PyObject *tk_stop(PyObject *self, PyObject *capsule) {
    ticker_t *t = PyCapsule_GetPointer(capsule, CAPSULE);
    if (t == NULL) return NULL;
    /* Detach first, so the destructor (and a second stop) find nothing to free. */
    if (PyCapsule_SetDestructor(capsule, NULL) < 0) return NULL;
    if (PyCapsule_SetName(capsule, "wasmhost._ticker.stopped") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    stop_and_free(t);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *tk_alive(PyObject *self, PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, CAPSULE)) Py_RETURN_FALSE;
    ticker_t *t = PyCapsule_GetPointer(capsule, CAPSULE);
    return PyBool_FromLong(t != NULL && t->pid == getpid());
}

static PyMethodDef methods[] = {
    {"start", tk_start, METH_VARARGS,
     "start(engine, clone_fn, increment_fn, delete_fn, interval_ns) -> ticker: a native thread that "
     "increments the engine's epoch every interval."},
    {"stop", tk_stop, METH_O, "stop(ticker): stop the thread, wait for it, release its Engine reference."},
    {"alive", tk_alive, METH_O,
     "alive(ticker) -> whether it is started, not stopped, and this is the process that started it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT, .m_name = "wasmhost._ticker", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__ticker(void) { return PyModule_Create(&module); }
