/* A bot's audio frames, parsed and unmasked, compiled (RFC 6455, section 5.2), and the
 * path they take: a bot socket's reads (AudioLink) and its loop's tick batch (TickCore).
 *
 * bridge/wire/connection.py hands each read of an audio socket here while websockets'
 * parser waits between frames. audio_frames takes only the whole, masked, final binary
 * frames at the front of the read, within the size limit; it stops at the first byte of
 * anything else and leaves that byte and the rest to websockets, which answers it (a
 * control or text frame, a continuation or fragment, reserved bits, an unmasked or an
 * oversized frame, a frame cut by the end of the read). In Python each frame was a loop
 * iteration, slicing, int.from_bytes and websockets' apply_mask.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>
#include <sys/socket.h>
#include <time.h>

#include "../_calls.h"

#define FINAL_BINARY 0x82 /* FIN, no reserved bit, opcode 2 */
#define MASKED 0x80

/* out = in XOR the 4-byte mask repeated, 8 bytes at a time: the mask's bytes are copied
 * twice into one uint64, so the XOR is the same on either byte order. */
static void unmask(char *out, const unsigned char *in, Py_ssize_t n, const unsigned char *mask) {
    unsigned char twice[8];
    memcpy(twice, mask, 4);
    memcpy(twice + 4, mask, 4);
    uint64_t mask8;
    memcpy(&mask8, twice, 8);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, in + i, 8);
        word ^= mask8;
        memcpy(out + i, &word, 8);
    }
    for (; i < n; i++)
        out[i] = (char)(in[i] ^ mask[i & 3]);
}

/* The payload's offset in the frame at data[0:end] if it is a whole audio frame we take
 * (its length in *length), else -1: the frame is websockets' to parse. */
static Py_ssize_t audio_frame(const unsigned char *data, Py_ssize_t end, Py_ssize_t max_size,
                              Py_ssize_t *length) {
    if (end < 2 || data[0] != FINAL_BINARY || !(data[1] & MASKED))
        return -1;
    uint64_t n = data[1] & 0x7F;
    Py_ssize_t header = 2;
    if (n == 126) {
        if (end < 4)
            return -1;
        n = (uint64_t)data[2] << 8 | data[3];
        header = 4;
    } else if (n == 127) {
        if (end < 10)
            return -1;
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | data[i];
        header = 10;
    }
    /* max_size >= 0, so a length with the top bit set (invalid) is refused here too */
    if (n > (uint64_t)max_size || end - header - 4 < (Py_ssize_t)n)
        return -1;
    *length = (Py_ssize_t)n;
    return header + 4;
}

/* ---- The tick batch and a bot socket's audio path (bridge/wire/connection.py) ----
 *
 * TickCore is TickBatch's: hear(connection, data) queues a message for its socket's sink,
 * run() (once the loop's reads are done) hands each to its sink in arrival order, writing
 * every socket's speech after each WRITE_EVERY messages and at the end. AudioLink is
 * BotConnection's: data_received takes the whole audio frames at the front of a read
 * straight to the batch, and send_audio / write_unsent gather a tick's frames of speech
 * into one transport write. In Python these were six frames a message, about a quarter
 * of the server's time at 20 ms chunks. What is rare stays in Python: the bytes that go
 * to websockets' parser (_to_parser), the parser's state (_parser_waits), a changed wish
 * (wake_after), a failed sink (sink_failed). A batch also serves any object with
 * `audio_sink`, `wanted` and `write_unsent` (the tests' stand-ins), through attributes.
 */

#define WRITE_EVERY 8 /* messages heard between writes: a frame waits for at most 7 others */

typedef struct {
    PyObject_HEAD
    PyObject *loop;
    PyObject *heard;    /* list of (connection, data, read_at) */
    PyObject *to_write; /* list of connections with speech to write */
    char scheduled;
} TickCore;

typedef struct {
    PyObject_HEAD
    PyObject *sink;     /* audio_sink: (data, read_at) -> bytes its next frame needs */
    PyObject *batch;    /* its loop's TickBatch */
    PyObject *audio_lost, *audio_written;
    char *unsent;       /* this tick's frames of speech, headers included */
    Py_ssize_t unsent_len, unsent_size, unsent_frames;
    Py_ssize_t max_message, message_bytes;
    double heard_at;
    int queued, wanted;
    char partial, parser_idle, coalesce;
} AudioLink;

