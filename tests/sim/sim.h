/*
 * sim.h - the deterministic site simulator: a convergence test for the hub.
 *
 * One history is a run of a small replicated world, all of it derived from a
 * seed: sites (the hub is one of them) each with a small database, a CDC
 * emitter and an applier; FIFO links site -> hub and hub -> site that go down
 * and come back; the hub itself, which is the real engine code path
 * (sl_item_decode, sl_proc_item, sl_proc_outputs, sl_proc_reset, the store's
 * seen_put) minus threads and files. Faults: partitions, slow links,
 * redelivery, hub crashes (clean, and kill -9 before the store write).
 *
 * Next to the engine runs an independent model of docs/semantics (model.c)
 * that sees the same hub input but knows the ground truth the hub has to
 * infer: whether an event is a local write or an applier write, and which
 * version a local write was based on. After healing, every site, the hub's
 * consolidated view and the model must agree (check.c).
 *
 * Files: sim.c (command line, histories), world.c (sites, links, hub),
 * model.c (the model), check.c (the checks after healing), row.c (rows).
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "connectors/store.h"
#include "dsl/program.h"
#include "engine/process.h"

#define SIM_MAXSITES  8
#define SIM_MAXTABLES 16
#define SIM_MAXKEYS   5

/* ---- deterministic randomness (splitmix64) ------------------------------- */

typedef struct sim_rng {
    uint64_t s;
} sim_rng;

