/*
 * rowstate.c - a row's consolidated state, and its stored document.
 *
 * The document (one per row, opaque to the store) is binary, see "the
 * document" below. Stores written by schema version 2 hold JSON, still read:
 *   {"v":3,"w":"s1","ts":1700000000000,"p":"000000000000a1b2","d":false,
 *    "h":"9e3779b97f4a7c15","row":{...}|null,
 *    "s":[{"n":"s1","p":"...","h":3,"q":[[4,"<hash>"],...]},...],
 *    "i":[[2,false,{...}],...]}
 * Hashes are hex strings: JSON numbers cannot hold 64 bits exactly.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "json.h"
#include "rowstate.h"

void sl_rowstate_init(sl_rowstate *s)
{
    memset(s, 0, sizeof(*s));
}

static void site_free(sl_rs_site *st)
{
    free(st->own);
    free(st->name);
    free(st->pos);
    free(st->q);
}

/* Slots from nsites to capsites are zeroed, or keep the name and queue
 * buffer of a site a previous row had (sl_rowstate_clear). */
void sl_rowstate_free(sl_rowstate *s)
{
    size_t i;

    for (i = 0; i < s->capsites; i++)
        site_free(&s->sites[i]);
    for (i = 0; i < s->nimgs; i++)
        free(s->imgs[i].row);
    free(s->sites);
    free(s->imgs);
    free(s->writer);
    free(s->pos);
    free(s->row);
    memset(s, 0, sizeof(*s));
}

void sl_rowstate_clear(sl_rowstate *s)
{
    sl_rs_site *sites = s->sites;
    sl_rs_img *imgs = s->imgs;
    size_t capsites = s->capsites, capimgs = s->capimgs, i;

    for (i = 0; i < s->nsites; i++) {
        free(sites[i].own);
        free(sites[i].pos);
        sites[i].own = sites[i].pos = NULL;
    }
    for (i = 0; i < s->nimgs; i++)
        free(imgs[i].row);
    free(s->writer);
    free(s->pos);
    free(s->row);
    memset(s, 0, sizeof(*s));
    s->sites = sites;
    s->capsites = capsites;
    s->imgs = imgs;
    s->capimgs = capimgs;
}

static bool name_is(const sl_rs_site *st, const char *name, size_t len)
{
    /* site names often differ only at the end (store_01, store_02): look
     * there before calling memcmp */
    return st->name && st->nlen == len && (len == 0 || st->name[len - 1] == name[len - 1]) &&
           memcmp(st->name, name, len) == 0;
}

/* The site entry for the len bytes at name (no NUL among them). */
static sl_rs_site *site_named(sl_rowstate *s, const char *name, size_t len)
{
    size_t i;
    sl_rs_site *st, kept;
    sl_rs_sent *q;
    size_t capq;
    char *kept_name;
    bool found;

    for (i = 0; i < s->nsites; i++)
        if (name_is(&s->sites[i], name, len))
            return &s->sites[i];
    if (s->nsites == s->capsites) {
        size_t old = s->capsites;

        s->capsites = s->capsites ? s->capsites * 2 : 4;
        s->sites = sl_xrealloc(s->sites, s->capsites * sizeof(*s->sites));
        memset(s->sites + old, 0, (s->capsites - old) * sizeof(*s->sites));
    }
    /* a kept slot of this site's name goes next, with its buffers */
    for (i = s->nsites; i < s->capsites; i++)
        if (name_is(&s->sites[i], name, len))
            break;
    found = i < s->capsites;
    if (found && i != s->nsites) {
        kept = s->sites[s->nsites];
        s->sites[s->nsites] = s->sites[i];
        s->sites[i] = kept;
    }
    st = &s->sites[s->nsites++];
    q = st->q;
    capq = st->capq;
    kept_name = st->name;
    memset(st, 0, sizeof(*st));
    st->q = q;
    st->capq = capq;
    if (found) {
        st->name = kept_name;
    } else {
        free(kept_name);
        st->name = sl_xstrndup(name, len);
    }
    st->nlen = len;
    return st;
}