static PyTypeObject TickCoreType, AudioLinkType;
static PyObject *S_TO_PARSER, *S_PARSER_WAITS, *S_WAKE_AFTER, *S_SINK_FAILED, *S_AUDIO_SINK,
    *S_WANTED, *S_WRITE_UNSENT, *S_HEARD_AT, *S_AWAIT_WRITE, *S_CALL_SOON, *S_RUN, *S_PROTOCOL,
    *S_STATE, *S_TRANSPORT, *S_IS_CLOSING, *S_WRITE, *S_BUFFER_SIZE, *OPEN;

static double monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* time.monotonic()'s clock */
    return (double)now.tv_sec + now.tv_nsec * 1e-9;
}

static int schedule(TickCore *b) {
    if (b->scheduled)
        return 0;
    PyObject *run = PyObject_GetAttr((PyObject *)b, S_RUN);
    PyObject *handle = run == NULL ? NULL : PyObject_CallMethodOneArg(b->loop, S_CALL_SOON, run);
    Py_XDECREF(run);
    if (handle == NULL)
        return -1;
    Py_DECREF(handle);
    b->scheduled = 1;
    return 0;
}

static int batch_hear(TickCore *b, PyObject *connection, PyObject *data) {
    double now = monotonic();
    if (PyObject_TypeCheck(connection, &AudioLinkType))
        ((AudioLink *)connection)->heard_at = now;
    else {
        PyObject *at = PyFloat_FromDouble(now);
        int set = at == NULL ? -1 : PyObject_SetAttr(connection, S_HEARD_AT, at);
        Py_XDECREF(at);
        if (set < 0)
            return -1;
    }
    PyObject *entry = Py_BuildValue("(OOd)", connection, data, now);
    int added = entry == NULL ? -1 : PyList_Append(b->heard, entry);
    Py_XDECREF(entry);
    return added < 0 ? -1 : schedule(b);
}

static int batch_await_write(TickCore *b, PyObject *connection) {
    return PyList_Append(b->to_write, connection) < 0 ? -1 : schedule(b);
}

static int link_write(AudioLink *l);

