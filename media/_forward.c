/* The relay's per-subscriber hot path in C: rewrite, SRTP-protect and send one RTP packet to every subscriber.
 *
 * media/forwarding.py documents the behaviour (it re-exports these types); media/aiortc_adapter.py decides which
 * socket, address and SRTP session a Sink sends with. Per packet and subscriber this file does the header rewrite,
 * two memcpy, one libsrtp call and one sendto: the Python version of the same loop spent about two thirds of the
 * relay's user time in interpreter overhead (bench/README.md, "Media relay").
 *
 * libsrtp is not linked here: a Sink is given the address of the srtp_protect function and of the srtp_t session
 * that aiortc's DTLS transport already set up (through pylibsrtp), and keeps the Python session object alive.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SENT 1
#define CONGESTED 0
#define NOT_CONNECTED (-1)

#define MAX_PROTECTED 1400   /* the largest packet protected (before the SRTP trailer); larger ones are refused */
#define BUFFER_SIZE 2048     /* MAX_PROTECTED plus libsrtp's largest trailer (tag and MKI) */
#define MAX_HEADER 16

#define GATE_OPEN 0     /* forward */
#define GATE_REBASE 1   /* forward, continuing this stream's numbering from wherever the source is now */
#define GATE_KEYFRAME 2 /* drop until the start of a keyframe, then rebase */

typedef int (*protect_fn)(void *session, void *packet, int *length);

static double monotonic_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* what time.monotonic() reads on Linux */
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static uint32_t random_u32(void) {
    uint32_t value = 0;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) != (ssize_t)sizeof value) {
        value = (uint32_t)((uintptr_t)&value ^ (uint32_t)(monotonic_now() * 1e9));
    }
    return value;
}

/* -- Counters ------------------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    long long packets_received;
    long long packets_forwarded;
    long long bytes_forwarded;
    long long dropped_not_allowed;
    long long dropped_waiting_keyframe;
    long long dropped_congestion;
    long long dropped_not_connected;
    long long dropped_datagrams;
    long long nacks_received;
    long long nacks_answered;
    long long nacks_missed;
    long long plis_received;
    long long plis_sent;
    long long plis_deferred;
    long long audio_only_auto;
} Counters;

#define COUNTER(name, doc) {#name, T_LONGLONG, offsetof(Counters, name), 0, doc}

static PyMemberDef counters_members[] = {
    COUNTER(packets_received, "RTP packets received from publishers"),
    COUNTER(packets_forwarded, "RTP packets sent to subscribers"),
    COUNTER(bytes_forwarded, "bytes of RTP sent to subscribers (before SRTP)"),
    COUNTER(dropped_not_allowed, "packets from a publisher not allowed to publish that kind"),
    COUNTER(dropped_waiting_keyframe, "packets not sent: the subscriber's stream waits for a keyframe"),
    COUNTER(dropped_congestion, "packets not sent: the subscriber's socket buffer was full"),
    COUNTER(dropped_not_connected, "packets not sent: the subscriber's DTLS transport was not up (yet)"),
    COUNTER(dropped_datagrams, "malformed datagrams dropped before aiortc saw them"),
    COUNTER(nacks_received, "packets subscribers asked for again"),
    COUNTER(nacks_answered, "retransmissions sent"),
    COUNTER(nacks_missed, "NACKed packets no longer in the history"),
    COUNTER(plis_received, "picture loss indications and FIRs from subscribers"),
    COUNTER(plis_sent, "keyframe requests sent to publishers"),
    COUNTER(plis_deferred, "keyframe requests deferred to the end of the rate limit's window"),
    COUNTER(audio_only_auto, "subscribers switched to audio-only because they could not keep up"),
    {NULL},
};

static PyObject *counters_as_dict(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *result = PyDict_New();
    if (result == NULL) {
        return NULL;
    }
    for (PyMemberDef *member = counters_members; member->name != NULL; member++) {
        PyObject *value = PyLong_FromLongLong(*(long long *)((char *)self + member->offset));
        if (value == NULL || PyDict_SetItemString(result, member->name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(value);
    }
    return result;
}

static PyMethodDef counters_methods[] = {
    {"as_dict", counters_as_dict, METH_NOARGS, "Every counter by name."},
    {NULL},
};

static PyTypeObject CountersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._forward.Counters",
    .tp_doc = "What the relay did, for Relay.stats(): plain integers, incremented on the hot path.",
    .tp_basicsize = sizeof(Counters),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_members = counters_members,
    .tp_methods = counters_methods,
};

/* -- Sink ----------------------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int fd; /* our own dup of the subscriber's socket, -1 when detached */
    struct sockaddr_storage address;
    socklen_t address_length;
    void *session;
    protect_fn protect;
    PyObject *keep; /* the Python object owning `session`, kept alive while attached */
    unsigned char buffer[BUFFER_SIZE];
} Sink;

