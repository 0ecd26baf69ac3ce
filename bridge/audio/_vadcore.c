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
#include <structmember.h>

#include "../_calls.h"

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

/* Judge each frame of frames[0 .. n) (masks: None or a byte a frame, nonzero for masked),
 * each event to hear() (None: to nobody) as its frame is judged; -1 with an exception set. */
static int judge_frames(Core *c, const int16_t *frames, Py_ssize_t n, PyObject *masks,
                        PyObject *hear) {
    if (masks != Py_None && (!PyBytes_Check(masks) || PyBytes_GET_SIZE(masks) != n)) {
        PyErr_Format(PyExc_ValueError, "masks must be None or %zd bytes", n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int masked = masks != Py_None && PyBytes_AS_STRING(masks)[i];
        PyObject *found = process_frame(c, frames + i * c->frame_size, masked);
        if (found != NULL && found != Py_None && hear != Py_None) {
            PyObject *heard = PyObject_CallOneArg(hear, found);
            Py_DECREF(found);
            found = heard;
        }
        if (found == NULL)
            return -1;
        Py_DECREF(found);
    }
    return 0;
}

static PyObject *Core_process_block(Core *c, PyObject *args) {
    PyObject *block, *masks, *hear;
    if (!PyArg_ParseTuple(args, "OOO", &block, &masks, &hear))
        return NULL;
    Py_buffer view;
    if (get_frames(c, block, &view) < 0)
        return NULL;
    int judged = judge_frames(c, view.buf, view.len / (c->frame_size * 2), masks, hear);
    PyBuffer_Release(&view);
    if (judged < 0)
        return NULL;
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

/* The whole 8 kHz frames that in[0 .. n) completes, as s16 bytes (maybe empty). */
static PyObject *vad_take(VadFramer *f, const int16_t *in, Py_ssize_t n) {
    Py_ssize_t means = f->pending + (f->group_len + n) / f->factor;
    Py_ssize_t whole = means / f->frame_size * f->frame_size;
    PyObject *block = PyBytes_FromStringAndSize(NULL, whole * 2);
    if (block == NULL)
        return NULL;
    int16_t *out = (int16_t *)PyBytes_AS_STRING(block);
    Py_ssize_t held = whole ? f->pending : 0; /* the pending samples open the block */
    memcpy(out, f->frame, held * 2);
    f->pending -= held;
    if (f->factor == 1) {
        memcpy(out + held, in, (whole - held) * 2);
        memcpy(f->frame + f->pending, in + whole - held, (n - (whole - held)) * 2);
        f->pending += n - (whole - held);
    } else
        decimate(f, in, n, out + held, whole - held);
    return block;
}

static PyObject *VadFramer_take(VadFramer *f, PyObject *chunk) {
    Py_buffer view;
    if (get_samples(chunk, &view) < 0)
        return NULL;
    PyObject *block = vad_take(f, view.buf, view.shape[0]);
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

/* A session's input, compiled (bridge/audio/pipeline.py's InputPipeline is one): each bot
 * chunk is counted, held when it completes no frame (today's bot's 10 ms of a 20 ms frame),
 * decimated and judged by the VAD, cut into whole frames at each listening rate and offered
 * to that rate's listeners; the session's hooks are called only for what they are for (an
 * event, a judged frame, a larger chunk, a loopback's arrival). Per chunk, in Python, this
 * was six calls of the session's and the pipeline's: a third of a 20 ms chunk's cost. */
typedef struct {
    PyObject_HEAD
    VadFramer *vad_input;
    Core *vad;
    int frame;             /* samples of a frame at the bot's rate */
    int aligned;           /* every listening rate is the bot's: frames end where the VAD's do */
    int judged;            /* the last chunk completed a VAD frame */
    int short_chunks;      /* a chunk has completed no frame: say what the next one needs */
    long long samples_in;  /* heard (held samples are not, yet) */
    long long bytes_in;    /* accepted, held included */
    long long largest;     /* samples of the largest chunk heard */
    PyObject *held;        /* bytes: a chunk that completes no frame, heard with the next */
    int16_t *rest;         /* the bot-rate framer's samples short of a frame */
    int rest_len;
    PyObject *routes;      /* list of (rate, take or None, list of (offer, frame)) */
    PyObject *on_event, *on_tick, *on_larger_chunk, *on_arrival, *on_signal, *on_odd, *masks;
    PyObject *frombuffer, *dtype; /* np.frombuffer and int16: a listener's arrays */
} InputCore;

#define GIVEN(hook) ((hook) != NULL && (hook) != Py_None)

static PyObject *AUDIO; /* "audio": the hook a listener's block is offered to */

static long long samples_wanted(const InputCore *p) {
    return p->aligned ? p->frame - p->samples_in % p->frame : 0;
}

static PyObject *as_array(InputCore *p, PyObject *buffer) {
    PyObject *args[] = {buffer, p->dtype};
    return PyObject_Vectorcall(p->frombuffer, args, 2, NULL);
}

/* in[0 .. n) as a new, writable int16 array: what a listener may keep and change. */
static PyObject *copy_array(InputCore *p, const int16_t *in, Py_ssize_t n) {
    PyObject *bytes = PyByteArray_FromStringAndSize((const char *)in, n * 2);
    if (bytes == NULL)
        return NULL;
    PyObject *array = as_array(p, bytes);
    Py_DECREF(bytes);
    return array;
}

/* Offer a block of whole frames to each listener of its rate: whole, or frame by frame. */
static int deliver(InputCore *p, PyObject *listeners, const int16_t *block, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(listeners); i++) {
        PyObject *listener = PyList_GET_ITEM(listeners, i);
        PyObject *offer = PyTuple_GET_ITEM(listener, 0);
        Py_ssize_t step = PyLong_AsSsize_t(PyTuple_GET_ITEM(listener, 1));
        if (step <= 0 || step > n)
            step = n;
        for (Py_ssize_t at = 0; at < n; at += step) {
            PyObject *args[] = {AUDIO, copy_array(p, block + at, n - at < step ? n - at : step)};
            if (args[1] == NULL)
                return -1;
            PyObject *done = PyObject_Vectorcall(offer, args, 2, NULL);
            Py_DECREF(args[1]);
            if (done == NULL)
                return -1;
            Py_DECREF(done);
        }
    }
    return 0;
}

/* The bot-rate framer: the whole frames of rest + in[0 .. n), their count in *whole; in
 * itself when nothing waited, else *scratch (to free). Keeps what is left. */
static const int16_t *whole_frames(InputCore *p, const int16_t *in, Py_ssize_t n,
                                   Py_ssize_t *whole, int16_t **scratch) {
    *scratch = NULL;
    Py_ssize_t total = p->rest_len + n, used;
    *whole = total / p->frame * p->frame;
    const int16_t *block = in;
    if (p->rest_len && *whole) {
        if ((*scratch = PyMem_Malloc(*whole * 2)) == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(*scratch, p->rest, p->rest_len * 2);
        memcpy(*scratch + p->rest_len, in, (*whole - p->rest_len) * 2);
        block = *scratch;
    }
    used = *whole - p->rest_len; /* of in, into the block (negative: all of in waits) */
    if (used < 0) {
        memcpy(p->rest + p->rest_len, in, n * 2);
        p->rest_len += (int)n;
    } else {
        memcpy(p->rest, in + used, (n - used) * 2);
        p->rest_len = (int)(n - used);
    }
    return block;
}

/* One route's block of this chunk: to its listeners, or (out given) appended to out. */
static int route_block(InputCore *p, PyObject *route, PyObject *chunk, PyObject **array,
                       const int16_t *s, Py_ssize_t n, PyObject *out) {
    PyObject *rate = PyTuple_GET_ITEM(route, 0), *take = PyTuple_GET_ITEM(route, 1);
    PyObject *listeners = PyTuple_GET_ITEM(route, 2);
    if (take == Py_None) { /* the bot's own rate: framed here */
        Py_ssize_t whole;
        int16_t *scratch;
        const int16_t *block = whole_frames(p, s, n, &whole, &scratch);
        if (block == NULL)
            return -1;
        int done = 0;
        if (out != NULL) {
            PyObject *a = copy_array(p, block, whole);
            PyObject *pair = a == NULL ? NULL : PyTuple_Pack(2, rate, a);
            done = pair == NULL ? -1 : PyList_Append(out, pair);
            Py_XDECREF(a);
            Py_XDECREF(pair);
        } else if (whole)
            done = deliver(p, listeners, block, whole);
        PyMem_Free(scratch);
        return done;
    }
    if (*array == NULL && (*array = as_array(p, chunk)) == NULL)
        return -1;
    PyObject *block = PyObject_CallOneArg(take, *array);
    if (block == NULL)
        return -1;
    int done = 0;
    if (out != NULL) {
        PyObject *pair = PyTuple_Pack(2, rate, block);
        done = pair == NULL ? -1 : PyList_Append(out, pair);
        Py_XDECREF(pair);
    } else {
        Py_buffer view;
        done = PyObject_GetBuffer(block, &view, PyBUF_C_CONTIGUOUS);
        if (done == 0) {
            if (view.len >= 2 && PyList_GET_SIZE(listeners))
                done = deliver(p, listeners, view.buf, view.len / 2);
            PyBuffer_Release(&view);
        }
    }
    Py_DECREF(block);
    return done;
}

/* s[0 .. n) (of chunk, or its array) through the VAD, its events to hear, and every route. */
static int hear_samples(InputCore *p, PyObject *chunk, PyObject *array, const int16_t *s,
                        Py_ssize_t n, PyObject *hear, PyObject *out) {
    p->samples_in += n;
    PyObject *block = vad_take(p->vad_input, s, n);
    if (block == NULL)
        return -1;
    Py_ssize_t frames = PyBytes_GET_SIZE(block) / (p->vad->frame_size * 2);
    p->judged = frames > 0;
    int done = 0;
    if (frames) {
        PyObject *masks = GIVEN(p->masks) ? PyObject_CallOneArg(p->masks, block) : Py_NewRef(Py_None);
        done = masks == NULL ? -1
                             : judge_frames(p->vad, (const int16_t *)PyBytes_AS_STRING(block),
                                            frames, masks, hear);
        Py_XDECREF(masks);
    }
    Py_DECREF(block);
    Py_XINCREF(array);
    for (Py_ssize_t i = 0; done == 0 && i < PyList_GET_SIZE(p->routes); i++)
        done = route_block(p, PyList_GET_ITEM(p->routes, i), chunk, &array, s, n, out);
    Py_XDECREF(array);
    return done;
}

/* A chunk received at read_at (a float): the hooks around hearing it, in the session's order. */
static int hear_received(InputCore *p, PyObject *chunk, PyObject *read_at) {
    Py_buffer view;
    if (PyObject_GetBuffer(chunk, &view, PyBUF_SIMPLE) < 0)
        return -1;
    Py_ssize_t n = view.len / 2;
    int done = 0;
    if (n > p->largest) {
        p->largest = n;
        PyObject *size = PyLong_FromSsize_t(n);
        done = size == NULL ? -1 : call_hook(p->on_larger_chunk, size);
        Py_XDECREF(size);
    }
    if (done == 0 && GIVEN(p->on_arrival)) { /* before hearing it: its echo may leave meanwhile */
        PyObject *arrival = Py_BuildValue("(LO)", p->samples_in + n, read_at);
        done = arrival == NULL ? -1 : call_hook(p->on_arrival, arrival);
        Py_XDECREF(arrival);
    }
    if (done == 0)
        done = hear_samples(p, chunk, NULL, view.buf, n, GIVEN(p->on_event) ? p->on_event : Py_None, NULL);
    PyBuffer_Release(&view);
    if (done == 0 && p->judged) /* the floor decides on stream time: only if it moved */
        done = call_hook(p->on_tick, NULL);
    return done;
}

static int any_sound(const int16_t *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i])
            return 1;
    return 0;
}

static PyObject *InputCore_receive(InputCore *p, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "receive(data, read_at) takes 2 arguments");
    PyObject *data = args[0];
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t length = view.len, n = length / 2;
    if (length % 2) {
        PyBuffer_Release(&view);
        return call_hook(p->on_odd, data) < 0 ? NULL : PyLong_FromLong(0);
    }
    p->bytes_in += length;
    int signal = GIVEN(p->on_signal) && any_sound(view.buf, n);
    PyObject *chunk = NULL;
    long long wanted = samples_wanted(p);
    if (p->held != NULL) { /* the held chunk and this one, heard as one */
        Py_ssize_t before = PyBytes_GET_SIZE(p->held);
        if ((chunk = PyBytes_FromStringAndSize(NULL, before + length)) != NULL) {
            memcpy(PyBytes_AS_STRING(chunk), PyBytes_AS_STRING(p->held), before);
            memcpy(PyBytes_AS_STRING(chunk) + before, view.buf, length);
        }
        Py_CLEAR(p->held);
    } else if (n < wanted) {
        p->held = PyBytes_CheckExact(data) ? Py_NewRef(data)
                                           : PyBytes_FromStringAndSize(view.buf, length);
        p->short_chunks = 1;
    } else
        chunk = PyBytes_CheckExact(data) ? Py_NewRef(data)
                                         : PyBytes_FromStringAndSize(view.buf, length);
    PyBuffer_Release(&view);
    if (signal && call_hook(p->on_signal, NULL) < 0) {
        Py_XDECREF(chunk);
        return NULL;
    }
    if (chunk == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return PyLong_FromLongLong(2 * (wanted - n)); /* held: the bytes that complete it */
    }
    int done = hear_received(p, chunk, args[1]);
    Py_DECREF(chunk);
    if (done < 0)
        return NULL;
    /* only a bot whose chunks have fallen short of a frame needs the socket to wait */
    return PyLong_FromLongLong(p->short_chunks ? 2 * samples_wanted(p) : 0);
}

