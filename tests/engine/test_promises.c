/*
 * test_promises.c - two promises of the consolidated view (docs/conflicts.md),
 * checked through the real `sluice` binary, file mode, a SQLite store:
 *
 * - tombstone retention: a late change to a deleted row is a conflict decided
 *   by `on delete conflict` while the tombstone lives (source time between
 *   the delete and the change up to `--tombstone-retention`, default 7d), and
 *   a new row after; the state survives a restart;
 * - the per-site queue of unacknowledged versions (SL_RS_QUEUE_MAX, 1,024 per
 *   site and row): a site whose link was down applies everything it was sent,
 *   its echoes come back, and every site must end with the same row, with a
 *   bounded number of messages - also beyond the cap, where the forgotten
 *   versions' echoes are recognised by their count (they once started an
 *   echo loop: see the comment above test_queue_over_cap).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "engine/json.h"
#include "harness.h"

/* The sluice.version header of an output record, as a number (-1: none). */
static long version_of(const jline *l)
{
    const char *h = jraw(l, "headers.sluice\\.version"); /* a JSON string */

    return h[0] == '"' ? strtol(h + 1, NULL, 10) : -1;
}

/* A Debezium PostgreSQL change event (bare value, no schema) of public.TABLE.
 * src_ts is the source time (source.ts_ms: when the site made the change),
 * env_ts the envelope's ts_ms (when Debezium processed it). */
static void pg_event(sl_buf *b, const char *site, const char *table, char op, long lsn,
                     long long src_ts, long long env_ts, const char *before, const char *after)
{
    sl_buf_printf(b,
                  "{\"before\":%s,\"after\":%s,\"source\":{\"version\":\"2.7.4.Final\","
                  "\"connector\":\"postgresql\",\"name\":\"%s\",\"ts_ms\":%lld,"
                  "\"snapshot\":\"false\",\"db\":\"retail\",\"sequence\":null,"
                  "\"schema\":\"public\",\"table\":\"%s\",\"txId\":%ld,\"lsn\":%ld,"
                  "\"xmin\":null},\"op\":\"%c\",\"ts_ms\":%lld}\n",
                  before ? before : "null", after ? after : "null", site, src_ts, table, 500 + lsn,
                  lsn, op, env_ts);
}

static int setup(void **state)
{
    (void)state;
    return harness_setup("promises");
}

static int teardown(void **state)
{
    (void)state;
    harness_teardown();
    return 0;
}

/* ---- tombstone retention ----------------------------------------------------- */

#define T_DELETE 1700000000000LL /* source time of every delete below */
#define HOUR     3600000LL
#define DAY      (24 * HOUR)

static const char tomb_rules[] = "site central hub priority 100;\nsite s1, s2;\n"
                                 "topic \"o.{dest}.{table}\";\n"
                                 "table public.dw { key (id); route * -> *; "
                                 "on delete conflict delete wins; }\n"
                                 "table public.lt { key (id); route * -> *; }\n";

/*
 * One row's history: s1 inserts it (version 1) and deletes it (version 2,
 * at T_DELETE); the hub applies both at once (two echoes). s2's link is down:
 * it applied the insert (when saw_insert) but not the delete, and then
 * changes the row itself, `late` ms of source time after the delete (an
 * update when it has the row, else an insert of the same key). `env` is
 * the envelope ts_ms of that change when it differs from source time + 100.
 */
typedef struct tomb_case {
    const char *table;
    int id;
    bool saw_insert;
    long long late, env;
    /* expected */
    bool conflict;       /* one conflict recorded for the row, else none */
    const char *strat;   /* its strategy */
    bool new_version;    /* s2's change becomes version 3 and reaches every site */
    const char *sent[3]; /* versions each site got in this run: central, s1, s2 */
} tomb_case;

static const char *const tsites[3] = {"central", "s1", "s2"};

