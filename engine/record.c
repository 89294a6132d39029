/*
 * record.c - the JSON-lines record format of the file source and sink.
 *
 * A line is either a bare Debezium value, or a wrapper object carrying the
 * Kafka coordinates: {"topic","partition","offset","key","value","headers"},
 * also in kcat -J's spelling ("payload", headers as a flat array). See
 * docs/formats.md. At the end, the packed binary form in which the engine
 * carries Kafka records through its batches (no JSON, nothing tokenized).
 */
#include "event.h"

#include <string.h>

/* Can the line's top level have a "topic" member? A wrapper must spell the
 * key either plainly or with \u00XX escapes (t, o, p, i, c are ASCII), so a
 * line with neither byte sequence is a bare value and need not be tokenized
 * here: sl_event_decode() validates it anyway. This keeps bare lines at one
 * tokenization each. */
static bool contains(const char *p, size_t n, const char *needle, size_t nlen, size_t anchor)
{
    const char *q, *last; /* last: where the anchor byte of a match at the end would be */

    if (n < nlen)
        return false;
    last = p + n - (nlen - anchor);
    /* memchr for the needle's rarest byte (at anchor): a 't' is in most
     * member names, a 'p' in few */
    for (q = p + anchor; (q = memchr(q, needle[anchor], (size_t)(last + 1 - q))) != NULL; q++)
        if (memcmp(q - anchor, needle, nlen) == 0)
            return true;
    return false;
}

static bool may_be_wrapper(const char *p, size_t n)
{
    return contains(p, n, "topic", 5, 2) || contains(p, n, "\\u00", 4, 0);
}

/* A string member's text: into the line when unescaped, else into scratch
 * (reserved by the caller, so earlier views stay valid). */
static sl_str text_of(const sl_json *j, int t, sl_buf *scratch)
{
    sl_str s;

    if (!j->tok[t].escaped) {
        s.p = j->src + j->tok[t].start + 1;
        s.len = j->tok[t].len - 2;
        return s;
    }
    s.len = scratch->len;
    sl_json_unescape(j, t, scratch);
    s.p = scratch->data + s.len;
    s.len = scratch->len - s.len;
    return s;
}

static int int_member(const sl_json *j, int root, const char *name, int64_t lo, int64_t hi,
                      int64_t *out, sl_error *err)
{
    int t = sl_json_get(j, root, name, strlen(name));
    sl_value v;

    *out = -1;
    if (t < 0 || j->tok[t].type == SL_J_NULL)
        return 0;
    if (j->tok[t].type == SL_J_NUMBER) {
        sl_json_value(j, t, NULL, &v);
        if (v.type == SL_V_INT && v.u.i >= lo && v.u.i <= hi) {
            *out = v.u.i;
            return 0;
        }
    }
    return sl_error_set(err, SL_ERR_PARSE, "wrapper \"%s\" must be an integer from %lld to %lld",
                        name, (long long)lo, (long long)hi);
}

/* key / value / payload: embedded JSON, a string holding JSON, or null. */
static void payload_member(const sl_json *j, int t, sl_buf *scratch, const char **p, size_t *n)
{
    *p = NULL;
    *n = 0;
    if (t < 0 || j->tok[t].type == SL_J_NULL)
        return;
    if (j->tok[t].type == SL_J_STRING) {
        sl_str s = text_of(j, t, scratch);

        *p = s.p;
        *n = s.len;
        return;
    }
    *p = j->src + j->tok[t].start;
    *n = j->tok[t].len;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* "key_base64"/"value_base64": bytes that are neither JSON nor UTF-8 (so no
 * JSON string holds them exactly), as sluice writes them for Kafka messages.
 * Decoded into scratch; -1 when the text is not base64. */
static int base64_member(const sl_json *j, int t, sl_buf *scratch, const char **p, size_t *n,
                         sl_error *err)
{
    sl_str s;
    size_t i, start;
    uint32_t acc = 0;
    int bits = 0, v;

    if (j->tok[t].type != SL_J_STRING || j->tok[t].escaped)
        return sl_error_set(err, SL_ERR_PARSE, "a *_base64 member must be a base64 string");
    s.p = j->src + j->tok[t].start + 1;
    s.len = j->tok[t].len - 2;
    start = scratch->len;
    for (i = 0; i < s.len && s.p[i] != '='; i++) {
        if ((v = b64val(s.p[i])) < 0)
            return sl_error_set(err, SL_ERR_PARSE, "a *_base64 member must be a base64 string");
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sl_buf_putc(scratch, (char)((acc >> bits) & 0xff));
        }
    }
    *p = scratch->data + start;
    *n = scratch->len - start;
    return 0;
}