static PyObject *InputCore_hear_held(InputCore *p, PyObject *read_at) {
    if (p->held != NULL) {
        PyObject *held = p->held;
        p->held = NULL;
        int done = hear_received(p, held, read_at);
        Py_DECREF(held);
        if (done < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *InputCore_feed(InputCore *p, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "feed(chunk, hear) takes 2 arguments");
    Py_buffer view;
    if (get_samples(args[0], &view) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out != NULL &&
        hear_samples(p, args[0], args[0], view.buf, view.shape[0], args[1], out) < 0)
        Py_CLEAR(out);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *InputCore_samples_wanted(InputCore *p, PyObject *unused) {
    return PyLong_FromLongLong(samples_wanted(p));
}

static int check_routes(PyObject *routes) {
    if (!PyList_Check(routes))
        goto bad;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(routes); i++) {
        PyObject *route = PyList_GET_ITEM(routes, i);
        if (!PyTuple_Check(route) || PyTuple_GET_SIZE(route) != 3 ||
            !PyList_Check(PyTuple_GET_ITEM(route, 2)))
            goto bad;
    }
    return 0;
bad:
    PyErr_SetString(PyExc_TypeError, "routes: a list of (rate, take or None, list of listeners)");
    return -1;
}

static int InputCore_init(InputCore *p, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"vad_input", "vad", "frame", "aligned", "routes", "frombuffer",
                            "dtype", NULL};
    PyObject *vad_input, *vad, *routes, *frombuffer, *dtype;
    int frame, aligned;
    if (p->rest != NULL) {
        PyErr_SetString(PyExc_ValueError, "an InputCore is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!ipOOO", names, &VadFramerType,
                                     &vad_input, &CoreType, &vad, &frame, &aligned, &routes,
                                     &frombuffer, &dtype))
        return -1;
    if (frame < 1 || check_routes(routes) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a frame is at least one sample");
        return -1;
    }
    if ((p->rest = PyMem_Calloc(frame, 2)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    p->vad_input = (VadFramer *)Py_NewRef(vad_input);
    p->vad = (Core *)Py_NewRef(vad);
    p->routes = Py_NewRef(routes);
    p->frombuffer = Py_NewRef(frombuffer);
    p->dtype = Py_NewRef(dtype);
    p->frame = frame;
    p->aligned = aligned;
    return 0;
}

static int InputCore_traverse(InputCore *p, visitproc visit, void *arg) {
    PyObject *owned[] = {(PyObject *)p->vad_input, (PyObject *)p->vad, p->held, p->routes,
                         p->on_event, p->on_tick, p->on_larger_chunk, p->on_arrival,
                         p->on_signal, p->on_odd, p->masks, p->frombuffer, p->dtype};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        Py_VISIT(owned[i]);
    return 0;
}

static int InputCore_clear(InputCore *p) {
    Py_CLEAR(p->vad_input);
    Py_CLEAR(p->vad);
    Py_CLEAR(p->held);
    Py_CLEAR(p->routes);
    Py_CLEAR(p->on_event);
    Py_CLEAR(p->on_tick);
    Py_CLEAR(p->on_larger_chunk);
    Py_CLEAR(p->on_arrival);
    Py_CLEAR(p->on_signal);
    Py_CLEAR(p->on_odd);
    Py_CLEAR(p->masks);
    Py_CLEAR(p->frombuffer);
    Py_CLEAR(p->dtype);
    return 0;
}

static void InputCore_dealloc(InputCore *p) {
    PyObject_GC_UnTrack(p);
    InputCore_clear(p);
    PyMem_Free(p->rest);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *InputCore_get_held_samples(InputCore *p, void *unused) {
    return PyLong_FromSsize_t(p->held == NULL ? 0 : PyBytes_GET_SIZE(p->held) / 2);
}

static PyGetSetDef InputCore_getset[] = {
    {"held_samples", (getter)InputCore_get_held_samples, NULL,
     "samples of a chunk held for the next one (counted in bytes_in, not in samples_in)", NULL},
    {NULL},
};

#define HOOK(name, doc) {#name, T_OBJECT, offsetof(InputCore, name), 0, doc}
static PyMemberDef InputCore_members[] = {
    {"samples_in", T_LONGLONG, offsetof(InputCore, samples_in), READONLY, "samples heard"},
    {"bytes_in", T_LONGLONG, offsetof(InputCore, bytes_in), 0, "bytes of audio accepted"},
    {"judged", T_BOOL, offsetof(InputCore, judged), READONLY,
     "the last chunk completed a VAD frame"},
    HOOK(on_event, "receive: each speech event, as its frame is judged"),
    HOOK(on_tick, "receive: called after a chunk that completed a VAD frame"),
    HOOK(on_larger_chunk, "receive: a chunk larger than any before, its samples"),
    HOOK(on_arrival, "receive: (samples in once the chunk is heard, read_at), before it is"),
    HOOK(on_signal, "receive: a chunk with a nonzero sample arrived"),
    HOOK(on_odd, "receive: a message of an odd byte count, instead of hearing it"),
    HOOK(masks, "the VAD's block -> a byte a frame, nonzero for the bot's own echo"),
    {NULL},
};

static PyMethodDef InputCore_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))InputCore_receive, METH_FASTCALL,
     "receive(data, read_at): one message of the source socket; the bytes its next frame "
     "needs (0: any)"},
    {"hear_held", (PyCFunction)InputCore_hear_held, METH_O,
     "hear_held(read_at): hear a held chunk now (none will follow it)"},
    {"feed", (PyCFunction)(void (*)(void))InputCore_feed, METH_FASTCALL,
     "feed(chunk, hear): one int16 chunk through the VAD (events to hear) and framing; a "
     "(rate, block) pair a route, offered to no listener"},
    {"samples_wanted", (PyCFunction)InputCore_samples_wanted, METH_NOARGS,
     "samples_wanted(): samples at the bot's rate that complete the next frame (0: any)"},
    {NULL},
};

static PyTypeObject InputCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.audio._vadcore.InputCore",
    .tp_basicsize = sizeof(InputCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A session's input pipeline, compiled (bridge/audio/pipeline.py sets it up).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)InputCore_init,
    .tp_dealloc = (destructor)InputCore_dealloc,
    .tp_traverse = (traverseproc)InputCore_traverse,
    .tp_clear = (inquiry)InputCore_clear,
    .tp_methods = InputCore_methods,
    .tp_members = InputCore_members,
    .tp_getset = InputCore_getset,
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
    if (PyType_Ready(&CoreType) < 0 || PyType_Ready(&VadFramerType) < 0 ||
        PyType_Ready(&InputCoreType) < 0)
        return NULL;
    if (AUDIO == NULL && (AUDIO = PyUnicode_InternFromString("audio")) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Core", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObjectRef(m, "VadFramer", (PyObject *)&VadFramerType) < 0 ||
        PyModule_AddObjectRef(m, "InputCore", (PyObject *)&InputCoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
