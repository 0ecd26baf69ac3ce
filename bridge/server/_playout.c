/* A playout's pass-through and send, compiled (bridge/server/playout.py's Playout is a
 * PlayoutCore).
 *
 * A live stream (an echo, a speech-to-speech model's audio) puts a chunk's frames in as
 * they come, and most go straight out: nothing queued, the lead has room. Deciding that
 * took some ten attribute reads and four pacer calls, then the send's accounting, each a
 * Python frame, a chunk. Here it is one C call, with the pacer's clock read in place. What
 * is rare (audio that must queue) stays in Python: the subclass's _queue(utterance_id,
 * samples); so do the sink (`_sink()`, the socket's send) and the queue's own accounting
 * (`queue.pass_through`), which are called from here.
 *
 * A live stream's lone frame may wait for the next, so both go in one message (half the
 * messages, half the sends): while the bot would still have a margin of lead (half a
 * frame, or a sweep's interval if longer: hold_margin) when the next comes on time, it is
 * held here, and the loop's HoldSweep sends it alone with about that margin left if the
 * next is late; so the bot plays it when it would have. One
 * sweep a loop, every few milliseconds while anything is held: a timer a hold (call_later
 * and cancel, 2.4 us) cost a quarter of what the pair saves.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "../audio/_pacer.h"

typedef struct HoldSweep HoldSweep;

typedef struct PlayoutCore {
    PyObject_HEAD
    Pacer *pacer;          /* the pacer's clock (an OutputPacer) */
    PyObject *clock;       /* () -> float: the monotonic clock */
    PyObject *sink;        /* () -> the current send, or None */
    PyObject *queue;       /* the PlaybackQueue */
    PyObject *ring;        /* its ring: `available` says whether anything waits */
    PyObject *on_sent;     /* called with each message once sent, or None */
    PyObject *timer;       /* the timer armed for the next frame due, or None */
    PyObject *call_later;  /* the loop's call_later while run() is on (holds frames), or None */
    HoldSweep *sweep;      /* the loop's, while run() is on, or NULL */
    struct PlayoutCore *prev, *next; /* in the sweep's list while frames are held */
    PyObject *held_id;     /* the utterance whose frames wait for the next, or NULL */
    char *held;            /* their s16 samples */
    Py_ssize_t held_n, held_room;
    double held_at;        /* when they began to wait */
    double held_until;     /* when the sweep lets them go alone */
    double held_for;       /* how long the frame that ends at held_end waited on purpose */
    long long held_end;    /* samples_out once that frame is sent (the probe's) */
    char paused, running, pumping, awaiting_sink;
    Py_ssize_t frame_size, prebuffer, min_frames, message_samples;
    long long samples_out;
    double allowed_at;     /* when the pacer let the last message go */
} PlayoutCore;

static PyTypeObject *PacerType;
static PyObject *AVAILABLE, *PASS_THROUGH, *QUEUE, *CANCEL, *SWEEP, *WRITE_QUEUE,
    *WAKE; /* interned names */
static PyObject *FROMBUFFER, *S16; /* numpy.frombuffer, "<i2" */

/* An array of the s16 samples in data (read-only: it shares the bytes). */
static PyObject *as_samples(PyObject *data) {
    PyObject *args[] = {data, S16};
    return PyObject_Vectorcall(FROMBUFFER, args, 2, NULL);
}

/* An array of a copy of n s16 samples at buf. */
static PyObject *as_samples_of(const char *buf, Py_ssize_t n) {
    PyObject *data = PyBytes_FromStringAndSize(buf, n * 2);
    if (data == NULL)
        return NULL;
    PyObject *samples = as_samples(data);
    Py_DECREF(data);
    return samples;
}

