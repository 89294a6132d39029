/*
 * event.c - decode Debezium change events from their JSON tokens.
 *
 * sl_event_decode() tokenizes the value (and key) once, classifies the
 * record (change, tombstone, transaction boundary, schema change, message,
 * flattened row), and reads the handful of envelope and source fields every
 * event needs in one pass over the payload's and the source block's members.
 * Column values are read on demand (sl_event_column); the output value is
 * written from token slices (event_write.c).
 *
 * Scratch memory: every string the event exposes that had to be unescaped
 * lives in ev->scratch. Callers hold several such strings at once (the
 * evaluator compares two columns), so the buffer must never move while an
 * event is decoded: decode reserves an upper bound up front (see
 * scratch_bound) and all later writes go through scratch_put(), which never
 * grows the buffer. Escaped string values are unescaped at most once per
 * token: the token's otherwise unused `count` field remembers where its text
 * is (STRING value tokens only; object keys use `count` for their object).
 */
#include "event_priv.h"

#include <string.h>

void sl_event_init(sl_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    sl_json_init(&ev->v);
    sl_json_init(&ev->k);
    ev->t_payload = ev->t_before = ev->t_after = ev->t_source = ev->t_tx = ev->t_schema =
        ev->t_key = -1;
}

void sl_event_free(sl_event *ev)
{
    sl_json_free(&ev->v);
    sl_json_free(&ev->k);
    sl_buf_free(&ev->scratch);
    memset(ev, 0, sizeof(*ev));
}

/* ---- scratch ------------------------------------------------------------- */

/* Append without ever moving the buffer: returns where the bytes went, or
 * NULL when the reserved room is exhausted (decode's bound makes that
 * impossible; failing soft keeps earlier pointers valid regardless). */
static char *scratch_put(sl_event *ev, const void *p, size_t n)
{
    sl_buf *b = &ev->scratch;
    char *w;

    if (b->data == NULL || b->len + n + 1 > b->cap)
        return NULL;
    w = b->data + b->len;
    if (n)
        memcpy(w, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return w;
}

sl_str sl_ev_str(sl_event *ev, sl_json *j, int t)
{
    sl_jtok *k = &j->tok[t];
    sl_buf *b = &ev->scratch;
    sl_str s = {"", 0};
    uint32_t n;
    size_t at;

    if (k->type != SL_J_STRING)
        return s;
    if (!k->escaped) {
        s.p = j->src + k->start + 1;
        s.len = k->len - 2;
        return s;
    }
    if (k->count != 0) {
        at = k->count - 1;
        memcpy(&n, b->data + at, sizeof(n));
        s.p = b->data + at + sizeof(n);
        s.len = n;
        return s;
    }
    /* [uint32 length][text]: the unescaped text is never longer than the raw body */
    if (b->data == NULL || b->len + sizeof(n) + k->len + 1 > b->cap || b->len >= UINT32_MAX)
        return s;
    at = b->len;
    b->len += sizeof(n);
    sl_json_unescape(j, t, b);
    n = (uint32_t)(b->len - at - sizeof(n));
    memcpy(b->data + at, &n, sizeof(n));
    k->count = (uint32_t)at + 1;
    s.p = b->data + at + sizeof(n);
    s.len = n;
    return s;
}

/* ---- small readers ------------------------------------------------------- */

const char *sl_ev_jtype_name(int type)
{
    switch (type) {
    case SL_J_NULL:
        return "null";
    case SL_J_FALSE:
    case SL_J_TRUE:
        return "a boolean";
    case SL_J_NUMBER:
        return "a number";
    case SL_J_STRING:
        return "a string";
    case SL_J_OBJECT:
        return "an object";
    default:
        return "an array";
    }
}

/* An integer from a number token or a string of decimal digits (Debezium
 * writes ts_ms, total_order and event_serial_no both ways). */
static bool int_of(const sl_json *j, int t, int64_t *out)
{
    const sl_jtok *k;
    sl_value v;

    if (t < 0)
        return false;
    k = &j->tok[t];
    if (k->type == SL_J_NUMBER) {
        sl_json_value(j, t, NULL, &v);
        if (v.type == SL_V_INT)
            *out = v.u.i;
        else if (v.u.d > -9.2e18 && v.u.d < 9.2e18)
            *out = (int64_t)v.u.d;
        else
            return false;
        return true;
    }
    if (k->type == SL_J_STRING && !k->escaped && k->len > 2 && k->len - 2 <= 19) {
        const char *p = j->src + k->start + 1, *end = p + k->len - 2;
        bool neg = *p == '-';
        uint64_t n = 0;

        if (neg)
            p++;
        if (p == end)
            return false;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return false;
            n = n * 10 + (uint64_t)(*p - '0');
        }
        if (n > (uint64_t)INT64_MAX)
            return false;
        *out = neg ? -(int64_t)n : (int64_t)n;
        return true;
    }
    return false;
}