/* The history up to (and with) the delete. */
static void tomb_history(sl_buf *b, const tomb_case *c, long *lsn)
{
    char row[64];

    snprintf(row, sizeof(row), "{\"id\":%d,\"a\":\"x\"}", c->id);
    pg_event(b, "s1", c->table, 'c', ++lsn[1], T_DELETE - 1000, T_DELETE - 900, NULL, row);
    pg_event(b, "central", c->table, 'c', ++lsn[0], T_DELETE - 999, T_DELETE - 899, NULL, row);
    if (c->saw_insert)
        pg_event(b, "s2", c->table, 'c', ++lsn[2], T_DELETE - 998, T_DELETE - 898, NULL, row);
    pg_event(b, "s1", c->table, 'd', ++lsn[1], T_DELETE, T_DELETE + 100, row, NULL);
    pg_event(b, "central", c->table, 'd', ++lsn[0], T_DELETE + 1, T_DELETE + 101, row, NULL);
}

/* s2's late change. */
static void tomb_late(sl_buf *b, const tomb_case *c, long *lsn)
{
    char row[64];
    long long ts = T_DELETE + c->late;

    snprintf(row, sizeof(row), "{\"id\":%d,\"a\":\"late\"}", c->id);
    pg_event(b, "s2", c->table, c->saw_insert ? 'u' : 'c', ++lsn[2], ts, c->env ? c->env : ts + 100,
             NULL, row);
}

/* Check one row against the outputs in outdir and the conflicts listing
 * (`sluice conflicts --json`) in conflicts_file. */
static void tomb_check(const tomb_case *c, const char *outdir, const char *conflicts_file)
{
    char file[PATH_MAX + 300], id[16], late_row[64], got[256], table[32];
    jfile f;
    size_t i, n;
    int s;

    snprintf(id, sizeof(id), "%d", c->id);
    snprintf(late_row, sizeof(late_row), "{\"id\":%d,\"a\":\"late\"}", c->id);
    snprintf(table, sizeof(table), "\"public.%s\"", c->table);

    f = load(conflicts_file);
    for (i = 0, n = 0; i < f.n; i++) {
        const jline *l = &f.v[i];
        char want[64];

        if (strcmp(jraw(l, "table"), table) != 0 || strcmp(jraw(l, "key.id"), id) != 0)
            continue;
        n++;
        if (!c->conflict)
            fail_msg("%s id %d: a conflict was recorded for a change %lld ms after the delete:"
                     "\n%s",
                     c->table, c->id, c->late, l->text);
        assert_string_equal(jraw(l, "site_incoming"), "\"s2\"");
        assert_string_equal(jraw(l, "site_current"), "\"s1\"");
        assert_string_equal(jraw(l, "current"), "null"); /* the tombstone */
        assert_string_equal(jraw(l, "incoming"), late_row);
        assert_string_equal(jraw(l, "v_current"), "2");
        assert_string_equal(jraw(l, "status"), "\"resolved\"");
        snprintf(want, sizeof(want), "\"%s\"", c->strat);
        assert_string_equal(jraw(l, "strategy"), want);
        snprintf(want, sizeof(want), "%lld", T_DELETE + c->late);
        assert_string_equal(jraw(l, "ts_incoming"), want);
        snprintf(want, sizeof(want), "%lld", T_DELETE);
        assert_string_equal(jraw(l, "ts_current"), want);
        if (c->new_version) { /* the late change won the conflict */
            assert_string_equal(jraw(l, "v_result"), "3");
            assert_string_equal(jraw(l, "result"), late_row);
        } else { /* the delete stays */
            assert_string_equal(jraw(l, "v_result"), "2");
            assert_string_equal(jraw(l, "result"), "null");
        }
    }
    unload(&f);
    if (c->conflict && n != 1)
        fail_msg("%s id %d: %zu conflicts recorded for a change %lld ms after the delete, "
                 "want 1",
                 c->table, c->id, n, c->late);

    for (s = 0; s < 3; s++) {
        const jline *last = NULL;
        size_t len = 0;

        snprintf(file, sizeof(file), "%s/o.%s.%s.jsonl", outdir, tsites[s], c->table);
        f = load(file);
        got[0] = '\0';
        for (i = 0; i < f.n; i++) {
            if (strcmp(jraw(&f.v[i], "key.id"), id) != 0)
                continue;
            len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%ld", len ? "," : "",
                                    version_of(&f.v[i]));
            last = &f.v[i];
            /* the late content reaches a site only as version 3 */
            if (strcmp(jraw(last, "value.after"), late_row) == 0 && version_of(last) != 3)
                fail_msg("%s id %d: %s got the late change as version %ld", c->table, c->id,
                         tsites[s], version_of(last));
        }
        if (strcmp(got, c->sent[s]) != 0)
            fail_msg("%s id %d (late by %lld ms): versions sent to %s: '%s', want '%s'", c->table,
                     c->id, c->late, tsites[s], got, c->sent[s]);
        if (c->new_version) {
            assert_non_null(last);
            assert_int_equal(version_of(last), 3);
            assert_string_equal(jraw(last, "value.after"), late_row);
            assert_string_equal(jraw(last, "headers.sluice\\.origin"), "\"s2\"");
        }
        unload(&f);
    }
}