static int now_of(PlayoutCore *o, double *now) {
    PyObject *t = o->clock == NULL ? NULL : PyObject_CallNoArgs(o->clock);
    if (t == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the playout has no clock");
        return -1;
    }
    *now = PyFloat_AsDouble(t);
    Py_DECREF(t);
    return *now == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* Samples waiting in the queue's ring; -1 with an exception set. */
static Py_ssize_t queued(PlayoutCore *o) {
    if (o->ring == NULL)
        return 0;
    PyObject *n = PyObject_GetAttr(o->ring, AVAILABLE);
    if (n == NULL)
        return -1;
    Py_ssize_t count = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    return count;
}

/* One dimension of little-endian s16 samples: what a message holds ('h' alone, '@h' and
 * '=h' are the machine's own order). */
static int s16_block(const Py_buffer *view) {
    const char *f = view->format == NULL ? "B" : view->format;
    int little = PY_LITTLE_ENDIAN;
    if (*f == '<' || *f == '>' || *f == '!')
        little = *f == '<';
    if (*f == '<' || *f == '>' || *f == '!' || *f == '=' || *f == '@')
        f++;
    return little && view->ndim == 1 && view->itemsize == 2 && strcmp(f, "h") == 0;
}

static int has_pacer(PlayoutCore *o) {
    if (o->pacer != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "the playout has no pacer");
    return 0;
}

static int has_queue(PlayoutCore *o) {
    if (o->queue != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "the playout has no queue");
    return 0;
}

/* Write one message's bytes now (a new reference, taken) and account them: the pacer's
 * clock, the samples out, on_sent (with message, or with an array made of data). */
static int send_data(PlayoutCore *o, PyObject *send, double now, PyObject *data,
                     PyObject *message) {
    Pacer *p = o->pacer;
    double allowed = pacer_allowed_at(p, o->frame_size);
    o->allowed_at = now < allowed ? now : allowed;
    PyObject *done = PyObject_CallOneArg(send, data);
    o->held_for = 0.0;
    if (done == NULL) {
        Py_DECREF(data);
        return -1;
    }
    Py_DECREF(done);
    long long n = PyBytes_GET_SIZE(data) / 2;
    pacer_sent(p, now, n);
    o->samples_out += n;
    if (o->on_sent == NULL || o->on_sent == Py_None) {
        Py_DECREF(data);
        return 0;
    }
    if (message == NULL)
        message = as_samples(data);
    else
        Py_INCREF(message);
    Py_DECREF(data);
    done = message == NULL ? NULL : PyObject_CallOneArg(o->on_sent, message);
    Py_XDECREF(message);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* Write one message now (its s16 block held in view) and account it. */
static int send_message(PlayoutCore *o, PyObject *send, double now, PyObject *message,
                        const Py_buffer *view) {
    PyObject *data = PyBytes_FromStringAndSize(view->buf, view->len);
    return data == NULL ? -1 : send_data(o, send, now, data, message);
}

/* put()'s way for samples that cannot pass through: the subclass's _queue. */
static PyObject *queue_samples(PlayoutCore *o, PyObject *utterance_id, PyObject *samples) {
    PyObject *call[] = {(PyObject *)o, utterance_id, samples};
    return PyObject_VectorcallMethod(QUEUE, call, 3, NULL);
}

/* Whether n samples may go out now, as _pump would send them in one message: 1 with *now
 * set, 0 if not, -1 on an error. */
static int may_pass(PlayoutCore *o, Py_ssize_t n, double *now) {
    Py_ssize_t frame = o->frame_size;
    if (!n || frame <= 0 || n % frame || n > o->message_samples)
        return 0;
    if (o->paused || !o->running || o->pumping || o->awaiting_sink ||
        (o->timer != NULL && o->timer != Py_None))
        return 0;
    Py_ssize_t waiting = queued(o);
    if (waiting != 0)
        return waiting < 0 ? -1 : 0;
    if (!has_pacer(o) || !has_queue(o) || now_of(o, now) < 0)
        return -1;
    Pacer *p = o->pacer;
    if (n < o->prebuffer && pacer_lead_at(p, *now) == 0)
        return 0; /* the bot ran dry: the prebuffer queues first */
    Py_ssize_t first = n / frame < o->min_frames ? n / frame : o->min_frames;
    if (pacer_send_at(p, *now, (long long)first * frame) > *now)
        return 0;
    return pacer_frames_due(p, *now, frame) * frame >= n;
}

/* The send for n samples of utterance_id passing through, their accounting done: 1 with
 * *send (a new reference), 0 if there is no sink or the utterance is gone, -1 on an error. */
static int open_send(PlayoutCore *o, PyObject *utterance_id, Py_ssize_t n, PyObject **send) {
    *send = o->sink == NULL ? Py_NewRef(Py_None) : PyObject_CallNoArgs(o->sink);
    if (*send == NULL)
        return -1;
    if (*send == Py_None) {
        Py_CLEAR(*send);
        return 0;
    }
    PyObject *count = PyLong_FromSsize_t(n);
    PyObject *args[] = {o->queue, utterance_id, count};
    PyObject *taken = count == NULL ? NULL : PyObject_VectorcallMethod(PASS_THROUGH, args, 3, NULL);
    Py_XDECREF(count);
    int ok = taken == NULL ? -1 : PyObject_IsTrue(taken);
    Py_XDECREF(taken);
    if (ok <= 0)
        Py_CLEAR(*send);
    return ok;
}

static double hold_margin(PlayoutCore *o);

/* Whether a live stream's n samples, free to go now, should wait for its next frame: fewer
 * than min_frames, and the bot still has the margin (half a frame) when that comes on time. */
static int holds(PlayoutCore *o, Py_ssize_t n, double now) {
    if (o->min_frames < 2 || n / o->frame_size >= o->min_frames ||
        n + o->frame_size > o->message_samples || o->sweep == NULL ||
        o->call_later == NULL || o->call_later == Py_None)
        return 0;
    Pacer *p = o->pacer;
    return pacer_lead_at(p, now) >= (double)n / p->sample_rate + hold_margin(o);
}

/* The frames held across one loop's playouts: a list through the playouts in the order
 * they began to wait (each leaves it before it is freed), and one timer, armed while the
 * list is not empty, that sends alone the frames whose next did not come in time. A
 * sweep reads the clock of the first (a loop's playouts share time.monotonic) and stops
 * at the first frame held too recently to be due: walking the whole list, a cache miss a
 * playout, took 1.1 % of the core at 450 sessions. */
struct HoldSweep {
    PyObject_HEAD
    PlayoutCore *first, *last;
    PyObject *timer; /* armed for the next sweep, or NULL */
    double every;    /* seconds between sweeps */
    double min_wait; /* the shortest wait a frame held has had to wait (0: none held yet) */
};

static PyTypeObject HoldSweepType;

/* Cancel the sweep's timer; callable with an exception set (a playout freed or cleared
 * while it held frames), which it keeps. */
static void cancel_sweep_timer(HoldSweep *w) {
    PyObject *timer = w->timer;
    w->timer = NULL;
    if (timer == NULL)
        return;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *done = PyObject_CallMethodNoArgs(timer, CANCEL);
    if (done == NULL)
        PyErr_WriteUnraisable(timer); /* it then sweeps an empty list */
    Py_XDECREF(done);
    Py_DECREF(timer);
    PyErr_Restore(type, value, traceback);
}

/* Arm the sweep's timer through call_later (the loop's), unless it is armed. */
static int arm_sweep(HoldSweep *w, PyObject *call_later) {
    if (w->timer != NULL)
        return 0;
    if (call_later == NULL || call_later == Py_None || !(w->every > 0)) {
        PyErr_SetString(PyExc_RuntimeError, "a hold sweep needs a loop's call_later and an interval");
        return -1;
    }
    PyObject *sweep = PyObject_GetAttr((PyObject *)w, SWEEP);
    PyObject *delay = PyFloat_FromDouble(w->every);
    PyObject *args[] = {delay, sweep};
    w->timer = sweep == NULL || delay == NULL ? NULL : PyObject_Vectorcall(call_later, args, 2, NULL);
    Py_XDECREF(sweep);
    Py_XDECREF(delay);
    return w->timer == NULL ? -1 : 0;
}

/* The lead a held frame goes alone with, at the latest: half a frame, or a sweep's interval
 * if longer (10 ms frames: a sweep may come that much after a frame's time). */
static double hold_margin(PlayoutCore *o) {
    double half = (double)o->frame_size / o->pacer->sample_rate / 2;
    return pacer_later(half, o->sweep->every);
}

static void unlist(PlayoutCore *o) {
    HoldSweep *w = o->sweep;
    if (o->prev != NULL)
        o->prev->next = o->next;
    else if (w != NULL && w->first == o)
        w->first = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    else if (w != NULL && w->last == o)
        w->last = o->prev;
    o->prev = o->next = NULL;
    if (w != NULL && w->first == NULL)
        cancel_sweep_timer(w); /* nothing held: no timer keeps the loop */
}

/* Forget the held frames (out of the sweep's list); returns how many samples they were. */
static Py_ssize_t drop_held(PlayoutCore *o) {
    Py_ssize_t n = o->held_n;
    if (!n)
        return 0;
    o->held_n = 0;
    Py_CLEAR(o->held_id);
    unlist(o);
    return n;
}

/* Hold a live stream's samples (the block in view) for its next frame; the sweep lets them
 * go alone once only half a frame of lead is left. */
static int hold(PlayoutCore *o, PyObject *utterance_id, const Py_buffer *view, double now) {
    Py_ssize_t room = o->message_samples * 2;
    if (o->held_room < room) {
        char *held = PyMem_Realloc(o->held, room);
        if (held == NULL)
            return PyErr_NoMemory(), -1;
        o->held = held;
        o->held_room = room;
    }
    HoldSweep *w = o->sweep;
    if (arm_sweep(w, o->call_later) < 0)
        return -1;
    Pacer *p = o->pacer;
    memcpy(o->held, view->buf, view->len);
    o->held_n = view->len / 2;
    o->held_id = Py_NewRef(utterance_id);
    o->held_at = now;
    double wait = pacer_lead_at(p, now) - hold_margin(o);
    o->held_until = now + wait;
    if (w->min_wait == 0.0 || wait < w->min_wait)
        w->min_wait = wait;
    o->next = NULL;
    o->prev = w->last;
    if (w->last != NULL)
        w->last->next = o;
    else
        w->first = o;
    w->last = o;
    return 0;
}

/* Send the held frames with the block in view as one message, if they may all go now:
 * 1 sent, 0 not (nothing changed), -1 on an error. */
static int join_held(PlayoutCore *o, PyObject *utterance_id, const Py_buffer *view) {
    Py_ssize_t n = o->held_n + view->len / 2;
    double now = 0.0;
    int same = PyObject_RichCompareBool(o->held_id, utterance_id, Py_EQ);
    int through = same <= 0 ? same : may_pass(o, n, &now);
    PyObject *send = NULL;
    if (through > 0)
        through = open_send(o, utterance_id, n, &send);
    if (through <= 0)
        return through;
    PyObject *data = PyBytes_FromStringAndSize(NULL, n * 2);
    if (data == NULL) {
        Py_DECREF(send);
        return -1;
    }
    if (o->held_n + view->len / 2 != n) { /* a callback above cut the held frames */
        Py_DECREF(send);
        Py_DECREF(data);
        PyErr_SetString(PyExc_RuntimeError, "the held frames changed while being sent");
        return -1;
    }
    memcpy(PyBytes_AS_STRING(data), o->held, o->held_n * 2);
    memcpy(PyBytes_AS_STRING(data) + o->held_n * 2, view->buf, view->len);
    /* the probe times a pair from the read of the frame that completed it; the held frame
     * alone (a close's empty flush) from its own read, less its wait */
    o->held_for = view->len ? 0.0 : now - o->held_at;
    o->held_end = o->samples_out + n;
    drop_held(o);
    int sent = send_data(o, send, now, data, NULL);
    Py_DECREF(send);
    return sent < 0 ? -1 : 1;
}

/* The held frames go to the queue (its write: nothing wakes), in front of what comes next;
 * the wait they had counts as on purpose. Returns the samples the queue did not take (none:
 * it was empty when they were held, and all that comes after them comes through here), or
 * -1 on an error. */
static Py_ssize_t unhold(PlayoutCore *o) {
    if (!o->held_n)
        return 0;
    double now;
    if (!has_queue(o) || now_of(o, &now) < 0)
        return -1;
    PyObject *samples = as_samples_of(o->held, o->held_n);
    PyObject *args[] = {o->queue, o->held_id, samples};
    PyObject *taken = samples == NULL ? NULL : PyObject_VectorcallMethod(WRITE_QUEUE, args, 3, NULL);
    Py_XDECREF(samples);
    Py_ssize_t n = taken == NULL ? -1 : PyLong_AsSsize_t(taken);
    Py_XDECREF(taken);
    if (n < 0 && PyErr_Occurred()) {
        drop_held(o); /* queued or not, never held as well: sent at most once */
        return -1;
    }
    Py_ssize_t queued_ahead = queued(o);
    if (queued_ahead < 0) {
        drop_held(o);
        return -1;
    }
    o->held_for = now - o->held_at; /* for the message that ends with it, if one does */
    o->held_end = o->samples_out + queued_ahead;
    return drop_held(o) - n;
}

/* obj's buffer, held in *view, if it is one plain block of s16le samples: 1; else 0 and
 * nothing held (an array the queue converts). */
static int s16_view(PyObject *obj, Py_buffer *view) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        return 0;
    }
    if (s16_block(view))
        return 1;
    PyBuffer_Release(view);
    return 0;
}