static int64_t int_or0(const sl_json *j, int t)
{
    int64_t v = 0;

    return int_of(j, t, &v) ? v : 0;
}

/* Is the text (after white space) the JSON literal null? */
static bool is_null_text(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    return n == 4 && memcmp(p, "null", 4) == 0;
}

/* The name of member key k, unescaped into buf when needed. Returns its
 * length, or 0 for names longer than the buffer (no field we look for is). */
static size_t key_name(const sl_json *j, int k, char *buf, size_t cap, const char **name)
{
    const sl_jtok *kt = &j->tok[k];
    sl_buf tmp = SL_BUF_INIT;
    size_t n;

    if (!kt->escaped) {
        *name = j->src + kt->start + 1;
        return kt->len - 2;
    }
    if (kt->len - 2 > cap * 6) /* \uXXXX is the most verbose encoding */
        return 0;
    sl_json_unescape(j, k, &tmp);
    n = tmp.len <= cap ? tmp.len : 0;
    if (n)
        memcpy(buf, tmp.data, n);
    sl_buf_free(&tmp);
    *name = buf;
    return n;
}

#define NAME_IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, sizeof(lit) - 1) == 0)

/* The {"schema":...,"payload":...} converter envelope: exactly those two members. */
int sl_ev_envelope_payload(const sl_json *j, int root, int *schema)
{
    int k, payload = -1, sch = -1;
    char buf[16];
    const char *name;
    size_t nlen;

    if (j->tok[root].type != SL_J_OBJECT || j->tok[root].count != 2)
        return -1;
    for (k = sl_json_first(j, root); k >= 0; k = sl_json_next_member(j, k)) {
        nlen = key_name(j, k, buf, sizeof(buf), &name);
        if (NAME_IS("schema"))
            sch = k + 1;
        else if (NAME_IS("payload"))
            payload = k + 1;
    }
    if (payload < 0 || sch < 0)
        return -1;
    if (schema)
        *schema = sch;
    return payload;
}

/* Split `<prefix>.<schema>.<table>` (or `<prefix>.<table>`). */
static bool split_topic(sl_str topic, sl_str *prefix, sl_str *schema, sl_str *table)
{
    const char *p = topic.p, *end = topic.p + topic.len, *d1 = NULL, *d2 = NULL, *q;

    for (q = end; q > p; q--) {
        if (q[-1] == '.') {
            if (d1 == NULL) {
                d1 = q - 1;
            } else {
                d2 = q - 1;
                break;
            }
        }
    }
    if (d1 == NULL || d1 + 1 == end)
        return false;
    table->p = d1 + 1;
    table->len = (size_t)(end - d1 - 1);
    if (d2) {
        schema->p = d2 + 1;
        schema->len = (size_t)(d1 - d2 - 1);
        prefix->p = p;
        prefix->len = (size_t)(d2 - p);
    } else {
        schema->p = "";
        schema->len = 0;
        prefix->p = p;
        prefix->len = (size_t)(d1 - p);
    }
    return true;
}

/* Fill table/schema/origin from the record topic where the event left them empty. */
static void fill_from_topic(sl_event *ev, const sl_record *rec)
{
    sl_str prefix, schema, table;

    if (rec->topic.len == 0 || !split_topic(rec->topic, &prefix, &schema, &table))
        return;
    if (ev->table.len == 0)
        ev->table = table;
    if (ev->schema.len == 0 && ev->db.len == 0)
        ev->schema = schema;
    if (ev->origin.len == 0)
        ev->origin = prefix;
}

