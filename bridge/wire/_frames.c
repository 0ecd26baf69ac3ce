/* A bot's audio frames, parsed and unmasked, compiled (RFC 6455, section 5.2).
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
    {"audio_frames", (PyCFunction)(void (*)(void))audio_frames, METH_FASTCALL,
     "audio_frames(data, max_size): the unmasked payloads of the whole, masked, final\n"
     "binary frames of at most max_size bytes at the front of data, and the bytes taken"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_frames", "A bot's audio frames, parsed and unmasked, compiled.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__frames(void) { return PyModule_Create(&module); }
