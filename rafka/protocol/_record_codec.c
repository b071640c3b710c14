/*
 * Records inside a Kafka v2 record batch (after decompression): the accelerated twin of
 * rafka/protocol/record_codec_py.py. Both must behave identically; see that module for the
 * format and the tuple shapes.
 *
 * Safety rules followed throughout:
 *   - every read is checked against the end of the record (or of the buffer) first;
 *   - varints are limited to 5 bytes (32 bits) or 10 bytes (64 bits) and checked for overflow;
 *   - nothing is allocated from a length before it is checked against the bytes that remain;
 *   - every Py_buffer taken is released on every path;
 *   - encode snapshots its inputs into tuples, so Python code run by __index__ or __iter__ cannot
 *     change what has already been measured, and every write is bounds-checked anyway.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* length, attributes, timestamp, offset, key length, value length, header count */
#define MIN_RECORD_SIZE 7

/* ---------------------------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------------------------- */

/* Reads an unsigned varint of at most `bits` (32 or 64) bits at *pp, not past `end`.
 * Returns 0 and advances *pp, or -1 with ValueError set. */
static inline int
read_uvarint(const uint8_t **pp, const uint8_t *end, int bits, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) { /* the common one-byte case */
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    int max_bytes = (bits + 6) / 7;
    uint64_t result = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (p >= end) {
            PyErr_SetString(PyExc_ValueError, "truncated varint");
            return -1;
        }
        uint8_t byte = *p++;
        uint64_t chunk = byte & 0x7F;
        int shift = 7 * i;
        /* Bits that would land at or beyond `bits` mean overflow (also avoids UB shifts). */
        if (shift + 7 > bits && (chunk >> (bits - shift)) != 0) {
            PyErr_SetString(PyExc_ValueError, "varint overflows its type");
            return -1;
        }
        result |= chunk << shift;
        if (!(byte & 0x80)) {
            *out = result;
            *pp = p;
            return 0;
        }
    }
    PyErr_SetString(PyExc_ValueError, "varint too long");
    return -1;
}

static inline int
read_varint32(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
    uint64_t u;
    if (read_uvarint(pp, end, 32, &u) < 0)
        return -1;
    uint32_t v = (uint32_t)u;
    *out = (int32_t)((v >> 1) ^ (0u - (v & 1u)));
    return 0;
}

static inline int
read_varint64(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    uint64_t u;
    if (read_uvarint(pp, end, 64, &u) < 0)
        return -1;
    *out = (int64_t)((u >> 1) ^ (0ull - (u & 1ull)));
    return 0;
}

/* A length-prefixed byte string; length -1 (null) is allowed only if `nullable`. */
static inline int
read_bytes_field(const uint8_t **pp, const uint8_t *end, int nullable, const char *what,
                 const uint8_t **data, int32_t *length)
{
    if (read_varint32(pp, end, length) < 0)
        return -1;
    if (*length == -1 && nullable) {
        *data = NULL;
        return 0;
    }
    if (*length < 0 || *length > end - *pp) {
        PyErr_Format(PyExc_ValueError, "invalid %s length %d", what, (int)*length);
        return -1;
    }
    *data = *pp;
    *pp += *length;
    return 0;
}

typedef struct {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key;
    int32_t key_length; /* -1: null */
    const uint8_t *value;
    int32_t value_length; /* -1: null */
    int32_t header_count;
    const uint8_t *headers; /* first header; all headers validated up to `end` */
    const uint8_t *end;     /* end of this record */
} record_view;