static void sink_release(Sink *self) {
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
    self->session = NULL;
    self->protect = NULL;
    Py_CLEAR(self->keep);
}

static int sink_send(Sink *self, const char *header, Py_ssize_t header_length, const char *payload,
                     Py_ssize_t payload_length) {
    if (self->fd < 0) {
        return NOT_CONNECTED;
    }
    Py_ssize_t size = header_length + payload_length;
    if (size > MAX_PROTECTED) {
        return NOT_CONNECTED; /* larger than any path's MTU: never sent */
    }
    memcpy(self->buffer, header, (size_t)header_length);
    memcpy(self->buffer + header_length, payload, (size_t)payload_length);
    int length = (int)size;
    if (self->protect(self->session, self->buffer, &length) != 0) {
        return NOT_CONNECTED;
    }
    ssize_t sent = sendto(self->fd, self->buffer, (size_t)length, MSG_DONTWAIT, (struct sockaddr *)&self->address,
                          self->address_length);
    if (sent < 0) {
        /* A full send buffer (or the device queue) refuses the packet: dropped, never queued. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS) {
            return CONGESTED;
        }
        return NOT_CONNECTED;
    }
    return SENT;
}

static PyObject *sink_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Sink() takes no arguments");
        return NULL;
    }
    Sink *self = (Sink *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->fd = -1;
    }
    return (PyObject *)self;
}

static int sink_traverse(Sink *self, visitproc visit, void *arg) {
    Py_VISIT(self->keep);
    return 0;
}

static int sink_clear(Sink *self) {
    sink_release(self);
    return 0;
}

static void sink_dealloc(Sink *self) {
    PyObject_GC_UnTrack(self);
    sink_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *sink_attach(Sink *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"fd", "host", "port", "session", "protect", "keep", NULL};
    int fd, port;
    const char *host;
    unsigned long long session, protect;
    PyObject *keep;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "isiKKO:attach", keywords, &fd, &host, &port, &session,
                                     &protect, &keep)) {
        return NULL;
    }
    if (session == 0 || protect == 0) {
        PyErr_SetString(PyExc_ValueError, "session and protect must be addresses");
        return NULL;
    }
    if (port <= 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return NULL;
    }
    struct addrinfo hints = {0}, *found = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    int status = getaddrinfo(host, service, &hints, &found);
    if (status != 0 || found == NULL) {
        PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
        return NULL;
    }
    int own = dup(fd);
    if (own < 0) {
        freeaddrinfo(found);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    sink_release(self);
    memcpy(&self->address, found->ai_addr, found->ai_addrlen);
    self->address_length = found->ai_addrlen;
    freeaddrinfo(found);
    self->fd = own;
    self->session = (void *)(uintptr_t)session;
    self->protect = (protect_fn)(uintptr_t)protect;
    Py_INCREF(keep);
    self->keep = keep;
    Py_RETURN_NONE;
}

static PyObject *sink_detach(Sink *self, PyObject *Py_UNUSED(ignored)) {
    sink_release(self);
    Py_RETURN_NONE;
}

static PyObject *sink_call(Sink *self, PyObject *args, PyObject *kwargs) {
    Py_buffer header, payload;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Sink() takes (header, payload)");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*y*:Sink", &header, &payload)) {
        return NULL;
    }
    int sent = sink_send(self, header.buf, header.len, payload.buf, payload.len);
    PyBuffer_Release(&header);
    PyBuffer_Release(&payload);
    return PyLong_FromLong(sent);
}

static PyObject *sink_attached(Sink *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->fd >= 0);
}

static PyMethodDef sink_methods[] = {
    {"attach", (PyCFunction)(void (*)(void))sink_attach, METH_VARARGS | METH_KEYWORDS,
     "attach(fd, host, port, session, protect, keep): send on a dup of fd to host:port, protected with the libsrtp "
     "session at address `session` by the function at address `protect`; `keep` owns the session."},
    {"detach", (PyCFunction)sink_detach, METH_NOARGS, "Stop sending: close the descriptor, drop the session."},
    {NULL},
};

static PyGetSetDef sink_getset[] = {
    {"attached", (getter)sink_attached, NULL, "Whether packets can be sent.", NULL},
    {NULL},
};

static PyTypeObject SinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._forward.Sink",
    .tp_doc = "One subscriber's wire: sink(header, payload) protects and sends one RTP packet and returns 1 (sent), "
              "0 (the socket buffer was full: dropped) or -1 (not connected).",
    .tp_basicsize = sizeof(Sink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = sink_new,
    .tp_dealloc = (destructor)sink_dealloc,
    .tp_traverse = (traverseproc)sink_traverse,
    .tp_clear = (inquiry)sink_clear,
    .tp_call = (ternaryfunc)sink_call,
    .tp_methods = sink_methods,
    .tp_getset = sink_getset,
};

/* -- OutgoingStream ------------------------------------------------------------------------------------------- */

typedef struct {
    uint16_t seq;
    uint8_t second; /* marker and payload type byte */
    uint8_t valid;
    uint32_t ts;
} Slot;

typedef struct {
    PyObject_HEAD
    int is_video;
    int active;
    uint32_t ssrc;
    uint32_t rtx_ssrc;
    uint32_t clock_rate;
    PyObject *send;  /* a Sink (the fast path) or any callable(header, payload) -> int */
    Sink *sink;      /* `send` when it is a Sink, else NULL (borrowed: `send` holds the reference) */
    Counters *counters;
    Slot *slots;
    PyObject **payloads; /* the source packets' payload objects, shared by every subscriber's history */
    uint32_t mask;
    uint8_t pt_byte;
    int rtx_pt_byte; /* -1: retransmit plainly */
    uint16_t next_seq;
    uint16_t rtx_seq;
    uint16_t first_seq;
    uint16_t seq_offset;
    uint32_t last_ts;
    uint32_t ts_offset;
    double last_time; /* monotonic seconds of the last packet given to send, 0 before the first */
    int has_last_time;
    int gate;
    long long packets;
    long long dropped;
    long long octets;
} Stream;

static PyTypeObject StreamType;

static PyObject *not_connected_send;

static int stream_set_send(Stream *self, PyObject *value, void *closure);

static int stream_init(Stream *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"is_video", "ssrc", "rtx_ssrc", "clock_rate", "history_size", "counters", NULL};
    int is_video;
    unsigned long ssrc, rtx_ssrc, clock_rate;
    Py_ssize_t history_size;
    PyObject *counters;
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "OutgoingStream takes keyword arguments only");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "pkkknO!:OutgoingStream", keywords, &is_video, &ssrc,
                                     &rtx_ssrc, &clock_rate, &history_size, &CountersType, &counters)) {
        return -1;
    }
    if (history_size <= 0 || history_size > (1 << 16) || (history_size & (history_size - 1))) {
        PyErr_SetString(PyExc_ValueError, "history_size must be a power of two");
        return -1;
    }
    if (ssrc > 0xFFFFFFFFUL || rtx_ssrc > 0xFFFFFFFFUL || clock_rate == 0 || clock_rate > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "ssrc, rtx_ssrc and clock_rate must be 32-bit, clock_rate positive");
        return -1;
    }
    if (self->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OutgoingStream is already initialised");
        return -1;
    }
    self->slots = PyMem_Calloc((size_t)history_size, sizeof(Slot));
    self->payloads = PyMem_Calloc((size_t)history_size, sizeof(PyObject *));
    if (self->slots == NULL || self->payloads == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = (uint32_t)history_size - 1;
    self->is_video = is_video;
    self->active = 0;
    self->ssrc = (uint32_t)ssrc;
    self->rtx_ssrc = (uint32_t)rtx_ssrc;
    self->clock_rate = (uint32_t)clock_rate;
    Py_INCREF(counters);
    self->counters = (Counters *)counters;
    if (stream_set_send(self, not_connected_send, NULL) < 0) {
        return -1;
    }
    self->pt_byte = 0;
    self->rtx_pt_byte = -1;
    /* Random starting points, as a fresh RTP sender would pick (RFC 3550 5.1), in the lower half of the sequence
     * space so SRTP's rollover estimate is not stressed early on. */
    self->next_seq = (uint16_t)(random_u32() & 0x7FFF);
    self->rtx_seq = (uint16_t)(random_u32() & 0x7FFF);
    self->last_ts = random_u32();
    self->has_last_time = 0;
    self->gate = is_video ? GATE_KEYFRAME : GATE_REBASE;
    return 0;
}