/* put() of n samples whose s16 block is in view, with nothing held: sent on, held for
 * the next frame, or 0 if they must queue; -1 on an error. */
static int pass_block(PlayoutCore *o, PyObject *utterance_id, PyObject *samples,
                      const Py_buffer *view) {
    Py_ssize_t n = view->len / 2;
    double now = 0.0;
    int through = may_pass(o, n, &now);
    if (through > 0 && holds(o, n, now))
        return hold(o, utterance_id, view, now) < 0 ? -1 : 1;
    PyObject *send = NULL;
    if (through > 0)
        through = open_send(o, utterance_id, n, &send);
    if (through <= 0)
        return through;
    int sent = send_message(o, send, now, samples, view);
    Py_DECREF(send);
    return sent < 0 ? -1 : 1;
}

/* put()'s way when the held frames (if any) cannot go with these samples: both queue, the
 * held first; returns how many samples did not fit. */
static PyObject *queue_after_held(PlayoutCore *o, PyObject *utterance_id, PyObject *samples) {
    Py_ssize_t held_lost = unhold(o);
    if (held_lost < 0)
        return NULL;
    PyObject *lost = queue_samples(o, utterance_id, samples);
    if (lost == NULL || !held_lost)
        return lost;
    Py_ssize_t n = PyLong_AsSsize_t(lost);
    Py_DECREF(lost);
    return n < 0 && PyErr_Occurred() ? NULL : PyLong_FromSsize_t(n + held_lost);
}

/* put() of samples whose s16 block is held in view (released here). */
static PyObject *put_block(PlayoutCore *o, PyObject *utterance_id, PyObject *samples,
                           Py_buffer *view) {
    int done = o->held_n ? join_held(o, utterance_id, view) : pass_block(o, utterance_id, samples, view);
    PyBuffer_Release(view);
    if (done != 0)
        return done < 0 ? NULL : PyLong_FromLong(0);
    return queue_after_held(o, utterance_id, samples);
}