/* Validates the whole record at *pp (headers included) and fills `rec`. */
static int
parse_record(const uint8_t **pp, const uint8_t *buffer_end, record_view *rec)
{
    int32_t length;
    if (read_varint32(pp, buffer_end, &length) < 0)
        return -1;
    if (length < 0 || length > buffer_end - *pp) {
        PyErr_Format(PyExc_ValueError, "invalid record length %d", (int)length);
        return -1;
    }
    const uint8_t *p = *pp;
    const uint8_t *end = p + length;
    if (p >= end) {
        PyErr_SetString(PyExc_ValueError, "record truncated before its attributes");
        return -1;
    }
    rec->attributes = (int8_t)*p++;
    if (read_varint64(&p, end, &rec->timestamp_delta) < 0 ||
        read_varint32(&p, end, &rec->offset_delta) < 0 ||
        read_bytes_field(&p, end, 1, "key", &rec->key, &rec->key_length) < 0 ||
        read_bytes_field(&p, end, 1, "value", &rec->value, &rec->value_length) < 0 ||
        read_varint32(&p, end, &rec->header_count) < 0)
        return -1;
    /* Each header takes at least two bytes (its two lengths). */
    if (rec->header_count < 0 || rec->header_count > (end - p) / 2) {
        PyErr_Format(PyExc_ValueError, "invalid header count %d", (int)rec->header_count);
        return -1;
    }
    rec->headers = p;
    for (int32_t i = 0; i < rec->header_count; i++) {
        const uint8_t *data;
        int32_t n;
        if (read_bytes_field(&p, end, 0, "header key", &data, &n) < 0 ||
            read_bytes_field(&p, end, 1, "header value", &data, &n) < 0)
            return -1;
    }
    if (p != end) {
        PyErr_Format(PyExc_ValueError, "record length %d does not match its fields", (int)length);
        return -1;
    }
    rec->end = end;
    *pp = end;
    return 0;
}

static PyObject *
nullable_bytes(const uint8_t *data, int32_t length)
{
    if (length < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)data, length);
}

static PyObject *
build_headers(const record_view *rec)
{
    PyObject *headers = PyTuple_New(rec->header_count);
    if (headers == NULL)
        return NULL;
    const uint8_t *p = rec->headers;
    for (int32_t i = 0; i < rec->header_count; i++) {
        const uint8_t *key, *value;
        int32_t key_length, value_length;
        /* Already validated by parse_record; re-checked because it costs nothing. */
        if (read_bytes_field(&p, rec->end, 0, "header key", &key, &key_length) < 0 ||
            read_bytes_field(&p, rec->end, 1, "header value", &value, &value_length) < 0)
            goto error;
        PyObject *py_key = PyUnicode_DecodeUTF8((const char *)key, key_length, "surrogateescape");
        if (py_key == NULL)
            goto error;
        PyObject *py_value = nullable_bytes(value, value_length);
        if (py_value == NULL) {
            Py_DECREF(py_key);
            goto error;
        }
        PyObject *pair = PyTuple_Pack(2, py_key, py_value);
        Py_DECREF(py_key);
        Py_DECREF(py_value);
        if (pair == NULL)
            goto error;
        PyTuple_SET_ITEM(headers, i, pair);
    }
    return headers;
error:
    Py_DECREF(headers);
    return NULL;
}

static PyObject *
build_record(const record_view *rec)
{
    PyObject *record = PyTuple_New(6);
    if (record == NULL)
        return NULL;
    /* Each item is stored as soon as it exists; tuple deallocation skips NULL slots. */
    PyObject *item;
#define SET_OR_FAIL(i, expr)                                                                   \
    if ((item = (expr)) == NULL)                                                               \
        goto error;                                                                            \
    PyTuple_SET_ITEM(record, i, item);
    SET_OR_FAIL(0, PyLong_FromLong(rec->attributes));
    SET_OR_FAIL(1, PyLong_FromLongLong(rec->timestamp_delta));
    SET_OR_FAIL(2, PyLong_FromLong(rec->offset_delta));
    SET_OR_FAIL(3, nullable_bytes(rec->key, rec->key_length));
    SET_OR_FAIL(4, nullable_bytes(rec->value, rec->value_length));
    SET_OR_FAIL(5, build_headers(rec));
#undef SET_OR_FAIL
    return record;
error:
    Py_DECREF(record);
    return NULL;
}

static PyObject *
build_deltas(const record_view *rec)
{
    PyObject *offset = PyLong_FromLong(rec->offset_delta);
    if (offset == NULL)
        return NULL;
    PyObject *timestamp = PyLong_FromLongLong(rec->timestamp_delta);
    if (timestamp == NULL) {
        Py_DECREF(offset);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, offset, timestamp);
    Py_DECREF(offset);
    Py_DECREF(timestamp);
    return pair;
}

typedef PyObject *(*record_builder)(const record_view *);