static void run_sluice(const char *input, const char *out, const char *db, const char *stats,
                       const char *extra, const char *rules)
{
    assert_int_equal(sh("'%s' run -q --threads 2 --input '%s' --output '%s' --store 'sqlite:%s' "
                        "--stats '%s' %s '%s'",
                        bin, input, out, db, stats, extra, rules),
                     0);
}

/*
 * One run, `--tombstone-retention 1h`: both sides of the boundary. The
 * retention is measured in source time between the delete and the late
 * change: exactly 1 h is still inside, 1 h + 1 ms is outside, and a late
 * envelope ts_ms (Debezium processing it hours later) does not count.
 */
static void test_tombstone_retention(void **state)
{
    static const tomb_case cases[] = {
        /* inside: the delete wins, nothing new is sent (s2 has the delete on its way) */
        {"dw", 1, true, HOUR / 2, 0, true, "delete wins", false, {"1,2", "", "1,2"}},
        {"dw", 2, true, HOUR, 0, true, "delete wins", false, {"1,2", "", "1,2"}},
        {"dw",
         3,
         true,
         HOUR / 2,
         T_DELETE + 5 * HOUR,
         true,
         "delete wins",
         false,
         {"1,2", "", "1,2"}},
        /* a late insert by a site that never had the row */
        {"dw", 4, false, HOUR / 2, 0, true, "delete wins", false, {"1,2", "", "1,2"}},
        /* outside: a new row, no conflict, to every site (to s2 behind the delete) */
        {"dw", 5, true, HOUR + 1, 0, false, NULL, true, {"1,2,3", "3", "1,2,3"}},
        {"dw", 6, true, 2 * HOUR, 0, false, NULL, true, {"1,2,3", "3", "1,2,3"}},
        {"dw", 7, false, 2 * HOUR, 0, false, NULL, true, {"1,2,3", "3", "1,2,3"}},
        /* `latest` (the default): inside, the later update wins the conflict */
        {"lt", 8, true, HOUR / 2, 0, true, "latest (delete)", true, {"1,2,3", "3", "1,2,3"}},
        {"lt", 9, true, 2 * HOUR, 0, false, NULL, true, {"1,2,3", "3", "1,2,3"}},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]), i;
    long lsn[3] = {0, 0, 0}, echoes = 0, conflicts = 0, kept = 0;
    sl_buf in = SL_BUF_INIT;

    (void)state;
    write_file(path("tomb.rules"), tomb_rules);
    for (i = 0; i < ncases; i++) {
        tomb_history(&in, &cases[i], lsn);
        echoes += cases[i].saw_insert ? 3 : 2;
        conflicts += cases[i].conflict;
        kept += cases[i].conflict && !cases[i].new_version;
    }
    for (i = 0; i < ncases; i++)
        tomb_late(&in, &cases[i], lsn);
    write_file(path("tomb.jsonl"), in.data);
    sl_buf_free(&in);

    run_sluice(path("tomb.jsonl"), path("tomb.out"), path("tomb.db"), path("tomb.stats"),
               "--tombstone-retention 1h", path("tomb.rules"));
    assert_int_equal(sh("'%s' conflicts --store 'sqlite:%s' --json > '%s'", bin, path("tomb.db"),
                        path("tomb.conflicts")),
                     0);
    for (i = 0; i < ncases; i++)
        tomb_check(&cases[i], path("tomb.out"), path("tomb.conflicts"));
    assert_int_equal(stat_of(path("tomb.stats"), "conflicts"), conflicts);
    assert_int_equal(stat_of(path("tomb.stats"), "kept"), kept);
    assert_int_equal(stat_of(path("tomb.stats"), "echoes"), echoes);
    assert_int_equal(stat_of(path("tomb.stats"), "dead_letters"), 0);
}