static int stream_traverse(Stream *self, visitproc visit, void *arg) {
    Py_VISIT(self->send);
    Py_VISIT(self->counters);
    return 0;
}

static int stream_clear(Stream *self) {
    self->sink = NULL;
    Py_CLEAR(self->send);
    Py_CLEAR(self->counters);
    return 0;
}

static void stream_dealloc(Stream *self) {
    PyObject_GC_UnTrack(self);
    stream_clear(self);
    if (self->payloads != NULL) {
        for (uint32_t i = 0; i <= self->mask; i++) {
            Py_XDECREF(self->payloads[i]);
        }
        PyMem_Free(self->payloads);
    }
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* One packet to the subscriber through `send`: SENT, CONGESTED, NOT_CONNECTED, or -2 with a Python error set. */
static int stream_put(Stream *self, const unsigned char *header, Py_ssize_t header_length, PyObject *payload) {
    if (self->sink != NULL) {
        return sink_send(self->sink, (const char *)header, header_length, PyBytes_AS_STRING(payload),
                         PyBytes_GET_SIZE(payload));
    }
    PyObject *header_object = PyBytes_FromStringAndSize((const char *)header, header_length);
    if (header_object == NULL) {
        return -2;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(self->send, header_object, payload, NULL);
    Py_DECREF(header_object);
    if (result == NULL) {
        return -2;
    }
    long sent = PyLong_AsLong(result);
    Py_DECREF(result);
    if (sent == -1 && PyErr_Occurred()) {
        return -2;
    }
    return sent > 0 ? SENT : (sent == 0 ? CONGESTED : NOT_CONNECTED);
}

/* An RTP fixed header (RFC 3550 5.1): version 2, no padding, extension or CSRCs. */
static void put_header(unsigned char *header, uint8_t second, uint16_t seq, uint32_t ts, uint32_t ssrc) {
    header[0] = 0x80;
    header[1] = second;
    header[2] = (unsigned char)(seq >> 8);
    header[3] = (unsigned char)seq;
    header[4] = (unsigned char)(ts >> 24);
    header[5] = (unsigned char)(ts >> 16);
    header[6] = (unsigned char)(ts >> 8);
    header[7] = (unsigned char)ts;
    header[8] = (unsigned char)(ssrc >> 24);
    header[9] = (unsigned char)(ssrc >> 16);
    header[10] = (unsigned char)(ssrc >> 8);
    header[11] = (unsigned char)ssrc;
}

static void stream_rebase(Stream *self, uint16_t seq, uint32_t ts, double now) {
    self->seq_offset = (uint16_t)(self->next_seq - seq);
    if (!self->has_last_time) {
        self->ts_offset = self->last_ts - ts;
    } else {
        /* Timestamps advance by the wall-clock time the stream was paused. */
        double elapsed = (now - self->last_time) * (double)self->clock_rate;
        uint32_t ticks = elapsed < 1.0 ? 1 : (elapsed > 4e9 ? 4000000000U : (uint32_t)elapsed);
        self->ts_offset = self->last_ts + ticks - ts;
    }
    self->first_seq = seq;
    self->gate = GATE_OPEN;
}

/* 0 on success (sent or not), -1 with a Python error set. */
static int stream_forward(Stream *self, uint16_t seq, uint32_t ts, int marker, PyObject *payload, int keyframe,
                          double now) {
    if (!self->active) {
        return 0;
    }
    Counters *counters = self->counters;
    if (self->gate != GATE_OPEN) {
        if (self->gate == GATE_KEYFRAME && !keyframe) {
            counters->dropped_waiting_keyframe++;
            return 0;
        }
        stream_rebase(self, seq, ts, now);
    } else if ((uint16_t)(seq - self->first_seq) >= 0x8000) {
        return 0; /* older than where this stream (re)started: a late retransmission it never carried */
    }
    uint16_t out_seq = (uint16_t)(seq + self->seq_offset);
    uint32_t out_ts = ts + self->ts_offset;
    uint8_t second = (uint8_t)(self->pt_byte | (marker ? 0x80 : 0));
    unsigned char header[12];
    put_header(header, second, out_seq, out_ts, self->ssrc);
    uint32_t index = out_seq & self->mask;
    Slot *slot = &self->slots[index];
    slot->seq = out_seq;
    slot->second = second;
    slot->ts = out_ts;
    slot->valid = 1;
    Py_INCREF(payload);
    Py_XSETREF(self->payloads[index], payload);
    self->next_seq = (uint16_t)(out_seq + 1);
    self->last_ts = out_ts;
    self->last_time = now;
    self->has_last_time = 1;
    self->packets++;
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    self->octets += size;
    int sent = stream_put(self, header, sizeof header, payload);
    if (sent == -2) {
        return -1;
    }
    if (sent == SENT) {
        counters->packets_forwarded++;
        counters->bytes_forwarded += 12 + size;
    } else if (sent == CONGESTED) {
        /* Lost for this subscriber, never queued; it stays in the history, so a NACK can still recover it. */
        counters->dropped_congestion++;
        self->dropped++;
    } else {
        counters->dropped_not_connected++;
    }
    return 0;
}

static int parse_packet(PyObject *const *args, Py_ssize_t nargs, const char *name, unsigned long *seq,
                        unsigned long *ts, int *marker, PyObject **payload, int *keyframe) {
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "%s(seq, ts, marker, payload, keyframe) takes 5 arguments", name);
        return -1;
    }
    *seq = PyLong_AsUnsignedLongMask(args[0]);
    *ts = PyLong_AsUnsignedLongMask(args[1]);
    if (PyErr_Occurred()) {
        return -1;
    }
    *marker = PyObject_IsTrue(args[2]);
    *keyframe = PyObject_IsTrue(args[4]);
    if (*marker < 0 || *keyframe < 0) {
        return -1;
    }
    if (!PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "payload must be bytes");
        return -1;
    }
    *payload = args[3];
    return 0;
}