static PyObject *PlayoutCore_put(PlayoutCore *o, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "put(utterance_id, samples) takes 2 arguments");
    Py_buffer view;
    if (s16_view(args[1], &view))
        return put_block(o, args[0], args[1], &view);
    return queue_after_held(o, args[0], args[1]); /* the queue takes any array */
}

/* _unhold(): the held frames go to the queue now (before a pause, an interrupt, a close);
 * returns the samples it did not take. */
static PyObject *PlayoutCore_unhold(PlayoutCore *o, PyObject *unused) {
    Py_ssize_t lost = unhold(o);
    return lost < 0 ? NULL : PyLong_FromSsize_t(lost);
}

/* Send alone the held frames of the playouts in w's list whose wait is up (within half a
 * sweep); a playout's error is reported and the others go on. */
/* Send o's held frames alone (through its queue); an error is reported and they are
 * dropped, so they are not tried again every sweep. */
static void let_go(PlayoutCore *o) {
    PyObject *woke = unhold(o) < 0 ? NULL : PyObject_CallMethodNoArgs((PyObject *)o, WAKE);
    if (woke == NULL) {
        PyErr_WriteUnraisable((PyObject *)o);
        drop_held(o);
    }
    Py_XDECREF(woke);
}

/* Let every held frame of w's list go now: what a sweep that cannot read the clock or arm
 * its timer does, so no frame waits for a sweep that will not come. */
static void let_all_go(HoldSweep *w) {
    Py_ssize_t n = 0;
    for (PlayoutCore *o = w->first; o != NULL; o = o->next)
        n++;
    for (; n > 0 && w->first != NULL; n--) { /* at most those listed now */
        PlayoutCore *o = (PlayoutCore *)Py_NewRef(w->first);
        let_go(o);
        Py_DECREF(o);
    }
}

static void sweep_due(HoldSweep *w) {
    double now;
    if (w->first == NULL)
        return;
    if (now_of(w->first, &now) < 0) {
        PyErr_WriteUnraisable((PyObject *)w->first);
        let_all_go(w);
        return;
    }
    double soon = now + w->every / 2, recent = soon - w->min_wait;
    Py_ssize_t n = 0;
    for (PlayoutCore *o = w->first; o != NULL && o->held_at <= recent; o = o->next)
        n++; /* the rest began to wait too recently to be due */
    PlayoutCore **due = PyMem_Malloc((n ? n : 1) * sizeof *due);
    if (due == NULL) {
        PyErr_NoMemory();
        PyErr_WriteUnraisable((PyObject *)w);
        return;
    }
    Py_ssize_t k = 0, i = 0;
    for (PlayoutCore *o = w->first; i < n; o = o->next, i++)
        if (o->held_until <= soon)
            due[k++] = (PlayoutCore *)Py_NewRef(o);
    for (i = 0; i < k; i++) { /* sending may end holds, or start new ones: each is checked again */
        PlayoutCore *o = due[i];
        if (o->held_n && o->sweep == w && o->held_until <= soon)
            let_go(o);
        Py_DECREF(o);
    }
    PyMem_Free(due);
}

static PyObject *HoldSweep_sweep(HoldSweep *w, PyObject *unused) {
    Py_CLEAR(w->timer); /* it has fired */
    sweep_due(w);
    if (w->first != NULL && arm_sweep(w, w->first->call_later) < 0) {
        PyErr_WriteUnraisable((PyObject *)w);
        let_all_go(w);
    }
    Py_RETURN_NONE;
}

static PyObject *HoldSweep_get_holding(HoldSweep *w, void *unused) {
    Py_ssize_t n = 0;
    for (PlayoutCore *o = w->first; o != NULL; o = o->next)
        n++;
    return PyLong_FromSsize_t(n);
}

static int HoldSweep_init(HoldSweep *w, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"every", NULL};
    double every;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "d", names, &every))
        return -1;
    if (!(every > 0))
        return PyErr_SetString(PyExc_ValueError, "a sweep's interval must be positive"), -1;
    w->every = every;
    return 0;
}

static int HoldSweep_traverse(HoldSweep *w, visitproc visit, void *arg) {
    Py_VISIT(w->timer);
    return 0;
}

static int HoldSweep_clear(HoldSweep *w) {
    Py_CLEAR(w->timer);
    return 0;
}

static void HoldSweep_dealloc(HoldSweep *w) {
    PyObject_GC_UnTrack(w);
    HoldSweep_clear(w); /* its list is empty: each playout in it holds a reference to it */
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyMethodDef HoldSweep_methods[] = {
    {"_sweep", (PyCFunction)HoldSweep_sweep, METH_NOARGS,
     "_sweep(): the timer's callback: send alone the held frames whose wait is up."},
    {NULL},
};

static PyGetSetDef HoldSweep_getset[] = {
    {"holding", (getter)HoldSweep_get_holding, NULL, "playouts holding a frame now", NULL},
    {NULL},
};

static PyMemberDef HoldSweep_members[] = {
    {"every", T_DOUBLE, offsetof(HoldSweep, every), READONLY, "seconds between sweeps"},
    {NULL},
};

static PyTypeObject HoldSweepType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.server._playout.HoldSweep",
    .tp_basicsize = sizeof(HoldSweep),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "HoldSweep(every): one loop's held live frames, let go by one timer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)HoldSweep_init,
    .tp_dealloc = (destructor)HoldSweep_dealloc,
    .tp_traverse = (traverseproc)HoldSweep_traverse,
    .tp_clear = (inquiry)HoldSweep_clear,
    .tp_methods = HoldSweep_methods,
    .tp_members = HoldSweep_members,
    .tp_getset = HoldSweep_getset,
};

/* _drop_held(): forget the held frames (the session ended); returns how many samples. */
static PyObject *PlayoutCore_drop_held(PlayoutCore *o, PyObject *unused) {
    return PyLong_FromSsize_t(drop_held(o));
}