/*
 * Two runs on one store, the default retention (7 days): the first run
 * sees the inserts and deletes, the second (a new process: nothing cached)
 * only the late changes. The tombstones and their times come from the store.
 */
static void test_tombstone_restart(void **state)
{
    static const tomb_case cases[] = {
        /* 2 h: beyond the 1 h of the test above, well inside the default */
        {"dw", 1, true, 2 * HOUR, 0, true, "delete wins", false, {"", "", ""}},
        /* exactly 7 days: still inside */
        {"dw", 2, true, 7 * DAY, 0, true, "delete wins", false, {"", "", ""}},
        /* 7 days and 1 ms: a new row, sent to every site */
        {"dw", 3, true, 7 * DAY + 1, 0, false, NULL, true, {"3", "3", "3"}},
        {"lt", 4, false, 8 * DAY, 0, false, NULL, true, {"3", "3", "3"}},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]), i;
    long lsn[3] = {0, 0, 0};
    sl_buf in = SL_BUF_INIT;

    (void)state;
    write_file(path("tomb.rules"), tomb_rules);
    for (i = 0; i < ncases; i++)
        tomb_history(&in, &cases[i], lsn);
    write_file(path("r1.jsonl"), in.data);
    sl_buf_reset(&in);
    for (i = 0; i < ncases; i++)
        tomb_late(&in, &cases[i], lsn);
    write_file(path("r2.jsonl"), in.data);
    sl_buf_free(&in);

    run_sluice(path("r1.jsonl"), path("r1.out"), path("r.db"), path("r1.stats"), "",
               path("tomb.rules"));
    assert_int_equal(stat_of(path("r1.stats"), "conflicts"), 0);
    run_sluice(path("r2.jsonl"), path("r2.out"), path("r.db"), path("r2.stats"), "",
               path("tomb.rules"));
    assert_int_equal(stat_of(path("r2.stats"), "read"), (long)ncases);
    assert_int_equal(stat_of(path("r2.stats"), "duplicates"), 0);
    assert_int_equal(stat_of(path("r2.stats"), "conflicts"), 2);
    assert_int_equal(stat_of(path("r2.stats"), "kept"), 2);
    assert_int_equal(stat_of(path("r2.stats"), "routed"), 2);
    assert_int_equal(sh("'%s' conflicts --store 'sqlite:%s' --json > '%s'", bin, path("r.db"),
                        path("r.conflicts")),
                     0);
    for (i = 0; i < ncases; i++)
        tomb_check(&cases[i], path("r2.out"), path("r.conflicts"));
}

/* ---- the per-site queue of unacknowledged versions ------------------------------ */

/*
 * A small model of three sites for one row (public.q {"id":1}): each site
 * has the row (or not) and an applier that applies its topic in order,
 * drops a record whose sluice.version is not newer than the newest it
 * applied (docs/conflicts.md, "What an applier must do"), and makes one CDC
 * event per change it applies. A round is one `sluice run` on the shared
 * store over the echoes of the previous round's outputs.
 */
