/*
 * sqlite_rows.c - row documents in appended segments, found through an
 * index in memory (sqlite_rows.h; docs/store.md).
 *
 * A segment is a `segs` row whose entries, back to back,
 *     varint table length, table, varint key length, key, varint doc length, doc
 * are its `data` as they are (`raw` 0), or LZ4-compressed (`raw` is then
 * their length): documents repeat site names, positions and column names,
 * and compressed they are about a quarter of the bytes SQLite writes to its
 * log and copies back to the file (docs/store.md).
 * A row's newest entry is the last one written for it. The index maps a
 * 128-bit hash of (table, key) to the entry's location, segment id <<
 * OFF_BITS | offset among the entries (before compression: a segment with
 * more than one entry is under 16 KiB, so the offset fits in OFF_BITS
 * bits; a larger entry has a segment of its own, at offset 0). A lookup
 * checks the entry's table and key, so a hash collision is reported, never
 * served as another row's state.
 *
 * Locks: `mu` serialises everything that changes the index (catching up
 * with the file, putting a committed batch in); `rw` lets lookups run
 * while no change is being made.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "sqlite_rows.h"

/* A segment is closed before an entry would take it past the page size
 * less SEG_SLACK bytes: with the row's own header it stays inside one
 * B-tree page (3,800 bytes of a 4 KiB page, 16,088 of the 16 KiB pages of
 * a new file), so reading one never follows an overflow chain. An entry's
 * offset in its segment has OFF_BITS bits in a location. */
#define SEG_SLACK 296
#define SEG_MIN   3800
#define OFF_BITS  14
#define MAX_SEG   (INT64_C(1) << (63 - OFF_BITS))
/* LZ4's acceleration: 4 compresses these segments as well as its default
 * (1) and about 20% faster. */
#define LZ4_ACCEL 4
/* Compaction starts when dead entries outnumber live ones and are at least
 * this many; each batch then reclaims about twice its own new entries. */
#define COMPACT_MIN 4096

typedef struct ix_ent {
    uint64_t h1;
    uint64_t h2t; /* high 48 bits: a second hash; low 16: the table's number */
    uint64_t loc; /* 0: empty slot */
} ix_ent;

#define TID_BITS  16
#define TID_OTHER 0xffff /* tables beyond the first 65,535 share this number */

typedef struct seginfo {
    int64_t id;
    uint32_t live, total;
} seginfo;

typedef struct sq_pseg {
    int64_t id;
    size_t off, len; /* in sq_rows_sess.pend */
} sq_pseg;

/* The index is 256 tables picked by the hash's top byte, each growing on
 * its own: growing never holds two copies of the whole index at once. */
#define NPARTS 256

typedef struct ix_part {
    ix_ent *ix;
    size_t cap, n;
} ix_part;

struct sq_rows {
    pthread_mutex_t mu;
    pthread_rwlock_t rw;
    ix_part parts[NPARTS];
    size_t n;      /* rows indexed */
    seginfo *segs; /* ascending id */
    size_t nsegs, capsegs;
    size_t entries; /* entries in all segments, live or not */
    int64_t hw;     /* the newest segment in the index */
    size_t ccur;    /* where compaction looks next */
    char **tables;  /* table numbers: the names, so that listing one table
                       reads only its own segments */
    size_t *tlen;
    size_t ntables, last_tid;
    uint32_t *tmap;
    size_t tcap;
};

/* ---- hashing ------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *p, size_t n, uint64_t h)
{
    uint64_t w = 0;
    size_t len = n;

    while (n >= 8) {
        memcpy(&w, p, 8);
        h = sl_mix64(h ^ w);
        p += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, p, n);
    return sl_mix64(h ^ w ^ ((uint64_t)len << 56) ^ 0x5a);
}

/* tests/store/test_collision.c builds this file with a mask of 0, so that
 * every row has the same hash and the collision check can be seen */
#ifndef SQ_ROWS_HASH_MASK
#define SQ_ROWS_HASH_MASK UINT64_MAX
#endif
/* tests/store/test_store_hooks.c builds this file with a function called
 * between a lookup and the read of the entry it found, where another
 * process's compaction can move the row */
#ifdef SQ_ROWS_BEFORE_READ
void SQ_ROWS_BEFORE_READ(sl_str table, sl_str key);
#endif

static void hash_row(sl_str t, sl_str k, uint64_t *h1, uint64_t *h2)
{
    *h1 = hash_bytes(k.p, k.len, hash_bytes(t.p, t.len, 0x243f6a8885a308d3ULL)) & SQ_ROWS_HASH_MASK;
    *h2 = hash_bytes(k.p, k.len, hash_bytes(t.p, t.len, 0x13198a2e03707344ULL)) & SQ_ROWS_HASH_MASK;
}

