/* The VAD's per-frame decisions, compiled: vote windows, onset, start and stop.
 *
 * bridge/audio/vad.py drives it. Each 8 kHz frame is classified by webrtcvad (a Python
 * callable: webrtcvad's own extension), voiced frames keep a copy until a decision needs
 * the spectral gate's verdict on them (the flatness of the frame's spectrum, here), and
 * start / stop come from counts over the start and stop windows. In Python this bookkeeping cost more than
 * webrtcvad itself: some twenty interpreted calls a frame, five frames a 100 ms chunk.
 *
 * The decisions are those of judging every frame at once: they depend only on counts,
 * and pending frames are judged newest first, only until a decision is known.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { UNVOICED = 0, VOICED = 1, PENDING = 2 };

#define MAX_FRAME 480 /* 30 ms at 16 kHz: more than any VAD frame (8 kHz) */
#define FLOOR 3e-5f   /* added to each magnitude: silence is flat, not log(0) */

/* The Hann-windowed DFT of one frame size, bins 2 to size / 2 (0-1 hold DC and hum), as
 * cosine and sine tables: made once per size, shared by every session. */
typedef struct {
    int size, bins;
    float *cos, *sin; /* [n * bins + k] */
} Spectrum;

static Spectrum spectra[4];

static const Spectrum *spectrum_of(int size) {
    for (int i = 0; i < 4; i++)
        if (spectra[i].size == size)
            return &spectra[i];
    for (int i = 0; i < 4; i++) {
        Spectrum *s = &spectra[i];
        if (s->size)
            continue;
        int bins = size / 2 - 1;
        s->cos = PyMem_RawMalloc(sizeof(float) * size * bins);
        s->sin = PyMem_RawMalloc(sizeof(float) * size * bins);
        if (!s->cos || !s->sin) {
            PyMem_RawFree(s->cos);
            PyMem_RawFree(s->sin);
            s->cos = s->sin = NULL;
            return NULL;
        }
        for (int n = 0; n < size; n++) {
            double window = 0.5 - 0.5 * cos(2 * M_PI * n / (size - 1)); /* numpy's hanning */
            for (int k = 0; k < bins; k++) {
                double angle = 2 * M_PI * n * (k + 2) / size;
                s->cos[n * bins + k] = (float)(window * cos(angle));
                s->sin[n * bins + k] = (float)(window * sin(angle));
            }
        }
        s->bins = bins;
        s->size = size;
        return s;
    }
    return NULL;
}

/* Geometric over arithmetic mean of the power spectrum: near 0 for voice, high for noise. */
static double flatness(const Spectrum *s, const int16_t *frame) {
    float re[MAX_FRAME / 2] = {0}, im[MAX_FRAME / 2] = {0};
    int bins = s->bins;
    for (int n = 0; n < s->size; n++) {
        float x = frame[n];
        const float *c = s->cos + n * bins, *sn = s->sin + n * bins;
        for (int k = 0; k < bins; k++) {
            re[k] += x * c[k];
            im[k] += x * sn[k];
        }
    }
    double log_sum = 0, power_sum = 0;
    for (int k = 0; k < bins; k++) {
        double magnitude = sqrtf(re[k] * re[k] + im[k] * im[k]) + FLOOR;
        log_sum += logf((float)magnitude);
        power_sum += magnitude * magnitude;
    }
    return exp(2 * log_sum / bins) * bins / power_sum;
}

typedef struct {
    int8_t *votes;    /* ring of the last `size` votes */
    int16_t *frames;  /* a pending vote's frame, at its slot */
    int size, head, len, voiced, pending;
} Window;

typedef struct {
    PyObject_HEAD
    PyObject *classify; /* (frame bytes, samples) -> bool: webrtcvad */
    const Spectrum *spectrum; /* the gate's; NULL: no gate */
    double max_flatness;      /* a voiced frame flatter than this is noise */
    PyObject *onset, *started, *stopped; /* the event classes */
    PyObject *samples; /* frame_size as an int: classify's second argument */
    int frame_size;
    double frame_ms;
    Window start, stop;
    int to_start, to_go_on, onset_frames;
    int run;
    long long frames;
    double started_at;
    int speaking;
    double last_voiced_ms;
    long long segments;
} Core;