static int add_header(sl_record *rec, const sl_json *j, int name, int value, sl_buf *scratch,
                      sl_error *err)
{
    sl_header *h;

    if (rec->nheaders == SL_MAX_HEADERS)
        return sl_error_set(err, SL_ERR_PARSE, "more than %d headers", SL_MAX_HEADERS);
    if (j->tok[name].type != SL_J_STRING)
        return sl_error_set(err, SL_ERR_PARSE, "a header name must be a string");
    h = &rec->headers[rec->nheaders++];
    h->name = text_of(j, name, scratch);
    h->null_value = value < 0 || j->tok[value].type == SL_J_NULL;
    if (h->null_value) {
        h->value.p = "";
        h->value.len = 0;
    } else if (j->tok[value].type == SL_J_STRING) {
        h->value = text_of(j, value, scratch);
    } else {
        h->value = sl_json_raw(j, value);
    }
    return 0;
}

static int parse_headers(sl_record *rec, const sl_json *j, int t, sl_buf *scratch, sl_error *err)
{
    int k;

    if (t < 0 || j->tok[t].type == SL_J_NULL)
        return 0;
    if (j->tok[t].type == SL_J_OBJECT) {
        for (k = sl_json_first(j, t); k >= 0; k = sl_json_next_member(j, k))
            if (add_header(rec, j, k, k + 1, scratch, err) < 0)
                return -1;
        return 0;
    }
    if (j->tok[t].type == SL_J_ARRAY) {
        /* kcat -J: ["name1","value1","name2","value2",...] */
        if (j->tok[t].count % 2 != 0)
            return sl_error_set(err, SL_ERR_PARSE,
                                "header array must hold name, value pairs (it has %u elements)",
                                (unsigned)j->tok[t].count);
        for (k = sl_json_elem_first(j, t); k >= 0;) {
            int v = sl_json_elem_next(j, t, k);

            if (add_header(rec, j, k, v, scratch, err) < 0)
                return -1;
            k = sl_json_elem_next(j, t, v);
        }
        return 0;
    }
    return sl_error_set(err, SL_ERR_PARSE, "\"headers\" must be an object or an array");
}

int sl_record_parse_line(sl_record *rec, const char *line, size_t len, sl_json *j, sl_buf *scratch,
                         sl_error *err)
{
    sl_str where = rec->where;
    int64_t n;
    int root, t;

    memset(rec, 0, sizeof(*rec));
    rec->where = where;
    rec->topic.p = "";
    rec->partition = -1;
    rec->offset = -1;

    if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
        line += 3;
        len -= 3;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    {
        size_t i = 0;

        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            return sl_error_set(err, SL_ERR_PARSE, "empty line");
    }
    if (!may_be_wrapper(line, len)) {
        rec->value = line;
        rec->value_len = len;
        return 0;
    }
    if (sl_json_parse(j, line, len, err) < 0)
        return sl_error_wrap(err, "line is not valid JSON");
    root = 0;
    if (j->tok[root].type != SL_J_OBJECT || (t = sl_json_get(j, root, "topic", 5)) < 0) {
        rec->value = line;
        rec->value_len = len;
        return 0;
    }

    /* A wrapper. Unescaped texts are at most as long as the line: reserve
     * once so that views into scratch stay put while we add more. */
    sl_buf_reserve(scratch, len + 1);
    if (j->tok[t].type != SL_J_STRING)
        return sl_error_set(err, SL_ERR_PARSE, "wrapper \"topic\" must be a string");
    rec->topic = text_of(j, t, scratch);
    if (int_member(j, root, "partition", -1, INT32_MAX, &n, err) < 0)
        return -1;
    rec->partition = (int32_t)n;
    if (int_member(j, root, "offset", -1, INT64_MAX, &n, err) < 0)
        return -1;
    rec->offset = n;
    if ((t = sl_json_get(j, root, "key_base64", 10)) >= 0) {
        if (base64_member(j, t, scratch, &rec->key, &rec->key_len, err) < 0)
            return -1;
    } else {
        payload_member(j, sl_json_get(j, root, "key", 3), scratch, &rec->key, &rec->key_len);
    }
    if ((t = sl_json_get(j, root, "value_base64", 12)) >= 0)
        return base64_member(j, t, scratch, &rec->value, &rec->value_len, err) < 0
                   ? -1
                   : parse_headers(rec, j, sl_json_get(j, root, "headers", 7), scratch, err);
    t = sl_json_get(j, root, "value", 5);
    if (t < 0)
        t = sl_json_get(j, root, "payload", 7);
    if (t < 0)
        return sl_error_set(err, SL_ERR_PARSE,
                            "wrapper line has no \"value\" (or kcat's \"payload\") member");
    payload_member(j, t, scratch, &rec->value, &rec->value_len);
    return parse_headers(rec, j, sl_json_get(j, root, "headers", 7), scratch, err);
}