static inline uint64_t sim_rand(sim_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 0 .. n-1 (n > 0) */
static inline int sim_below(sim_rng *r, int n)
{
    return (int)(sim_rand(r) % (uint64_t)n);
}

/* lo .. hi inclusive */
static inline int sim_range(sim_rng *r, int lo, int hi)
{
    return lo + sim_below(r, hi - lo + 1);
}

/* true with probability permille/1000 */
static inline bool sim_chance(sim_rng *r, int permille)
{
    return sim_below(r, 1000) < permille;
}

/* ---- rows ---------------------------------------------------------------- */

/* A row of a simulated table: {"id":..,"n":..,"s":"..","qty":..}. */
typedef struct sim_row {
    bool present;
    int64_t id, n, qty;
    char s[32];
} sim_row;

void sim_row_json(const sim_row *r, sl_buf *out); /* "null" when absent */
bool sim_row_eq(const sim_row *a, const sim_row *b);
/* Parse a JSON object (or null) into r. Exactly the four columns with the
 * right types, else -1 with why filled. */
int sim_row_parse(const char *json, size_t len, sim_row *r, char *why, size_t whylen);
/* Same, from token t of an already parsed document. */
int sim_row_from_tok(const sl_json *j, int t, sim_row *r, char *why, size_t whylen);

/* ---- the world ----------------------------------------------------------- */

typedef enum sim_kind {
    SIM_LOCAL,   /* a local write at the site */
    SIM_APPLIER, /* the applier applying a hub output */
} sim_kind;

/* One CDC event, site -> hub. */
typedef struct sim_ev {
    int site, table, key;
    char op; /* c u d */
    sim_row before, after;
    int64_t ts, lsn;
    sim_kind kind;
    int write;         /* LOCAL: index into sim.writes */
    int64_t applied_v; /* APPLIER: sluice.version of the applied output */
    int out;           /* APPLIER: index into sim.outs */
    char *line;        /* the input line the hub reads */
    size_t len;
    bool modeled; /* the model has processed it */
} sim_ev;

/* One hub output, hub -> site. */
typedef struct sim_out {
    int dest, table, key;
    char op;
    sim_row after;   /* c/u/r: the row to upsert */
    int64_t version; /* sluice.version, 0 when missing */
    char origin[16]; /* sluice.origin */
} sim_out;

/* A Kafka-like log with one consumer: messages are ids, `next` the
 * consumer's position. */
typedef struct sim_log {
    int *ids;
    size_t n, cap;
    size_t next;
    size_t applied; /* down links: the applier's high-water mark (idempotent consumer) */
    bool up;
    int down_until; /* step at which a partition heals */
    int weight;     /* delivery weight: a slow link has a small one */
} sim_log;

/* Ground truth of one row at one site. */
typedef struct sim_cell {
    sim_row row;
    int64_t basever;    /* sluice.version of the last output the applier applied here */
    int64_t appliedver; /* the newest sluice.version applied here (never goes back) */
    int ownw; /* the site's own last write (index into writes), -1: the applier wrote last */
} sim_cell;

typedef struct sim_site {
    sim_cell cell[SIM_MAXTABLES][SIM_MAXKEYS + 1];
    int64_t lsn;
    int64_t clock; /* last ts_ms handed out: strictly increasing per site */
    int64_t skew;
    sim_log up, down;
    bool writer; /* writes locally in this history */
} sim_site;

typedef enum sim_outcome {
    SIM_W_PENDING = 0,
    SIM_W_ACCEPTED, /* became a version */
    SIM_W_LOST,     /* the current version stayed */
    SIM_W_MERGED,   /* a merged row became the version */
    SIM_W_MANUAL,   /* parked for an operator */
    SIM_W_SAME,     /* the row already had that content */
} sim_outcome;

typedef struct sim_write {
    int site, table, key, ev;
    char op;
    sim_row row;
    int base_kind; /* 0: nothing applied yet, 1: base_v, 2: own write base_w */
    int64_t base_v;
    int base_w;
    /* filled by the model */
    sim_outcome outcome;
    int64_t result_v; /* what the site holds afterwards as far as versions go: -1 own content */
} sim_write;

/* The hub: the real engine, driven item by item. */
typedef struct sim_hub {
    sl_proc *w;
    sl_item it;
    sl_json j;
    size_t sent;      /* outputs of w already sent */
    int *uncommitted; /* events consumed since the last store write, in order */
    size_t nunc, capunc;
    int *replay; /* events to consume again after a kill -9, in order */
    size_t nreplay, capreplay, rpos;
    int64_t seq;
    int since_flush, flush_every;
    uint64_t items, outputs, flushes, crashes, kills;
    int verdicts[16];
} sim_hub;

/* Which faults a history may draw (--faults). */
enum {
    SIM_F_PARTITION = 1 << 0, /* links go down */
    SIM_F_DELAY = 1 << 1,     /* slow links */
    SIM_F_DUP = 1 << 2,       /* redelivery of the last k messages */
    SIM_F_CRASH = 1 << 3,     /* clean hub restart (after the store write) */
    SIM_F_KILL = 1 << 4,      /* kill -9 of the hub (before the store write) */
    SIM_F_SKEW = 1 << 5,      /* site clocks skewed */
    SIM_F_ALL = 0x3f,
};

/* The model's base for conflict detection (--held). */
enum {
    SIM_HELD_TRUTH, /* the version the site's row really reflected (ground truth) */
    SIM_HELD_SPEC,  /* S.held as semantics.md tracks it */
};

typedef struct sim_opts {
    const char *store_uri;
    const char *rules;
    bool trace;           /* print the trace of failing histories */
    bool trace_always;    /* print the trace of every history */
    unsigned faults;      /* SIM_F_* */
    int held_mode;        /* SIM_HELD_*: what the model bases conflict detection on */
    bool applier_quiet;   /* the applier makes no event when an upsert changes nothing */
    bool applier_naive;   /* the applier applies repeats of versions it applied already */
    int ops;              /* operations per history; 0: drawn from the seed */
    size_t cache_rows;    /* the hub's row cache, in rows; 0: the engine's default */
    const char *scenario; /* NULL: random; "trivial": one insert at one site */
} sim_opts;

typedef struct sim_model sim_model;

typedef struct sim {
    const sim_opts *o;
    uint64_t seed;
    sim_rng rng;
    const sl_program *p;
    const sl_store *st;
    void *sess;
    char schema[32];

    int nsites, hubsite;
    int ntables;
    const char *tname[SIM_MAXTABLES];   /* "t_latest" */
    const sl_table *tab[SIM_MAXTABLES]; /* its rules */
    char qname[SIM_MAXTABLES][64];      /* "h12.t_latest" */
    int nkeys;
    unsigned table_mask; /* tables written in this history */
    int keys_used;       /* keys 1..keys_used are written */

    sim_site site[SIM_MAXSITES];
    sim_ev *evs;
    size_t nevs, capevs;
    sim_out *outs;
    size_t nouts, capouts;
    sim_write *writes;
    size_t nwrites, capwrites;
    sim_hub hub;
    sim_model *model;

    int step;
    int64_t now; /* global time, ms */
    uint64_t counter;
    /* fault parameters of this history */
    int p_write, p_flap, p_dup, p_crash, p_kill, p_flush;
    unsigned faults;

    sl_buf trace;
    bool tracing;
    sl_buf fail; /* failure messages; empty: passed */
    int nfail;
    uint64_t dead_letters, dup_skipped;
    uint64_t verdict_diffs; /* hub verdicts of first deliveries the model classed otherwise */
    int crossed_rows, stale_queued; /* found by sim_check */
    int unknown_docs;               /* hub state documents it could not read */
    char unknown_why[160];
} sim;

void sim_tracef(sim *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_failf(sim *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* world.c */
void sim_world_init(sim *S);
void sim_world_free(sim *S);
/* A local write at site s to (table, key): insert, update or delete. */
void sim_local_write(sim *S, int s, int table, int key, char op);
/* Deliver one message from the replay queue or a link that is up; returns
 * false when nothing could be delivered. */
bool sim_deliver_one(sim *S);
bool sim_quiet(const sim *S); /* nothing in flight anywhere, hub flushed */
void sim_hub_start(sim *S);
void sim_hub_flush(sim *S);
void sim_hub_crash_clean(sim *S);
void sim_hub_kill9(sim *S);
void sim_hub_stop(sim *S);
void sim_link_flap(sim *S);
void sim_link_dup(sim *S);
void sim_links_tick(sim *S); /* partitions that are over heal */
void sim_links_heal(sim *S);
const char *sim_site_name(const sim *S, int s);
int sim_log_pending(const sim_log *l);

/* model.c */
sim_model *sim_model_new(sim *S);
void sim_model_free(sim_model *m);
/* Feed an event the hub consumed for the first time; `desc` gets what the
 * model decided, `cls` the verdict class the hub should report. */
void sim_model_event(sim_model *m, int ev, sl_buf *desc, int *cls);
/* Final state of a row in the model. */
typedef struct sim_mfinal {
    int64_t v;
    sim_row img; /* present false: absent or deleted */
    int conflicts, open;
    bool crossed;
    const char *why; /* crossed: the reason */
} sim_mfinal;
void sim_model_final(const sim_model *m, int table, int key, sim_mfinal *out);
bool sim_model_crossed(const sim_model *m, int table, int key);

/* Verdict classes, to compare the hub's verdict with the model's. */
enum { SIM_C_DUP, SIM_C_ECHO, SIM_C_SAME, SIM_C_NEW, SIM_C_KEPT, SIM_C_OTHER };
const char *sim_class_name(int c);

/* check.c */
void sim_check(sim *S);

#endif