static int window_init(Window *w, int size, int frame_size) {
    w->votes = PyMem_Calloc(size, 1);
    w->frames = PyMem_Calloc((size_t)size * frame_size, sizeof(int16_t));
    w->size = size;
    w->head = w->len = w->voiced = w->pending = 0;
    return w->votes && w->frames ? 0 : -1;
}

static void window_free(Window *w) {
    PyMem_Free(w->votes);
    PyMem_Free(w->frames);
}

static void count(Window *w, int vote, int sign) {
    if (vote == PENDING)
        w->pending += sign;
    else
        w->voiced += sign * vote;
}

/* slot i of the window, 0 the oldest */
static int slot(const Window *w, int i) { return (w->head + i) % w->size; }

static void push(Window *w, int vote, const int16_t *frame, int frame_size) {
    int at;
    if (w->len == w->size) {
        count(w, w->votes[w->head], -1);
        at = w->head;
        w->head = (w->head + 1) % w->size;
    } else {
        at = slot(w, w->len);
        w->len++;
    }
    w->votes[at] = (int8_t)vote;
    if (vote == PENDING)
        memcpy(w->frames + (size_t)at * frame_size, frame, frame_size * sizeof(int16_t));
    count(w, vote, 1);
}

static void clear(Window *w) { w->head = w->len = w->voiced = w->pending = 0; }

/* webrtcvad's verdict on one frame: 1 voiced, 0 not, -1 with an exception set */
static int classify(const Core *c, const int16_t *frame) {
    PyObject *args[2] = {PyBytes_FromStringAndSize((const char *)frame, c->frame_size * 2),
                         c->samples};
    if (args[0] == NULL)
        return -1;
    PyObject *result = PyObject_Vectorcall(c->classify, args, 2, NULL);
    Py_DECREF(args[0]);
    if (result == NULL)
        return -1;
    int yes = PyObject_IsTrue(result);
    Py_DECREF(result);
    return yes;
}

static int not_flat(const Core *c, const int16_t *frame) {
    return flatness(c->spectrum, frame) <= c->max_flatness;
}

/* Whether `needed` votes are voiced, judging pending ones newest first until it is known. */
static int at_least_voiced(const Core *c, Window *w, int needed) {
    for (int i = w->len - 1; i >= 0; i--) {
        if (w->voiced >= needed || w->voiced + w->pending < needed)
            break;
        int at = slot(w, i);
        if (w->votes[at] != PENDING)
            continue;
        int yes = not_flat(c, w->frames + (size_t)at * c->frame_size);
        count(w, PENDING, -1);
        w->votes[at] = (int8_t)yes;
        count(w, yes, 1);
    }
    return w->voiced >= needed;
}

static double position_ms(const Core *c) { return (double)c->frames * c->frame_ms; }

static PyObject *event(PyObject *cls, double at_ms) {
    return PyObject_CallFunction(cls, "d", at_ms);
}

/* One frame: a new reference to its event, Py_None for none, NULL on error. */
static PyObject *process_frame(Core *c, const int16_t *frame, int masked) {
    int vote = 0;
    if (!masked && (vote = classify(c, frame)) < 0)
        return NULL;
    c->frames++;
    c->run = vote ? c->run + 1 : 0;
    if (vote) {
        c->last_voiced_ms = position_ms(c);
        if (c->spectrum != NULL)
            vote = PENDING;
    }
    Window *w = c->speaking ? &c->stop : &c->start;
    push(w, vote, frame, c->frame_size);
    PyObject *onset = Py_None;
    Py_INCREF(onset);
    if (c->run == c->onset_frames && !c->speaking) {
        if (c->spectrum == NULL || not_flat(c, frame)) {
            Py_DECREF(onset);
            if ((onset = event(c->onset, position_ms(c) - c->run * c->frame_ms)) == NULL)
                return NULL;
        }
    }
    if (w->len < w->size)
        return onset;
    double window_ms = w->len * c->frame_ms;
    if (!c->speaking) {
        if (!at_least_voiced(c, w, c->to_start))
            return onset;
        Py_DECREF(onset);
        c->speaking = 1;
        clear(&c->start);
        c->started_at = position_ms(c) - window_ms;
        return event(c->started, c->started_at);
    }
    if (at_least_voiced(c, w, c->to_go_on))
        return onset;
    Py_DECREF(onset);
    c->speaking = 0;
    clear(&c->stop);
    c->segments++;
    double at = position_ms(c) - window_ms;
    return PyObject_CallFunction(c->stopped, "dd", at, at - c->started_at);
}