static PyObject *stream_forward_method(Stream *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long seq, ts;
    int marker, keyframe;
    PyObject *payload;
    if (parse_packet(args, nargs, "forward", &seq, &ts, &marker, &payload, &keyframe) < 0) {
        return NULL;
    }
    if (stream_forward(self, (uint16_t)seq, (uint32_t)ts, marker, payload, keyframe, monotonic_now()) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *stream_retransmit(Stream *self, PyObject *lost) {
    PyObject *sequence = PySequence_Fast(lost, "retransmit() takes a list of sequence numbers");
    if (sequence == NULL) {
        return NULL;
    }
    long sent = 0;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned long value = PyLong_AsUnsignedLongMask(PySequence_Fast_GET_ITEM(sequence, i));
        if (value == (unsigned long)-1 && PyErr_Occurred()) {
            Py_DECREF(sequence);
            return NULL;
        }
        uint16_t seq = (uint16_t)value;
        uint32_t index = seq & self->mask;
        Slot *slot = &self->slots[index];
        if (!slot->valid || slot->seq != seq) {
            self->counters->nacks_missed++;
            continue;
        }
        unsigned char header[MAX_HEADER];
        Py_ssize_t header_length;
        uint32_t ssrc;
        uint16_t out_seq;
        uint8_t second;
        if (self->rtx_pt_byte >= 0) {
            /* RFC 4588: the RTX stream's own numbering, the original timestamp, then the original sequence number
             * in front of the payload. */
            out_seq = self->rtx_seq;
            self->rtx_seq = (uint16_t)(out_seq + 1);
            second = (uint8_t)(self->rtx_pt_byte | (slot->second & 0x80));
            ssrc = self->rtx_ssrc;
            header[12] = (unsigned char)(seq >> 8);
            header[13] = (unsigned char)seq;
            header_length = 14;
        } else {
            out_seq = seq;
            second = slot->second;
            ssrc = self->ssrc;
            header_length = 12;
        }
        put_header(header, second, out_seq, slot->ts, ssrc);
        int result = stream_put(self, header, header_length, self->payloads[index]);
        if (result == -2) {
            Py_DECREF(sequence);
            return NULL;
        }
        if (result == SENT) {
            sent++;
        }
    }
    Py_DECREF(sequence);
    self->counters->nacks_answered += sent;
    return PyLong_FromLong(sent);
}

static PyObject *stream_set_payload_types(Stream *self, PyObject *args) {
    int payload_type;
    PyObject *rtx = Py_None;
    if (!PyArg_ParseTuple(args, "i|O:set_payload_types", &payload_type, &rtx)) {
        return NULL;
    }
    int rtx_type = -1;
    if (rtx != Py_None) {
        rtx_type = (int)PyLong_AsLong(rtx);
        if (rtx_type == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    self->pt_byte = (uint8_t)(payload_type & 0x7F);
    self->rtx_pt_byte = rtx_type < 0 ? -1 : (rtx_type & 0x7F);
    Py_RETURN_NONE;
}

static PyObject *stream_restart(Stream *self, PyObject *Py_UNUSED(ignored)) {
    self->gate = self->is_video ? GATE_KEYFRAME : GATE_REBASE;
    Py_RETURN_NONE;
}

static PyObject *stream_get_send(Stream *self, void *Py_UNUSED(closure)) {
    return Py_NewRef(self->send);
}

static int stream_set_send(Stream *self, PyObject *value, void *Py_UNUSED(closure)) {
    if (value == NULL || !PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "send must be callable(header, payload) -> int");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->send, value);
    self->sink = PyObject_TypeCheck(value, &SinkType) ? (Sink *)value : NULL;
    return 0;
}

static PyObject *stream_get_active(Stream *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->active);
}

static int stream_set_active(Stream *self, PyObject *value, void *Py_UNUSED(closure)) {
    int truth = value == NULL ? -1 : PyObject_IsTrue(value);
    if (truth < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "active cannot be deleted");
        }
        return -1;
    }
    self->active = truth;
    return 0;
}

