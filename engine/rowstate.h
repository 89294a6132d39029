/*
 * rowstate.h - one replicated row's consolidated state.
 *
 * The state is what the hub knows about a row: its consolidated version
 * (number, image, writer, time, position, or a tombstone), and for every
 * site the newest source position seen from it, the versions sent to it and
 * not acknowledged yet (a queue: a site whose link is down may have several
 * in flight), and the version it is known to hold. Images of versions a site
 * may still base a change on are kept as merge bases. docs/conflicts.md
 * explains the model; the store keeps the state as one binary document
 * (sl_rowstate_encode / sl_rowstate_read) per row.
 *
 * A state belongs to the worker that owns its row; nothing here locks.
 */
#ifndef SL_ROWSTATE_H
#define SL_ROWSTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../common/value.h"

/* What a site holds besides a version number: nothing known, or content of
 * its own that is not a version (its change lost a conflict). */
#define SL_HELD_NONE 0
#define SL_HELD_OWN  (-1)

/* Versions kept in flight per site and row (beyond: the oldest is
 * forgotten), and how many of the newest in-flight versions keep their
 * image as a possible merge base. */
#define SL_RS_QUEUE_MAX     1024
#define SL_RS_ACKED         4
#define SL_RS_QUEUED_IMAGES 32

typedef struct sl_rs_sent {
    int64_t v;
    uint64_t hash; /* of the columns sent to that site */
} sl_rs_sent;

typedef struct sl_rs_site {
    char *name;
    size_t nlen; /* strlen(name) */
    char *pos;   /* newest source position seen from the site; NULL: none */
    int64_t held;
    sl_rs_sent *q; /* sent, not acknowledged, oldest first */
    size_t nq, capq;
    /* versions sent before the queue's oldest and forgotten (the queue was
     * full): their echoes are still to come, ahead of the queue's */
    int64_t lost;
    /* the last versions it acknowledged, oldest first: a repeated delivery
     * of one of them (outputs are at least once) comes back as an old
     * content that is not a change of the site */
    sl_rs_sent acked[SL_RS_ACKED];
    size_t nacked;
    /* held == SL_HELD_OWN: the content the site holds (its change that lost
     * or went into a merge), the base of its next change; NULL: deleted */
    char *own;
} sl_rs_site;

typedef struct sl_rs_img {
    int64_t v;
    bool deleted;
    char *row; /* JSON object text; NULL when deleted */
} sl_rs_img;

typedef struct sl_rowstate {
    int64_t v;     /* consolidated version; 0: no version yet */
    char *writer;  /* site that wrote it (a merge: the site whose change caused it) */
    int64_t ts;    /* source ts_ms of the version */
    char *pos;     /* source position of the version */
    bool deleted;  /* a tombstone */
    char *row;     /* image (JSON object text); NULL when deleted or none */
    uint64_t hash; /* of the whole image (SL_EVENT_HASH_DELETED for a tombstone) */
    sl_rs_site *sites;
    size_t nsites, capsites;
    sl_rs_img *imgs; /* images of older versions still needed as bases */
    size_t nimgs, capimgs;
    bool no_bases; /* not stored: the table's rule never merges, keep no old images */
} sl_rowstate;

void sl_rowstate_init(sl_rowstate *s);
void sl_rowstate_free(sl_rowstate *s);
/* Empty s (as after init) for another row, keeping its arrays and each
 * site slot's name and queue buffer for the sites that row has: a worker
 * decodes one row after another into one state. */
void sl_rowstate_clear(sl_rowstate *s);

/* Parse a stored document into s (initialised; its old contents are
 * freed): the binary form, or the JSON of schema version 2. Returns 0, or
 * -1 with err filled. */
int sl_rowstate_read(sl_rowstate *s, const char *doc, size_t len, sl_error *err);
/* Append the binary document for s to out. */
void sl_rowstate_encode(const sl_rowstate *s, sl_buf *out);
/* Append s as one JSON object for people (`sluice rows`, docs/cli.md):
 * version, writer, ts_ms, position, deleted, hash, row, and per site what
 * it holds, what is in flight to it, forgotten and acknowledged. */
void sl_rowstate_json(const sl_rowstate *s, sl_buf *out);

/* The site entry for name, created when missing. */
sl_rs_site *sl_rowstate_site(sl_rowstate *s, const char *name);
/* What a site will hold once its queue is applied: the last queued
 * version, else what it holds. */
int64_t sl_rowstate_will_hold(const sl_rs_site *st);
/* The image of version v: 1 with *row (NULL for a tombstone), 0 unknown. */
int sl_rowstate_image(const sl_rowstate *s, int64_t v, const char **row);
/* Make v the consolidated version (the old image stays as a base while a
 * site holds or is sent it). */
void sl_rowstate_set_version(sl_rowstate *s, int64_t v, const char *writer, int64_t ts, sl_str pos,
                             bool deleted, sl_str row, uint64_t hash);
/* Drop images no site holds or has queued. */
void sl_rowstate_gc(sl_rowstate *s);
/* Record that version v (hash h of what was sent) went to st. A full
 * queue forgets its oldest entry and counts it in st->lost. */
void sl_rowstate_queue(sl_rs_site *st, int64_t v, uint64_t h);
/* The site applied queue entry k: it and the entries before it leave the
 * queue, the live ones join the acknowledged history; held = its version. */
void sl_rowstate_ack(sl_rs_site *st, size_t k);

#endif