static int get_frames(Core *c, PyObject *block, Py_buffer *view) {
    if (PyObject_GetBuffer(block, view, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->len % (c->frame_size * 2)) {
        PyErr_Format(PyExc_ValueError, "%zd bytes is not whole frames of %d samples",
                     view->len, c->frame_size);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *Core_process(Core *c, PyObject *args) {
    PyObject *frame;
    int masked = 0;
    if (!PyArg_ParseTuple(args, "O|p", &frame, &masked))
        return NULL;
    Py_buffer view;
    if (get_frames(c, frame, &view) < 0)
        return NULL;
    if (view.len != c->frame_size * 2) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "a frame is %d samples", c->frame_size);
    }
    PyObject *result = process_frame(c, view.buf, masked);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *Core_process_block(Core *c, PyObject *args) {
    PyObject *block, *masks, *hear;
    if (!PyArg_ParseTuple(args, "OOO", &block, &masks, &hear))
        return NULL;
    Py_buffer view;
    if (get_frames(c, block, &view) < 0)
        return NULL;
    Py_ssize_t n = view.len / (c->frame_size * 2);
    if (masks != Py_None && (!PyBytes_Check(masks) || PyBytes_GET_SIZE(masks) != n)) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "masks must be None or %zd bytes", n);
    }
    const int16_t *frames = view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int masked = masks != Py_None && PyBytes_AS_STRING(masks)[i];
        PyObject *found = process_frame(c, frames + i * c->frame_size, masked);
        if (found != NULL && found != Py_None) {
            PyObject *heard = PyObject_CallOneArg(hear, found);
            Py_DECREF(found);
            found = heard;
        }
        if (found == NULL) {
            PyBuffer_Release(&view);
            return NULL;
        }
        Py_DECREF(found);
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static int Core_init(Core *c, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"classify", "max_flatness", "events", "frame_size", "frame_ms",
                            "start_frames", "to_start", "stop_frames", "to_go_on",
                            "onset_frames", NULL};
    PyObject *classify, *events;
    int start_frames, stop_frames;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OdOidiiiii", names, &classify,
                                     &c->max_flatness, &events, &c->frame_size, &c->frame_ms,
                                     &start_frames, &c->to_start, &stop_frames, &c->to_go_on,
                                     &c->onset_frames))
        return -1;
    if (c->frame_size < 4 || c->frame_size > MAX_FRAME || start_frames <= 0 ||
        stop_frames <= 0 || c->start.votes) {
        PyErr_SetString(PyExc_ValueError, "frames of 4 to 480 samples, windows of one, once");
        return -1;
    }
    if (c->max_flatness < 1 && (c->spectrum = spectrum_of(c->frame_size)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *onset, *started, *stopped;
    if (!PyArg_ParseTuple(events, "OOO", &onset, &started, &stopped))
        return -1;
    PyObject *owned[] = {classify, onset, started, stopped};
    for (int i = 0; i < 4; i++)
        Py_INCREF(owned[i]);
    c->classify = classify;
    c->onset = onset;
    c->started = started;
    c->stopped = stopped;
    if ((c->samples = PyLong_FromLong(c->frame_size)) == NULL)
        return -1;
    if (window_init(&c->start, start_frames, c->frame_size) < 0 ||
        window_init(&c->stop, stop_frames, c->frame_size) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    c->last_voiced_ms = -INFINITY;
    return 0;
}

static int Core_traverse(Core *c, visitproc visit, void *arg) {
    Py_VISIT(c->classify);
    Py_VISIT(c->onset);
    Py_VISIT(c->started);
    Py_VISIT(c->stopped);
    Py_VISIT(c->samples);
    return 0;
}

static int Core_clear(Core *c) {
    Py_CLEAR(c->classify);
    Py_CLEAR(c->onset);
    Py_CLEAR(c->started);
    Py_CLEAR(c->stopped);
    Py_CLEAR(c->samples);
    return 0;
}

static void Core_dealloc(Core *c) {
    PyObject_GC_UnTrack(c);
    Core_clear(c);
    window_free(&c->start);
    window_free(&c->stop);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *Core_get_speaking(Core *c, void *unused) { return PyBool_FromLong(c->speaking); }

static PyObject *Core_get_position_ms(Core *c, void *unused) {
    return PyFloat_FromDouble(position_ms(c));
}

static PyObject *Core_get_last_voiced_ms(Core *c, void *unused) {
    return PyFloat_FromDouble(c->last_voiced_ms);
}

static PyObject *Core_get_onset_pending(Core *c, void *unused) {
    Window *w = &c->start;
    return PyBool_FromLong(!c->speaking && w->len > 0 && w->voiced + w->pending >= 2);
}

static PyObject *Core_get_segments(Core *c, void *unused) {
    return PyLong_FromLongLong(c->segments);
}

static PyGetSetDef Core_getset[] = {
    {"speaking", (getter)Core_get_speaking, NULL, "in a speech segment", NULL},
    {"position_ms", (getter)Core_get_position_ms, NULL, "stream time at the last frame's end",
     NULL},
    {"last_voiced_ms", (getter)Core_get_last_voiced_ms, NULL,
     "stream time at the end of the last frame webrtcvad voiced", NULL},
    {"onset_pending", (getter)Core_get_onset_pending, NULL,
     "not in speech, but the start window holds voice", NULL},
    {"segments", (getter)Core_get_segments, NULL, "speech segments ended", NULL},
    {NULL},
};

static PyMethodDef Core_methods[] = {
    {"process", (PyCFunction)Core_process, METH_VARARGS,
     "process(frame, masked=False): one frame's event, or None"},
    {"process_block", (PyCFunction)Core_process_block, METH_VARARGS,
     "process_block(block, masks, hear): each frame of a block, events to hear()"},
    {NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.audio._vadcore.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The VAD's vote windows and decisions (bridge/audio/vad.py drives it).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};

/* mean_groups(samples, factor): the means, truncated toward zero, of each whole group of
 * `factor` s16 samples, as s16 bytes: the VAD's decimation (bridge/audio/decimate.py). */
static PyObject *mean_groups(PyObject *unused, PyObject *args) {
    Py_buffer view;
    int factor;
    if (!PyArg_ParseTuple(args, "y*i", &view, &factor))
        return NULL;
    if (factor < 1 || view.len % 2) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "s16 samples and a factor of at least 1");
    }
    Py_ssize_t groups = view.len / 2 / factor;
    PyObject *out = PyBytes_FromStringAndSize(NULL, groups * 2);
    if (out != NULL) {
        const int16_t *in = view.buf;
        int16_t *means = (int16_t *)PyBytes_AS_STRING(out);
        for (Py_ssize_t g = 0; g < groups; g++) {
            int32_t sum = 0;
            for (int i = 0; i < factor; i++)
                sum += in[g * factor + i];
            means[g] = (int16_t)(sum / factor); /* C division truncates toward zero */
        }
    }
    PyBuffer_Release(&view);
    return out;
}

/* spectral_flatness(samples): the gate's measure of one frame (bridge/audio/vad.py). */
static PyObject *spectral_flatness(PyObject *unused, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    int size = (int)(view.len / 2);
    const Spectrum *s = size >= 4 && size <= MAX_FRAME ? spectrum_of(size) : NULL;
    double measured = s == NULL ? -1 : flatness(s, view.buf);
    PyBuffer_Release(&view);
    if (s == NULL)
        return PyErr_Format(PyExc_ValueError, "a frame of 4 to 480 s16 samples");
    return PyFloat_FromDouble(measured);
}

static PyMethodDef module_methods[] = {
    {"spectral_flatness", spectral_flatness, METH_O,
     "spectral_flatness(samples): the flatness of one frame's Hann-windowed spectrum"},
    {"mean_groups", mean_groups, METH_VARARGS,
     "mean_groups(samples, factor): s16 bytes of each whole group's mean, truncated"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vadcore", "The VAD's per-frame decisions, compiled.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__vadcore(void) {
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