static PyObject *stream_get_waiting(Stream *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->gate == GATE_KEYFRAME);
}

static PyObject *stream_get_is_video(Stream *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->is_video);
}

static PyMemberDef stream_members[] = {
    {"ssrc", T_UINT, offsetof(Stream, ssrc), READONLY, "the SSRC this stream carries"},
    {"rtx_ssrc", T_UINT, offsetof(Stream, rtx_ssrc), READONLY, "the SSRC of its retransmissions"},
    {"packets", T_LONGLONG, offsetof(Stream, packets), READONLY, "packets given to send"},
    {"dropped", T_LONGLONG, offsetof(Stream, dropped), READONLY, "of which refused by a full socket buffer"},
    {"octets", T_LONGLONG, offsetof(Stream, octets), READONLY, "payload bytes given to send (RTCP's octet count)"},
    {"last_ts", T_UINT, offsetof(Stream, last_ts), READONLY, "the RTP timestamp of the last packet given to send"},
    {"last_time", T_DOUBLE, offsetof(Stream, last_time), READONLY,
     "when it was given to send, in time.monotonic() seconds (0.0 before the first)"},
    {"clock_rate", T_UINT, offsetof(Stream, clock_rate), READONLY, "RTP timestamp units per second"},
    {NULL},
};

static PyGetSetDef stream_getset[] = {
    {"send", (getter)stream_get_send, (setter)stream_set_send,
     "Where packets go: a Sink, or any callable(header, payload) returning 1 sent, 0 congested, -1 not connected.",
     NULL},
    {"active", (getter)stream_get_active, (setter)stream_set_active, "Whether packets are forwarded at all.", NULL},
    {"waiting_for_keyframe", (getter)stream_get_waiting, NULL, "Whether video waits for the start of a keyframe.",
     NULL},
    {"is_video", (getter)stream_get_is_video, NULL, "Whether this stream carries video.", NULL},
    {NULL},
};

