/* A responder's hook dispatch, compiled (bridge/server/runner.py's ResponderRunner is a
 * Dispatch): offer(hook, *args) runs a plain hook inline when nothing is queued before it,
 * else queues it; a hook the responder does not handle is not delivered. Every chunk's
 * frames are offered to every listener, so this was a Python frame and some ten attribute
 * operations a chunk; what is rare (queueing, a full queue, a hook that raised) stays in
 * Python: the subclass's _enqueue(hook, args) and _report(hook).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "../_calls.h"

typedef struct {
    PyObject_HEAD
    PyObject *hooks;  /* the hooks delivered at all (a frozenset of names) */
    PyObject *inline_calls; /* name -> the bound plain function, for the hooks run inline */
    char busy;        /* a hook is running: an inline call would overtake it */
    int waiting;      /* items queued and not yet taken */
} Dispatch;

static PyObject *ENQUEUE, *REPORT; /* "_enqueue", "_report" */

static PyObject *Dispatch_offer(Dispatch *d, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1)
        return PyErr_Format(PyExc_TypeError, "offer(hook, *args) needs the hook's name");
    PyObject *hook = args[0];
    int handled = d->hooks == NULL ? 0 : PySet_Contains(d->hooks, hook);
    if (handled <= 0)
        return handled < 0 ? NULL : Py_NewRef(Py_True);
    PyObject *call = d->inline_calls == NULL ? NULL : PyDict_GetItemWithError(d->inline_calls, hook);
    if (call == NULL && PyErr_Occurred())
        return NULL;
    if (call != NULL && !d->busy && !d->waiting) {
        d->busy = 1; /* what the hook causes (a frame sent, heard back) queues behind it */
        Py_INCREF(call);
        PyObject *done = PyObject_Vectorcall(call, args + 1, nargs - 1, NULL);
        Py_DECREF(call);
        d->busy = 0;
        if (done == NULL && call_handling((PyObject *)d, REPORT, hook) < 0) /* logged */
            return NULL;
        Py_XDECREF(done);
        return Py_NewRef(Py_True);
    }
    PyObject *rest = PyTuple_New(nargs - 1);
    if (rest == NULL)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++)
        PyTuple_SET_ITEM(rest, i - 1, Py_NewRef(args[i]));
    PyObject *call_args[] = {(PyObject *)d, hook, rest};
    PyObject *queued = PyObject_VectorcallMethod(ENQUEUE, call_args, 3, NULL);
    Py_DECREF(rest);
    return queued;
}

static int Dispatch_traverse(Dispatch *d, visitproc visit, void *arg) {
    Py_VISIT(d->hooks);
    Py_VISIT(d->inline_calls);
    return 0;
}

static int Dispatch_clear(Dispatch *d) {
    Py_CLEAR(d->hooks);
    Py_CLEAR(d->inline_calls);
    return 0;
}

static void Dispatch_dealloc(Dispatch *d) {
    PyObject_GC_UnTrack(d);
    Dispatch_clear(d);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyMemberDef Dispatch_members[] = {
    {"_hooks", T_OBJECT, offsetof(Dispatch, hooks), 0, "the hooks delivered (a frozenset)"},
    {"_inline", T_OBJECT, offsetof(Dispatch, inline_calls), 0,
     "hook name -> plain function, run inline when nothing is queued"},
    {"_busy", T_BOOL, offsetof(Dispatch, busy), 0, "a hook is running"},
    {"_waiting", T_INT, offsetof(Dispatch, waiting), 0, "items queued and not yet taken"},
    {NULL},
};

static PyMethodDef Dispatch_methods[] = {
    {"offer", (PyCFunction)(void (*)(void))Dispatch_offer, METH_FASTCALL,
     "offer(hook, *args): deliver a hook call without waiting (inline, or queued)"},
    {NULL},
};

static PyTypeObject DispatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.server._dispatch.Dispatch",
    .tp_basicsize = sizeof(Dispatch),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A responder's hook dispatch (bridge/server/runner.py sets it up).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Dispatch_dealloc,
    .tp_traverse = (traverseproc)Dispatch_traverse,
    .tp_clear = (inquiry)Dispatch_clear,
    .tp_methods = Dispatch_methods,
    .tp_members = Dispatch_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dispatch", "A responder's hook dispatch, compiled.", -1, NULL,
};

PyMODINIT_FUNC PyInit__dispatch(void) {
    if (PyType_Ready(&DispatchType) < 0)
        return NULL;
    if ((ENQUEUE == NULL && (ENQUEUE = PyUnicode_InternFromString("_enqueue")) == NULL) ||
        (REPORT == NULL && (REPORT = PyUnicode_InternFromString("_report")) == NULL))
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddObjectRef(m, "Dispatch", (PyObject *)&DispatchType) < 0)
        Py_CLEAR(m);
    return m;
}
