/* The VAD, compiled: its input stage (VadFramer), per-frame decisions (Core: vote windows,
 * onset, start and stop) and spectral gate (flatness).
 *
 * bridge/audio/pipeline.py feeds a VadFramer each bot chunk and gets back its whole 8 kHz
 * frames; bridge/audio/vad.py's VoiceActivityDetector is a Core. Each 8 kHz frame is
 * classified by webrtcvad (its extension's WebRtcVad_Process, called directly on the
 * instance inside a webrtcvad.Vad: no bytes object, argument parsing or bool a frame),
 * voiced frames keep a copy until a decision needs the spectral gate's verdict on them
 * (the flatness of the frame's spectrum, by an FFT here), and start / stop come from
 * counts over the start and stop windows. In Python this bookkeeping cost more than
 * webrtcvad itself: some twenty interpreted calls a frame, five frames a 100 ms chunk.
 *
 * The decisions are those of judging every frame at once: they depend only on counts,
 * and pending frames are judged newest first, only until a decision is known.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { UNVOICED = 0, VOICED = 1, PENDING = 2 };

#define MAX_FRAME 480 /* 30 ms at 16 kHz: more than any VAD frame (8 kHz) */
#define MAX_SIZES 8   /* frame sizes with a spectrum: the VAD's are 80, 160 and 240 */
#define FLOOR 3e-5    /* added to each magnitude: silence is flat, not log(0) */

typedef struct {
    double re, im;
} Complex;