/* ---- source block and position ---------------------------------------------- */

typedef struct srcfields {
    int lsn, file, pos, row, commit_lsn, change_lsn, serial, scn, commit_scn;
} srcfields;

static bool snapshot_of(sl_event *ev, sl_json *j, int t)
{
    sl_str s;

    if (t < 0)
        return false;
    if (j->tok[t].type == SL_J_TRUE)
        return true;
    if (j->tok[t].type != SL_J_STRING)
        return false;
    s = sl_ev_str(ev, j, t);
#define SNAP_IS(lit) (s.len == sizeof(lit) - 1 && memcmp(s.p, lit, s.len) == 0)
    return SNAP_IS("true") || SNAP_IS("first") || SNAP_IS("last") || SNAP_IS("incremental") ||
           SNAP_IS("first_in_data_collection") || SNAP_IS("last_in_data_collection");
#undef SNAP_IS
}

static sl_str str_or_empty(sl_event *ev, sl_json *j, int t)
{
    sl_str s = {"", 0};

    if (t >= 0 && j->tok[t].type == SL_J_STRING)
        s = sl_ev_str(ev, j, t);
    return s;
}

static void read_source(sl_event *ev, int src, srcfields *sf)
{
    sl_json *j = &ev->v;
    int k, t_name = -1, t_conn = -1, t_db = -1, t_schema = -1, t_table = -1, t_ts = -1, t_snap = -1;
    char buf[32];
    const char *name;
    size_t nlen;

    memset(sf, 0xff, sizeof(*sf)); /* every index -1 */
    for (k = sl_json_first(j, src); k >= 0; k = sl_json_next_member(j, k)) {
        int v = k + 1;

        nlen = key_name(j, k, buf, sizeof(buf), &name);
        if (nlen == 0)
            continue;
        if (NAME_IS("name"))
            t_name = v;
        else if (NAME_IS("connector"))
            t_conn = v;
        else if (NAME_IS("db"))
            t_db = v;
        else if (NAME_IS("schema"))
            t_schema = v;
        else if (NAME_IS("table"))
            t_table = v;
        else if (NAME_IS("ts_ms"))
            t_ts = v;
        else if (NAME_IS("snapshot"))
            t_snap = v;
        else if (NAME_IS("lsn"))
            sf->lsn = v;
        else if (NAME_IS("file"))
            sf->file = v;
        else if (NAME_IS("pos"))
            sf->pos = v;
        else if (NAME_IS("row"))
            sf->row = v;
        else if (NAME_IS("commit_lsn"))
            sf->commit_lsn = v;
        else if (NAME_IS("change_lsn"))
            sf->change_lsn = v;
        else if (NAME_IS("event_serial_no"))
            sf->serial = v;
        else if (NAME_IS("scn"))
            sf->scn = v;
        else if (NAME_IS("commit_scn"))
            sf->commit_scn = v;
    }
    ev->origin = str_or_empty(ev, j, t_name);
    ev->connector = str_or_empty(ev, j, t_conn);
    ev->db = str_or_empty(ev, j, t_db);
    ev->schema = str_or_empty(ev, j, t_schema);
    ev->table = str_or_empty(ev, j, t_table);
    ev->source_ts_ms = int_or0(j, t_ts);
    ev->snapshot = snapshot_of(ev, j, t_snap);
}

static void put_hex(sl_event *ev, uint64_t v, int width)
{
    static const char digits[] = "0123456789abcdef";
    char b[16];
    int i;

    /* fixed width, so the text sorts like the number (width <= 16) */
    for (i = width - 1; i >= 0; i--, v >>= 4)
        b[i] = digits[v & 15];
    scratch_put(ev, b, (size_t)width);
}

static void put_zeros(sl_event *ev, size_t n)
{
    static const char zeros[] = "000000000000000000000000";

    while (n > 0) {
        size_t c = n < sizeof(zeros) - 1 ? n : sizeof(zeros) - 1;

        scratch_put(ev, zeros, c);
        n -= c;
    }
}