static PyMethodDef stream_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))stream_forward_method, METH_FASTCALL,
     "forward(seq, ts, marker, payload, keyframe): rewrite one source packet for this subscriber and send it."},
    {"retransmit", (PyCFunction)stream_retransmit, METH_O,
     "retransmit(lost): resend NACKed packets from the history, in RTX when negotiated; returns how many."},
    {"set_payload_types", (PyCFunction)stream_set_payload_types, METH_VARARGS,
     "set_payload_types(payload_type, rtx_payload_type): the subscriber's negotiated types (None: no RTX)."},
    {"restart", (PyCFunction)stream_restart, METH_NOARGS,
     "Resume after a pause or a change of source: video waits for a keyframe, audio rebases."},
    {NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._forward.OutgoingStream",
    .tp_doc = "One forwarded track towards one subscriber: its SSRC, numbering, payload type and retransmission "
              "history (see media.forwarding).",
    .tp_basicsize = sizeof(Stream),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)stream_init,
    .tp_dealloc = (destructor)stream_dealloc,
    .tp_traverse = (traverseproc)stream_traverse,
    .tp_clear = (inquiry)stream_clear,
    .tp_members = stream_members,
    .tp_getset = stream_getset,
    .tp_methods = stream_methods,
};

/* -- module --------------------------------------------------------------------------------------------------- */