static Complex times(Complex a, Complex b) {
    return (Complex){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

/* What the gate needs for one (even) frame size, made once and shared by every session:
 * numpy's Hann window, and a complex FFT of half the size (mixed radix: the VAD's halves
 * are 40, 80 and 120 = 2^3 5, 2^4 5, 2^3 3 5), which gives the real frame's spectrum. */
typedef struct {
    int size, half;
    int factors[16];   /* of half: its 5s, 3s, 2s, then other primes; ending in 0 */
    double *window;    /* [size] */
    Complex *twiddles; /* [half]: e^(-2 pi i k / half) */
    Complex *unpack;   /* [half + 1]: e^(-2 pi i k / size), which joins the halves */
} Spectrum;

static Spectrum spectra[MAX_SIZES];

/* The radices of an FFT of n points, outermost first (see fft). */
static void factorize(int n, int *factors) {
    static const int radices[] = {5, 3, 2};
    int count = 0;
    for (int i = 0; i < 3; i++)
        for (; n % radices[i] == 0; n /= radices[i])
            factors[count++] = radices[i];
    for (int p = 7; n > 1; p++) /* other primes: a frame size the VAD never uses */
        for (; n % p == 0; n /= p)
            factors[count++] = p;
    factors[count] = 0;
}

static const Spectrum *spectrum_of(int size) {
    for (int i = 0; i < MAX_SIZES; i++)
        if (spectra[i].size == size)
            return &spectra[i];
    for (int i = 0; i < MAX_SIZES; i++) {
        Spectrum *s = &spectra[i];
        if (s->size)
            continue;
        int half = size / 2;
        char *memory = PyMem_RawMalloc(sizeof(double) * size + sizeof(Complex) * (2 * half + 1));
        if (memory == NULL)
            return NULL;
        s->window = (double *)memory;
        s->twiddles = (Complex *)(memory + sizeof(double) * size);
        s->unpack = s->twiddles + half;
        for (int n = 0; n < size; n++)
            s->window[n] = 0.5 - 0.5 * cos(2 * M_PI * n / (size - 1)); /* numpy's hanning */
        for (int k = 0; k < half; k++)
            s->twiddles[k] = (Complex){cos(2 * M_PI * k / half), -sin(2 * M_PI * k / half)};
        for (int k = 0; k <= half; k++)
            s->unpack[k] = (Complex){cos(M_PI * k / half), -sin(M_PI * k / half)};
        factorize(half, s->factors);
        s->half = half;
        s->size = size;
        return s;
    }
    return NULL;
}

/* The spectrum of a frame size, or NULL with ValueError or MemoryError set. */
static const Spectrum *gate_spectrum(int size) {
    if (size < 4 || size > MAX_FRAME || size % 2) {
        PyErr_Format(PyExc_ValueError, "the gate takes frames of an even 4 to %d samples, not %d",
                     MAX_FRAME, size);
        return NULL;
    }
    const Spectrum *s = spectrum_of(size);
    if (s == NULL && spectra[MAX_SIZES - 1].size)
        PyErr_Format(PyExc_ValueError, "the gate takes at most %d frame sizes", MAX_SIZES);
    else if (s == NULL)
        PyErr_NoMemory();
    return s;
}

/* The 3-point DFT of a[] (forward: W = e^(-2 pi i / 3)) into out[0], out[m], out[2 m]. */
static void dft3(Complex *out, int m, const Complex *a) {
    const double s = 0.86602540378443864676; /* sin(2 pi / 3) */
    Complex sum = {a[1].re + a[2].re, a[1].im + a[2].im};
    Complex mid = {a[0].re - sum.re / 2, a[0].im - sum.im / 2};
    Complex turn = {s * (a[1].im - a[2].im), -s * (a[1].re - a[2].re)}; /* -i s (a1 - a2) */
    out[0] = (Complex){a[0].re + sum.re, a[0].im + sum.im};
    out[m] = (Complex){mid.re + turn.re, mid.im + turn.im};
    out[2 * m] = (Complex){mid.re - turn.re, mid.im - turn.im};
}

/* The 5-point DFT of a[] (forward) into out[0], out[m] .. out[4 m], by its symmetries. */
static void dft5(Complex *out, int m, const Complex *a) {
    const double c1 = 0.30901699437494742410, c2 = -0.80901699437494742410; /* cos 2pi/5, 4pi/5 */
    const double s1 = 0.95105651629515357212, s2 = 0.58778525229247312917; /* sin 2pi/5, 4pi/5 */
    Complex b1 = {a[1].re + a[4].re, a[1].im + a[4].im};
    Complex b2 = {a[2].re + a[3].re, a[2].im + a[3].im};
    Complex d1 = {a[1].re - a[4].re, a[1].im - a[4].im};
    Complex d2 = {a[2].re - a[3].re, a[2].im - a[3].im};
    Complex e1 = {a[0].re + c1 * b1.re + c2 * b2.re, a[0].im + c1 * b1.im + c2 * b2.im};
    Complex e2 = {a[0].re + c2 * b1.re + c1 * b2.re, a[0].im + c2 * b1.im + c1 * b2.im};
    /* -i (s1 d1 + s2 d2) and -i (s2 d1 - s1 d2) */
    Complex o1 = {s1 * d1.im + s2 * d2.im, -(s1 * d1.re + s2 * d2.re)};
    Complex o2 = {s2 * d1.im - s1 * d2.im, -(s2 * d1.re - s1 * d2.re)};
    out[0] = (Complex){a[0].re + b1.re + b2.re, a[0].im + b1.im + b2.im};
    out[m] = (Complex){e1.re + o1.re, e1.im + o1.im};
    out[4 * m] = (Complex){e1.re - o1.re, e1.im - o1.im};
    out[2 * m] = (Complex){e2.re + o2.re, e2.im + o2.im};
    out[3 * m] = (Complex){e2.re - o2.re, e2.im - o2.im};
}

/* out[0 .. n) = the DFT of in[0], in[stride], ..., in[(n - 1) stride], by decimation in
 * time over `factors` (their product is n); twiddles[j * step] = e^(-2 pi i j / n). */
static void fft(Complex *out, const Complex *in, int n, int stride, const int *factors,
                const Complex *twiddles, int step) {
    int p = factors[0], m = n / p;
    if (m == 1)
        for (int q = 0; q < p; q++)
            out[q] = in[q * stride];
    else
        for (int q = 0; q < p; q++) /* the p interleaved sub-sequences, each to its m outputs */
            fft(out + q * m, in + q * stride, m, stride * p, factors + 1, twiddles, step * p);
    if (p == 2) {
        for (int k = 0; k < m; k++) {
            Complex a = out[k], b = times(out[k + m], twiddles[k * step]);
            out[k] = (Complex){a.re + b.re, a.im + b.im};
            out[k + m] = (Complex){a.re - b.re, a.im - b.im};
        }
        return;
    }
    /* X[k + r m] = sum over q of W_n^(q k) Y_q[k] W_p^(q r), W_p^j = roots[j] */
    Complex spun[MAX_FRAME / 2], roots[MAX_FRAME / 2];
    for (int j = 0; j < p; j++)
        roots[j] = twiddles[j * m * step];
    for (int k = 0; k < m; k++) {
        for (int q = 0; q < p; q++)
            spun[q] = times(out[k + q * m], twiddles[q * k * step]);
        if (p == 3) {
            dft3(out + k, m, spun);
            continue;
        }
        if (p == 5) {
            dft5(out + k, m, spun);
            continue;
        }
        for (int r = 0; r < p; r++) {
            Complex sum = spun[0];
            for (int q = 1, j = r; q < p; q++, j = j + r < p ? j + r : j + r - p) {
                sum.re += spun[q].re * roots[j].re - spun[q].im * roots[j].im;
                sum.im += spun[q].re * roots[j].im + spun[q].im * roots[j].re;
            }
            out[k + r * m] = sum;
        }
    }
}

/* Geometric over arithmetic mean of the power spectrum of the Hann-windowed frame, bins 2
 * to size / 2 (0-1 hold DC and hum): near 0 for voice, high for noise. The even and odd
 * samples are one complex sequence of half the size, whose FFT unpacks into the spectrum. */
static double flatness(const Spectrum *s, const int16_t *frame) {
    Complex z[MAX_FRAME / 2], spectrum[MAX_FRAME / 2];
    int half = s->half, bins = half - 1;
    for (int j = 0; j < half; j++)
        z[j] = (Complex){frame[2 * j] * s->window[2 * j], frame[2 * j + 1] * s->window[2 * j + 1]};
    fft(spectrum, z, half, 1, s->factors, s->twiddles, 1);
    double product = 1, power_sum = 0; /* a product renormalised every 8 bins: one log */
    int exponent = 0;
    for (int k = 2; k <= half; k++) {
        Complex a = spectrum[k < half ? k : 0], b = spectrum[half - k]; /* Z[k], Z[half-k] */
        Complex even = {(a.re + b.re) / 2, (a.im - b.im) / 2};
        Complex odd = times((Complex){(a.im + b.im) / 2, (b.re - a.re) / 2}, s->unpack[k]);
        double re = even.re + odd.re, im = even.im + odd.im;
        double magnitude = sqrt(re * re + im * im) + FLOOR;
        product *= magnitude;
        power_sum += magnitude * magnitude;
        if ((k & 7) == 7) {
            int e;
            product = frexp(product, &e);
            exponent += e;
        }
    }
    double log_sum = log(product) + exponent * M_LN2;
    return exp(2 * log_sum / bins) * bins / power_sum;
}

typedef struct {
    int8_t *votes;    /* ring of the last `size` votes */
    int16_t *frames;  /* a pending vote's frame, at its slot */
    int size, head, len, voiced, pending;
} Window;

typedef struct {
    PyObject_HEAD
    PyObject *vad;      /* the webrtcvad instance's capsule, kept alive */
    void *handle;       /* its VadInst */
    int rate;           /* the frames' sample rate */
    const Spectrum *spectrum; /* the gate's; NULL: no gate */
    double max_flatness;      /* a voiced frame flatter than this is noise */
    PyObject *onset, *started, *stopped; /* the event classes */
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

/* WebRtcVad_Process(VadInst *, int fs, const int16_t *frame, size_t length): 1 voiced,
 * 0 not, -1 for a rate or length it refuses. Exported by webrtcvad's extension (which
 * calls it per frame in its own `process`); found in it once, at the first Core. */
typedef int (*VadProcess)(void *, int, const int16_t *, size_t);
static VadProcess vad_process;

static int find_vad_process(void) {
    if (vad_process != NULL)
        return 0;
    PyObject *module = PyImport_ImportModule("_webrtcvad");
    PyObject *file = module == NULL ? NULL : PyObject_GetAttrString(module, "__file__");
    const char *path = file == NULL ? NULL : PyUnicode_AsUTF8(file);
    void *library = path == NULL ? NULL : dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (library != NULL)
        vad_process = (VadProcess)dlsym(library, "WebRtcVad_Process");
    Py_XDECREF(file);
    Py_XDECREF(module);
    if (vad_process == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ImportError, "webrtcvad's extension (%s) exports no WebRtcVad_Process",
                     path == NULL ? "?" : path);
    return vad_process == NULL ? -1 : 0;
}

/* webrtcvad's verdict on one frame: 1 voiced, 0 not, -1 with an exception set */
static int classify(const Core *c, const int16_t *frame) {
    int yes = vad_process(c->handle, c->rate, frame, (size_t)c->frame_size);
    if (yes < 0)
        PyErr_Format(PyExc_ValueError, "webrtcvad refuses frames of %d samples at %d Hz",
                     c->frame_size, c->rate);
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

static PyObject *Core_process(Core *c, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"frame", "masked", NULL};
    PyObject *frame;
    int masked = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p", names, &frame, &masked))
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
    static char *names[] = {"vad", "rate", "max_flatness", "events", "frame_size", "frame_ms",
                            "start_frames", "to_start", "stop_frames", "to_go_on",
                            "onset_frames", NULL};
    PyObject *vad, *events;
    int start_frames, stop_frames;
    if (c->start.votes) { /* before anything is parsed into it: its windows fit its frames */
        PyErr_SetString(PyExc_ValueError, "a Core is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OidOidiiiii", names, &vad, &c->rate,
                                     &c->max_flatness, &events, &c->frame_size, &c->frame_ms,
                                     &start_frames, &c->to_start, &stop_frames, &c->to_go_on,
                                     &c->onset_frames))
        return -1;
    if (find_vad_process() < 0 || (c->handle = PyCapsule_GetPointer(vad, "WebRtcVadPtr")) == NULL)
        return -1;
    if (c->frame_size < 4 || c->frame_size > MAX_FRAME || start_frames <= 0 ||
        stop_frames <= 0) {
        PyErr_SetString(PyExc_ValueError, "frames of 4 to 480 samples, windows of one");
        return -1;
    }
    if (c->max_flatness < 1 && (c->spectrum = gate_spectrum(c->frame_size)) == NULL)
        return -1;
    PyObject *onset, *started, *stopped;
    if (!PyArg_ParseTuple(events, "OOO", &onset, &started, &stopped))
        return -1;
    PyObject *owned[] = {vad, onset, started, stopped};
    for (int i = 0; i < 4; i++)
        Py_INCREF(owned[i]);
    c->vad = vad;
    c->onset = onset;
    c->started = started;
    c->stopped = stopped;
    if (window_init(&c->start, start_frames, c->frame_size) < 0 ||
        window_init(&c->stop, stop_frames, c->frame_size) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    c->last_voiced_ms = -INFINITY;
    return 0;
}

static int Core_traverse(Core *c, visitproc visit, void *arg) {
    Py_VISIT(c->vad);
    Py_VISIT(c->onset);
    Py_VISIT(c->started);
    Py_VISIT(c->stopped);
    return 0;
}

static int Core_clear(Core *c) {
    Py_CLEAR(c->vad);
    Py_CLEAR(c->onset);
    Py_CLEAR(c->started);
    Py_CLEAR(c->stopped);
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
    {"process", (PyCFunction)(void (*)(void))Core_process, METH_VARARGS | METH_KEYWORDS,
     "process(frame, masked=False): one frame's event, or None"},
    {"process_block", (PyCFunction)Core_process_block, METH_VARARGS,
     "process_block(block, masks, hear): each frame of a block, events to hear()"},
    {NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.audio._vadcore.Core",
    .tp_basicsize = sizeof(Core),
    /* a base: VoiceActivityDetector is a Core, so its calls and attributes are C's own */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The VAD's vote windows and decisions (bridge/audio/vad.py sets it up).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};

/* One contiguous row of int16 samples, or -1 with TypeError or ValueError set. */
static int get_samples(PyObject *obj, Py_buffer *view) {
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    int int16 = !strcmp(format, "h") || !strcmp(format, "<h") || !strcmp(format, "=h");
    if (view->itemsize != 2 || !int16) {
        PyErr_Format(PyExc_TypeError, "samples must be int16, not of format '%s'", format);
        PyBuffer_Release(view);
        return -1;
    }
    if (view->ndim != 1 || !PyBuffer_IsContiguous(view, 'C')) {
        PyErr_SetString(PyExc_ValueError,
                        "samples must be one contiguous row (np.ascontiguousarray)");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The VAD's input stage: a bot-rate stream decimated to 8 kHz by the mean of each group of
 * `factor` samples (a boxcar: its own anti-alias filter, nulls at multiples of 8 kHz), cut
 * into whole frames. A group split across chunks and a frame's worth less one of output
 * wait for the next chunk; the sums are exact integers, so any chunking gives the same
 * frames bit for bit. */
typedef struct {
    PyObject_HEAD
    int factor, frame_size, out_rate;
    int32_t group_sum; /* of the group_len samples of a group split across chunks */
    int group_len;
    int pending; /* output samples short of a frame, in frame[] */
    int16_t frame[MAX_FRAME];
} VadFramer;

static int VadFramer_init(VadFramer *f, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"in_rate", "out_rate", "frame_size", NULL};
    int in_rate, out_rate, frame_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iii", names, &in_rate, &out_rate,
                                     &frame_size))
        return -1;
    if (in_rate <= 0 || out_rate <= 0 || in_rate % out_rate) {
        PyErr_Format(PyExc_ValueError, "%d Hz is not a whole multiple of %d Hz", in_rate,
                     out_rate);
        return -1;
    }
    if (in_rate / out_rate > 65536) { /* a group's sum fits in 32 bits */
        PyErr_Format(PyExc_ValueError, "%d Hz is over 65536 times %d Hz", in_rate, out_rate);
        return -1;
    }
    if (frame_size < 1 || frame_size > MAX_FRAME) {
        PyErr_Format(PyExc_ValueError, "frames of 1 to %d samples, not %d", MAX_FRAME, frame_size);
        return -1;
    }
    f->factor = in_rate / out_rate;
    f->out_rate = out_rate;
    f->frame_size = frame_size;
    f->group_sum = f->group_len = f->pending = 0;
    return 0;
}

/* out[g] = the mean of in[g * factor ..], truncated toward zero (as C division is), for
 * `groups` whole groups; a constant factor lets the compiler divide by multiplying. */
static inline void group_means(const int16_t *in, Py_ssize_t groups, int factor, int16_t *out) {
    for (Py_ssize_t g = 0; g < groups; g++) {
        int32_t sum = 0;
        for (int i = 0; i < factor; i++)
            sum += in[g * factor + i];
        out[g] = (int16_t)(sum / factor);
    }
}

static void means_of(const int16_t *in, Py_ssize_t groups, int factor, int16_t *out) {
    switch (factor) { /* the bots' 16, 24, 32 and 48 kHz */
    case 2: group_means(in, groups, 2, out); break;
    case 3: group_means(in, groups, 3, out); break;
    case 4: group_means(in, groups, 4, out); break;
    case 6: group_means(in, groups, 6, out); break;
    default: group_means(in, groups, factor, out);
    }
}

/* Decimate in[0 .. n) into out, then into frame[] once out holds `room` means: first the
 * group carried from the last chunk, then whole groups, then the start of the next. */
static void decimate(VadFramer *f, const int16_t *in, Py_ssize_t n, int16_t *out,
                     Py_ssize_t room) {
    int factor = f->factor;
    Py_ssize_t at = 0, written = 0;
    if (f->group_len) {
        for (; at < n && f->group_len < factor; at++, f->group_len++)
            f->group_sum += in[at];
        if (f->group_len < factor)
            return;
        int16_t mean = (int16_t)(f->group_sum / factor);
        if (room)
            out[written++] = mean;
        else
            f->frame[f->pending++] = mean;
        f->group_sum = f->group_len = 0;
    }
    Py_ssize_t groups = (n - at) / factor, left = room - written;
    Py_ssize_t into_out = groups < left ? groups : left;
    means_of(in + at, into_out, factor, out + written);
    means_of(in + at + into_out * factor, groups - into_out, factor, f->frame + f->pending);
    f->pending += (int)(groups - into_out);
    for (at += groups * factor; at < n; at++, f->group_len++)
        f->group_sum += in[at];
}

static PyObject *VadFramer_take(VadFramer *f, PyObject *chunk) {
    Py_buffer view;
    if (get_samples(chunk, &view) < 0)
        return NULL;
    Py_ssize_t n = view.shape[0];
    Py_ssize_t means = f->pending + (f->group_len + n) / f->factor;
    Py_ssize_t whole = means / f->frame_size * f->frame_size;
    PyObject *block = PyBytes_FromStringAndSize(NULL, whole * 2);
    if (block == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int16_t *out = (int16_t *)PyBytes_AS_STRING(block);
    Py_ssize_t held = whole ? f->pending : 0; /* the pending samples open the block */
    memcpy(out, f->frame, held * 2);
    f->pending -= held;
    if (f->factor == 1) {
        memcpy(out + held, view.buf, (whole - held) * 2);
        memcpy(f->frame + f->pending, (const int16_t *)view.buf + whole - held,
               (n - (whole - held)) * 2);
        f->pending += n - (whole - held);
    } else
        decimate(f, view.buf, n, out + held, whole - held);
    PyBuffer_Release(&view);
    return block;
}

static PyObject *VadFramer_get_pending(VadFramer *f, void *unused) {
    return PyLong_FromLong(f->pending);
}

static PyObject *VadFramer_get_factor(VadFramer *f, void *unused) {
    return PyLong_FromLong(f->factor);
}

static PyObject *VadFramer_get_frame_size(VadFramer *f, void *unused) {
    return PyLong_FromLong(f->frame_size);
}

static PyObject *VadFramer_get_delay_ms(VadFramer *f, void *unused) {
    return PyFloat_FromDouble((f->factor - 1) / 2.0 * 1000 / ((double)f->out_rate * f->factor));
}

static PyGetSetDef VadFramer_getset[] = {
    {"pending", (getter)VadFramer_get_pending, NULL, "output samples waiting for a frame", NULL},
    {"factor", (getter)VadFramer_get_factor, NULL, "input samples to an output sample", NULL},
    {"frame_size", (getter)VadFramer_get_frame_size, NULL, "output samples in a frame", NULL},
    {"delay_ms", (getter)VadFramer_get_delay_ms, NULL,
     "the boxcar's group delay: (factor - 1) / 2 input samples", NULL},
    {NULL},
};

static PyMethodDef VadFramer_methods[] = {
    {"take", (PyCFunction)VadFramer_take, METH_O,
     "take(chunk): s16 bytes of the whole output frames this int16 chunk completes"},
    {NULL},
};

static PyTypeObject VadFramerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.audio._vadcore.VadFramer",
    .tp_basicsize = sizeof(VadFramer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "VadFramer(in_rate, out_rate, frame_size): decimates a stream by a whole "
              "factor (group means) and cuts whole frames, a chunk a call.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)VadFramer_init,
    .tp_methods = VadFramer_methods,
    .tp_getset = VadFramer_getset,
};

/* spectral_flatness(samples): the gate's measure of one frame (bridge/audio/vad.py). */
static PyObject *spectral_flatness(PyObject *unused, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const Spectrum *s = gate_spectrum((int)(view.len / 2));
    double measured = s == NULL ? -1 : flatness(s, view.buf);
    PyBuffer_Release(&view);
    return s == NULL ? NULL : PyFloat_FromDouble(measured);
}

static PyMethodDef module_methods[] = {
    {"spectral_flatness", spectral_flatness, METH_O,
     "spectral_flatness(samples): the flatness of one frame's Hann-windowed spectrum"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vadcore", "The VAD's per-frame decisions, compiled.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__vadcore(void) {
    if (PyType_Ready(&CoreType) < 0 || PyType_Ready(&VadFramerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Core", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObjectRef(m, "VadFramer", (PyObject *)&VadFramerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