sl_rs_site *sl_rowstate_site(sl_rowstate *s, const char *name)
{
    return site_named(s, name, strlen(name));
}

int64_t sl_rowstate_will_hold(const sl_rs_site *st)
{
    return st->nq ? st->q[st->nq - 1].v : st->held;
}

void sl_rowstate_queue(sl_rs_site *st, int64_t v, uint64_t h)
{
    if (st->nq >= SL_RS_QUEUE_MAX) {
        /* a site that acknowledged nothing for this many versions of one
         * row: forget the oldest, but count it - its echo will come first
         * (docs/conflicts.md, limits) */
        memmove(st->q, st->q + 1, (st->nq - 1) * sizeof(*st->q));
        st->nq--;
        st->lost++;
    }
    if (st->nq == st->capq) {
        st->capq = st->capq ? st->capq * 2 : 2;
        st->q = sl_xrealloc(st->q, st->capq * sizeof(*st->q));
    }
    st->q[st->nq].v = v;
    st->q[st->nq].hash = h;
    st->nq++;
}

void sl_rowstate_ack(sl_rs_site *st, size_t k)
{
    size_t i;

    for (i = 0; i <= k && i < st->nq; i++) {
        if (st->q[i].hash == SL_EVENT_HASH_DELETED)
            continue; /* a repeated delete proves nothing: it has no content */
        if (st->nacked == SL_RS_ACKED) {
            memmove(st->acked, st->acked + 1, (SL_RS_ACKED - 1) * sizeof(*st->acked));
            st->nacked--;
        }
        st->acked[st->nacked++] = st->q[i];
    }
    st->held = st->q[k].v;
    memmove(st->q, st->q + k + 1, (st->nq - k - 1) * sizeof(*st->q));
    st->nq -= k + 1;
    st->lost = 0; /* past them, whatever became of their echoes */
}

int sl_rowstate_image(const sl_rowstate *s, int64_t v, const char **row)
{
    size_t i;

    if (v <= 0)
        return 0;
    if (v == s->v) {
        *row = s->deleted ? NULL : s->row;
        return 1;
    }
    for (i = 0; i < s->nimgs; i++)
        if (s->imgs[i].v == v) {
            *row = s->imgs[i].deleted ? NULL : s->imgs[i].row;
            return 1;
        }
    return 0;
}

static bool referenced(const sl_rowstate *s, int64_t v)
{
    size_t i, k;

    for (i = 0; i < s->nsites; i++) {
        const sl_rs_site *st = &s->sites[i];

        if (st->held == v)
            return true;
        /* the newest few in flight: the bases a site may soon write on */
        for (k = st->nq > SL_RS_QUEUED_IMAGES ? st->nq - SL_RS_QUEUED_IMAGES : 0; k < st->nq; k++)
            if (st->q[k].v == v)
                return true;
    }
    return false;
}

void sl_rowstate_gc(sl_rowstate *s)
{
    size_t i, n = 0;

    for (i = 0; i < s->nimgs; i++) {
        if (!s->no_bases && s->imgs[i].v != s->v && referenced(s, s->imgs[i].v))
            s->imgs[n++] = s->imgs[i];
        else
            free(s->imgs[i].row);
    }
    s->nimgs = n;
}

static void add_img(sl_rowstate *s, int64_t v, bool deleted, char *row)
{
    if (s->nimgs == s->capimgs) {
        s->capimgs = s->capimgs ? s->capimgs * 2 : 2;
        s->imgs = sl_xrealloc(s->imgs, s->capimgs * sizeof(*s->imgs));
    }
    s->imgs[s->nimgs].v = v;
    s->imgs[s->nimgs].deleted = deleted;
    s->imgs[s->nimgs].row = row;
    s->nimgs++;
}