static PyObject *
decode(PyObject *const *args, Py_ssize_t nargs, const char *name, record_builder build)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly 2 positional arguments (%zd given)",
                     name, nargs);
        return NULL;
    }
    Py_ssize_t count = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *records = NULL;
    if (count < 0) {
        PyErr_Format(PyExc_ValueError, "negative record count %zd", count);
        goto error;
    }
    if (count > view.len / MIN_RECORD_SIZE) {
        PyErr_Format(PyExc_ValueError, "%zd records cannot fit in %zd bytes", count, view.len);
        goto error;
    }
    records = PyList_New(count);
    if (records == NULL)
        goto error;
    const uint8_t *p = (const uint8_t *)view.buf;
    const uint8_t *end = p + view.len;
    for (Py_ssize_t i = 0; i < count; i++) {
        record_view rec;
        if (parse_record(&p, end, &rec) < 0)
            goto error;
        PyObject *item = build(&rec);
        if (item == NULL)
            goto error;
        PyList_SET_ITEM(records, i, item);
    }
    if (p != end) {
        PyErr_Format(PyExc_ValueError, "%zd trailing bytes after the last record",
                     (Py_ssize_t)(end - p));
        goto error;
    }
    PyBuffer_Release(&view);
    return records;
error:
    Py_XDECREF(records);
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *
decode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return decode(args, nargs, "decode_records", build_record);
}

static PyObject *
decode_record_deltas(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return decode(args, nargs, "decode_record_deltas", build_deltas);
}

/* ---------------------------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    PyObject *bytes; /* the output under construction */
    Py_ssize_t size; /* bytes written */
} writer;

static int
writer_reserve(writer *w, Py_ssize_t extra)
{
    Py_ssize_t capacity = PyBytes_GET_SIZE(w->bytes);
    if (extra <= capacity - w->size)
        return 0;
    if (extra > PY_SSIZE_T_MAX - w->size) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t needed = w->size + extra;
    Py_ssize_t grown = capacity <= PY_SSIZE_T_MAX / 2 ? capacity * 2 : PY_SSIZE_T_MAX;
    return _PyBytes_Resize(&w->bytes, grown > needed ? grown : needed);
}

/* Callers reserve first; these never write past the reservation. */
static inline void
put_uvarint(writer *w, uint64_t u)
{
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(w->bytes) + w->size;
    Py_ssize_t n = 0;
    while (u > 0x7F) {
        out[n++] = (uint8_t)((u & 0x7F) | 0x80);
        u >>= 7;
    }
    out[n++] = (uint8_t)u;
    w->size += n;
}

static inline uint64_t
zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline Py_ssize_t
uvarint_size(uint64_t u)
{
    Py_ssize_t n = 1;
    while (u > 0x7F) {
        u >>= 7;
        n++;
    }
    return n;
}

static int
as_int64_in_range(PyObject *obj, int64_t low, int64_t high, const char *what, int64_t *out)
{
    int overflow;
    PyObject *number = PyNumber_Index(obj);
    if (number == NULL)
        return -1;
    long long v = PyLong_AsLongLongAndOverflow(number, &overflow);
    Py_DECREF(number);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < low || v > high) {
        PyErr_Format(PyExc_OverflowError, "%s out of range", what);
        return -1;
    }
    *out = v;
    return 0;
}

/* Length of a nullable bytes-like field as it is when measured (-1 for None). */
static int
measure_bytes(PyObject *obj, Py_ssize_t *length)
{
    if (obj == Py_None) {
        *length = -1;
        return 0;
    }
    if (PyBytes_CheckExact(obj)) {
        *length = PyBytes_GET_SIZE(obj);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
            return -1;
        *length = view.len;
        PyBuffer_Release(&view);
    }
    if (*length > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "length out of range");
        return -1;
    }
    return 0;
}

static int
put_bytes(writer *w, PyObject *obj, Py_ssize_t measured)
{
    if (obj == Py_None) {
        put_uvarint(w, zigzag64(-1));
        return 0;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view.len != measured) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "a key or value changed size during encoding");
        return -1;
    }
    put_uvarint(w, zigzag64(measured));
    memcpy(PyBytes_AS_STRING(w->bytes) + w->size, view.buf, (size_t)measured);
    w->size += measured;
    PyBuffer_Release(&view);
    return 0;
}

static inline Py_ssize_t
bytes_field_size(Py_ssize_t length)
{
    return length < 0 ? 1 : uvarint_size(zigzag64(length)) + length;
}