static void put_json_or_string(sl_buf *out, const char *p, size_t n, bool is_json)
{
    if (p == NULL)
        sl_buf_append(out, "null", 4);
    else if (is_json)
        sl_buf_append(out, p, n);
    else
        sl_buf_json_str(out, p, n);
}

void sl_record_write_line(const sl_record *rec, bool key_is_json, bool value_is_json, sl_buf *out)
{
    size_t i;

    sl_buf_append(out, "{\"topic\":", 9);
    sl_buf_json_str(out, rec->topic.p ? rec->topic.p : "", rec->topic.len);
    if (rec->partition >= 0)
        sl_buf_printf(out, ",\"partition\":%d", (int)rec->partition);
    if (rec->offset >= 0)
        sl_buf_printf(out, ",\"offset\":%lld", (long long)rec->offset);
    /* bytes that are neither JSON nor UTF-8 travel as base64, so that a
     * dead letter can give them back exactly */
    if (rec->key && !key_is_json && !sl_utf8_valid(rec->key, rec->key_len)) {
        sl_buf_append(out, ",\"key_base64\":", 14);
        sl_buf_base64_str(out, rec->key, rec->key_len);
    } else {
        sl_buf_append(out, ",\"key\":", 7);
        put_json_or_string(out, rec->key, rec->key_len, key_is_json);
    }
    if (rec->value && !value_is_json && !sl_utf8_valid(rec->value, rec->value_len)) {
        sl_buf_append(out, ",\"value_base64\":", 16);
        sl_buf_base64_str(out, rec->value, rec->value_len);
    } else {
        sl_buf_append(out, ",\"value\":", 9);
        put_json_or_string(out, rec->value, rec->value_len, value_is_json);
    }
    sl_buf_append(out, ",\"headers\":{", 12);
    for (i = 0; i < rec->nheaders; i++) {
        const sl_header *h = &rec->headers[i];

        if (i > 0)
            sl_buf_putc(out, ',');
        sl_buf_json_str(out, h->name.p, h->name.len);
        sl_buf_putc(out, ':');
        if (h->null_value)
            sl_buf_append(out, "null", 4);
        else
            sl_buf_json_str(out, h->value.p, h->value.len);
    }
    sl_buf_append(out, "}}", 2);
}

/* ---- the packed form ---------------------------------------------------------
 *
 * How the engine carries a Kafka record through a batch: a fixed head, one
 * (name length, value length) pair per header, then the bytes of the topic,
 * key, value and header names and values, back to back. Nothing is escaped
 * or encoded, so packing is a copy and unpacking only sets pointers; the
 * bytes stay exactly the message's own (binary keys, non-UTF-8 headers).
 * The batch's bytes have no alignment: heads are read with memcpy. */

#define PACK_NULL SIZE_MAX /* a NULL key, value or header value */

typedef struct pack_head {
    int64_t offset;
    int32_t partition;
    uint32_t nheaders;
    size_t topic_len, key_len, value_len;
} pack_head;

typedef struct pack_hdr {
    size_t name_len, value_len;
} pack_hdr;