typedef struct qsite {
    const char *name;
    char row[256]; /* JSON object text; "" when the site has no row */
    long applied;  /* newest sluice.version applied */
    long lsn;
    long long clock; /* the site's clock: source ts_ms of its next event */
    jfile queued;    /* the outputs to it, not applied yet */
} qsite;

typedef struct qresult {
    int rounds;                                      /* runs after round 0 until nothing was sent */
    long sent_after;                                 /* output records of those runs */
    long max_version;                                /* the highest sluice.version of any output */
    long echoes1, conflicts1, kept1, routed1, read1; /* --stats of round 1 */
    long sent[5];                                    /* output records per round */
    bool loop;                                       /* stopped: too many messages */
    char summary1[8192];                             /* round 1's summary (stderr) */
} qresult;

static const char queue_rules[] = "site central hub priority 100;\nsite s1, s2;\n"
                                  "topic \"o.{dest}.{table}\";\n"
                                  "table public.q { key (id); route * -> *; }\n";

static void q_event(sl_buf *b, qsite *s, char op, const char *before, const char *after)
{
    pg_event(b, s->name, "q", op, ++s->lsn, s->clock, s->clock + 100, before, after);
    s->clock++;
}

/* Apply the site's pending outputs; their CDC events go to b. */
static void q_apply(qsite *s, sl_buf *b)
{
    size_t i;

    for (i = 0; i < s->queued.n; i++) {
        const jline *l = &s->queued.v[i];
        long v = version_of(l);
        const char *after = jraw(l, "value.after");

        if (v <= s->applied)
            continue;
        s->applied = v;
        if (strcmp(after, "null") == 0) {
            if (s->row[0]) {
                q_event(b, s, 'd', s->row, NULL);
                s->row[0] = '\0';
            }
            continue;
        }
        q_event(b, s, s->row[0] ? 'u' : 'c', NULL, after);
        snprintf(s->row, sizeof(s->row), "%s", after);
    }
    unload(&s->queued);
}

/* One run over input; the outputs become the sites' queues; returns how
 * many records it sent, and updates max_version. */
static long q_run(const char *tag, int round, qsite *sites, const char *input, qresult *r)
{
    char name[64], out[PATH_MAX + 300], stats[PATH_MAX + 300], err[PATH_MAX + 300];
    long n = 0;
    size_t i;
    int s;

    snprintf(name, sizeof(name), "%s.out%d", tag, round);
    snprintf(out, sizeof(out), "%s", path(name));
    snprintf(name, sizeof(name), "%s.stats%d", tag, round);
    snprintf(stats, sizeof(stats), "%s", path(name));
    snprintf(name, sizeof(name), "%s.err%d", tag, round);
    snprintf(err, sizeof(err), "%s", path(name));
    /* not --quiet: round 1's summary is checked as a user reads it */
    assert_int_equal(sh("'%s' run --threads 2 --input '%s' --output '%s' --store 'sqlite:%s' "
                        "--stats '%s' '%s' 2>'%s'",
                        bin, input, out, path(tag), stats, path("q.rules"), err),
                     0);
    for (s = 0; s < 3; s++) {
        char file[PATH_MAX + 400];

        snprintf(file, sizeof(file), "%s/o.%s.q.jsonl", out, sites[s].name);
        sites[s].queued = load(file);
        n += (long)sites[s].queued.n;
        for (i = 0; i < sites[s].queued.n; i++)
            if (version_of(&sites[s].queued.v[i]) > r->max_version)
                r->max_version = version_of(&sites[s].queued.v[i]);
    }
    if (round == 1) {
        size_t len;
        char *text = slurp(err, &len);

        r->echoes1 = stat_of(stats, "echoes");
        r->conflicts1 = stat_of(stats, "conflicts");
        r->kept1 = stat_of(stats, "kept");
        r->routed1 = stat_of(stats, "routed");
        r->read1 = stat_of(stats, "read");
        snprintf(r->summary1, sizeof(r->summary1), "%s", text);
        free(text);
    }
    return n;
}

