/* The output pacer's clock, compiled: bridge/audio/pacer.py's OutputPacer is a Pacer.
 *
 * A live stream asks it four or five times a message (may this go now, how much of it,
 * when was it due, it went): in Python each was a frame of its own, for a few float
 * operations. The arithmetic is the same as Python's: doubles, and the samples sent since
 * the run's origin counted as an integer, so the clock never drifts.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_pacer.h"

static int Pacer_init(Pacer *p, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"sample_rate", "lead_ms", "frame", "early_s", NULL};
    double lead_ms, early_s;
    int frame;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "idid", names, &p->sample_rate, &lead_ms,
                                     &frame, &early_s))
        return -1;
    if (lead_ms <= 0 || p->sample_rate <= 0) {
        PyErr_SetString(PyExc_ValueError, "lead_ms and sample_rate must be positive");
        return -1;
    }
    double half_frame = (double)frame / p->sample_rate / 2;
    p->lead = lead_ms / 1000;
    p->slack = early_s > half_frame ? early_s : half_frame;
    p->origin = p->play_end = 0.0;
    p->samples = p->underruns = p->pauses = p->samples_sent = 0;
    p->streaming = 0;
    return 0;
}

/* The arguments of a fastcall method: n numbers, doubles for `now`, integers for samples. */
static int numbers(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n, const char *name) {
    if (nargs == n)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s takes %zd arguments (%zd given)", name, n, nargs);
    return -1;
}

static PyObject *Pacer_lead_at(Pacer *p, PyObject *const *args, Py_ssize_t nargs) {
    double now;
    if (numbers(args, nargs, 1, "lead_at") < 0 || ((now = PyFloat_AsDouble(args[0])) == -1.0 &&
                                                   PyErr_Occurred()))
        return NULL;
    return PyFloat_FromDouble(pacer_lead_at(p, now));
}

static int now_and_count(PyObject *const *args, Py_ssize_t nargs, const char *name, double *now,
                         long long *count) {
    if (numbers(args, nargs, 2, name) < 0)
        return -1;
    if ((*now = PyFloat_AsDouble(args[0])) == -1.0 && PyErr_Occurred())
        return -1;
    if ((*count = PyLong_AsLongLong(args[1])) == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

static PyObject *Pacer_send_at(Pacer *p, PyObject *const *args, Py_ssize_t nargs) {
    double now;
    long long samples;
    if (now_and_count(args, nargs, "send_at", &now, &samples) < 0)
        return NULL;
    return PyFloat_FromDouble(pacer_send_at(p, now, samples));
}

static PyObject *Pacer_frames_due(Pacer *p, PyObject *const *args, Py_ssize_t nargs) {
    double now;
    long long frame;
    if (now_and_count(args, nargs, "frames_due", &now, &frame) < 0)
        return NULL;
    if (frame <= 0) {
        PyErr_SetString(PyExc_ValueError, "a frame has samples");
        return NULL;
    }
    return PyLong_FromLongLong(pacer_frames_due(p, now, frame));
}

static PyObject *Pacer_allowed_at(Pacer *p, PyObject *frame) {
    long long n = PyLong_AsLongLong(frame);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(pacer_allowed_at(p, n));
}

static PyObject *Pacer_sent(Pacer *p, PyObject *const *args, Py_ssize_t nargs) {
    double now;
    long long samples;
    if (now_and_count(args, nargs, "sent", &now, &samples) < 0)
        return NULL;
    pacer_sent(p, now, samples);
    Py_RETURN_NONE;
}

static PyObject *Pacer_pause(Pacer *p, PyObject *now_arg) {
    double now = PyFloat_AsDouble(now_arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    p->streaming = 0;
    p->pauses++;
    return PyFloat_FromDouble(pacer_lead_at(p, now));
}

static PyObject *Pacer_end_stream(Pacer *p, PyObject *unused) {
    p->streaming = 0;
    Py_RETURN_NONE;
}

static PyMethodDef Pacer_methods[] = {
    {"lead_at", (PyCFunction)(void (*)(void))Pacer_lead_at, METH_FASTCALL,
     "lead_at(now): seconds of audio sent but not yet played at now (never negative)."},
    {"send_at", (PyCFunction)(void (*)(void))Pacer_send_at, METH_FASTCALL,
     "send_at(now, samples): earliest clock time a frame of samples may go (now if it may)."},
    {"frames_due", (PyCFunction)(void (*)(void))Pacer_frames_due, METH_FASTCALL,
     "frames_due(now, frame): frames of frame samples that may go now in one message (at "
     "least one: ask once send_at says now); frames due within half a frame go with it."},
    {"allowed_at", (PyCFunction)Pacer_allowed_at, METH_O,
     "allowed_at(frame): clock time the next frame is due (send_at's deadline)."},
    {"sent", (PyCFunction)(void (*)(void))Pacer_sent, METH_FASTCALL,
     "sent(now, samples): account a frame sent at now; a gap mid-stream is an underrun."},
    {"pause", (PyCFunction)Pacer_pause, METH_O,
     "pause(now): send nothing more until resumed; returns the lead that still plays."},
    {"end_stream", (PyCFunction)Pacer_end_stream, METH_NOARGS,
     "end_stream(): nothing more is coming for now: the silence is not an underrun."},
    {NULL},
};

static PyMemberDef Pacer_members[] = {
    {"sample_rate", T_INT, offsetof(Pacer, sample_rate), READONLY, "samples a second"},
    {"lead", T_DOUBLE, offsetof(Pacer, lead), 0, "seconds sent ahead of playback, at most"},
    {"slack", T_DOUBLE, offsetof(Pacer, slack), 0, "how early a due frame may go (s)"},
    {"play_end", T_DOUBLE, offsetof(Pacer, play_end), READONLY,
     "clock time at which the audio sent so far finishes playing"},
    {"underruns", T_LONGLONG, offsetof(Pacer, underruns), READONLY, "gaps mid-stream"},
    {"pauses", T_LONGLONG, offsetof(Pacer, pauses), READONLY, "times paused"},
    {"samples_sent", T_LONGLONG, offsetof(Pacer, samples_sent), READONLY, "samples sent"},
    {NULL},
};

static PyTypeObject PacerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.audio._pacer.Pacer",
    .tp_basicsize = sizeof(Pacer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The pacer's clock and counts (bridge/audio/pacer.py's OutputPacer is one).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pacer_init,
    .tp_methods = Pacer_methods,
    .tp_members = Pacer_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pacer", "The output pacer's clock, compiled.", -1, NULL,
};

PyMODINIT_FUNC PyInit__pacer(void) {
    if (PyType_Ready(&PacerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PacerType);
    if (PyModule_AddObject(m, "Pacer", (PyObject *)&PacerType) < 0) {
        Py_DECREF(&PacerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