void sl_rowstate_set_version(sl_rowstate *s, int64_t v, const char *writer, int64_t ts, sl_str pos,
                             bool deleted, sl_str row, uint64_t hash)
{
    if (s->v > 0) {
        add_img(s, s->v, s->deleted, s->row); /* ownership moves */
        s->row = NULL;
    }
    free(s->row);
    free(s->writer);
    free(s->pos);
    s->v = v;
    s->writer = sl_xstrdup(writer);
    s->ts = ts;
    s->pos = sl_xstrndup(pos.p ? pos.p : "", pos.len);
    s->deleted = deleted;
    s->row = deleted ? NULL : sl_xstrndup(row.p, row.len);
    s->hash = hash;
    sl_rowstate_gc(s);
}

static int bad(sl_error *err, const char *what)
{
    return sl_error_set(err, SL_ERR_STORE, "corrupt row state in the store: %s", what);
}

/* ---- the document ------------------------------------------------------------ */

/* Documents are binary (docs/store.md): they are written once per changed
 * row and delivery and read at every cache miss, and the JSON form cost
 * three times the bytes and most of the store's time. Layout, integers as
 * LEB128 varints (signed ones zigzag), strings as varint (length + 1) then
 * the bytes (0: none), hashes as 8 bytes little-endian:
 *   0x00 'S' 0x03 flags(bit 0: deleted)
 *   v ts:signed hash writer pos row
 *   nsites { name pos held:signed nq { v<<1|same hash? } lost own nacked { v<<1|same hash? } }
 *   nimgs { v deleted:byte row }
 * `same` marks a queued or acknowledged hash equal to the row's hash (the
 * usual case: every column went to the site), which is then not repeated.
 * Documents that start with '{' are the JSON of schema version 2. */
#define DOC_MAGIC0  '\0'
#define DOC_MAGIC1  'S'
#define DOC_VERSION 3
#define DOC_DELETED 1

/* The encoder writes through a cursor o into out, reserving room as it
 * goes (room): a document is a few dozen fields of a few bytes each, and
 * an append call per field cost more than the fields. */
#define UV_MAX 10 /* bytes of the longest varint */

/* Room for need more bytes at o: the cursor, wherever the buffer now is. */
static char *room(sl_buf *out, char *o, size_t need)
{
    out->len = (size_t)(o - out->data);
    sl_buf_reserve(out, need);
    return out->data + out->len;
}

static char *put_uv(char *o, uint64_t u)
{
    while (u >= 0x80) {
        *o++ = (char)(u | 0x80);
        u >>= 7;
    }
    *o++ = (char)u;
    return o;
}