/*
 * s1 writes the row n times ({"id":1,"n":1..n}); the hub applies each at once
 * (its echo follows each write); s2's link is down, so all n versions are
 * queued to it unacknowledged. Then s2 comes back and applies them, and the
 * sites go on applying what they are sent until sluice sends nothing.
 * s2_clock_behind: s2's clock is behind the others (its echoes carry older
 * source times than s1's writes); else every event is later than the one
 * before, as when s2 applies its backlog after reconnecting.
 */
static void q_history(const char *tag, int n, bool s2_clock_behind, qsite *sites, qresult *r)
{
    sl_buf in = SL_BUF_INIT;
    char name[64], row[64];
    long sent;
    int k, s, round;

    memset(r, 0, sizeof(*r));
    memset(sites, 0, 3 * sizeof(*sites));
    sites[0].name = "central";
    sites[1].name = "s1";
    sites[2].name = "s2";
    for (s = 0; s < 3; s++)
        sites[s].clock = 1700000000000LL;
    write_file(path("q.rules"), queue_rules);

    for (k = 1; k <= n; k++) {
        snprintf(row, sizeof(row), "{\"id\":1,\"n\":%d}", k);
        sites[1].clock = sites[0].clock = 1700000000000LL + 10LL * k;
        q_event(&in, &sites[1], k == 1 ? 'c' : 'u', NULL, row);
        q_event(&in, &sites[0], k == 1 ? 'c' : 'u', NULL, row); /* the hub's applier */
        sites[0].applied = k;
    }
    snprintf(sites[0].row, sizeof(sites[0].row), "%s", row);
    snprintf(sites[1].row, sizeof(sites[1].row), "%s", row);
    sites[2].clock = s2_clock_behind ? 1700000000000LL - 60000 : 1700000000000LL + 10LL * n + 5000;
    sites[1].clock += 10000;
    sites[0].clock += 10000;
    snprintf(name, sizeof(name), "%s.in0", tag);
    write_file(path(name), in.data);
    sent = q_run(tag, 0, sites, path(name), r);
    /* round 0: every version to the hub (applied above) and to s2 */
    assert_int_equal(sites[0].queued.n, (size_t)n);
    assert_int_equal(sites[2].queued.n, (size_t)n);
    assert_int_equal(sites[1].queued.n, 0);
    assert_int_equal(sent, 2L * n);
    assert_int_equal(version_of(&sites[2].queued.v[n - 1]), n);
    unload(&sites[0].queued);

    for (round = 1; round <= 4; round++) {
        sl_buf_reset(&in);
        for (s = 2; s >= 0; s--) /* s2's backlog first, then the others */
            q_apply(&sites[s], &in);
        if (in.len == 0)
            break;
        snprintf(name, sizeof(name), "%s.in%d", tag, round);
        write_file(path(name), in.data);
        sent = q_run(tag, round, sites, path(name), r);
        r->rounds = round;
        r->sent_after += sent;
        r->sent[round] = sent;
        if (sent == 0)
            break;
        /* past a few resends of everything: a loop (stop before it grows) */
        if (r->sent_after > 4L * n) {
            r->loop = true;
            break;
        }
    }
    for (s = 0; s < 3; s++)
        unload(&sites[s].queued);
    sl_buf_free(&in);
}

/* Every site holds s1's last write; the messages after s2's return are
 * bounded; no echo became a version. */