static bool all_digits(sl_str s)
{
    size_t i;

    for (i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
    return s.len > 0;
}

/* A decimal number (string or JSON integer) left-padded with zeros to width. */
static void put_padded_dec(sl_event *ev, sl_json *j, int t, size_t width)
{
    sl_str s = {"", 0};

    if (t >= 0 && j->tok[t].type == SL_J_NUMBER) {
        s.p = j->src + j->tok[t].start;
        s.len = j->tok[t].len;
    } else if (t >= 0 && j->tok[t].type == SL_J_STRING) {
        s = sl_ev_str(ev, j, t);
    }
    if (s.len < width && all_digits(s))
        put_zeros(ev, width - s.len);
    else if (s.len == 0)
        put_zeros(ev, width);
    scratch_put(ev, s.p, s.len);
}

static const char *last_dot(sl_str s)
{
    size_t i = s.len;

    while (i > 0)
        if (s.p[--i] == '.')
            return s.p + i;
    return NULL;
}

static bool connector_is(const sl_event *ev, const char *name)
{
    size_t n = strlen(name);

    return ev->connector.len == n && memcmp(ev->connector.p, name, n) == 0;
}

/* Encode the source position so that memcmp order is stream order (event.h). */
static void encode_position(sl_event *ev, const srcfields *sf)
{
    sl_json *j = &ev->v;
    bool known = ev->connector.len > 0;
    char *start;
    int64_t n;

    /* Resolve every string first: resolving may append to scratch, and the
     * position must be one contiguous run. */
    sl_str file = str_or_empty(ev, j, sf->file);
    sl_str commit = str_or_empty(ev, j, sf->commit_lsn);
    sl_str change = str_or_empty(ev, j, sf->change_lsn);

    if (sf->scn >= 0)
        (void)str_or_empty(ev, j, sf->scn);
    if (sf->commit_scn >= 0)
        (void)str_or_empty(ev, j, sf->commit_scn);
    start = ev->scratch.data + ev->scratch.len;

    if ((connector_is(ev, "postgresql") || !known) && int_of(j, sf->lsn, &n)) {
        put_hex(ev, (uint64_t)n, 16);
    } else if ((connector_is(ev, "mysql") || connector_is(ev, "mariadb") || !known) &&
               file.len > 0) {
        const char *dot = last_dot(file);
        sl_str suffix = {dot ? dot + 1 : file.p + file.len, 0};

        suffix.len = (size_t)(file.p + file.len - suffix.p);
        if (dot && all_digits(suffix) && suffix.len < 10) {
            scratch_put(ev, file.p, (size_t)(suffix.p - file.p));
            put_zeros(ev, 10 - suffix.len);
            scratch_put(ev, suffix.p, suffix.len);
        } else {
            scratch_put(ev, file.p, file.len);
        }
        scratch_put(ev, "/", 1);
        put_hex(ev, (uint64_t)int_or0(j, sf->pos), 16);
        scratch_put(ev, "/", 1);
        put_hex(ev, (uint64_t)int_or0(j, sf->row) & 0xffffffffu, 8);
    } else if ((connector_is(ev, "sqlserver") || !known) && commit.len > 0) {
        scratch_put(ev, commit.p, commit.len);
        scratch_put(ev, "/", 1);
        scratch_put(ev, change.p, change.len);
        scratch_put(ev, "/", 1);
        put_hex(ev, (uint64_t)int_or0(j, sf->serial) & 0xffffffffu, 8);
    } else if ((connector_is(ev, "oracle") || !known) && sf->scn >= 0 &&
               j->tok[sf->scn].type != SL_J_NULL) {
        put_padded_dec(ev, j, sf->scn, 24);
        scratch_put(ev, "/", 1);
        put_padded_dec(ev, j, sf->commit_scn, 24);
    } else if (ev->source_ts_ms != 0 || ev->ts_ms != 0) {
        put_hex(ev, (uint64_t)(ev->source_ts_ms != 0 ? ev->source_ts_ms : ev->ts_ms), 16);
    }
    if (start == ev->scratch.data + ev->scratch.len) {
        ev->position.p = "";
        ev->position.len = 0;
    } else {
        ev->position.p = start;
        ev->position.len = (size_t)(ev->scratch.data + ev->scratch.len - start);
    }
    ev->partition = ev->db;
}

/* ---- flattened (ExtractNewRecordState) records ------------------------------ */

static int decode_flattened(sl_event *ev, const sl_record *rec, int root, sl_error *err)
{
    sl_json *j = &ev->v;
    int k, t_op = -1, t_del = -1, t_table = -1, t_db = -1, t_schema = -1, t_name = -1, t_conn = -1,
           t_sts = -1, t_ts = -1, t_snap = -1;
    srcfields sf;
    char buf[40];
    const char *name;
    size_t nlen;

    memset(&sf, 0xff, sizeof(sf));
    for (k = sl_json_first(j, root); k >= 0; k = sl_json_next_member(j, k)) {
        int v = k + 1;

        nlen = key_name(j, k, buf, sizeof(buf), &name);
        if (nlen < 3 || name[0] != '_' || name[1] != '_')
            continue;
        /* __op, __table, __source_table, ...: the SMT's add.fields */
        if (NAME_IS("__op"))
            t_op = v;
        else if (NAME_IS("__deleted"))
            t_del = v;
        else if (NAME_IS("__table") || NAME_IS("__source_table"))
            t_table = v;
        else if (NAME_IS("__db") || NAME_IS("__source_db"))
            t_db = v;
        else if (NAME_IS("__schema") || NAME_IS("__source_schema"))
            t_schema = v;
        else if (NAME_IS("__name") || NAME_IS("__source_name"))
            t_name = v;
        else if (NAME_IS("__connector") || NAME_IS("__source_connector"))
            t_conn = v;
        else if (NAME_IS("__source_ts_ms"))
            t_sts = v;
        else if (NAME_IS("__ts_ms"))
            t_ts = v;
        else if (NAME_IS("__snapshot") || NAME_IS("__source_snapshot"))
            t_snap = v;
        else if (NAME_IS("__lsn") || NAME_IS("__source_lsn"))
            sf.lsn = v;
    }
    ev->flattened = true;
    ev->kind = SL_EV_CHANGE;
    ev->t_after = root;
    ev->has_after = true;
    if (t_op >= 0) {
        sl_str op = str_or_empty(ev, j, t_op);

        if (op.len != 1 || !memchr("cudrt", op.p[0], 5))
            return sl_error_set(err, SL_ERR_INVALID, "__op '%.*s' is not one of c, u, d, r, t",
                                (int)(op.len > 32 ? 32 : op.len), op.p);
        ev->op = op.p[0];
    } else if (t_del >= 0 &&
               (j->tok[t_del].type == SL_J_TRUE ||
                (j->tok[t_del].type == SL_J_STRING && sl_json_str_eq(j, t_del, "true", 4)))) {
        ev->op = 'd';
    } else {
        ev->op = 'u';
    }
    ev->table = str_or_empty(ev, j, t_table);
    ev->db = str_or_empty(ev, j, t_db);
    ev->schema = str_or_empty(ev, j, t_schema);
    ev->origin = str_or_empty(ev, j, t_name);
    ev->connector = str_or_empty(ev, j, t_conn);
    ev->source_ts_ms = int_or0(j, t_sts);
    ev->ts_ms = int_or0(j, t_ts);
    ev->snapshot = snapshot_of(ev, j, t_snap);
    fill_from_topic(ev, rec);
    if (ev->table.len == 0)
        return sl_error_set(err, SL_ERR_INVALID,
                            "the value has no \"op\", so it is read as a flattened row "
                            "(ExtractNewRecordState), but it has no __table field and the "
                            "record has no topic to take the table from");
    encode_position(ev, &sf);
    return 0;
}

/* ---- decode ------------------------------------------------------------------ */

static void reset(sl_event *ev, size_t bound)
{
    static const sl_str empty = {"", 0};

    ev->kind = SL_EV_CHANGE;
    ev->op = 0;
    ev->enveloped = ev->flattened = ev->has_before = ev->has_after = false;
    ev->origin = ev->connector = ev->db = ev->schema = ev->table = empty;
    ev->source_ts_ms = ev->ts_ms = 0;
    ev->snapshot = false;
    ev->tx_id = empty;
    ev->tx_total_order = ev->tx_event_count = 0;
    ev->position = ev->partition = empty;
    ev->has_key = false;
    ev->t_payload = ev->t_before = ev->t_after = ev->t_source = ev->t_tx = ev->t_schema =
        ev->t_key = -1;
    ev->v.ntok = 0;
    ev->k.ntok = 0;
    sl_buf_reset(&ev->scratch);
    sl_buf_reserve(&ev->scratch, bound);
}

/* Members of the payload the decoder looks at. */
typedef struct payload {
    int op, before, after, source, ts, tx, status, id, count, ddl, changes, dbname;
} payload;

static void scan_payload(const sl_json *j, int p, payload *pl)
{
    int k;
    char buf[16];
    const char *name;
    size_t nlen;

    memset(pl, 0xff, sizeof(*pl));
    for (k = sl_json_first(j, p); k >= 0; k = sl_json_next_member(j, k)) {
        int v = k + 1;

        nlen = key_name(j, k, buf, sizeof(buf), &name);
        if (nlen == 0)
            continue;
        if (NAME_IS("op"))
            pl->op = v;
        else if (NAME_IS("before"))
            pl->before = v;
        else if (NAME_IS("after"))
            pl->after = v;
        else if (NAME_IS("source"))
            pl->source = v;
        else if (NAME_IS("ts_ms"))
            pl->ts = v;
        else if (NAME_IS("transaction"))
            pl->tx = v;
        else if (NAME_IS("status"))
            pl->status = v;
        else if (NAME_IS("id"))
            pl->id = v;
        else if (NAME_IS("event_count"))
            pl->count = v;
        else if (NAME_IS("ddl"))
            pl->ddl = v;
        else if (NAME_IS("tableChanges"))
            pl->changes = v;
        else if (NAME_IS("databaseName"))
            pl->dbname = v;
    }
}

/* before/after: absent or null (no row) or an object. */
static int row_part(sl_event *ev, int t, const char *what, int *out, bool *has, sl_error *err)
{
    *out = -1;
    *has = false;
    if (t < 0 || ev->v.tok[t].type == SL_J_NULL)
        return 0;
    if (ev->v.tok[t].type != SL_J_OBJECT)
        return sl_error_set(err, SL_ERR_INVALID, "\"%s\" is %s, expected an object or null", what,
                            sl_ev_jtype_name(ev->v.tok[t].type));
    *out = t;
    *has = true;
    return 0;
}

static int decode_tx(sl_event *ev, const payload *pl, sl_error *err)
{
    sl_json *j = &ev->v;
    sl_str status = sl_ev_str(ev, j, pl->status);

    if (status.len == 5 && memcmp(status.p, "BEGIN", 5) == 0)
        ev->kind = SL_EV_TX_BEGIN;
    else if (status.len == 3 && memcmp(status.p, "END", 3) == 0)
        ev->kind = SL_EV_TX_END;
    else
        return sl_error_set(err, SL_ERR_INVALID, "transaction status '%.*s' is not BEGIN or END",
                            (int)(status.len > 32 ? 32 : status.len), status.p);
    if (pl->id < 0 || (j->tok[pl->id].type != SL_J_STRING && j->tok[pl->id].type != SL_J_NUMBER))
        return sl_error_set(err, SL_ERR_INVALID, "transaction %s record has no \"id\"",
                            ev->kind == SL_EV_TX_BEGIN ? "BEGIN" : "END");
    if (j->tok[pl->id].type == SL_J_STRING) {
        ev->tx_id = sl_ev_str(ev, j, pl->id);
    } else {
        ev->tx_id.p = j->src + j->tok[pl->id].start;
        ev->tx_id.len = j->tok[pl->id].len;
    }
    ev->tx_event_count = int_or0(j, pl->count);
    if (ev->ts_ms != 0) {
        char *start = ev->scratch.data + ev->scratch.len;

        put_hex(ev, (uint64_t)ev->ts_ms, 16);
        ev->position.p = start;
        ev->position.len = (size_t)(ev->scratch.data + ev->scratch.len - start);
    }
    return 0;
}

int sl_event_decode(sl_event *ev, const sl_record *rec, sl_error *err)
{
    sl_json *j = &ev->v;
    size_t klen = rec->key ? rec->key_len : 0;
    size_t vlen = rec->value ? rec->value_len : 0;
    int root, p, schema = -1, rc = -1;
    payload pl;
    srcfields sf;

    /* The scratch bound: every distinct string token unescaped once (at most
     * its raw length + 1), plus the position (at most one copy of the value's
     * strings and some padding). */
    reset(ev, 3 * (vlen + klen) + 512);

    if (rec->key != NULL && !is_null_text(rec->key, rec->key_len)) {
        if (sl_json_parse(&ev->k, rec->key, rec->key_len, NULL) == 0) {
            int kp = sl_ev_envelope_payload(&ev->k, 0, NULL);

            ev->has_key = true;
            ev->t_key = kp >= 0 ? kp : 0;
        } else {
            ev->t_key = SL_EV_BAD_KEY;
        }
    }

    if (rec->value == NULL || is_null_text(rec->value, rec->value_len)) {
        ev->kind = SL_EV_TOMBSTONE;
        fill_from_topic(ev, rec);
        rc = 0;
        goto out;
    }
    if (sl_json_parse(j, rec->value, rec->value_len, err) < 0) {
        sl_error_wrap(err, "value is not valid JSON");
        goto out;
    }
    root = 0;
    if (j->tok[root].type != SL_J_OBJECT) {
        sl_error_set(err, SL_ERR_INVALID, "value is %s, expected a JSON object",
                     sl_ev_jtype_name(j->tok[root].type));
        goto out;
    }
    p = sl_ev_envelope_payload(j, root, &schema);
    if (p >= 0) {
        ev->enveloped = true;
        ev->t_schema = j->tok[schema].type == SL_J_OBJECT ? schema : -1;
        if (j->tok[p].type == SL_J_NULL) {
            ev->kind = SL_EV_TOMBSTONE;
            fill_from_topic(ev, rec);
            rc = 0;
            goto out;
        }
        if (j->tok[p].type != SL_J_OBJECT) {
            sl_error_set(err, SL_ERR_INVALID, "\"payload\" is %s, expected an object",
                         sl_ev_jtype_name(j->tok[p].type));
            goto out;
        }
    } else {
        p = root;
    }
    ev->t_payload = p;
    scan_payload(j, p, &pl);
    ev->ts_ms = int_or0(j, pl.ts);

    if (pl.op < 0 && pl.status >= 0 && j->tok[pl.status].type == SL_J_STRING) {
        rc = decode_tx(ev, &pl, err);
        goto out;
    }
    if (pl.source >= 0 && j->tok[pl.source].type != SL_J_NULL) {
        if (j->tok[pl.source].type != SL_J_OBJECT) {
            sl_error_set(err, SL_ERR_INVALID, "\"source\" is %s, expected an object",
                         sl_ev_jtype_name(j->tok[pl.source].type));
            goto out;
        }
        ev->t_source = pl.source;
        read_source(ev, pl.source, &sf);
    } else {
        memset(&sf, 0xff, sizeof(sf));
    }

    if (pl.op < 0) {
        if ((pl.ddl >= 0 || pl.changes >= 0) && (ev->t_source >= 0 || pl.dbname >= 0)) {
            ev->kind = SL_EV_SCHEMA_CHANGE;
            if (ev->db.len == 0)
                ev->db = str_or_empty(ev, j, pl.dbname);
            encode_position(ev, &sf);
            rc = 0;
            goto out;
        }
        if (ev->t_source >= 0 && (pl.before >= 0 || pl.after >= 0)) {
            sl_error_set(err, SL_ERR_INVALID,
                         "the event has \"source\" and \"before\"/\"after\" but no \"op\"");
            goto out;
        }
        ev->t_source = -1;
        rc = decode_flattened(ev, rec, p, err);
        goto out;
    }

    if (j->tok[pl.op].type != SL_J_STRING) {
        sl_error_set(err, SL_ERR_INVALID, "\"op\" is %s, expected a one-letter string",
                     sl_ev_jtype_name(j->tok[pl.op].type));
        goto out;
    }
    {
        sl_str op = sl_ev_str(ev, j, pl.op);

        if (op.len != 1 || !memchr("cudrtm", op.p[0], 6)) {
            sl_error_set(err, SL_ERR_INVALID, "op '%.*s' is not one of c, u, d, r, t, m",
                         (int)(op.len > 32 ? 32 : op.len), op.p);
            goto out;
        }
        ev->op = op.p[0];
    }
    if (row_part(ev, pl.before, "before", &ev->t_before, &ev->has_before, err) < 0 ||
        row_part(ev, pl.after, "after", &ev->t_after, &ev->has_after, err) < 0)
        goto out;
    if (pl.tx >= 0 && j->tok[pl.tx].type == SL_J_OBJECT) {
        ev->t_tx = pl.tx;
        ev->tx_id = str_or_empty(ev, j, sl_json_get(j, pl.tx, "id", 2));
        ev->tx_total_order = int_or0(j, sl_json_get(j, pl.tx, "total_order", 11));
    }

    if (ev->op == 'm') {
        ev->kind = SL_EV_MESSAGE;
    } else {
        ev->kind = SL_EV_CHANGE;
        if ((ev->op == 'c' || ev->op == 'r' || ev->op == 'u') && !ev->has_after) {
            sl_error_set(err, SL_ERR_INVALID, "op '%c' event has no \"after\" row", ev->op);
            goto out;
        }
        if (ev->table.len == 0)
            fill_from_topic(ev, rec);
        if (ev->table.len == 0) {
            sl_error_set(err, SL_ERR_INVALID,
                         "op '%c' event has no source.table (and no record topic to take the "
                         "table from)",
                         ev->op);
            goto out;
        }
    }
    encode_position(ev, &sf);
    rc = 0;
out:
    return rc;
}

/* ---- column reads ---------------------------------------------------------- */

static void value_of(sl_event *ev, sl_json *j, int t, sl_value *out)
{
    if (j->tok[t].type == SL_J_STRING) {
        out->type = SL_V_STRING;
        out->u.s = sl_ev_str(ev, j, t);
        return;
    }
    sl_json_value(j, t, &ev->scratch, out);
}

/* source.<name> of a flattened record: the SMT's __source_<name> or __<name>. */
static int flattened_source(sl_event *ev, const char *name, size_t len)
{
    char buf[128];
    int t;

    if (len + 9 > sizeof(buf))
        return -1;
    memcpy(buf, "__source_", 9);
    memcpy(buf + 9, name, len);
    t = sl_json_get(&ev->v, ev->t_after, buf, len + 9);
    /* __ts_ms is the envelope's time, not the source's */
    if (t < 0 && !(len >= 3 && memcmp(name, "ts_", 3) == 0)) {
        memcpy(buf + 7, "__", 2); /* "__source_x" -> "__x" starting at buf + 7 */
        t = sl_json_get(&ev->v, ev->t_after, buf + 7, len + 2);
    }
    return t;
}

int sl_event_column(sl_event *ev, sl_section sec, const char *name, size_t len, sl_value *out)
{
    sl_json *j = &ev->v;
    int obj = -1, t;

    out->type = SL_V_NULL;
    switch (sec) {
    case SL_SEC_BEFORE:
        obj = ev->t_before;
        break;
    case SL_SEC_AFTER:
        obj = ev->t_after;
        break;
    case SL_SEC_ROW:
        obj = ev->op == 'd' && !ev->flattened ? ev->t_before : ev->t_after;
        break;
    case SL_SEC_SOURCE:
        if (ev->flattened) {
            t = flattened_source(ev, name, len);
            if (t < 0)
                return 0;
            value_of(ev, j, t, out);
            return 1;
        }
        obj = ev->t_source;
        break;
    case SL_SEC_KEY:
        j = &ev->k;
        obj = ev->has_key ? ev->t_key : -1;
        break;
    }
    if (obj < 0)
        return 0;
    /* the SMT's metadata fields are not row columns */
    if (ev->flattened && sec != SL_SEC_KEY && len >= 2 && name[0] == '_' && name[1] == '_')
        return 0;
    t = sl_json_get(j, obj, name, len);
    if (t < 0)
        return 0;
    value_of(ev, j, t, out);
    return 1;
}