static int write_one(PyObject *connection) {
    if (PyObject_TypeCheck(connection, &AudioLinkType))
        return link_write((AudioLink *)connection);
    PyObject *done = PyObject_CallMethodNoArgs(connection, S_WRITE_UNSENT);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* Write every waiting socket's speech; a write that raises leaves the rest for next time. */
static int batch_write(TickCore *b) {
    Py_ssize_t n;
    while ((n = PyList_GET_SIZE(b->to_write)) > 0) {
        PyObject *connection = Py_NewRef(PyList_GET_ITEM(b->to_write, n - 1));
        int done = PyList_SetSlice(b->to_write, n - 1, n, NULL);
        if (done == 0)
            done = write_one(connection);
        Py_DECREF(connection);
        if (done < 0)
            return -1;
    }
    return 0;
}

/* The sink's wish (its return: None or an int) against what the socket was told last. */
static int tell_wanted(PyObject *connection, PyObject *result) {
    long wanted = result == Py_None ? 0 : PyLong_AsLong(result);
    if (wanted == -1 && PyErr_Occurred())
        return -1;
    long told;
    if (PyObject_TypeCheck(connection, &AudioLinkType))
        told = ((AudioLink *)connection)->wanted;
    else {
        PyObject *was = PyObject_GetAttr(connection, S_WANTED);
        told = was == NULL ? -1 : PyLong_AsLong(was);
        Py_XDECREF(was);
        if (told == -1 && PyErr_Occurred())
            return -1;
    }
    if (wanted == told)
        return 0;
    PyObject *n = PyLong_FromLong(wanted);
    PyObject *done = n == NULL ? NULL : PyObject_CallMethodOneArg(connection, S_WAKE_AFTER, n);
    Py_XDECREF(n);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

static int hear_one(PyObject *entry) {
    PyObject *connection = PyTuple_GET_ITEM(entry, 0);
    PyObject *sink;
    if (PyObject_TypeCheck(connection, &AudioLinkType))
        sink = Py_XNewRef(((AudioLink *)connection)->sink);
    else if ((sink = PyObject_GetAttr(connection, S_AUDIO_SINK)) == NULL)
        return -1;
    if (sink == NULL || sink == Py_None) { /* failed, closing */
        Py_XDECREF(sink);
        return 0;
    }
    PyObject *args[] = {PyTuple_GET_ITEM(entry, 1), PyTuple_GET_ITEM(entry, 2)};
    PyObject *result = PyObject_Vectorcall(sink, args, 2, NULL);
    Py_DECREF(sink);
    if (result == NULL)
        return call_handling(connection, S_SINK_FAILED, NULL); /* a bug: it closes the socket */
    int done = tell_wanted(connection, result);
    Py_DECREF(result);
    return done;
}

static PyObject *TickCore_run(TickCore *b, PyObject *unused) {
    PyObject *heard = b->heard;
    b->heard = PyList_New(0);
    int done = b->heard == NULL ? -1 : 0;
    for (Py_ssize_t i = 0; done == 0 && i < PyList_GET_SIZE(heard); i++) {
        done = hear_one(PyList_GET_ITEM(heard, i));
        if (done == 0 && (i + 1) % WRITE_EVERY == 0)
            done = batch_write(b);
    }
    if (done == 0)
        done = batch_write(b);
    if (b->heard == NULL) { /* out of memory: keep the old list */
        b->heard = heard;
        heard = NULL;
    }
    Py_XDECREF(heard);
    b->scheduled = 0; /* a write that raised: the rest go next tick */
    if (PyList_GET_SIZE(b->heard) || PyList_GET_SIZE(b->to_write)) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        int again = schedule(b);
        if (type != NULL)
            PyErr_Restore(type, value, traceback);
        else if (again < 0)
            done = -1;
    }
    if (done < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *TickCore_hear(TickCore *b, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "hear(connection, data) takes 2 arguments");
    if (batch_hear(b, args[0], args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *TickCore_await_write(TickCore *b, PyObject *connection) {
    if (batch_await_write(b, connection) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *TickCore_write(TickCore *b, PyObject *unused) {
    if (batch_write(b) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int TickCore_init(TickCore *b, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"loop", NULL};
    PyObject *loop;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O", names, &loop))
        return -1;
    Py_XSETREF(b->loop, Py_NewRef(loop));
    Py_XSETREF(b->heard, PyList_New(0));
    Py_XSETREF(b->to_write, PyList_New(0));
    return b->heard == NULL || b->to_write == NULL ? -1 : 0;
}

static int TickCore_traverse(TickCore *b, visitproc visit, void *arg) {
    Py_VISIT(b->loop);
    Py_VISIT(b->heard);
    Py_VISIT(b->to_write);
    return 0;
}

static int TickCore_clear(TickCore *b) {
    Py_CLEAR(b->loop);
    Py_CLEAR(b->heard);
    Py_CLEAR(b->to_write);
    return 0;
}

static void TickCore_dealloc(TickCore *b) {
    PyObject_GC_UnTrack(b);
    TickCore_clear(b);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyMethodDef TickCore_methods[] = {
    {"hear", (PyCFunction)(void (*)(void))TickCore_hear, METH_FASTCALL,
     "hear(connection, data): queue an audio message for its sink, run once this tick's "
     "reads are done"},
    {"await_write", (PyCFunction)TickCore_await_write, METH_O,
     "await_write(connection): note a socket with frames to write at the end of the tick"},
    {"run", (PyCFunction)TickCore_run, METH_NOARGS,
     "run(): deliver every message heard, writing every socket's frames after each "
     "WRITE_EVERY messages and at the end"},
    {"_write", (PyCFunction)TickCore_write, METH_NOARGS, "_write(): write every socket's frames"},
    {NULL},
};

static PyTypeObject TickCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.wire._frames.TickCore",
    .tp_basicsize = sizeof(TickCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A loop's tick of audio messages (bridge/wire/connection.py's TickBatch is one).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TickCore_init,
    .tp_dealloc = (destructor)TickCore_dealloc,
    .tp_traverse = (traverseproc)TickCore_traverse,
    .tp_clear = (inquiry)TickCore_clear,
    .tp_methods = TickCore_methods,
};

/* ---- AudioLink ---- */

static int call_method1(PyObject *self, PyObject *name, PyObject *arg) {
    PyObject *done = PyObject_CallMethodOneArg(self, name, arg);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

static int link_hear(AudioLink *l, PyObject *payload) {
    if (l->batch != NULL && PyObject_TypeCheck(l->batch, &TickCoreType))
        return batch_hear((TickCore *)l->batch, (PyObject *)l, payload);
    PyErr_SetString(PyExc_RuntimeError, "an audio socket without its loop's batch");
    return -1;
}

/* A binary message may skip websockets: a sink, nothing queued before it, and its parser
 * between frames (asked of Python only when that is not known: _parser_waits). */
static int may_skip_parser(AudioLink *l) {
    if (l->sink == NULL || l->sink == Py_None || l->queued || l->partial)
        return 0;
    if (l->parser_idle) {
        PyObject *protocol = PyObject_GetAttr((PyObject *)l, S_PROTOCOL);
        PyObject *state = protocol == NULL ? NULL : PyObject_GetAttr(protocol, S_STATE);
        Py_XDECREF(protocol);
        if (state == NULL)
            return -1;
        Py_DECREF(state);
        if (state == OPEN)
            return 1;
    }
    PyObject *waits = PyObject_CallMethodNoArgs((PyObject *)l, S_PARSER_WAITS);
    int yes = waits == NULL ? -1 : PyObject_IsTrue(waits);
    Py_XDECREF(waits);
    return yes;
}

/* The payloads of the whole audio frames at data[0 .. n), heard (joined, with coalesce, if
 * every one is whole samples); the bytes taken. */
static Py_ssize_t hear_frames(AudioLink *l, const unsigned char *data, Py_ssize_t n) {
    Py_ssize_t taken = 0, length = 0, start, count = 0, total = 0, odd = 0;
    for (Py_ssize_t at = 0; (start = audio_frame(data + at, n - at, l->max_message, &length)) >= 0;
         at += start + length) {
        count++;
        total += length;
        odd |= length & 1;
        l->message_bytes = length;
    }
    int join = count > 1 && l->coalesce && !odd;
    PyObject *joined = join ? PyBytes_FromStringAndSize(NULL, total) : NULL;
    if (join && joined == NULL)
        return -1;
    Py_ssize_t filled = 0;
    while ((start = audio_frame(data + taken, n - taken, l->max_message, &length)) >= 0) {
        const unsigned char *payload = data + taken + start;
        if (joined != NULL)
            unmask(PyBytes_AS_STRING(joined) + filled, payload, length, payload - 4);
        else {
            PyObject *one = PyBytes_FromStringAndSize(NULL, length);
            if (one == NULL)
                return -1;
            unmask(PyBytes_AS_STRING(one), payload, length, payload - 4);
            int heard = link_hear(l, one);
            Py_DECREF(one);
            if (heard < 0)
                return -1;
        }
        filled += length;
        taken += start + length;
    }
    if (joined != NULL) {
        int heard = link_hear(l, joined);
        Py_DECREF(joined);
        if (heard < 0)
            return -1;
    }
    return taken;
}

static PyObject *AudioLink_data_received(AudioLink *l, PyObject *data) {
    int skip = may_skip_parser(l);
    if (skip < 0)
        return NULL;
    if (!skip)
        return call_method1((PyObject *)l, S_TO_PARSER, data) < 0 ? NULL : Py_NewRef(Py_None);
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t taken = hear_frames(l, view.buf, view.len);
    PyObject *rest = taken < 0 || taken == view.len
                         ? NULL
                         : PyBytes_FromStringAndSize((const char *)view.buf + taken, view.len - taken);
    PyBuffer_Release(&view);
    if (taken < 0 || (rest == NULL && PyErr_Occurred()))
        return NULL;
    if (rest != NULL) { /* from its first byte, the rest is websockets' */
        int done = call_method1((PyObject *)l, S_TO_PARSER, rest);
        Py_DECREF(rest);
        if (done < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* RFC 6455 header of a final, unmasked binary frame of n bytes, into out; its length. */
static int binary_header(Py_ssize_t n, unsigned char *out) {
    out[0] = FINAL_BINARY;
    if (n < 126) {
        out[1] = (unsigned char)n;
        return 2;
    }
    if (n < 1 << 16) {
        out[1] = 126;
        out[2] = (unsigned char)(n >> 8);
        out[3] = (unsigned char)n;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    return 10;
}

static PyObject *AudioLink_send_audio(AudioLink *l, PyObject *data) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t need = l->unsent_len + view.len + 10;
    if (need > l->unsent_size) {
        Py_ssize_t size = need > 2 * l->unsent_size ? need : 2 * l->unsent_size;
        char *grown = PyMem_Realloc(l->unsent, size);
        if (grown == NULL) {
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
        l->unsent = grown;
        l->unsent_size = size;
    }
    int first = l->unsent_frames == 0;
    l->unsent_len += binary_header(view.len, (unsigned char *)l->unsent + l->unsent_len);
    memcpy(l->unsent + l->unsent_len, view.buf, view.len);
    l->unsent_len += view.len;
    l->unsent_frames++;
    PyBuffer_Release(&view);
    if (first && l->batch != NULL && PyObject_TypeCheck(l->batch, &TickCoreType) &&
        batch_await_write((TickCore *)l->batch, (PyObject *)l) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* 1 when websockets' protocol is OPEN and the transport is not closing, 0 if not, -1. */
static int link_open(AudioLink *l, PyObject **transport) {
    PyObject *protocol = PyObject_GetAttr((PyObject *)l, S_PROTOCOL);
    PyObject *state = protocol == NULL ? NULL : PyObject_GetAttr(protocol, S_STATE);
    Py_XDECREF(protocol);
    if (state == NULL)
        return -1;
    Py_DECREF(state);
    if ((*transport = PyObject_GetAttr((PyObject *)l, S_TRANSPORT)) == NULL)
        return -1;
    if (state != OPEN)
        return 0;
    PyObject *closing = PyObject_CallMethodNoArgs(*transport, S_IS_CLOSING);
    int yes = closing == NULL ? -1 : PyObject_IsTrue(closing);
    Py_XDECREF(closing);
    return yes < 0 ? -1 : !yes;
}

/* send_speech(data, backlog_limit): send_audio's, unless the socket is not open (1) or
 * the transport holds more than backlog_limit bytes unwritten (2); 0 when queued. */
static PyObject *AudioLink_send_speech(AudioLink *l, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "send_speech(data, backlog_limit) takes 2 arguments");
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    PyObject *transport = NULL;
    int open = link_open(l, &transport);
    long refused = open < 0 ? -1 : !open;
    if (open == 1) {
        PyObject *size = PyObject_CallMethodNoArgs(transport, S_BUFFER_SIZE);
        Py_ssize_t held = size == NULL ? -1 : PyLong_AsSsize_t(size);
        Py_XDECREF(size);
        refused = held == -1 && PyErr_Occurred() ? -1 : held > limit ? 2 : 0;
    }
    Py_XDECREF(transport);
    if (refused < 0)
        return NULL;
    if (refused == 0) {
        PyObject *queued = AudioLink_send_audio(l, args[0]);
        if (queued == NULL)
            return NULL;
        Py_DECREF(queued);
    }
    return PyLong_FromLong(refused);
}

/* This tick's frames of speech in one write; a closed socket loses them (audio_lost). */
static int link_write(AudioLink *l) {
    if (l->unsent_frames == 0)
        return 0;
    Py_ssize_t frames = l->unsent_frames;
    PyObject *message = PyBytes_FromStringAndSize(l->unsent, l->unsent_len);
    l->unsent_len = l->unsent_frames = 0;
    if (message == NULL)
        return -1;
    PyObject *transport = PyObject_GetAttr((PyObject *)l, S_TRANSPORT);
    PyObject *closing = transport == NULL ? NULL : PyObject_CallMethodNoArgs(transport, S_IS_CLOSING);
    int done = closing == NULL ? -1 : PyObject_IsTrue(closing);
    Py_XDECREF(closing);
    if (done == 1) {
        PyObject *lost = PyLong_FromSsize_t(frames);
        done = lost == NULL ? -1 : call_hook(l->audio_lost, lost);
        Py_XDECREF(lost);
    } else if (done == 0) {
        done = call_method1(transport, S_WRITE, message);
        if (done == 0)
            done = call_hook(l->audio_written, NULL);
    }
    Py_XDECREF(transport);
    Py_DECREF(message);
    return done;
}

static PyObject *AudioLink_write_unsent(AudioLink *l, PyObject *unused) {
    if (link_write(l) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int AudioLink_traverse(AudioLink *l, visitproc visit, void *arg) {
    Py_VISIT(l->sink);
    Py_VISIT(l->batch);
    Py_VISIT(l->audio_lost);
    Py_VISIT(l->audio_written);
    return 0;
}

static int AudioLink_clear(AudioLink *l) {
    Py_CLEAR(l->sink);
    Py_CLEAR(l->batch);
    Py_CLEAR(l->audio_lost);
    Py_CLEAR(l->audio_written);
    return 0;
}

static void AudioLink_dealloc(AudioLink *l) {
    PyObject_GC_UnTrack(l);
    AudioLink_clear(l);
    PyMem_Free(l->unsent);
    Py_TYPE(l)->tp_free((PyObject *)l);
}

static PyObject *AudioLink_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    AudioLink *l = (AudioLink *)PyType_GenericNew(type, args, kwargs);
    if (l != NULL)
        l->max_message = PY_SSIZE_T_MAX;
    return (PyObject *)l;
}

static PyObject *AudioLink_get_unsent(AudioLink *l, void *unused) {
    return PyLong_FromSsize_t(l->unsent_frames);
}

static PyGetSetDef AudioLink_getset[] = {
    {"unsent_frames", (getter)AudioLink_get_unsent, NULL,
     "frames of speech waiting for the end of the tick", NULL},
    {NULL},
};

#define LINK(name, type, field, doc) {name, type, offsetof(AudioLink, field), 0, doc}
static PyMemberDef AudioLink_members[] = {
    LINK("audio_sink", T_OBJECT, sink, "(data, read_at) -> bytes its next frame needs"),
    LINK("_batch", T_OBJECT, batch, "its loop's TickBatch"),
    LINK("audio_lost", T_OBJECT, audio_lost, "frames of speech a closed socket did not write"),
    LINK("audio_written", T_OBJECT, audio_written, "after a tick's speech went to the transport"),
    LINK("coalesce_reads", T_BOOL, coalesce, "hear a read's audio frames as one chunk"),
    LINK("_queued", T_INT, queued, "whole messages queued for the handler, not yet taken"),
    LINK("_partial", T_BOOL, partial, "a fragmented message is being queued"),
    LINK("_parser_idle", T_BOOL, parser_idle, "websockets' parser waits between frames"),
    LINK("_max_message", T_PYSSIZET, max_message, "the largest audio frame taken"),
    LINK("_message_bytes", T_PYSSIZET, message_bytes, "payload of the last audio message"),
    LINK("wanted", T_INT, wanted, "payload bytes the sink said its next frame needs"),
    LINK("heard_at", T_DOUBLE, heard_at, "monotonic time of the last audio message read"),
    {NULL},
};

static PyMethodDef AudioLink_methods[] = {
    {"data_received", (PyCFunction)AudioLink_data_received, METH_O,
     "data_received(data): a read; its whole audio frames to the batch, the rest to _to_parser"},
    {"send_audio", (PyCFunction)AudioLink_send_audio, METH_O,
     "send_audio(data): one binary message, written at the end of this tick"},
    {"send_speech", (PyCFunction)(void (*)(void))AudioLink_send_speech, METH_FASTCALL,
     "send_speech(data, backlog_limit): send_audio(data) if the socket is open (else 1) and "
     "its transport holds at most backlog_limit bytes (else 2); 0 when queued"},
    {"write_unsent", (PyCFunction)AudioLink_write_unsent, METH_NOARGS,
     "write_unsent(): this tick's frames of speech in one write"},
    {NULL},
};

static PyTypeObject AudioLinkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.wire._frames.AudioLink",
    .tp_basicsize = sizeof(AudioLink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A bot socket's audio path (bridge/wire/connection.py's BotConnection is one).",
    .tp_new = AudioLink_new,
    .tp_dealloc = (destructor)AudioLink_dealloc,
    .tp_traverse = (traverseproc)AudioLink_traverse,
    .tp_clear = (inquiry)AudioLink_clear,
    .tp_methods = AudioLink_methods,
    .tp_members = AudioLink_members,
    .tp_getset = AudioLink_getset,
};

static int intern_names(void) {
    struct { PyObject **name; const char *text; } names[] = {
        {&S_TO_PARSER, "_to_parser"}, {&S_PARSER_WAITS, "_parser_waits"},
        {&S_WAKE_AFTER, "wake_after"}, {&S_SINK_FAILED, "sink_failed"},
        {&S_AUDIO_SINK, "audio_sink"}, {&S_WANTED, "wanted"}, {&S_WRITE_UNSENT, "write_unsent"},
        {&S_HEARD_AT, "heard_at"}, {&S_AWAIT_WRITE, "await_write"}, {&S_CALL_SOON, "call_soon"},
        {&S_RUN, "run"}, {&S_PROTOCOL, "protocol"}, {&S_STATE, "_state"},
        {&S_TRANSPORT, "transport"}, {&S_IS_CLOSING, "is_closing"}, {&S_WRITE, "write"},
        {&S_BUFFER_SIZE, "get_write_buffer_size"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (*names[i].name == NULL &&
            (*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

/* The State.OPEN the links compare websockets' protocol state with. */
static int find_open(void) {
    PyObject *module = PyImport_ImportModule("websockets.protocol");
    PyObject *state = module == NULL ? NULL : PyObject_GetAttrString(module, "State");
    OPEN = state == NULL ? NULL : PyObject_GetAttrString(state, "OPEN");
    Py_XDECREF(state);
    Py_XDECREF(module);
    return OPEN == NULL ? -1 : 0;
}

/* set_low_water(fd, mark): the socket's SO_RCVLOWAT, by the system call itself. uvloop's
 * transport hands out a stand-in socket whose setsockopt builds a Python socket object
 * each call (4 % of the server at 300 sessions of 10 ms, where the mark moves often). */
static PyObject *set_low_water(PyObject *unused, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "set_low_water(fd, mark) takes 2 arguments");
    long fd = PyLong_AsLong(args[0]), value = PyLong_AsLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT32_MAX || value < 0 || value > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "no socket %ld or mark %ld", fd, value);
    int mark = (int)value;
    if (setsockopt((int)fd, SOL_SOCKET, SO_RCVLOWAT, &mark, sizeof mark) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* audio_frames(data, max_size) -> (payloads, taken) */
static PyObject *audio_frames(PyObject *unused, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "audio_frames(data, max_size) takes 2 arguments");
    Py_ssize_t max_size = PyLong_AsSsize_t(args[1]);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    if (max_size < 0)
        return PyErr_Format(PyExc_ValueError, "max_size must be at least 0");
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *data = view.buf;
    PyObject *payloads = PyList_New(0);
    Py_ssize_t taken = 0, length = 0, start;
    while (payloads != NULL &&
           (start = audio_frame(data + taken, view.len - taken, max_size, &length)) >= 0) {
        PyObject *payload = PyBytes_FromStringAndSize(NULL, length);
        if (payload == NULL) {
            Py_CLEAR(payloads);
            break;
        }
        unmask(PyBytes_AS_STRING(payload), data + taken + start, length, data + taken + start - 4);
        if (PyList_Append(payloads, payload) < 0)
            Py_CLEAR(payloads);
        Py_DECREF(payload);
        taken += start + length;
    }
    PyBuffer_Release(&view);
    if (payloads == NULL)
        return NULL;
    return Py_BuildValue("(Nn)", payloads, taken);
}

static PyMethodDef module_methods[] = {
    {"set_low_water", (PyCFunction)(void (*)(void))set_low_water, METH_FASTCALL,
     "set_low_water(fd, mark): set the socket's receive low-water mark (SO_RCVLOWAT)"},
    {"audio_frames", (PyCFunction)(void (*)(void))audio_frames, METH_FASTCALL,
     "audio_frames(data, max_size): the unmasked payloads of the whole, masked, final\n"
     "binary frames of at most max_size bytes at the front of data, and the bytes taken"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_frames", "A bot's audio frames, parsed and unmasked, batched and written, compiled.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__frames(void) {
    if (intern_names() < 0 || (OPEN == NULL && find_open() < 0) ||
        PyType_Ready(&TickCoreType) < 0 || PyType_Ready(&AudioLinkType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddObjectRef(m, "TickCore", (PyObject *)&TickCoreType) < 0 ||
                      PyModule_AddObjectRef(m, "AudioLink", (PyObject *)&AudioLinkType) < 0 ||
                      PyModule_AddIntConstant(m, "WRITE_EVERY", WRITE_EVERY) < 0))
        Py_CLEAR(m);
    return m;
}