/* ---- entries ------------------------------------------------------------------ */

static void put_varint(sl_buf *b, size_t v)
{
    while (v >= 0x80) {
        sl_buf_putc(b, (char)((v & 0x7f) | 0x80));
        v >>= 7;
    }
    sl_buf_putc(b, (char)v);
}

static int get_varint(const unsigned char **p, const unsigned char *end, size_t *v)
{
    size_t x = 0;
    int shift = 0;

    while (*p < end && shift < 35) {
        unsigned c = *(*p)++;

        x |= (size_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            *v = x;
            return 0;
        }
        shift += 7;
    }
    return -1;
}

static size_t varint_len(size_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Parse the entry at *p; advances *p past it. */
static int get_entry(const unsigned char **p, const unsigned char *end, sl_str *t, sl_str *k,
                     sl_str *d)
{
    sl_str *f[3] = {t, k, d};
    int i;

    for (i = 0; i < 3; i++) {
        size_t n;

        if (get_varint(p, end, &n) != 0 || (size_t)(end - *p) < n)
            return -1;
        f[i]->p = (const char *)*p;
        f[i]->len = n;
        *p += n;
    }
    return 0;
}

static size_t entry_len(sl_str t, sl_str k, sl_str d)
{
    return varint_len(t.len) + t.len + varint_len(k.len) + k.len + varint_len(d.len) + d.len;
}

static void put_entry(sl_buf *b, sl_str t, sl_str k, sl_str d)
{
    put_varint(b, t.len);
    sl_buf_append(b, t.p, t.len);
    put_varint(b, k.len);
    sl_buf_append(b, k.p, k.len);
    put_varint(b, d.len);
    sl_buf_append(b, d.p, d.len);
}

static int sq_err(sqlite3 *db, sl_error *err, const char *what)
{
    return sl_error_set(err, SL_ERR_STORE, "sqlite store: %s: %s", what, sqlite3_errmsg(db));
}

/* ---- the index ---------------------------------------------------------------- */

sq_rows *sq_rows_new(void)
{
    sq_rows *r = sl_xcalloc(1, sizeof(*r));

    pthread_mutex_init(&r->mu, NULL);
    pthread_rwlock_init(&r->rw, NULL);
    return r;
}

void sq_rows_free(sq_rows *r)
{
    size_t i;

    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->mu);
    pthread_rwlock_destroy(&r->rw);
    while (r->ntables > 0)
        free(r->tables[--r->ntables]);
    free(r->tables);
    free(r->tlen);
    free(r->tmap);
    for (i = 0; i < NPARTS; i++)
        free(r->parts[i].ix);
    free(r->segs);
    free(r);
}

static ix_ent *part_slot(const ix_part *pt, uint64_t h1, uint64_t h2)
{
    size_t i;

    for (i = h1 & (pt->cap - 1);; i = (i + 1) & (pt->cap - 1)) {
        ix_ent *e = &pt->ix[i];

        if (e->loc == 0 || (e->h1 == h1 && e->h2t >> TID_BITS == h2 >> TID_BITS))
            return e;
    }
}

/* The row's slot: its entry, or the empty one it would take; NULL when
 * its part is still empty. */
static ix_ent *ix_slot(const sq_rows *r, uint64_t h1, uint64_t h2)
{
    const ix_part *pt = &r->parts[h1 >> 56];

    return pt->cap ? part_slot(pt, h1, h2) : NULL;
}

/* Room for one more row in h1's part (rw held for writing). */
static void ix_reserve(sq_rows *r, uint64_t h1)
{
    ix_part *pt = &r->parts[h1 >> 56];
    ix_ent *old = pt->ix;
    size_t oldcap = pt->cap, i;

    if ((pt->n + 1) * 4 <= pt->cap * 3)
        return;
    pt->cap = oldcap ? oldcap * 2 : 64;
    pt->ix = sl_xcalloc_written(pt->cap, sizeof(*pt->ix));
    for (i = 0; i < oldcap; i++)
        if (old[i].loc)
            *part_slot(pt, old[i].h1, old[i].h2t) = old[i];
    free(old);
}