void sl_record_pack(const sl_record *rec, sl_buf *out)
{
    pack_head h;
    pack_hdr ph[SL_MAX_HEADERS];
    size_t i, total, nh = rec->nheaders < SL_MAX_HEADERS ? rec->nheaders : SL_MAX_HEADERS;
    char *p;

    memset(&h, 0, sizeof(h)); /* no uninitialized padding in the batch */
    h.offset = rec->offset;
    h.partition = rec->partition;
    h.nheaders = (uint32_t)nh;
    h.topic_len = rec->topic.p ? rec->topic.len : 0;
    h.key_len = rec->key ? rec->key_len : PACK_NULL;
    h.value_len = rec->value ? rec->value_len : PACK_NULL;
    total = sizeof(h) + nh * sizeof(*ph) + h.topic_len + (rec->key ? rec->key_len : 0) +
            (rec->value ? rec->value_len : 0);
    for (i = 0; i < nh; i++) {
        const sl_header *hd = &rec->headers[i];

        ph[i].name_len = hd->name.len;
        ph[i].value_len = hd->null_value ? PACK_NULL : hd->value.len;
        total += hd->name.len + (hd->null_value ? 0 : hd->value.len);
    }
    /* one reservation, then plain copies */
    sl_buf_reserve(out, total);
    p = out->data + out->len;
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    if (nh) {
        memcpy(p, ph, nh * sizeof(*ph));
        p += nh * sizeof(*ph);
    }
#define PUT(src, n)                                                                                \
    do {                                                                                           \
        if ((n) > 0) {                                                                             \
            memcpy(p, (src), (n));                                                                 \
            p += (n);                                                                              \
        }                                                                                          \
    } while (0)
    PUT(rec->topic.p, h.topic_len);
    if (rec->key)
        PUT(rec->key, rec->key_len);
    if (rec->value)
        PUT(rec->value, rec->value_len);
    for (i = 0; i < nh; i++) {
        const sl_header *hd = &rec->headers[i];

        PUT(hd->name.p, hd->name.len);
        if (!hd->null_value)
            PUT(hd->value.p, hd->value.len);
    }
#undef PUT
    out->len += total;
    out->data[out->len] = '\0';
}

/* Take n bytes (PACK_NULL: none, and a NULL pointer) from *p, within end. */
static bool take(const char **p, const char *end, size_t n, const char **out)
{
    if (n == PACK_NULL) {
        *out = NULL;
        return true;
    }
    if (n > (size_t)(end - *p))
        return false;
    *out = *p;
    *p += n;
    return true;
}

int sl_record_unpack(sl_record *rec, const char *data, size_t len, sl_error *err)
{
    const char *p = data, *end = data + len;
    pack_head h;
    pack_hdr ph;
    size_t i;

    memset(rec, 0, sizeof(*rec));
    rec->topic.p = "";
    rec->partition = -1;
    rec->offset = -1;
    if (len < sizeof(h))
        goto bad;
    memcpy(&h, p, sizeof(h));
    p += sizeof(h);
    if (h.nheaders > SL_MAX_HEADERS || h.topic_len == PACK_NULL ||
        (size_t)(end - p) < (size_t)h.nheaders * sizeof(ph))
        goto bad;
    rec->partition = h.partition;
    rec->offset = h.offset;
    rec->nheaders = h.nheaders;
    {
        const char *hp = p, *s;

        p += (size_t)h.nheaders * sizeof(ph);
        if (!take(&p, end, h.topic_len, &s))
            goto bad;
        rec->topic.p = s;
        rec->topic.len = h.topic_len;
        if (!take(&p, end, h.key_len, &rec->key) || !take(&p, end, h.value_len, &rec->value))
            goto bad;
        rec->key_len = rec->key ? h.key_len : 0;
        rec->value_len = rec->value ? h.value_len : 0;
        for (i = 0; i < h.nheaders; i++) {
            sl_header *hd = &rec->headers[i];

            memcpy(&ph, hp + i * sizeof(ph), sizeof(ph));
            if (ph.name_len == PACK_NULL || !take(&p, end, ph.name_len, &s))
                goto bad;
            hd->name.p = s;
            hd->name.len = ph.name_len;
            if (!take(&p, end, ph.value_len, &s))
                goto bad;
            hd->null_value = s == NULL;
            hd->value.p = s ? s : "";
            hd->value.len = s ? ph.value_len : 0;
        }
    }
    if (p != end)
        goto bad;
    return 0;
bad:
    memset(rec, 0, sizeof(*rec));
    rec->topic.p = "";
    rec->partition = -1;
    rec->offset = -1;
    return sl_error_set(err, SL_ERR_INTERNAL, "damaged packed record (%zu bytes)", len);
}