static PyObject *forward_all(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "forward_all(streams: list, seq, ts, marker, payload, keyframe)");
        return NULL;
    }
    unsigned long seq, ts;
    int marker, keyframe;
    PyObject *payload;
    if (parse_packet(args + 1, nargs - 1, "forward_all", &seq, &ts, &marker, &payload, &keyframe) < 0) {
        return NULL;
    }
    PyObject *streams = args[0];
    double now = monotonic_now();
    Py_INCREF(streams); /* a Python send callable could replace the list while we walk it */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(streams); i++) {
        PyObject *item = PyList_GET_ITEM(streams, i);
        if (!PyObject_TypeCheck(item, &StreamType)) {
            Py_DECREF(streams);
            PyErr_SetString(PyExc_TypeError, "forward_all() takes a list of OutgoingStream");
            return NULL;
        }
        Py_INCREF(item);
        int status = stream_forward((Stream *)item, (uint16_t)seq, (uint32_t)ts, marker, payload, keyframe, now);
        Py_DECREF(item);
        if (status < 0) {
            Py_DECREF(streams);
            return NULL;
        }
    }
    Py_DECREF(streams);
    Py_RETURN_NONE;
}

static PyObject *not_connected(PyObject *Py_UNUSED(module), PyObject *const *Py_UNUSED(args),
                               Py_ssize_t Py_UNUSED(nargs)) {
    return PyLong_FromLong(NOT_CONNECTED);
}

static PyMethodDef module_methods[] = {
    {"forward_all", (PyCFunction)(void (*)(void))forward_all, METH_FASTCALL,
     "forward_all(streams, seq, ts, marker, payload, keyframe): OutgoingStream.forward for each of streams."},
    {"not_connected", (PyCFunction)(void (*)(void))not_connected, METH_FASTCALL,
     "A send that never sends: returns -1 (not connected). A new stream's send."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "media._forward",
    .m_doc = "The relay's per-subscriber hot path: RTP rewrite, SRTP protection and send (see media.forwarding).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__forward(void) {
    if (PyType_Ready(&CountersType) < 0 || PyType_Ready(&SinkType) < 0 || PyType_Ready(&StreamType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    not_connected_send = PyObject_GetAttrString(m, "not_connected");
    if (not_connected_send == NULL || PyModule_AddIntConstant(m, "SENT", SENT) < 0 ||
        PyModule_AddIntConstant(m, "CONGESTED", CONGESTED) < 0 ||
        PyModule_AddIntConstant(m, "NOT_CONNECTED", NOT_CONNECTED) < 0 ||
        PyModule_AddIntConstant(m, "MAX_PROTECTED", MAX_PROTECTED) < 0 ||
        PyModule_AddObjectRef(m, "Counters", (PyObject *)&CountersType) < 0 ||
        PyModule_AddObjectRef(m, "Sink", (PyObject *)&SinkType) < 0 ||
        PyModule_AddObjectRef(m, "OutgoingStream", (PyObject *)&StreamType) < 0) {
        Py_XDECREF(not_connected_send);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