static PyObject *PlayoutCore_send_message(PlayoutCore *o, PyObject *const *args,
                                          Py_ssize_t nargs) {
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "_send_message(send, now, message) takes 3 arguments");
    double now = PyFloat_AsDouble(args[1]);
    if ((now == -1.0 && PyErr_Occurred()) || !has_pacer(o))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (!s16_block(&view)) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_TypeError, "a message is a 1-D block of s16 samples");
    }
    int sent = send_message(o, args[0], now, args[2], &view);
    PyBuffer_Release(&view);
    if (sent < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *PlayoutCore_delay(PlayoutCore *o, PyObject *unused) {
    double now;
    Py_ssize_t waiting = queued(o);
    if (waiting < 0 || !has_pacer(o) || now_of(o, &now) < 0)
        return NULL;
    Pacer *p = o->pacer;
    double ahead =
        (double)(waiting + o->held_n + o->frame_size) / p->sample_rate + pacer_lead_at(p, now);
    return PyFloat_FromDouble(pacer_later(0.0, ahead - p->lead));
}

static PyObject *PlayoutCore_get_pacer(PlayoutCore *o, void *unused) {
    return o->pacer == NULL ? Py_NewRef(Py_None) : Py_NewRef((PyObject *)o->pacer);
}

static int PlayoutCore_set_pacer(PlayoutCore *o, PyObject *value, void *unused) {
    if (value == NULL || !PyObject_TypeCheck(value, PacerType)) {
        PyErr_SetString(PyExc_TypeError, "a playout's pacer is a bridge.audio._pacer.Pacer");
        return -1;
    }
    Py_XSETREF(o->pacer, (Pacer *)Py_NewRef(value));
    return 0;
}

static int PlayoutCore_traverse(PlayoutCore *o, visitproc visit, void *arg) {
    Py_VISIT(o->pacer);
    Py_VISIT(o->clock);
    Py_VISIT(o->sink);
    Py_VISIT(o->queue);
    Py_VISIT(o->ring);
    Py_VISIT(o->on_sent);
    Py_VISIT(o->timer);
    Py_VISIT(o->call_later);
    Py_VISIT(o->held_id);
    Py_VISIT((PyObject *)o->sweep);
    return 0;
}

static int PlayoutCore_clear(PlayoutCore *o) {
    Py_CLEAR(o->pacer);
    Py_CLEAR(o->clock);
    Py_CLEAR(o->sink);
    Py_CLEAR(o->queue);
    Py_CLEAR(o->ring);
    Py_CLEAR(o->on_sent);
    Py_CLEAR(o->timer);
    drop_held(o); /* out of the sweep's list before the sweep goes */
    Py_CLEAR(o->call_later);
    Py_CLEAR(o->sweep);
    return 0;
}

static void PlayoutCore_dealloc(PlayoutCore *o) {
    PyObject_GC_UnTrack(o);
    PlayoutCore_clear(o);
    PyMem_Free(o->held);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

static PyMemberDef PlayoutCore_members[] = {
    {"_clock", T_OBJECT, offsetof(PlayoutCore, clock), 0, "() -> float: the monotonic clock"},
    {"_sink", T_OBJECT, offsetof(PlayoutCore, sink), 0, "() -> the current send, or None"},
    {"queue", T_OBJECT, offsetof(PlayoutCore, queue), 0, "the PlaybackQueue"},
    {"_ring", T_OBJECT, offsetof(PlayoutCore, ring), 0, "the queue's ring (its `available`)"},
    {"on_sent", T_OBJECT, offsetof(PlayoutCore, on_sent), 0, "called with each message sent"},
    {"_timer", T_OBJECT, offsetof(PlayoutCore, timer), 0, "the timer armed, or None"},
    {"_call_later", T_OBJECT, offsetof(PlayoutCore, call_later), 0,
     "the loop's call_later while run() is on (a live frame may wait for the next), or None"},
    {"_held_for", T_DOUBLE, offsetof(PlayoutCore, held_for), 0,
     "seconds the next message's first frame waited on purpose (the probe's)"},
    {"held_samples", T_PYSSIZET, offsetof(PlayoutCore, held_n), READONLY,
     "samples of a live stream waiting for its next frame, to go in one message with it"},
    {"paused", T_BOOL, offsetof(PlayoutCore, paused), 0, "pause() holds the speech"},
    {"_running", T_BOOL, offsetof(PlayoutCore, running), 0, "run() is on: frames go out"},
    {"_pumping", T_BOOL, offsetof(PlayoutCore, pumping), 0, "_pump is sending"},
    {"_awaiting_sink", T_BOOL, offsetof(PlayoutCore, awaiting_sink), 0,
     "a frame is ready and there is no sink: run() waits for one"},
    {"frame_size", T_PYSSIZET, offsetof(PlayoutCore, frame_size), 0, "samples a frame"},
    {"_prebuffer", T_PYSSIZET, offsetof(PlayoutCore, prebuffer), 0,
     "samples queued before a start"},
    {"_min_frames", T_PYSSIZET, offsetof(PlayoutCore, min_frames), 0,
     "frames a queued message waits to hold"},
    {"_message_samples", T_PYSSIZET, offsetof(PlayoutCore, message_samples), 0,
     "samples a message holds at most"},
    {"samples_out", T_LONGLONG, offsetof(PlayoutCore, samples_out), 0,
     "samples sent at the current rate"},
    {"allowed_at", T_DOUBLE, offsetof(PlayoutCore, allowed_at), 0,
     "when the pacer let the last message go"},
    {NULL},
};

static PyObject *PlayoutCore_get_sweep(PlayoutCore *o, void *unused) {
    return o->sweep == NULL ? Py_NewRef(Py_None) : Py_NewRef((PyObject *)o->sweep);
}

static int PlayoutCore_set_sweep(PlayoutCore *o, PyObject *value, void *unused) {
    if (value == NULL || (value != Py_None && !PyObject_TypeCheck(value, &HoldSweepType))) {
        PyErr_SetString(PyExc_TypeError, "a playout's sweep is a HoldSweep or None");
        return -1;
    }
    if (o->held_n) {
        PyErr_SetString(PyExc_RuntimeError, "frames are held: _unhold() them first");
        return -1;
    }
    Py_XSETREF(o->sweep, value == Py_None ? NULL : (HoldSweep *)Py_NewRef(value));
    return 0;
}

static PyGetSetDef PlayoutCore_getset[] = {
    {"_sweep", (getter)PlayoutCore_get_sweep, (setter)PlayoutCore_set_sweep,
     "the loop's HoldSweep while run() is on (a live frame may wait for the next), or None",
     NULL},
    {"pacer", (getter)PlayoutCore_get_pacer, (setter)PlayoutCore_set_pacer,
     "the pacer's clock (an OutputPacer)", NULL},
    {NULL},
};

static PyMethodDef PlayoutCore_methods[] = {
    {"put", (PyCFunction)(void (*)(void))PlayoutCore_put, METH_FASTCALL,
     "put(utterance_id, samples): send them on at once when _pump would send them all now in "
     "one message, else queue them (_queue); returns how many did not fit (dropped)."},
    {"_send_message", (PyCFunction)(void (*)(void))PlayoutCore_send_message, METH_FASTCALL,
     "_send_message(send, now, message): write one message and account it (on_sent gets "
     "the message itself: copy to keep)."},
    {"_unhold", (PyCFunction)PlayoutCore_unhold, METH_NOARGS,
     "_unhold(): the frames held for the next go to the queue now (before a pause, an "
     "interrupt, a close); returns the samples it did not take."},
    {"_drop_held", (PyCFunction)PlayoutCore_drop_held, METH_NOARGS,
     "_drop_held(): forget the held frames (the session ended); returns their samples."},
    {"delay", (PyCFunction)PlayoutCore_delay, METH_NOARGS,
     "delay(): seconds a frame queued now would wait to be sent: the queue, and the lead if "
     "full."},
    {NULL},
};

static PyTypeObject PlayoutCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.server._playout.PlayoutCore",
    .tp_basicsize = sizeof(PlayoutCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A playout's pass-through and send (bridge/server/playout.py sets it up).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)PlayoutCore_dealloc,
    .tp_traverse = (traverseproc)PlayoutCore_traverse,
    .tp_clear = (inquiry)PlayoutCore_clear,
    .tp_methods = PlayoutCore_methods,
    .tp_members = PlayoutCore_members,
    .tp_getset = PlayoutCore_getset,
};

/* A live stream's writes: SpeechStream is a StreamCore. A block of s16 samples at the
 * bot's rate goes to its playout's put() from here; anything else (bytes, floats, another
 * rate, a closed stream) to the subclass's _write. */
typedef struct {
    PyObject_HEAD
    PyObject *playout;      /* the Playout */
    PyObject *utterance_id; /* its utterance's id in the queue */
    char closed, resamples;
} StreamCore;

static PyObject *WRITE; /* "_write" */

static PyObject *StreamCore_write(StreamCore *s, PyObject *audio) {
    Py_buffer view;
    if (!s->closed && !s->resamples && s->playout != NULL && s->utterance_id != NULL &&
        PyObject_TypeCheck(s->playout, &PlayoutCoreType) && s16_view(audio, &view))
        return put_block((PlayoutCore *)s->playout, s->utterance_id, audio, &view);
    return PyObject_CallMethodOneArg((PyObject *)s, WRITE, audio);
}

static int StreamCore_traverse(StreamCore *s, visitproc visit, void *arg) {
    Py_VISIT(s->playout);
    Py_VISIT(s->utterance_id);
    return 0;
}

static int StreamCore_clear(StreamCore *s) {
    Py_CLEAR(s->playout);
    Py_CLEAR(s->utterance_id);
    return 0;
}

static void StreamCore_dealloc(StreamCore *s) {
    PyObject_GC_UnTrack(s);
    StreamCore_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMemberDef StreamCore_members[] = {
    {"_playout", T_OBJECT, offsetof(StreamCore, playout), 0, "the Playout written to"},
    {"_utterance_id", T_OBJECT, offsetof(StreamCore, utterance_id), 0, "its utterance's id"},
    {"closed", T_BOOL, offsetof(StreamCore, closed), 0, "ended: writes queue nothing"},
    {"_resamples", T_BOOL, offsetof(StreamCore, resamples), 0, "written at another rate"},
    {NULL},
};

static PyMethodDef StreamCore_methods[] = {
    {"write", (PyCFunction)StreamCore_write, METH_O,
     "write(audio): queue audio at the stream's rate; returns the samples (at the bot's rate) "
     "that did not fit in the playback queue and were dropped: the caller counts them."},
    {NULL},
};

static PyTypeObject StreamCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.server._playout.StreamCore",
    .tp_basicsize = sizeof(StreamCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A live stream's writes (bridge/server/playout.py's SpeechStream sets it up).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)StreamCore_dealloc,
    .tp_traverse = (traverseproc)StreamCore_traverse,
    .tp_clear = (inquiry)StreamCore_clear,
    .tp_methods = StreamCore_methods,
    .tp_members = StreamCore_members,
};

/* The added latency of a loopback (a live echo): output sample j is input sample j plus
 * what the loopback dropped, so each message sent is timed from the read of the chunk
 * that brought its last sample (it could not go before; or from when the pacer let it go,
 * if it held it for the lead; a frame that waited for the next in vain, less that wait:
 * held_for), until the socket's write: what the bridge adds, not what pacing means to add.
 * Session.latency_probe is one; the arrivals and the messages awaiting their write are
 * rings of a bound named at construction (the oldest is forgotten when one is full). */
typedef struct {
    long long index; /* input samples heard up to the end of the chunk */
    double read_at;  /* when its read came */
} Arrival;

typedef struct {
    PyObject_HEAD
    PyObject *playout; /* the PlayoutCore whose sends are timed */
    PyObject *clock;
    PyObject *bounds;  /* the histogram's upper bounds (a tuple of floats, ascending) */
    double *bound;
    long long *counts; /* observations at or under each bound, one bucket above the last */
    Py_ssize_t buckets;
    double sum;
    long long count;
    long long dropped; /* input samples the loopback dropped */
    Arrival *arrivals;
    double *unwritten; /* when each message sent and not yet written could go */
    Py_ssize_t kept, first_arrival, arrivals_len, first_unwritten, unwritten_len;
} LatencyProbe;


static int LatencyProbe_init(LatencyProbe *l, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"playout", "bounds", "kept", "clock", NULL};
    PyObject *playout, *bounds, *clock;
    Py_ssize_t kept;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OnO", names, &PlayoutCoreType, &playout,
                                     &bounds, &kept, &clock))
        return -1;
    if (kept <= 0)
        return PyErr_SetString(PyExc_ValueError, "kept must be positive"), -1;
    PyObject *tuple = PySequence_Tuple(bounds);
    if (tuple == NULL)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    PyMem_Free(l->bound);
    PyMem_Free(l->counts);
    PyMem_Free(l->arrivals);
    PyMem_Free(l->unwritten);
    l->bound = PyMem_Calloc(n ? n : 1, sizeof *l->bound);
    l->counts = PyMem_Calloc(n + 1, sizeof *l->counts);
    l->arrivals = PyMem_Calloc(kept, sizeof *l->arrivals);
    l->unwritten = PyMem_Calloc(kept, sizeof *l->unwritten);
    if (!l->bound || !l->counts || !l->arrivals || !l->unwritten) {
        Py_DECREF(tuple);
        return PyErr_NoMemory(), -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        l->bound[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tuple, i));
        if (l->bound[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(tuple);
            return -1;
        }
    }
    Py_XSETREF(l->bounds, tuple);
    Py_XSETREF(l->playout, Py_NewRef(playout));
    Py_XSETREF(l->clock, Py_NewRef(clock));
    l->buckets = n + 1;
    l->kept = kept;
    l->sum = 0.0;
    l->count = l->dropped = 0;
    l->first_arrival = l->arrivals_len = l->first_unwritten = l->unwritten_len = 0;
    return 0;
}