static char *put_sv(char *o, int64_t v)
{
    return put_uv(o, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static char *put_u64(char *o, uint64_t h)
{
    int i;

    for (i = 0; i < 8; i++, h >>= 8)
        *o++ = (char)(h & 0xff);
    return o;
}

static char *put_opt(sl_buf *out, char *o, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    o = room(out, o, UV_MAX + n);
    o = put_uv(o, s ? n + 1 : 0);
    if (n)
        memcpy(o, s, n);
    return o + n;
}

/* n queued or acknowledged versions, after their count */
static char *put_sent(sl_buf *out, char *o, const sl_rs_sent *e, size_t n, uint64_t row_hash)
{
    size_t k;

    o = room(out, o, UV_MAX + n * (UV_MAX + 8));
    o = put_uv(o, n);
    for (k = 0; k < n; k++) {
        bool same = e[k].hash == row_hash;

        o = put_uv(o, ((uint64_t)e[k].v << 1) | same);
        if (!same)
            o = put_u64(o, e[k].hash);
    }
    return o;
}

void sl_rowstate_encode(const sl_rowstate *s, sl_buf *out)
{
    size_t i;
    char *o;

    sl_buf_reserve(out, 4 + 2 * UV_MAX + 8);
    o = out->data + out->len;
    *o++ = DOC_MAGIC0;
    *o++ = DOC_MAGIC1;
    *o++ = DOC_VERSION;
    *o++ = s->deleted ? DOC_DELETED : 0;
    o = put_uv(o, (uint64_t)s->v);
    o = put_sv(o, s->ts);
    o = put_u64(o, s->hash);
    o = put_opt(out, o, s->writer);
    o = put_opt(out, o, s->pos);
    o = put_opt(out, o, s->deleted ? NULL : s->row);
    o = room(out, o, UV_MAX);
    o = put_uv(o, s->nsites);
    for (i = 0; i < s->nsites; i++) {
        const sl_rs_site *st = &s->sites[i];

        o = put_opt(out, o, st->name);
        o = put_opt(out, o, st->pos);
        o = room(out, o, UV_MAX);
        o = put_sv(o, st->held);
        o = put_sent(out, o, st->q, st->nq, s->hash);
        o = room(out, o, UV_MAX);
        o = put_uv(o, (uint64_t)st->lost);
        o = put_opt(out, o, st->held == SL_HELD_OWN ? st->own : NULL);
        o = put_sent(out, o, st->acked, st->nacked, s->hash);
    }
    o = room(out, o, UV_MAX);
    o = put_uv(o, s->nimgs);
    for (i = 0; i < s->nimgs; i++) {
        o = room(out, o, UV_MAX + 1);
        o = put_uv(o, (uint64_t)s->imgs[i].v);
        *o++ = s->imgs[i].deleted ? 1 : 0;
        o = put_opt(out, o, s->imgs[i].row);
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0'; /* room's reserve kept a byte for it */
}

/* ---- the state as JSON, for people (`sluice rows`) --------------------------- */

static void put_hash(sl_buf *b, uint64_t h)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[18];
    int i;

    tmp[0] = tmp[17] = '"';
    for (i = 16; i >= 1; i--, h >>= 4)
        tmp[i] = hex[h & 15];
    sl_buf_append(b, tmp, sizeof(tmp));
}

static void put_json_str(sl_buf *b, const char *s)
{
    if (s)
        sl_buf_json_str(b, s, strlen(s));
    else
        sl_buf_puts(b, "null");
}

static void put_json_sent(sl_buf *b, const sl_rs_sent *e, size_t n)
{
    size_t k;

    sl_buf_putc(b, '[');
    for (k = 0; k < n; k++) {
        sl_buf_printf(b, "%s{\"version\":%lld,\"hash\":", k ? "," : "", (long long)e[k].v);
        if (e[k].hash == SL_EVENT_HASH_DELETED)
            sl_buf_puts(b, "\"deleted\"");
        else
            put_hash(b, e[k].hash);
        sl_buf_putc(b, '}');
    }
    sl_buf_putc(b, ']');
}

void sl_rowstate_json(const sl_rowstate *s, sl_buf *out)
{
    size_t i;

    sl_buf_printf(out, "{\"version\":%lld,\"writer\":", (long long)s->v);
    put_json_str(out, s->writer);
    sl_buf_printf(out, ",\"ts_ms\":%lld,\"position\":", (long long)s->ts);
    put_json_str(out, s->pos);
    sl_buf_puts(out, s->deleted ? ",\"deleted\":true,\"hash\":" : ",\"deleted\":false,\"hash\":");
    put_hash(out, s->hash);
    sl_buf_puts(out, ",\"row\":");
    sl_buf_puts(out, s->row && !s->deleted ? s->row : "null");
    sl_buf_puts(out, ",\"sites\":[");
    for (i = 0; i < s->nsites; i++) {
        const sl_rs_site *st = &s->sites[i];

        sl_buf_puts(out, i ? ",{\"site\":" : "{\"site\":");
        put_json_str(out, st->name);
        sl_buf_puts(out, ",\"position\":");
        put_json_str(out, st->pos);
        sl_buf_puts(out, ",\"holds\":");
        if (st->held == SL_HELD_OWN)
            sl_buf_puts(out, "\"own\",\"own\":");
        if (st->held == SL_HELD_OWN)
            sl_buf_puts(out, st->own ? st->own : "null");
        else if (st->held == SL_HELD_NONE)
            sl_buf_puts(out, "null");
        else
            sl_buf_printf(out, "%lld", (long long)st->held);
        sl_buf_puts(out, ",\"in_flight\":");
        put_json_sent(out, st->q, st->nq);
        sl_buf_printf(out, ",\"forgotten\":%lld,\"acknowledged\":", (long long)st->lost);
        put_json_sent(out, st->acked, st->nacked);
        sl_buf_putc(out, '}');
    }
    sl_buf_puts(out, "],\"bases\":[");
    for (i = 0; i < s->nimgs; i++) {
        sl_buf_printf(out, "%s{\"version\":%lld,\"row\":", i ? "," : "", (long long)s->imgs[i].v);
        sl_buf_puts(out, s->imgs[i].row && !s->imgs[i].deleted ? s->imgs[i].row : "null");
        sl_buf_putc(out, '}');
    }
    sl_buf_puts(out, "]}");
}

/* A cursor over a binary document; any read past its end sets `bad`. */
typedef struct dcur {
    const unsigned char *p, *end;
    bool bad;
} dcur;

static uint64_t get_uv(dcur *c)
{
    uint64_t u = 0;
    int shift = 0;

    while (c->p < c->end && shift < 64) {
        unsigned char b = *c->p++;

        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return u;
        shift += 7;
    }
    c->bad = true;
    return 0;
}

static int64_t get_sv(dcur *c)
{
    uint64_t u = get_uv(c);

    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static uint64_t get_u64(dcur *c)
{
    uint64_t h = 0;
    int i;

    if (c->end - c->p < 8) {
        c->bad = true;
        return 0;
    }
    for (i = 7; i >= 0; i--)
        h = (h << 8) | c->p[i];
    c->p += 8;
    return h;
}

/* An optional string in place: false for none (or past the end). */
static bool get_view(dcur *c, const char **p, size_t *n)
{
    uint64_t u = get_uv(c);

    if (u == 0 || c->bad)
        return false;
    if ((uint64_t)(c->end - c->p) < u - 1) {
        c->bad = true;
        return false;
    }
    *p = (const char *)c->p;
    *n = (size_t)(u - 1);
    c->p += u - 1;
    return true;
}

/* A malloc'ed copy of an optional string (NULL for none). */
static char *get_opt(dcur *c)
{
    uint64_t n = get_uv(c);
    char *s;

    if (n == 0 || c->bad)
        return NULL;
    if ((uint64_t)(c->end - c->p) < n - 1) {
        c->bad = true;
        return NULL;
    }
    s = sl_xstrndup((const char *)c->p, (size_t)(n - 1));
    c->p += n - 1;
    return s;
}

static sl_rs_sent get_sent(dcur *c, uint64_t row_hash)
{
    uint64_t u = get_uv(c);
    sl_rs_sent e;

    e.v = (int64_t)(u >> 1);
    e.hash = (u & 1) ? row_hash : get_u64(c);
    return e;
}

/* A count that cannot be right for the bytes left (every entry takes at
 * least one byte) is corruption, not a reason to allocate. */
static size_t get_count(dcur *c)
{
    uint64_t n = get_uv(c);

    if (n > (uint64_t)(c->end - c->p)) {
        c->bad = true;
        return 0;
    }
    return (size_t)n;
}

static int decode(sl_rowstate *s, const char *doc, size_t len, sl_error *err)
{
    dcur c;
    size_t i, k, n, nq, na;

    if (len < 4 || doc[2] != DOC_VERSION)
        return bad(err, "unknown document version");
    c.p = (const unsigned char *)doc + 4;
    c.end = (const unsigned char *)doc + len;
    c.bad = false;
    s->deleted = (doc[3] & DOC_DELETED) != 0;
    s->v = (int64_t)get_uv(&c);
    s->ts = get_sv(&c);
    s->hash = get_u64(&c);
    s->writer = get_opt(&c);
    s->pos = get_opt(&c);
    s->row = get_opt(&c);
    n = get_count(&c);
    for (i = 0; i < n && !c.bad; i++) {
        const char *name;
        size_t nlen;
        sl_rs_site *st;

        if (!get_view(&c, &name, &nlen) || memchr(name, '\0', nlen) != NULL)
            return bad(err, "site name");
        for (k = 0; k < s->nsites; k++)
            if (name_is(&s->sites[k], name, nlen))
                return bad(err, "a site twice");
        st = site_named(s, name, nlen);
        st->pos = get_opt(&c);
        st->held = get_sv(&c);
        nq = get_count(&c);
        for (k = 0; k < nq && !c.bad; k++) {
            sl_rs_sent e = get_sent(&c, s->hash);

            sl_rowstate_queue(st, e.v, e.hash);
        }
        st->lost = (int64_t)get_uv(&c);
        st->own = get_opt(&c);
        na = get_count(&c);
        if (na > SL_RS_ACKED)
            return bad(err, "acknowledged entries");
        for (k = 0; k < na && !c.bad; k++)
            st->acked[st->nacked++] = get_sent(&c, s->hash);
    }
    n = get_count(&c);
    for (i = 0; i < n && !c.bad; i++) {
        int64_t v = (int64_t)get_uv(&c);
        bool deleted = c.p < c.end && *c.p == 1;

        c.p += c.p < c.end;
        add_img(s, v, deleted, get_opt(&c));
    }
    if (c.bad || c.p != c.end)
        return bad(err, c.bad ? "truncated" : "trailing bytes");
    return 0;
}

static bool get_i64(const sl_json *j, int t, int64_t *out)
{
    char tmp[32];
    sl_str r;
    char *end;

    if (t < 0 || j->tok[t].type != SL_J_NUMBER)
        return false;
    r = sl_json_raw(j, t);
    if (r.len == 0 || r.len >= sizeof(tmp))
        return false;
    memcpy(tmp, r.p, r.len);
    tmp[r.len] = '\0';
    *out = strtoll(tmp, &end, 10);
    return *end == '\0';
}

static bool get_hash(const sl_json *j, int t, uint64_t *out)
{
    char tmp[24];
    sl_str r;
    char *end;

    if (t < 0 || j->tok[t].type != SL_J_STRING)
        return false;
    r = sl_json_raw(j, t);
    if (r.len < 3 || r.len - 2 >= sizeof(tmp))
        return false;
    memcpy(tmp, r.p + 1, r.len - 2);
    tmp[r.len - 2] = '\0';
    *out = strtoull(tmp, &end, 16);
    return *end == '\0';
}

/* A string or null member: a malloc'ed copy (NULL for null). */
static bool get_str(const sl_json *j, int t, char **out)
{
    sl_buf b = SL_BUF_INIT;

    *out = NULL;
    if (t < 0)
        return false;
    if (j->tok[t].type == SL_J_NULL)
        return true;
    if (j->tok[t].type != SL_J_STRING)
        return false;
    sl_json_unescape(j, t, &b);
    *out = b.data ? b.data : sl_xstrdup("");
    return true;
}

static char *get_row(const sl_json *j, int t)
{
    sl_str r;

    if (t < 0 || j->tok[t].type != SL_J_OBJECT)
        return NULL;
    r = sl_json_raw(j, t);
    return sl_xstrndup(r.p, r.len);
}

int sl_rowstate_read(sl_rowstate *s, const char *doc, size_t len, sl_error *err)
{
    sl_json j;
    int rc = -1, t, e, q;

    sl_rowstate_clear(s);
    if (len >= 2 && doc[0] == DOC_MAGIC0 && doc[1] == DOC_MAGIC1) {
        if (decode(s, doc, len, err) != 0) {
            sl_rowstate_clear(s);
            return -1;
        }
        return 0;
    }
    /* schema version 2: JSON */
    sl_json_init(&j);
    if (sl_json_parse(&j, doc, len, err) != 0 || j.tok[0].type != SL_J_OBJECT) {
        bad(err, "not a JSON object");
        goto out;
    }
    t = sl_json_get(&j, 0, "d", 1);
    s->deleted = t >= 0 && j.tok[t].type == SL_J_TRUE;
    if (!get_i64(&j, sl_json_get(&j, 0, "v", 1), &s->v) ||
        !get_i64(&j, sl_json_get(&j, 0, "ts", 2), &s->ts) ||
        !get_str(&j, sl_json_get(&j, 0, "w", 1), &s->writer) ||
        !get_str(&j, sl_json_get(&j, 0, "p", 1), &s->pos) ||
        !get_hash(&j, sl_json_get(&j, 0, "h", 1), &s->hash)) {
        bad(err, "version fields");
        goto out;
    }
    s->row = get_row(&j, sl_json_get(&j, 0, "row", 3));
    t = sl_json_get(&j, 0, "s", 1);
    if (t < 0 || j.tok[t].type != SL_J_ARRAY) {
        bad(err, "no sites");
        goto out;
    }
    for (e = sl_json_elem_first(&j, t); e >= 0; e = sl_json_elem_next(&j, t, e)) {
        char *name = NULL;
        sl_rs_site *st;
        int qa;

        size_t k;

        if (!get_str(&j, sl_json_get(&j, e, "n", 1), &name) || name == NULL) {
            free(name);
            bad(err, "site name");
            goto out;
        }
        for (k = 0; k < s->nsites; k++)
            if (strcmp(s->sites[k].name, name) == 0)
                break;
        if (k < s->nsites) {
            free(name);
            bad(err, "a site twice");
            goto out;
        }
        st = sl_rowstate_site(s, name);
        free(name);
        if (!get_str(&j, sl_json_get(&j, e, "p", 1), &st->pos) ||
            !get_i64(&j, sl_json_get(&j, e, "h", 1), &st->held)) {
            bad(err, "site fields");
            goto out;
        }
        qa = sl_json_get(&j, e, "q", 1);
        if (qa < 0 || j.tok[qa].type != SL_J_ARRAY) {
            bad(err, "site queue");
            goto out;
        }
        for (q = sl_json_elem_first(&j, qa); q >= 0; q = sl_json_elem_next(&j, qa, q)) {
            int a = sl_json_elem_first(&j, q);
            int64_t v;
            uint64_t h;

            if (a < 0 || !get_i64(&j, a, &v) || !get_hash(&j, sl_json_elem_next(&j, q, a), &h)) {
                bad(err, "queue entry");
                goto out;
            }
            sl_rowstate_queue(st, v, h);
        }
        st->own = get_row(&j, sl_json_get(&j, e, "o", 1));
        qa = sl_json_get(&j, e, "a", 1);
        if (qa >= 0 && j.tok[qa].type == SL_J_ARRAY) {
            for (q = sl_json_elem_first(&j, qa); q >= 0; q = sl_json_elem_next(&j, qa, q)) {
                int a = sl_json_elem_first(&j, q);
                int64_t v;
                uint64_t h;

                if (a < 0 || !get_i64(&j, a, &v) ||
                    !get_hash(&j, sl_json_elem_next(&j, q, a), &h) || st->nacked == SL_RS_ACKED) {
                    bad(err, "acknowledged entry");
                    goto out;
                }
                st->acked[st->nacked].v = v;
                st->acked[st->nacked++].hash = h;
            }
        }
    }
    t = sl_json_get(&j, 0, "i", 1);
    if (t >= 0 && j.tok[t].type == SL_J_ARRAY) {
        for (e = sl_json_elem_first(&j, t); e >= 0; e = sl_json_elem_next(&j, t, e)) {
            int a = sl_json_elem_first(&j, e), b, c;
            int64_t v;

            b = a >= 0 ? sl_json_elem_next(&j, e, a) : -1;
            c = b >= 0 ? sl_json_elem_next(&j, e, b) : -1;
            if (a < 0 || c < 0 || !get_i64(&j, a, &v)) {
                bad(err, "image");
                goto out;
            }
            add_img(s, v, j.tok[b].type == SL_J_TRUE, get_row(&j, c));
        }
    }
    rc = 0;
out:
    sl_json_free(&j);
    if (rc != 0)
        sl_rowstate_free(s);
    return rc;
}