/* A tuple snapshot of `obj` with exactly `n` items (ValueError otherwise), as unpacking does. */
static PyObject *
tuple_of(PyObject *obj, Py_ssize_t n)
{
    PyObject *t = PySequence_Tuple(obj);
    if (t != NULL && PyTuple_GET_SIZE(t) != n) {
        PyErr_Format(PyExc_ValueError, "expected %zd items, got %zd", n, PyTuple_GET_SIZE(t));
        Py_CLEAR(t);
    }
    return t;
}

/* The headers as a tuple of 2-tuples, snapshotting anything mutable. */
static PyObject *
headers_snapshot(PyObject *obj)
{
    PyObject *headers = PySequence_Tuple(obj);
    if (headers == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(headers);
    int all_pairs = 1;
    for (Py_ssize_t i = 0; i < n && all_pairs; i++) {
        PyObject *h = PyTuple_GET_ITEM(headers, i);
        all_pairs = PyTuple_CheckExact(h) && PyTuple_GET_SIZE(h) == 2;
    }
    if (all_pairs)
        return headers;
    PyObject *pairs = PyTuple_New(n);
    if (pairs == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = tuple_of(PyTuple_GET_ITEM(headers, i), 2);
        if (pair == NULL) {
            Py_DECREF(pairs);
            goto error;
        }
        PyTuple_SET_ITEM(pairs, i, pair);
    }
    Py_DECREF(headers);
    return pairs;
error:
    Py_DECREF(headers);
    return NULL;
}

static int
encode_one(writer *w, PyObject *record_obj)
{
    PyObject *record = tuple_of(record_obj, 6);
    if (record == NULL)
        return -1;
    PyObject *headers = NULL;
    Py_ssize_t *header_sizes = NULL;
    int result = -1;
    int64_t attributes, timestamp_delta, offset_delta;
    if (as_int64_in_range(PyTuple_GET_ITEM(record, 0), INT8_MIN, INT8_MAX, "attributes",
                          &attributes) < 0 ||
        as_int64_in_range(PyTuple_GET_ITEM(record, 1), INT64_MIN, INT64_MAX, "timestamp",
                          &timestamp_delta) < 0 ||
        as_int64_in_range(PyTuple_GET_ITEM(record, 2), INT32_MIN, INT32_MAX, "offset delta",
                          &offset_delta) < 0)
        goto done;
    PyObject *key = PyTuple_GET_ITEM(record, 3);
    PyObject *value = PyTuple_GET_ITEM(record, 4);
    headers = headers_snapshot(PyTuple_GET_ITEM(record, 5));
    if (headers == NULL)
        goto done;
    Py_ssize_t header_count = PyTuple_GET_SIZE(headers);
    if (header_count > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "header count out of range");
        goto done;
    }

    /* Measure: from here on no Python code runs, so the sizes hold while writing. */
    Py_ssize_t key_length, value_length;
    if (measure_bytes(key, &key_length) < 0 || measure_bytes(value, &value_length) < 0)
        goto done;
    /* header i: key length at [2i], value length at [2i + 1] */
    header_sizes = PyMem_New(Py_ssize_t, header_count > 0 ? 2 * header_count : 1);
    if (header_sizes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint64_t body = 1 + uvarint_size(zigzag64(timestamp_delta)) +
                    uvarint_size(zigzag64(offset_delta)) + bytes_field_size(key_length) +
                    bytes_field_size(value_length) + uvarint_size(zigzag64(header_count));
    for (Py_ssize_t i = 0; i < header_count; i++) {
        PyObject *pair = PyTuple_GET_ITEM(headers, i);
        PyObject *header_key = PyTuple_GET_ITEM(pair, 0);
        if (!PyUnicode_Check(header_key)) {
            PyErr_Format(PyExc_TypeError, "header key must be str, not %.100s",
                         Py_TYPE(header_key)->tp_name);
            goto done;
        }
        Py_ssize_t n;
        if (PyUnicode_AsUTF8AndSize(header_key, &n) == NULL) {
            /* Lone surrogates: encode as decode produced them (surrogateescape). Measured by
             * encoding once; written by encoding again below. */
            PyErr_Clear();
            PyObject *encoded = PyUnicode_AsEncodedString(header_key, "utf-8", "surrogateescape");
            if (encoded == NULL)
                goto done;
            n = PyBytes_GET_SIZE(encoded);
            Py_DECREF(encoded);
        }
        if (n > INT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "header key length out of range");
            goto done;
        }
        header_sizes[2 * i] = n;
        if (measure_bytes(PyTuple_GET_ITEM(pair, 1), &header_sizes[2 * i + 1]) < 0)
            goto done;
        body += bytes_field_size(n) + bytes_field_size(header_sizes[2 * i + 1]);
    }
    if (body > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "record length out of range");
        goto done;
    }

    /* Write. */
    if (writer_reserve(w, uvarint_size(zigzag64((int64_t)body)) + (Py_ssize_t)body) < 0)
        goto done;
    Py_ssize_t body_start;
    put_uvarint(w, zigzag64((int64_t)body));
    body_start = w->size;
    PyBytes_AS_STRING(w->bytes)[w->size++] = (char)(int8_t)attributes;
    put_uvarint(w, zigzag64(timestamp_delta));
    put_uvarint(w, zigzag64(offset_delta));
    if (put_bytes(w, key, key_length) < 0 || put_bytes(w, value, value_length) < 0)
        goto done;
    put_uvarint(w, zigzag64(header_count));
    for (Py_ssize_t i = 0; i < header_count; i++) {
        PyObject *pair = PyTuple_GET_ITEM(headers, i);
        PyObject *header_key = PyTuple_GET_ITEM(pair, 0);
        Py_ssize_t n;
        const char *utf8 = PyUnicode_AsUTF8AndSize(header_key, &n);
        PyObject *encoded = NULL;
        if (utf8 == NULL) {
            PyErr_Clear();
            encoded = PyUnicode_AsEncodedString(header_key, "utf-8", "surrogateescape");
            if (encoded == NULL)
                goto done;
            utf8 = PyBytes_AS_STRING(encoded);
            n = PyBytes_GET_SIZE(encoded);
        }
        if (n != header_sizes[2 * i]) {
            Py_XDECREF(encoded);
            PyErr_SetString(PyExc_ValueError, "a header key changed size during encoding");
            goto done;
        }
        put_uvarint(w, zigzag64(n));
        memcpy(PyBytes_AS_STRING(w->bytes) + w->size, utf8, (size_t)n);
        w->size += n;
        Py_XDECREF(encoded);
        if (put_bytes(w, PyTuple_GET_ITEM(pair, 1), header_sizes[2 * i + 1]) < 0)
            goto done;
    }
    if (w->size - body_start != (Py_ssize_t)body) {
        PyErr_SetString(PyExc_SystemError, "record size mismatch while encoding");
        goto done;
    }
    result = 0;