static void q_assert_converged(const qsite *sites, const qresult *r, int n)
{
    char want[64];
    int s;

    snprintf(want, sizeof(want), "{\"id\":1,\"n\":%d}", n);
    if (r->loop || r->rounds > 3)
        fail_msg("echo loop: after s2 came back, rounds 1-%d sent %ld, %ld, %ld, %ld records "
                 "and went on (round 1: %ld read, %ld echoes, %ld conflicts, %ld routed; newest "
                 "version %ld)",
                 r->rounds, r->sent[1], r->sent[2], r->sent[3], r->sent[4], r->read1, r->echoes1,
                 r->conflicts1, r->routed1, r->max_version);
    for (s = 0; s < 3; s++)
        if (strcmp(sites[s].row, want) != 0)
            fail_msg("%s holds %s, want %s", sites[s].name, sites[s].row[0] ? sites[s].row : "none",
                     want);
    /* at most the current version sent once more to each site */
    if (r->sent_after > 3)
        fail_msg("%ld records sent after s2 came back (round 1: %ld echoes, %ld conflicts)",
                 r->sent_after, r->echoes1, r->conflicts1);
    /* an echo (old content applied by s2) never becomes a version */
    if (r->max_version > n)
        fail_msg("version %ld was made from an echo (%d versions written)", r->max_version, n);
}

/* Exactly at the cap: 1,024 versions in flight to s2, kept across a restart
 * (round 1 is a new process reading the queue from the store); every echo
 * is recognised, nothing is sent again, no conflict. */
static void test_queue_at_cap(void **state)
{
    qsite sites[3];
    qresult r;

    (void)state;
    q_history("cap.db", 1024, false, sites, &r);
    q_assert_converged(sites, &r, 1024);
    assert_int_equal(r.rounds, 1);
    assert_int_equal(r.read1, 1024);
    assert_int_equal(r.echoes1, 1024);
    assert_int_equal(r.conflicts1, 0);
    assert_int_equal(r.routed1, 0);
    assert_int_equal(r.sent_after, 0);
    /* the summary says so too */
    assert_non_null(strstr(r.summary1, "  echoes               1,024  "));
    assert_non_null(strstr(r.summary1, "  conflicts                0  "));
}

/* Over the cap with s2's clock behind: the echoes of the forgotten versions
 * (1..6) are recognised by their count (before, they were taken for s2's
 * own changes and recorded as conflicts that never happened), the others by
 * content; every site ends with s1's last write, nothing is sent again. */
static void test_queue_over_cap_clock_behind(void **state)
{
    qsite sites[3];
    qresult r;

    (void)state;
    q_history("behind.db", 1030, true, sites, &r);
    q_assert_converged(sites, &r, 1030);
    /* every echo is recognised: 1,024 by content, 6 as forgotten versions */
    assert_int_equal(r.rounds, 1);
    assert_int_equal(r.echoes1, 1030);
    assert_int_equal(r.conflicts1, 0);
    assert_int_equal(r.kept1, 0);
    assert_int_equal(r.routed1, 0);
    assert_int_equal(r.sent_after, 0);
}

/*
 * Over the cap, s2 applying its backlog after reconnecting (its clock is
 * later than s1's writes, as it is in practice). Before the forgotten
 * versions were counted, the echo of forgotten version 1 was not
 * recognised, conflicted with version 1025 and won under `latest`, becoming
 * version 1026 with the content of version 1, queued to every site - to s2
 * too, which pushed another version out of its full queue; none of the
 * echoes was recognised and every round sent about three times more: an
 * echo loop that never ended. Now every echo is recognised and nothing is
 * sent again.
 */
static void test_queue_over_cap(void **state)
{
    qsite sites[3];
    qresult r;

    (void)state;
    q_history("over.db", 1025, false, sites, &r);
    q_assert_converged(sites, &r, 1025);
    assert_int_equal(r.rounds, 1);
    assert_int_equal(r.echoes1, 1025);
    assert_int_equal(r.conflicts1, 0);
    assert_int_equal(r.routed1, 0);
    assert_int_equal(r.sent_after, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tombstone_retention),
        cmocka_unit_test(test_tombstone_restart),
        cmocka_unit_test(test_queue_at_cap),
        cmocka_unit_test(test_queue_over_cap),
        cmocka_unit_test(test_queue_over_cap_clock_behind),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