static PyObject *LatencyProbe_arrived(LatencyProbe *l, PyObject *arrival) {
    long long index;
    double read_at;
    if (!PyArg_ParseTuple(arrival, "Ld", &index, &read_at))
        return NULL;
    if (l->arrivals_len == l->kept) { /* the oldest is forgotten */
        l->first_arrival = (l->first_arrival + 1) % l->kept;
        l->arrivals_len--;
    }
    Arrival *slot = &l->arrivals[(l->first_arrival + l->arrivals_len++) % l->kept];
    slot->index = index;
    slot->read_at = read_at;
    Py_RETURN_NONE;
}

/* A message of `samples` is being sent (before the playout counts it). */
static void probe_sent(LatencyProbe *l, long long samples) {
    PlayoutCore *o = (PlayoutCore *)l->playout;
    long long sent = o->samples_out + samples + l->dropped;
    while (l->arrivals_len && l->arrivals[l->first_arrival].index < sent) {
        l->first_arrival = (l->first_arrival + 1) % l->kept;
        l->arrivals_len--;
    }
    if (!l->arrivals_len)
        return;
    double read_at = l->arrivals[l->first_arrival].read_at;
    if (l->unwritten_len == l->kept) {
        l->first_unwritten = (l->first_unwritten + 1) % l->kept;
        l->unwritten_len--;
    }
    l->unwritten[(l->first_unwritten + l->unwritten_len++) % l->kept] =
        pacer_later(read_at + (sent - l->dropped == o->held_end ? o->held_for : 0.0), o->allowed_at);
}