done:
    PyMem_Free(header_sizes);
    Py_XDECREF(headers);
    Py_DECREF(record);
    return result;
}

static PyObject *
encode_records(PyObject *module, PyObject *records_obj)
{
    PyObject *records = PySequence_Tuple(records_obj);
    if (records == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(records);
    writer w = {PyBytes_FromStringAndSize(NULL, 64 + 32 * (count < 1 << 20 ? count : 1 << 20)),
                0};
    if (w.bytes == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (encode_one(&w, PyTuple_GET_ITEM(records, i)) < 0)
            goto error;
    }
    Py_DECREF(records);
    if (_PyBytes_Resize(&w.bytes, w.size) < 0)
        return NULL;
    return w.bytes;
error:
    Py_XDECREF(w.bytes);
    Py_DECREF(records);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Module
 * ------------------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"decode_records", (PyCFunction)(void (*)(void))decode_records, METH_FASTCALL,
     "decode_records(data, count, /)\n--\n\n"
     "Decode exactly `count` records that fill `data` completely."},
    {"decode_record_deltas", (PyCFunction)(void (*)(void))decode_record_deltas, METH_FASTCALL,
     "decode_record_deltas(data, count, /)\n--\n\n"
     "(offset_delta, timestamp_delta) of each record, validated as decode_records does."},
    {"encode_records", (PyCFunction)encode_records, METH_O,
     "encode_records(records, /)\n--\n\n"
     "Encode record tuples (as decode_records returns them) back to bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "rafka.protocol._record_codec",
    "Kafka v2 record encode/decode (C twin of rafka.protocol.record_codec_py).",
    0,
    methods,
};

PyMODINIT_FUNC
PyInit__record_codec(void)
{
    return PyModuleDef_Init(&module_def);
}