static seginfo *seg_find(sq_rows *r, int64_t id)
{
    size_t lo = 0, hi = r->nsegs;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (r->segs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->nsegs && r->segs[lo].id == id ? &r->segs[lo] : NULL;
}

/* The number of table t; with `add`, a new one when it has none (else
 * TID_OTHER). Names are found through an open-addressing map of
 * number + 1. */
static size_t table_id(sq_rows *r, sl_str t, bool add)
{
    uint64_t h = hash_bytes(t.p, t.len, 0x452821e638d01377ULL);
    size_t i, tid;

    if (r->last_tid < r->ntables && r->tlen[r->last_tid] == t.len &&
        memcmp(r->tables[r->last_tid], t.p, t.len) == 0)
        return r->last_tid;
    for (i = r->tcap ? h & (r->tcap - 1) : 0; r->tcap && r->tmap[i]; i = (i + 1) & (r->tcap - 1)) {
        tid = r->tmap[i] - 1;
        if (r->tlen[tid] == t.len && memcmp(r->tables[tid], t.p, t.len) == 0)
            return r->last_tid = tid;
    }
    if (!add || r->ntables == TID_OTHER)
        return TID_OTHER;
    if ((r->ntables + 1) * 2 > r->tcap) {
        size_t k;

        free(r->tmap);
        r->tcap = r->tcap ? r->tcap * 2 : 64;
        r->tmap = sl_xcalloc(r->tcap, sizeof(*r->tmap));
        for (k = 0; k < r->ntables; k++) {
            uint64_t hk = hash_bytes(r->tables[k], r->tlen[k], 0x452821e638d01377ULL);

            for (i = hk & (r->tcap - 1); r->tmap[i]; i = (i + 1) & (r->tcap - 1))
                ;
            r->tmap[i] = (uint32_t)k + 1;
        }
    }
    for (i = h & (r->tcap - 1); r->tmap[i]; i = (i + 1) & (r->tcap - 1))
        ;
    tid = r->ntables++;
    r->tmap[i] = (uint32_t)tid + 1;
    r->tables = sl_xrealloc(r->tables, r->ntables * sizeof(*r->tables));
    r->tlen = sl_xrealloc(r->tlen, r->ntables * sizeof(*r->tlen));
    r->tables[tid] = sl_xmalloc(t.len + 1);
    memcpy(r->tables[tid], t.p, t.len);
    r->tables[tid][t.len] = '\0';
    r->tlen[tid] = t.len;
    return r->last_tid = tid;
}

/* Put segment `id` in the index (mu and rw held for writing): each entry
 * becomes its row's newest, the one it replaces dead. */
static int apply_seg(sq_rows *r, int64_t id, const unsigned char *p, size_t len, sl_error *err)
{
    const unsigned char *start = p, *end = p + len;
    size_t si;

    if (id <= r->hw || id >= MAX_SEG)
        return sl_error_set(err, SL_ERR_STORE, "sqlite store: segment %lld out of order",
                            (long long)id);
    if (r->nsegs == r->capsegs) {
        r->capsegs = r->capsegs ? r->capsegs * 2 : 1024;
        r->segs = sl_xrealloc(r->segs, r->capsegs * sizeof(*r->segs));
    }
    si = r->nsegs++;
    r->segs[si].id = id;
    r->segs[si].live = r->segs[si].total = 0;
    r->hw = id;
    while (p < end) {
        /* hash a group of entries and fetch their slots before changing
         * any: each slot is a cache miss otherwise */
        struct {
            uint64_t loc, h1, h2;
            sl_str t;
        } g[32];
        size_t n = 0, i;

        for (; p < end && n < 32; n++) {
            sl_str k, d;
            const ix_part *pt;

            g[n].loc = (uint64_t)id << OFF_BITS | (uint64_t)(p - start);
            if (get_entry(&p, end, &g[n].t, &k, &d) != 0 ||
                (p < end && p - start >= (1 << OFF_BITS)))
                return sl_error_set(err, SL_ERR_STORE,
                                    "sqlite store: segment %lld is corrupt at byte %zu",
                                    (long long)id, (size_t)(p - start));
            hash_row(g[n].t, k, &g[n].h1, &g[n].h2);
            pt = &r->parts[g[n].h1 >> 56];
            if (pt->cap)
                __builtin_prefetch(&pt->ix[g[n].h1 & (pt->cap - 1)], 1);
        }
        for (i = 0; i < n; i++) {
            ix_ent *e;

            ix_reserve(r, g[i].h1);
            e = ix_slot(r, g[i].h1, g[i].h2);
            if (e->loc) {
                seginfo *old = seg_find(r, (int64_t)(e->loc >> OFF_BITS));

                if (old && old->live)
                    old->live--;
            } else {
                r->n++;
                r->parts[g[i].h1 >> 56].n++;
            }
            e->h1 = g[i].h1;
            e->h2t = (g[i].h2 >> TID_BITS << TID_BITS) | table_id(r, g[i].t, true);
            e->loc = g[i].loc;
            r->segs[si].live++;
            r->segs[si].total++;
            r->entries++;
        }
    }
    return 0;
}

/* The entries of a compressed segment (raw > 0 bytes) into *out. */
static int seg_expand(int64_t id, const void *data, size_t len, int64_t raw, sl_buf *out,
                      sl_error *err)
{
    int n;

    /* LZ4 expands a byte to at most 255: a larger raw is a damaged row */
    if (raw < 0 || raw > INT32_MAX || len == 0 || len > INT32_MAX ||
        (uint64_t)raw > (uint64_t)len * 255 + 16)
        return sl_error_set(err, SL_ERR_STORE,
                            "sqlite store: segment %lld is corrupt (%zu bytes cannot expand to "
                            "%lld)",
                            (long long)id, len, (long long)raw);
    sl_buf_reset(out);
    sl_buf_reserve(out, (size_t)raw);
    n = LZ4_decompress_safe(data, out->data, (int)len, (int)raw);
    if (n != raw)
        return sl_error_set(err, SL_ERR_STORE,
                            "sqlite store: segment %lld is corrupt (LZ4 could not expand it to "
                            "%lld bytes)",
                            (long long)id, (long long)raw);
    out->len = (size_t)raw;
    return 0;
}

/* Read the segments newer than the index knows: everyone's, this
 * process's own included when another session got there first. */
static int catch_up(sq_rows *r, sq_rows_sess *s, sl_error *err)
{
    int rc, ret = 0;

    pthread_mutex_lock(&r->mu);
    sqlite3_bind_int64(s->after, 1, r->hw);
    while ((rc = sqlite3_step(s->after)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s->after, 0);
        const unsigned char *p = sqlite3_column_blob(s->after, 1);
        size_t len = (size_t)sqlite3_column_bytes(s->after, 1);
        int64_t raw = sqlite3_column_int64(s->after, 2);

        if (raw != 0) {
            ret = seg_expand(id, p, len, raw, &s->z, err);
            if (ret != 0)
                break;
            p = (const unsigned char *)s->z.data;
            len = s->z.len;
        }
        pthread_rwlock_wrlock(&r->rw);
        ret = apply_seg(r, id, p, len, err);
        pthread_rwlock_unlock(&r->rw);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sq_err(s->db, err, "read segments");
    sqlite3_reset(s->after);
    pthread_mutex_unlock(&r->mu);
    return ret;
}

static uint64_t lookup(sq_rows *r, uint64_t h1, uint64_t h2)
{
    ix_ent *e;
    uint64_t loc;

    pthread_rwlock_rdlock(&r->rw);
    e = ix_slot(r, h1, h2);
    loc = e ? e->loc : 0;
    pthread_rwlock_unlock(&r->rw);
    return loc;
}

/* ---- sessions ----------------------------------------------------------------- */

int sq_page_size(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int n = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n >= 512 ? n : 4096;
}

/* How full a segment of this file gets: the file's page size (4 KiB in
 * files made before 16 KiB became the default) less SEG_SLACK. */
static size_t seg_bytes(sqlite3 *db)
{
    int page = sq_page_size(db);
    size_t n = page - SEG_SLACK > SEG_MIN ? (size_t)(page - SEG_SLACK) : SEG_MIN;

    return n < (size_t)1 << OFF_BITS ? n : ((size_t)1 << OFF_BITS) - SEG_SLACK;
}

int sq_rows_sess_init(sq_rows_sess *s, sqlite3 *db, sl_error *err)
{
    static const struct {
        size_t off;
        const char *sql;
    } stmts[] = {
        {offsetof(sq_rows_sess, after), "SELECT id, data, raw FROM segs WHERE id > ?1 ORDER BY id"},
        {offsetof(sq_rows_sess, one), "SELECT data, raw FROM segs WHERE id = ?1"},
        {offsetof(sq_rows_sess, put), "INSERT INTO segs(id, data, raw) VALUES(?1, ?2, ?3)"},
        {offsetof(sq_rows_sess, del), "DELETE FROM segs WHERE id = ?1"},
    };
    size_t i;

    memset(s, 0, sizeof(*s));
    s->db = db;
    s->seg_bytes = seg_bytes(db);
    for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_stmt **slot = (sqlite3_stmt **)((char *)s + stmts[i].off);

        if (sqlite3_prepare_v3(db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
            SQLITE_OK) {
            sq_err(db, err, "prepare");
            sq_rows_sess_free(s);
            return -1;
        }
    }
    return 0;
}

void sq_rows_sess_free(sq_rows_sess *s)
{
    sqlite3_finalize(s->after);
    sqlite3_finalize(s->one);
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->del);
    sl_buf_free(&s->seg);
    sl_buf_free(&s->pend);
    sl_buf_free(&s->tmp);
    sl_buf_free(&s->z);
    free(s->pseg);
    free(s->gone);
    memset(s, 0, sizeof(*s));
}

/* Segment id into *out (replacing it): 1, 0 when it does not exist, -1. */
static int load_seg(sq_rows_sess *s, int64_t id, sl_buf *out, sl_error *err)
{
    int rc, ret = 0;

    sqlite3_bind_int64(s->one, 1, id);
    rc = sqlite3_step(s->one);
    if (rc == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(s->one, 0);
        size_t len = (size_t)sqlite3_column_bytes(s->one, 0);
        int64_t raw = sqlite3_column_int64(s->one, 1);

        ret = 1;
        if (raw != 0) {
            if (seg_expand(id, data, len, raw, out, err) != 0)
                ret = -1;
        } else {
            sl_buf_reset(out);
            sl_buf_append(out, data, len);
        }
    }
    sqlite3_reset(s->one);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_err(s->db, err, "read segment");
    return ret;
}

/* The entry at byte off of a loaded segment. */
static int seg_entry(const sl_buf *seg, int64_t id, size_t off, sl_str *t, sl_str *k, sl_str *d,
                     sl_error *err)
{
    const unsigned char *p = (const unsigned char *)seg->data + off;
    const unsigned char *end = (const unsigned char *)seg->data + seg->len;

    if (off >= seg->len || get_entry(&p, end, t, k, d) != 0)
        return sl_error_set(err, SL_ERR_STORE, "sqlite store: segment %lld is corrupt at byte %zu",
                            (long long)id, off);
    return 0;
}

/* The entry at loc: 1 with *t, *k, *d pointing into s->tmp, 0 when its
 * segment is gone (another process moved the row meanwhile), -1 on error. */
static int read_entry(sq_rows_sess *s, uint64_t loc, sl_str *t, sl_str *k, sl_str *d, sl_error *err)
{
    int64_t id = (int64_t)(loc >> OFF_BITS);
    int rc = load_seg(s, id, &s->tmp, err);

    if (rc <= 0)
        return rc;
    return seg_entry(&s->tmp, id, (size_t)(loc & ((1 << OFF_BITS) - 1)), t, k, d, err) == 0 ? 1
                                                                                            : -1;
}

int sq_rows_get(sq_rows *r, sq_rows_sess *s, sl_str table, sl_str key, sl_buf *doc, sl_error *err)
{
    uint64_t h1, h2;
    int attempt;

    hash_row(table, key, &h1, &h2);
    for (attempt = 0; attempt < 4; attempt++) {
        sl_str t, k, d;
        uint64_t loc;
        int rc;

        if (catch_up(r, s, err) != 0)
            return -1;
        loc = lookup(r, h1, h2);
        if (loc == 0)
            return 0;
#ifdef SQ_ROWS_BEFORE_READ
        SQ_ROWS_BEFORE_READ(table, key);
#endif
        rc = read_entry(s, loc, &t, &k, &d, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue; /* moved by a compaction: catch up and look again */
        if (t.len != table.len || k.len != key.len || memcmp(t.p, table.p, t.len) != 0 ||
            memcmp(k.p, key.p, k.len) != 0)
            return sl_error_set(err, SL_ERR_STORE,
                                "sqlite store: rows %.*s %.*s and %.*s %.*s have the same 128-bit "
                                "hash; the store cannot index both",
                                (int)table.len, table.p, (int)key.len, key.p, (int)t.len, t.p,
                                (int)k.len, k.p);
        sl_buf_reset(doc);
        sl_buf_append(doc, d.p, d.len);
        return 1;
    }
    return sl_error_set(err, SL_ERR_STORE,
                        "sqlite store: row %.*s %.*s kept moving while it was read (another "
                        "process compacting the file?)",
                        (int)table.len, table.p, (int)key.len, key.p);
}

int sq_rows_any(sq_rows *r, sq_rows_sess *s, sl_error *err)
{
    size_t n;

    if (catch_up(r, s, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&r->rw);
    n = r->n;
    pthread_rwlock_unlock(&r->rw);
    return n > 0;
}

/* ---- listing ------------------------------------------------------------------ */

typedef struct row_ref {
    size_t off; /* table then key in the names buffer */
    uint32_t tlen, klen;
    uint64_t loc;
} row_ref;

/* qsort has no argument: the names being sorted, under sort_mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *sort_names;

static int ref_cmp(const void *a, const void *b)
{
    const row_ref *x = a, *y = b;
    size_t n = x->tlen < y->tlen ? x->tlen : y->tlen;
    int c = memcmp(sort_names + x->off, sort_names + y->off, n);

    if (c == 0 && x->tlen != y->tlen)
        return x->tlen < y->tlen ? -1 : 1;
    if (c != 0)
        return c;
    n = x->klen < y->klen ? x->klen : y->klen;
    c = memcmp(sort_names + x->off + x->tlen, sort_names + y->off + y->tlen, n);
    if (c == 0 && x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return c;
}

static int loc_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The entry at loc, reading its segment into *seg unless it is *have
 * already (the rows of one segment are read together). */
static int entry_at(sq_rows_sess *s, uint64_t loc, sl_buf *seg, int64_t *have, sl_str *t, sl_str *k,
                    sl_str *d, sl_error *err)
{
    int64_t id = (int64_t)(loc >> OFF_BITS);

    if (id != *have) {
        int rc = load_seg(s, id, seg, err);

        if (rc < 0)
            return -1;
        if (rc == 0)
            return sl_error_set(err, SL_ERR_STORE,
                                "sqlite store: segment %lld vanished while listing", (long long)id);
        *have = id;
    }
    return seg_entry(seg, id, (size_t)(loc & ((1 << OFF_BITS) - 1)), t, k, d, err);
}

/* Every live row, read in one snapshot: the live locations from the
 * index, their entries read segment by segment (names kept, documents
 * not), sorted by table and key, then each document read again for fn. */
int sq_rows_each(sq_rows *r, sq_rows_sess *s, const char *table,
                 int (*fn)(void *arg, sl_str table, sl_str key, sl_str doc), void *arg,
                 sl_error *err)
{
    size_t tl = table ? strlen(table) : 0, nlocs = 0, nrefs = 0, tid, pi, i;
    uint64_t *locs = NULL;
    row_ref *refs = NULL;
    sl_buf names = SL_BUF_INIT, seg = SL_BUF_INIT;
    int64_t have = 0;
    int ret = -1;

    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return sq_err(s->db, err, "begin");
    if (catch_up(r, s, err) != 0)
        goto out;
    pthread_rwlock_wrlock(&r->rw); /* table_id moves last_tid */
    tid = table ? table_id(r, (sl_str){table, tl}, false) : 0;
    locs = sl_xmalloc((r->n ? r->n : 1) * sizeof(*locs));
    for (pi = 0; pi < NPARTS; pi++) {
        const ix_part *pt = &r->parts[pi];

        for (i = 0; i < pt->cap; i++) {
            size_t et = pt->ix[i].h2t & TID_OTHER;

            if (pt->ix[i].loc && (table == NULL || et == tid || et == TID_OTHER))
                locs[nlocs++] = pt->ix[i].loc;
        }
    }
    pthread_rwlock_unlock(&r->rw);
    qsort(locs, nlocs, sizeof(*locs), loc_cmp);
    refs = sl_xmalloc((nlocs ? nlocs : 1) * sizeof(*refs));
    for (i = 0; i < nlocs; i++) {
        sl_str t, k, d;

        if (entry_at(s, locs[i], &seg, &have, &t, &k, &d, err) != 0)
            goto out;
        if (table && (t.len != tl || memcmp(t.p, table, tl) != 0))
            continue;
        refs[nrefs].off = names.len;
        refs[nrefs].tlen = (uint32_t)t.len;
        refs[nrefs].klen = (uint32_t)k.len;
        refs[nrefs].loc = locs[i];
        nrefs++;
        sl_buf_append(&names, t.p, t.len);
        sl_buf_append(&names, k.p, k.len);
    }
    pthread_mutex_lock(&sort_mu);
    sort_names = names.data;
    qsort(refs, nrefs, sizeof(*refs), ref_cmp);
    sort_names = NULL;
    pthread_mutex_unlock(&sort_mu);
    for (i = 0; i < nrefs; i++) {
        sl_str t, k, d;

        if (entry_at(s, refs[i].loc, &seg, &have, &t, &k, &d, err) != 0)
            goto out;
        if (fn(arg, t, k, d) != 0)
            break;
    }
    ret = 0;
out:
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    free(locs);
    free(refs);
    sl_buf_free(&names);
    sl_buf_free(&seg);
    return ret;
}

/* ---- writing ------------------------------------------------------------------ */

static int flush_seg(sq_rows_sess *s, sl_error *err)
{
    int rc, zn;

    if (s->seg.len == 0)
        return 0;
    if (s->next_id >= MAX_SEG)
        return sl_error_set(err, SL_ERR_STORE, "sqlite store: segment ids exhausted");
    sqlite3_bind_int64(s->put, 1, s->next_id);
    /* compressed only when that is shorter: stored, a segment is never
     * longer than its entries, which fit one page (seg_bytes) */
    zn = s->seg.len <= LZ4_MAX_INPUT_SIZE ? LZ4_compressBound((int)s->seg.len) : 0;
    if (zn > 0) {
        sl_buf_reset(&s->z);
        sl_buf_reserve(&s->z, (size_t)zn);
        zn = LZ4_compress_fast(s->seg.data, s->z.data, (int)s->seg.len, zn, LZ4_ACCEL);
    }
    if (zn > 0 && (size_t)zn < s->seg.len) {
        sqlite3_bind_blob(s->put, 2, s->z.data, zn, SQLITE_STATIC);
        sqlite3_bind_int64(s->put, 3, (sqlite3_int64)s->seg.len);
    } else {
        sqlite3_bind_blob(s->put, 2, s->seg.data, (int)s->seg.len, SQLITE_STATIC);
        sqlite3_bind_int64(s->put, 3, 0);
    }
    rc = sqlite3_step(s->put);
    sqlite3_reset(s->put);
    sqlite3_clear_bindings(s->put);
    if (rc != SQLITE_DONE)
        return sq_err(s->db, err, "write segment");
    if (s->npseg == s->cappseg) {
        s->cappseg = s->cappseg ? s->cappseg * 2 : 64;
        s->pseg = sl_xrealloc(s->pseg, s->cappseg * sizeof(*s->pseg));
    }
    s->pseg[s->npseg].id = s->next_id++;
    s->pseg[s->npseg].off = s->pend.len;
    s->pseg[s->npseg].len = s->seg.len;
    s->npseg++;
    sl_buf_append(&s->pend, s->seg.data, s->seg.len);
    sl_buf_reset(&s->seg);
    return 0;
}

static int add_entry(sq_rows_sess *s, sl_str t, sl_str k, sl_str d, sl_error *err)
{
    if (s->seg.len > 0 && s->seg.len + entry_len(t, k, d) > s->seg_bytes && flush_seg(s, err) != 0)
        return -1;
    put_entry(&s->seg, t, k, d);
    return 0;
}

/* Move the live entries of segment `id` into the segment being written,
 * and delete it. Returns its dead entries, or -1. */
static long compact_one(sq_rows *r, sq_rows_sess *s, int64_t id, sl_error *err)
{
    const unsigned char *p, *start, *end;
    sl_buf data = SL_BUF_INIT;
    long dead = 0;

    if (load_seg(s, id, &data, err) < 0)
        return -1;
    start = p = (const unsigned char *)data.data;
    end = p + data.len;
    while (p < end) {
        uint64_t loc = (uint64_t)id << OFF_BITS | (uint64_t)(p - start), h1, h2;
        sl_str t, k, d;

        if (get_entry(&p, end, &t, &k, &d) != 0) {
            dead = sl_error_set(err, SL_ERR_STORE, "sqlite store: segment %lld is corrupt",
                                (long long)id);
            goto out;
        }
        hash_row(t, k, &h1, &h2);
        if (lookup(r, h1, h2) != loc) {
            dead++;
            continue;
        }
        if (add_entry(s, t, k, d, err) != 0) {
            dead = -1;
            goto out;
        }
    }
    sqlite3_bind_int64(s->del, 1, id);
    if (sqlite3_step(s->del) != SQLITE_DONE)
        dead = sq_err(s->db, err, "delete segment");
    sqlite3_reset(s->del);
    if (dead >= 0) {
        if (s->ngone == s->capgone) {
            s->capgone = s->capgone ? s->capgone * 2 : 16;
            s->gone = sl_xrealloc(s->gone, s->capgone * sizeof(*s->gone));
        }
        s->gone[s->ngone++] = id;
    }
out:
    sl_buf_free(&data);
    return dead;
}

/* Reclaim about `want` dead entries from segments at least half dead,
 * the oldest first from where the last call stopped. */
static int compact(sq_rows *r, sq_rows_sess *s, size_t want, sl_error *err)
{
    size_t looked = 0, got = 0, nsegs, i;

    pthread_rwlock_rdlock(&r->rw);
    nsegs = r->nsegs;
    pthread_rwlock_unlock(&r->rw);
    i = r->ccur < nsegs ? r->ccur : 0;
    while (got < want && looked < nsegs) {
        seginfo si;
        long dead;

        pthread_rwlock_rdlock(&r->rw);
        si = r->segs[i];
        pthread_rwlock_unlock(&r->rw);
        i = (i + 1) % nsegs;
        looked++;
        if (si.total == 0 || (size_t)si.live * 2 > si.total)
            continue;
        dead = compact_one(r, s, si.id, err);
        if (dead < 0)
            return -1;
        got += (size_t)dead;
    }
    r->ccur = i;
    return 0;
}

int sq_rows_write(sq_rows *r, sq_rows_sess *s, const sl_seen *rows, size_t n, sl_error *err)
{
    size_t ndocs = 0, live, entries, i;

    sq_rows_discard(s);
    /* in the write transaction: nobody else can append now */
    if (catch_up(r, s, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&r->rw);
    s->next_id = r->hw + 1;
    live = r->n;
    entries = r->entries;
    pthread_rwlock_unlock(&r->rw);
    for (i = 0; i < n; i++)
        ndocs += rows[i].doc.len > 0;
    if (entries - live > live && entries - live >= COMPACT_MIN &&
        compact(r, s, 2 * ndocs + 64, err) != 0)
        return -1;
    for (i = 0; i < n; i++)
        if (rows[i].doc.len > 0 && add_entry(s, rows[i].table, rows[i].key, rows[i].doc, err) != 0)
            return -1;
    return flush_seg(s, err);
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

void sq_rows_committed(sq_rows *r, sq_rows_sess *s)
{
    size_t i, j, k;
    sl_error err;

    pthread_mutex_lock(&r->mu);
    pthread_rwlock_wrlock(&r->rw);
    for (i = 0; i < s->npseg; i++) {
        const sq_pseg *ps = &s->pseg[i];

        /* another session may have read it from the file already */
        if (ps->id > r->hw &&
            apply_seg(r, ps->id, (const unsigned char *)s->pend.data + ps->off, ps->len, &err) != 0)
            break; /* our own bytes: cannot happen */
    }
    if (s->ngone > 0) {
        qsort(s->gone, s->ngone, sizeof(*s->gone), id_cmp);
        for (i = j = k = 0; i < r->nsegs; i++) {
            while (k < s->ngone && s->gone[k] < r->segs[i].id)
                k++;
            if (k < s->ngone && s->gone[k] == r->segs[i].id) {
                r->entries -= r->segs[i].total;
                continue;
            }
            r->segs[j++] = r->segs[i];
        }
        r->nsegs = j;
    }
    pthread_rwlock_unlock(&r->rw);
    pthread_mutex_unlock(&r->mu);
    sq_rows_discard(s);
}

void sq_rows_discard(sq_rows_sess *s)
{
    sl_buf_reset(&s->seg);
    sl_buf_reset(&s->pend);
    s->npseg = 0;
    s->ngone = 0;
}

void sq_rows_stats(sq_rows *r, size_t *live, size_t *entries, size_t *segs)
{
    pthread_rwlock_rdlock(&r->rw);
    *live = r->n;
    *entries = r->entries;
    *segs = r->nsegs;
    pthread_rwlock_unlock(&r->rw);
}

/* ---- migration ---------------------------------------------------------------- */

int sq_rows_migrate(sqlite3 *db, sl_error *err)
{
    sq_rows_sess s;
    sqlite3_stmt *old = NULL;
    int rc, ret = -1;

    if (sq_rows_sess_init(&s, db, err) != 0)
        return -1;
    s.next_id = 1;
    if (sqlite3_prepare_v2(db, "SELECT tbl, key, doc FROM rows ORDER BY rowid", -1, &old, NULL) !=
        SQLITE_OK) {
        sq_err(db, err, "migrate rows");
        goto out;
    }
    while ((rc = sqlite3_step(old)) == SQLITE_ROW) {
        sl_str f[3];
        int i;

        for (i = 0; i < 3; i++) {
            f[i].p = sqlite3_column_blob(old, i);
            f[i].len = (size_t)sqlite3_column_bytes(old, i);
            if (f[i].p == NULL)
                f[i].p = "";
        }
        if (add_entry(&s, f[0], f[1], f[2], err) != 0)
            goto out;
        /* the written segments are not needed again here */
        sl_buf_reset(&s.pend);
        s.npseg = 0;
    }
    if (rc != SQLITE_DONE) {
        sq_err(db, err, "migrate rows");
        goto out;
    }
    if (flush_seg(&s, err) != 0)
        goto out;
    if (sqlite3_exec(db, "DROP TABLE rows", NULL, NULL, NULL) != SQLITE_OK) {
        sq_err(db, err, "migrate rows: drop the old table");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(old);
    sq_rows_sess_free(&s);
    return ret;
}
