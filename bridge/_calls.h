/* Calls from the compiled hot paths back into Python, shared by the extensions
 * (bridge/audio/_vadcore.c, bridge/server/_dispatch.c, bridge/wire/_frames.c). */

#ifndef BRIDGE_CALLS_H
#define BRIDGE_CALLS_H

#include <Python.h>

/* hook() or hook(arg), unless the hook is unset or None; -1 with its exception set. */
static inline int call_hook(PyObject *hook, PyObject *arg) {
    if (hook == NULL || hook == Py_None)
        return 0;
    PyObject *done = arg == NULL ? PyObject_CallNoArgs(hook) : PyObject_CallOneArg(hook, arg);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* The call that just failed raised an Exception: self.name() or self.name(arg) handles it
 * as the exception being handled (so its log.exception shows it, with its traceback), and
 * it is cleared. Anything that is not an Exception (a cancellation, an exit) goes on up:
 * -1, as when the handler itself raises. */
static inline int call_handling(PyObject *self, PyObject *name, PyObject *arg) {
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *type, *raised, *traceback;
    PyErr_Fetch(&type, &raised, &traceback);
    PyErr_NormalizeException(&type, &raised, &traceback);
    if (traceback != NULL)
        PyException_SetTraceback(raised, traceback);
    PyObject *before = PyErr_GetHandledException();
    PyErr_SetHandledException(raised);
    PyObject *done = arg == NULL ? PyObject_CallMethodNoArgs(self, name)
                                 : PyObject_CallMethodOneArg(self, name, arg);
    PyErr_SetHandledException(before);
    Py_XDECREF(before);
    Py_XDECREF(type);
    Py_XDECREF(raised);
    Py_XDECREF(traceback);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

#endif