static PyObject *LatencyProbe_sent(LatencyProbe *l, PyObject *samples) {
    long long n = PyLong_AsLongLong(samples);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    probe_sent(l, n);
    Py_RETURN_NONE;
}

static void observe(LatencyProbe *l, double value) {
    Py_ssize_t i = 0;
    while (i < l->buckets - 1 && l->bound[i] < value) /* bisect_left */
        i++;
    l->counts[i]++;
    l->sum += value;
    l->count++;
}

static PyObject *LatencyProbe_written(LatencyProbe *l, PyObject *unused) {
    if (!l->unwritten_len)
        Py_RETURN_NONE;
    PyObject *t = PyObject_CallNoArgs(l->clock);
    double now = t == NULL ? -1.0 : PyFloat_AsDouble(t);
    Py_XDECREF(t);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    for (Py_ssize_t i = 0; i < l->unwritten_len; i++)
        observe(l, now - l->unwritten[(l->first_unwritten + i) % l->kept]);
    l->first_unwritten = l->unwritten_len = 0;
    Py_RETURN_NONE;
}

static PyObject *LatencyProbe_lost(LatencyProbe *l, PyObject *unused) {
    l->first_unwritten = l->unwritten_len = 0;
    Py_RETURN_NONE;
}

static PyObject *LatencyProbe_clear(LatencyProbe *l, PyObject *unused) {
    l->first_arrival = l->arrivals_len = l->first_unwritten = l->unwritten_len = 0;
    l->dropped = 0;
    Py_RETURN_NONE;
}

static PyObject *LatencyProbe_counts(LatencyProbe *l, void *unused) {
    PyObject *counts = PyList_New(l->buckets);
    for (Py_ssize_t i = 0; counts != NULL && i < l->buckets; i++) {
        PyObject *n = PyLong_FromLongLong(l->counts[i]);
        if (n == NULL)
            Py_CLEAR(counts);
        else
            PyList_SET_ITEM(counts, i, n);
    }
    return counts;
}

static int LatencyProbe_traverse(LatencyProbe *l, visitproc visit, void *arg) {
    Py_VISIT(l->playout);
    Py_VISIT(l->clock);
    Py_VISIT(l->bounds);
    return 0;
}

static int LatencyProbe_clear_refs(LatencyProbe *l) {
    Py_CLEAR(l->playout);
    Py_CLEAR(l->clock);
    Py_CLEAR(l->bounds);
    return 0;
}

static void LatencyProbe_dealloc(LatencyProbe *l) {
    PyObject_GC_UnTrack(l);
    LatencyProbe_clear_refs(l);
    PyMem_Free(l->bound);
    PyMem_Free(l->counts);
    PyMem_Free(l->arrivals);
    PyMem_Free(l->unwritten);
    Py_TYPE(l)->tp_free((PyObject *)l);
}

static PyMemberDef LatencyProbe_members[] = {
    {"dropped", T_LONGLONG, offsetof(LatencyProbe, dropped), 0,
     "input samples the loopback dropped (output j is input j + this)"},
    {"bounds", T_OBJECT, offsetof(LatencyProbe, bounds), READONLY, "the histogram's bounds"},
    {"sum", T_DOUBLE, offsetof(LatencyProbe, sum), READONLY, "seconds observed, summed"},
    {"count", T_LONGLONG, offsetof(LatencyProbe, count), READONLY, "messages timed"},
    {NULL},
};

static PyGetSetDef LatencyProbe_getset[] = {
    {"counts", (getter)LatencyProbe_counts, NULL,
     "observations at or under each bound, and above the last (a new list)", NULL},
    {NULL},
};

static PyMethodDef LatencyProbe_methods[] = {
    {"arrived", (PyCFunction)LatencyProbe_arrived, METH_O,
     "arrived((index, read_at)): a chunk ending at input sample index was read at read_at"},
    {"sent", (PyCFunction)LatencyProbe_sent, METH_O,
     "sent(samples): a message is being sent (before the playout counts it): time it"},
    {"written", (PyCFunction)LatencyProbe_written, METH_NOARGS,
     "written(): the socket wrote what was sent: observe each message's latency"},
    {"lost", (PyCFunction)LatencyProbe_lost, METH_NOARGS,
     "lost(): what was sent will never be written: nothing to time"},
    {"clear", (PyCFunction)LatencyProbe_clear, METH_NOARGS,
     "clear(): the stream starts again (a new rate): forget arrivals, sends and drops"},
    {NULL},
};

static PyTypeObject LatencyProbeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.server._playout.LatencyProbe",
    .tp_basicsize = sizeof(LatencyProbe),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "LatencyProbe(playout, bounds, kept, clock): a loopback's added latency, timed.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LatencyProbe_init,
    .tp_dealloc = (destructor)LatencyProbe_dealloc,
    .tp_traverse = (traverseproc)LatencyProbe_traverse,
    .tp_clear = (inquiry)LatencyProbe_clear_refs,
    .tp_methods = LatencyProbe_methods,
    .tp_members = LatencyProbe_members,
    .tp_getset = LatencyProbe_getset,
};

/* A session's send of speech: the socket's send_speech(data, limit), which queues the
 * frame (0), or refuses it (1: not open, 2: its backlog is full), handed to `refused`;
 * a frame queued is timed by the probe, if the session has one. */
typedef struct {
    PyObject_HEAD
    PyObject *write, *limit, *refused, *probe;
    vectorcallfunc vectorcall;
} SpeechSender;

static PyObject *SpeechSender_call(SpeechSender *s, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL)
        return PyErr_Format(PyExc_TypeError, "a send takes one argument: the message's bytes");
    Py_ssize_t size = PyBytes_Check(args[0]) ? PyBytes_GET_SIZE(args[0]) : PyObject_Length(args[0]);
    if (size < 0)
        return NULL;
    PyObject *call[] = {args[0], s->limit};
    PyObject *result = PyObject_Vectorcall(s->write, call, 2, NULL);
    if (result == NULL)
        return NULL;
    long code = PyLong_AsLong(result);
    if (code == -1 && PyErr_Occurred()) {
        Py_DECREF(result);
        return NULL;
    }
    if (code)
        Py_SETREF(result, PyObject_CallOneArg(s->refused, result));
    else {
        Py_SETREF(result, Py_NewRef(Py_None));
        if (s->probe != Py_None)
            probe_sent((LatencyProbe *)s->probe, size / 2);
    }
    if (result == NULL)
        return NULL;
    Py_DECREF(result);
    Py_RETURN_NONE;
}

static PyObject *SpeechSender_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"write", "limit", "refused", "probe", NULL};
    PyObject *write, *limit, *refused, *probe;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO", names, &write, &limit, &refused,
                                     &probe))
        return NULL;
    if (probe != Py_None && !PyObject_TypeCheck(probe, &LatencyProbeType))
        return PyErr_Format(PyExc_TypeError, "probe is a LatencyProbe or None");
    SpeechSender *s = (SpeechSender *)type->tp_alloc(type, 0);
    if (s == NULL)
        return NULL;
    s->write = Py_NewRef(write);
    s->limit = Py_NewRef(limit);
    s->refused = Py_NewRef(refused);
    s->probe = Py_NewRef(probe);
    s->vectorcall = (vectorcallfunc)SpeechSender_call;
    return (PyObject *)s;
}

static int SpeechSender_traverse(SpeechSender *s, visitproc visit, void *arg) {
    Py_VISIT(s->write);
    Py_VISIT(s->limit);
    Py_VISIT(s->refused);
    Py_VISIT(s->probe);
    return 0;
}

static int SpeechSender_clear(SpeechSender *s) {
    Py_CLEAR(s->write);
    Py_CLEAR(s->limit);
    Py_CLEAR(s->refused);
    Py_CLEAR(s->probe);
    return 0;
}

static void SpeechSender_dealloc(SpeechSender *s) {
    PyObject_GC_UnTrack(s);
    SpeechSender_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyTypeObject SpeechSenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.server._playout.SpeechSender",
    .tp_basicsize = sizeof(SpeechSender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "SpeechSender(write, limit, refused, probe): send(data) writes a frame of speech.",
    .tp_new = SpeechSender_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(SpeechSender, vectorcall),
    .tp_dealloc = (destructor)SpeechSender_dealloc,
    .tp_traverse = (traverseproc)SpeechSender_traverse,
    .tp_clear = (inquiry)SpeechSender_clear,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_playout", "A playout's pass-through and send, compiled.", -1, NULL,
};

static int intern(PyObject **name, const char *text) {
    return *name != NULL || (*name = PyUnicode_InternFromString(text)) != NULL ? 0 : -1;
}

PyMODINIT_FUNC PyInit__playout(void) {
    if (FROMBUFFER == NULL) {
        PyObject *numpy = PyImport_ImportModule("numpy");
        FROMBUFFER = numpy == NULL ? NULL : PyObject_GetAttrString(numpy, "frombuffer");
        Py_XDECREF(numpy);
        if (FROMBUFFER == NULL)
            return NULL;
    }
    if (PacerType == NULL) {
        PyObject *pacer = PyImport_ImportModule("bridge.audio._pacer");
        if (pacer == NULL)
            return NULL;
        PacerType = (PyTypeObject *)PyObject_GetAttrString(pacer, "Pacer");
        Py_DECREF(pacer);
        if (PacerType == NULL)
            return NULL;
        if (!PyType_Check(PacerType)) {
            Py_CLEAR(PacerType);
            return PyErr_Format(PyExc_TypeError, "bridge.audio._pacer.Pacer is not a type");
        }
    }
    if (intern(&AVAILABLE, "available") < 0 || intern(&PASS_THROUGH, "pass_through") < 0 ||
        intern(&QUEUE, "_queue") < 0 || intern(&WRITE, "_write") < 0 ||
        intern(&CANCEL, "cancel") < 0 || intern(&SWEEP, "_sweep") < 0 ||
        intern(&S16, "<i2") < 0 || intern(&WRITE_QUEUE, "write") < 0 ||
        intern(&WAKE, "_wake") < 0 ||
        PyType_Ready(&PlayoutCoreType) < 0 || PyType_Ready(&StreamCoreType) < 0 ||
        PyType_Ready(&LatencyProbeType) < 0 || PyType_Ready(&SpeechSenderType) < 0 ||
        PyType_Ready(&HoldSweepType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL &&
        (PyModule_AddObjectRef(m, "PlayoutCore", (PyObject *)&PlayoutCoreType) < 0 ||
         PyModule_AddObjectRef(m, "StreamCore", (PyObject *)&StreamCoreType) < 0 ||
         PyModule_AddObjectRef(m, "LatencyProbe", (PyObject *)&LatencyProbeType) < 0 ||
         PyModule_AddObjectRef(m, "SpeechSender", (PyObject *)&SpeechSenderType) < 0 ||
         PyModule_AddObjectRef(m, "HoldSweep", (PyObject *)&HoldSweepType) < 0))
        Py_CLEAR(m);
    return m;
}
