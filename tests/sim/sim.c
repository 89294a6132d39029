/*
 * sim.c - the simulator's command line and the shape of one history.
 *
 *   sim --seed N [--trace]              one history; its trace on failure
 *   sim --seeds A..B [--store URI]      many; stops at the first failing seed
 *   sim --seed N --histories K          K histories from seed N
 *
 * See tests/sim/README.md. Everything a history does comes from its seed
 * (splitmix64); the wall clock is read only for the summary's timing.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#ifndef SIM_SOURCE_DIR
#define SIM_SOURCE_DIR "tests/sim"
#endif

void sim_tracef(sim *S, const char *fmt, ...)
{
    va_list ap;
    char tmp[4096];

    if (!S->tracing)
        return;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    sl_buf_puts(&S->trace, tmp);
}

void sim_failf(sim *S, const char *fmt, ...)
{
    va_list ap;
    char tmp[2048];

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    S->nfail++;
    if (S->nfail <= 20)
        sl_buf_printf(&S->fail, "  %s\n", tmp);
    else if (S->nfail == 21)
        sl_buf_puts(&S->fail, "  ... (more)\n");
    sim_tracef(S, "  FAIL: %s\n", tmp);
}

/* ---- one history ------------------------------------------------------------ */

typedef struct run {
    sim_opts o;
    const sl_program *p;
    sl_store st;
    void *sess;
    const char *argv0;
    bool own_store_file;
    char store_path[512];
    /* totals */
    uint64_t histories, failed, writes, items, outputs, kills, crashes, conflicts, crossed,
        verdict_diffs, stale, unknown_docs;
    char unknown_why[160];
} run;

static int writer_site(sim *S)
{
    int s;

    do
        s = sim_below(&S->rng, S->nsites);
    while (!S->site[s].writer);
    return s;
}

static int pick_table(sim *S)
{
    int t;

    do
        t = sim_below(&S->rng, S->ntables);
    while (!(S->table_mask & (1u << t)));
    return t;
}

/* Draw the history's shape from its seed. */
static void draw(sim *S)
{
    sim_rng *r = &S->rng;
    int s, t, nwriters = 0;
    unsigned f = S->o->faults;

    S->faults = f;
    for (s = 0; s < S->nsites; s++) {
        S->site[s].writer = sim_chance(r, 700);
        nwriters += S->site[s].writer;
    }
    if (nwriters < 2) {
        S->site[S->hubsite].writer = true;
        S->site[(S->hubsite + 1 + sim_below(r, S->nsites - 1)) % S->nsites].writer = true;
    }
    if (sim_chance(r, 500)) {
        S->table_mask = (1u << S->ntables) - 1;
    } else {
        S->table_mask = 0;
        for (t = sim_range(r, 1, 2); t > 0; t--)
            S->table_mask |= 1u << sim_below(r, S->ntables);
    }
    S->keys_used = sim_chance(r, 500) ? sim_range(r, 1, 2) : sim_range(r, 3, S->nkeys);
    S->p_write = sim_range(r, 120, 350);
    S->p_flap = f & SIM_F_PARTITION ? sim_range(r, 0, 50) : 0;
    S->p_dup = f & SIM_F_DUP ? sim_range(r, 0, 40) : 0;
    S->p_crash = f & SIM_F_CRASH ? sim_range(r, 0, 15) : 0;
    S->p_kill = f & SIM_F_KILL ? sim_range(r, 0, 20) : 0;
    S->p_flush = sim_range(r, 0, 80);
    S->hub.flush_every = sim_range(r, 1, 8);
    for (s = 0; s < S->nsites; s++) {
        sim_site *st = &S->site[s];
        int mode = sim_below(r, 10);

        st->skew = 0;
        if (f & SIM_F_SKEW)
            st->skew = mode < 5 ? 0 : mode < 8 ? sim_range(r, -3, 3) : sim_range(r, -1500, 1500);
        if ((f & SIM_F_DELAY) && s != S->hubsite) {
            if (sim_chance(r, 300))
                st->up.weight = 1;
            if (sim_chance(r, 300))
                st->down.weight = 1;
        }
    }
}

static void do_step(sim *S)
{
    sim_rng *r = &S->rng;
    int x = sim_below(r, 1000);

    if (x < S->p_write) {
        int s = writer_site(S), t = pick_table(S), k = sim_range(r, 1, S->keys_used);

        sim_local_write(S, s, t, k, 0);
        if (sim_chance(r, 200)) {
            /* the same row at a second site, before anything travelled */
            int s2 = writer_site(S);

            if (s2 != s)
                sim_local_write(S, s2, t, k, 0);
        }
        return;
    }
    x -= S->p_write;
    if (x < S->p_flap) {
        sim_link_flap(S);
        return;
    }
    x -= S->p_flap;
    if (x < S->p_dup) {
        sim_link_dup(S);
        return;
    }
    x -= S->p_dup;
    if (x < S->p_crash) {
        sim_hub_crash_clean(S);
        return;
    }
    x -= S->p_crash;
    if (x < S->p_kill) {
        sim_hub_kill9(S);
        return;
    }
    x -= S->p_kill;
    if (x < S->p_flush) {
        sim_hub_flush(S);
        return;
    }
    sim_deliver_one(S);
}

/* Which row an echo loop is on: the one with the most outputs. */
static void loop_culprit(sim *S)
{
    int n[SIM_MAXTABLES][SIM_MAXKEYS + 1], bt = 0, bk = 1;
    size_t i;
    sim_mfinal mf;

    memset(n, 0, sizeof(n));
    for (i = 0; i < S->nouts; i++)
        n[S->outs[i].table][S->outs[i].key]++;
    for (i = 0; i < (size_t)S->ntables * (SIM_MAXKEYS + 1); i++)
        if (n[i / (SIM_MAXKEYS + 1)][i % (SIM_MAXKEYS + 1)] > n[bt][bk]) {
            bt = (int)(i / (SIM_MAXKEYS + 1));
            bk = (int)(i % (SIM_MAXKEYS + 1));
        }
    sim_model_final(S->model, bt, bk, &mf);
    sim_failf(S, "the loop is on %s#%d (%d outputs)%s%s", S->tname[bt], bk, n[bt][bk],
              mf.crossed ? "; it started with a crossing: " : "", mf.crossed ? mf.why : "");
}

static int count_row(void *arg, sl_str table, sl_str key, sl_str doc)
{
    (*(int *)arg)++;
    return 0;
}

static bool run_history(run *R, uint64_t seed, bool tracing, sl_buf *report)
{
    sim *S = sl_xcalloc(1, sizeof(*S));
    const sl_program *p = R->p;
    size_t i;
    int t, nops, ntables = 0;
    uint64_t bound;
    bool ok;

    S->o = &R->o;
    S->seed = seed;
    S->rng.s = seed * 0x2545f4914f6cdd1dULL + 0x1234567;
    S->p = p;
    S->st = &R->st;
    S->sess = R->sess;
    S->tracing = tracing;
    S->nsites = (int)p->nsites;
    S->hubsite = p->hub;
    S->nkeys = SIM_MAXKEYS;
    S->now = 1700000000000LL;
    snprintf(S->schema, sizeof(S->schema), "h%" PRIu64, seed);
    for (i = 0; i < p->ntables && ntables < SIM_MAXTABLES; i++) {
        const sl_table *tb = &p->tables[i];

        if (tb->ignored || strncmp(tb->pattern, "*.", 2) != 0)
            continue;
        S->tname[ntables] = tb->pattern + 2;
        S->tab[ntables] = tb;
        snprintf(S->qname[ntables], sizeof(S->qname[ntables]), "%s.%s", S->schema, tb->pattern + 2);
        ntables++;
    }
    S->ntables = ntables;
    sim_world_init(S);
    S->model = sim_model_new(S);
    sl_item_init(&S->hub.it);
    sl_json_init(&S->hub.j);

    /* a fresh store: this history's tables must be empty */
    for (t = 0; t < S->ntables; t++) {
        int nrows = 0;
        sl_error err;

        if (R->st.ops->rows_each(R->sess, S->qname[t], count_row, &nrows, &err) != 0)
            sim_failf(S, "store: rows_each(%s): %s", S->qname[t], err.msg);
        else if (nrows)
            sim_failf(S,
                      "the store already holds rows of %s (from an earlier run?): use a fresh "
                      "store",
                      S->qname[t]);
    }

    draw(S);
    sim_hub_start(S);
    sim_tracef(S, "seed %" PRIu64 ": tables 0x%x, keys 1..%d, writers", seed, S->table_mask,
               S->keys_used);
    for (t = 0; t < S->nsites; t++)
        if (S->site[t].writer)
            sim_tracef(S, " %s(skew %+" PRId64 ")", sim_site_name(S, t), S->site[t].skew);
    sim_tracef(
        S, "; per mille: write %d flap %d dup %d crash %d kill %d flush %d; flush every %d\n",
        S->p_write, S->p_flap, S->p_dup, S->p_crash, S->p_kill, S->p_flush, S->hub.flush_every);

    if (R->o.scenario && strcmp(R->o.scenario, "trivial") == 0) {
        /* one insert at one remote site, no faults */
        int s1 = (S->hubsite + 1) % S->nsites;

        S->step = 1;
        sim_tracef(S, "[1]\n");
        sim_local_write(S, s1, 0, 1, 'c');
        nops = 0;
    } else {
        nops = R->o.ops ? R->o.ops : sim_range(&S->rng, 40, 160);
    }
    if (S->nfail)
        nops = 0; /* the store was not fresh */
    bound = 100;
    for (S->step = 0; S->step < nops && S->nfail == 0; S->step++) {
        S->now += sim_range(&S->rng, 0, 3);
        sim_tracef(S, "[%d]\n", S->step);
        sim_links_tick(S);
        do_step(S);
        bound = 50 * (uint64_t)S->nwrites + 100;
        if (S->hub.outputs > bound) {
            sim_failf(S, "echo loop: %" PRIu64 " hub outputs for %zu local writes", S->hub.outputs,
                      S->nwrites);
            loop_culprit(S);
            break;
        }
    }

    /* heal: every link up, deliver until nothing is in flight */
    sim_tracef(S, "[heal]\n");
    sim_links_heal(S);
    bound = 50 * (uint64_t)S->nwrites + 100;
    while (S->nfail == 0 && !sim_quiet(S)) {
        S->now += sim_range(&S->rng, 0, 3);
        S->step++;
        if (!sim_deliver_one(S))
            sim_hub_flush(S);
        if (S->hub.outputs > bound) {
            sim_failf(S,
                      "echo loop: %" PRIu64 " hub outputs for %zu local writes (bound %" PRIu64
                      ") and it is not quiet",
                      S->hub.outputs, S->nwrites, bound);
            loop_culprit(S);
            break;
        }
    }
    if (S->nfail == 0) {
        sim_tracef(S,
                   "[check] quiet after %d steps: %zu local writes, %zu events, %" PRIu64
                   " hub outputs\n",
                   S->step, S->nwrites, S->nevs, S->hub.outputs);
        sim_check(S);
    }

    ok = S->nfail == 0;
    R->histories++;
    R->writes += S->nwrites;
    R->items += S->hub.items;
    R->outputs += S->hub.outputs;
    R->kills += S->hub.kills;
    R->crashes += S->hub.crashes;
    R->verdict_diffs += S->verdict_diffs;
    R->stale += (uint64_t)S->stale_queued;
    if (S->unknown_docs && R->unknown_docs++ == 0)
        snprintf(R->unknown_why, sizeof(R->unknown_why), "%s", S->unknown_why);
    for (t = 0; t < S->ntables; t++) {
        int k;

        for (k = 1; k <= S->nkeys; k++) {
            sim_mfinal mf;

            sim_model_final(S->model, t, k, &mf);
            R->conflicts += (uint64_t)mf.conflicts;
            R->crossed += mf.crossed;
        }
    }
    if (!ok) {
        sl_buf_printf(report, "seed %" PRIu64 " FAILED:\n%s", seed, S->fail.data);
        if (tracing)
            sl_buf_printf(report, "---- trace of seed %" PRIu64 " ----\n%s---- end of trace\n",
                          seed, S->trace.data ? S->trace.data : "");
    } else if (tracing && R->o.trace_always) {
        sl_buf_printf(report, "---- trace of seed %" PRIu64 " (passed) ----\n%s---- end\n", seed,
                      S->trace.data ? S->trace.data : "");
    }

    if (S->hub.w) {
        sl_proc_reset(S->hub.w, NULL);
        sim_hub_stop(S);
    }
    sl_item_free(&S->hub.it);
    sl_json_free(&S->hub.j);
    sim_model_free(S->model);
    sim_world_free(S);
    sl_buf_free(&S->trace);
    sl_buf_free(&S->fail);
    free(S);
    return ok;
}

/* ---- command line ----------------------------------------------------------- */

/* Ctrl-C or a TERM: stop after the current history and remove the store file. */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

static void usage(FILE *f)
{
    fputs("usage: sim [--seed N | --seeds A..B] [--histories K] [--store URI] [--rules FILE]\n"
          "           [--trace] [--trace-all] [--keep-going] [--faults LIST] [--ops N]\n"
          "           [--held truth|spec] [--applier-quiet] [--applier-naive]\n"
          "           [--scenario trivial] [--cache-rows N]\n"
          "  --seed N          one history (its trace is printed when it fails)\n"
          "  --seeds A..B      histories A to B; stops at the first failure\n"
          "  --histories K     K histories from the first seed\n"
          "  --store URI       metadata store (default: a new SQLite file, removed at exit);\n"
          "                    each history uses its own schema h<seed>, so the store must\n"
          "                    not hold those tables already\n"
          "  --faults LIST     partition,delay,dup,crash,kill,skew | all | none (default all)\n"
          "  --held MODE       what the model detects conflicts against: truth (default: the\n"
          "                    version the site's row really reflected) or spec (S.held as\n"
          "                    semantics.md tracks it)\n"
          "  --applier-quiet   the applier makes no CDC event when an upsert changes nothing\n"
          "  --applier-naive   the applier applies repeated deliveries too (by default it\n"
          "                    drops a sluice.version it applied already for the row)\n"
          "  --scenario trivial  one insert at one site, no faults\n"
          "  --cache-rows N    the hub's row cache holds N rows (default: the engine's);\n"
          "                    small values clear it, keeping the rows changed since the\n"
          "                    last store write, all the time\n",
          f);
}

static int parse_faults(const char *s, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"partition", SIM_F_PARTITION},
                 {"delay", SIM_F_DELAY},
                 {"dup", SIM_F_DUP},
                 {"crash", SIM_F_CRASH},
                 {"kill", SIM_F_KILL},
                 {"skew", SIM_F_SKEW},
                 {"all", SIM_F_ALL},
                 {"none", 0}};
    char *copy = sl_xstrdup(s), *tok, *save = NULL;
    int rc = 0;
    size_t i;

    *out = 0;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (strcmp(tok, names[i].name) == 0)
                break;
        if (i == sizeof(names) / sizeof(names[0])) {
            fprintf(stderr, "sim: unknown fault '%s'\n", tok);
            rc = -1;
            break;
        }
        *out |= names[i].bit;
    }
    free(copy);
    return rc;
}

static void remove_store_file(run *R)
{
    char p[600];

    if (!R->own_store_file)
        return;
    unlink(R->store_path);
    snprintf(p, sizeof(p), "%s-wal", R->store_path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", R->store_path);
    unlink(p);
}

int main(int argc, char **argv)
{
    run R;
    uint64_t first = 1, last = 0, k;
    long long histories = -1;
    bool single = false, keep_going = false, have_seed = false;
    char rules_default[600], uri[600];
    sl_diags diags;
    sl_error err;
    sl_program *prog;
    sl_buf report = SL_BUF_INIT, replay_opts = SL_BUF_INIT;
    struct timespec t0, t1;
    int i, rc = 0;
    uint64_t firstfail = 0;

    memset(&R, 0, sizeof(R));
    R.o.faults = SIM_F_ALL;
    R.argv0 = argv[0];
    snprintf(rules_default, sizeof(rules_default), "%s/sim.rules", SIM_SOURCE_DIR);
    R.o.rules = rules_default;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--seed") == 0 && v) {
            first = last = strtoull(v, NULL, 10);
            single = have_seed = true;
            i++;
        } else if (strcmp(a, "--seeds") == 0 && v) {
            const char *dots = strstr(v, "..");

            if (!dots) {
                fprintf(stderr, "sim: --seeds wants A..B\n");
                return 2;
            }
            first = strtoull(v, NULL, 10);
            last = strtoull(dots + 2, NULL, 10);
            have_seed = true;
            i++;
        } else if (strcmp(a, "--histories") == 0 && v) {
            histories = atoll(v);
            i++;
        } else if (strcmp(a, "--store") == 0 && v) {
            R.o.store_uri = v;
            i++;
        } else if (strcmp(a, "--rules") == 0 && v) {
            R.o.rules = v;
            i++;
        } else if (strcmp(a, "--faults") == 0 && v) {
            if (parse_faults(v, &R.o.faults) != 0)
                return 2;
            i++;
        } else if (strcmp(a, "--ops") == 0 && v) {
            R.o.ops = atoi(v);
            i++;
        } else if (strcmp(a, "--scenario") == 0 && v) {
            R.o.scenario = v;
            if (strcmp(v, "trivial") != 0) {
                fprintf(stderr, "sim: unknown scenario '%s'\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--trace") == 0) {
            R.o.trace = true;
        } else if (strcmp(a, "--trace-all") == 0) {
            R.o.trace = R.o.trace_always = true;
        } else if (strcmp(a, "--keep-going") == 0) {
            keep_going = true;
        } else if (strcmp(a, "--held") == 0 && v) {
            if (strcmp(v, "truth") == 0)
                R.o.held_mode = SIM_HELD_TRUTH;
            else if (strcmp(v, "spec") == 0)
                R.o.held_mode = SIM_HELD_SPEC;
            else {
                fprintf(stderr, "sim: --held truth|spec\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--cache-rows") == 0 && v) {
            R.o.cache_rows = (size_t)strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--applier-quiet") == 0) {
            R.o.applier_quiet = true;
        } else if (strcmp(a, "--applier-naive") == 0) {
            R.o.applier_naive = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "sim: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!have_seed && histories < 0) {
        usage(stderr);
        return 2;
    }
    if (histories >= 0) {
        last = first + (uint64_t)histories - 1;
        single = histories == 1 && single;
    }
    if (R.o.scenario)
        R.o.faults = 0;
    if (single)
        R.o.trace = true;

    sl_diags_init(&diags);
    prog = sl_compile_files(&R.o.rules, 1, &diags);
    if (prog == NULL) {
        sl_buf out = SL_BUF_INIT;

        sl_diags_format(&diags, &out);
        fprintf(stderr, "sim: %s does not compile:\n%s", R.o.rules, out.data ? out.data : "");
        sl_buf_free(&out);
        sl_diags_free(&diags);
        return 2;
    }
    sl_diags_free(&diags);
    R.p = prog;
    if (prog->nsites > SIM_MAXSITES || prog->nsites < 2) {
        fprintf(stderr, "sim: the rules must declare 2..%d sites\n", SIM_MAXSITES);
        return 2;
    }

    if (R.o.store_uri == NULL) {
        const char *tmp = getenv("TMPDIR");

        /* memory-backed when there is such a place: thousands of commits */
        if (tmp == NULL || *tmp == '\0')
            tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(R.store_path, sizeof(R.store_path), "%s/sluice-sim-%ld.db", tmp, (long)getpid());
        R.own_store_file = true;
        remove_store_file(&R);
        snprintf(uri, sizeof(uri), "sqlite:%s", R.store_path);
        R.o.store_uri = uri;
    }
    if (sl_store_open(&R.st, R.o.store_uri, &err) != 0) {
        fprintf(stderr, "sim: store %s: %s\n", R.o.store_uri, err.msg);
        return 2;
    }
    R.sess = R.st.ops->session_open(R.st.self, &err);
    if (R.sess == NULL) {
        fprintf(stderr, "sim: store %s: %s\n", R.o.store_uri, err.msg);
        sl_store_destroy(&R.st);
        return 2;
    }

    /* what a replay of one seed needs besides --seed */
    if (!R.own_store_file)
        sl_buf_printf(&replay_opts, " --store %s", R.o.store_uri);
    if (R.o.rules != rules_default)
        sl_buf_printf(&replay_opts, " --rules %s", R.o.rules);
    if (R.o.faults != SIM_F_ALL && !R.o.scenario) {
        sl_buf_puts(&replay_opts, " --faults ");
        if (R.o.faults == 0)
            sl_buf_puts(&replay_opts, "none");
        for (i = 0; i < 6; i++)
            if (R.o.faults & (1u << i))
                sl_buf_printf(
                    &replay_opts, "%s%s", (R.o.faults & ((1u << i) - 1)) ? "," : "",
                    (const char *[]){"partition", "delay", "dup", "crash", "kill", "skew"}[i]);
    }
    if (R.o.ops)
        sl_buf_printf(&replay_opts, " --ops %d", R.o.ops);
    if (R.o.scenario)
        sl_buf_printf(&replay_opts, " --scenario %s", R.o.scenario);
    if (R.o.held_mode != SIM_HELD_TRUTH)
        sl_buf_puts(&replay_opts, " --held spec");
    if (R.o.applier_quiet)
        sl_buf_puts(&replay_opts, " --applier-quiet");
    if (R.o.applier_naive)
        sl_buf_puts(&replay_opts, " --applier-naive");
    if (R.o.cache_rows)
        sl_buf_printf(&replay_opts, " --cache-rows %zu", R.o.cache_rows);
    sl_buf_puts(&replay_opts, "");

    /* a reader that goes away (| head) must not leave the store file behind */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (k = first; k <= last && !g_stop; k++) {
        sl_buf_reset(&report);
        if (!run_history(&R, k, R.o.trace, &report)) {
            R.failed++;
            if (firstfail == 0)
                firstfail = k;
            fputs(report.data, stdout);
            printf("replay: %s --seed %" PRIu64 "%s --trace%s\n", R.argv0, k, replay_opts.data,
                   R.own_store_file ? "" : "   (with a store that has no h<seed> tables yet)");
            fflush(stdout);
            if (!keep_going)
                break;
        } else if (report.len) {
            fputs(report.data, stdout);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("sim: %" PRIu64 " histories (seeds %" PRIu64 "..%" PRIu64 "), %" PRIu64
           " failed; %" PRIu64 " local writes, %" PRIu64 " hub items, %" PRIu64 " outputs, %" PRIu64
           " conflicts (model), %" PRIu64 " crossed rows, %" PRIu64 " kill -9, %" PRIu64
           " restarts; %.1f s\n",
           R.histories, first, R.histories ? first + R.histories - 1 : first, R.failed, R.writes,
           R.items, R.outputs, R.conflicts, R.crossed, R.kills, R.crashes,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (R.verdict_diffs)
        printf("sim: note: %" PRIu64 " hub verdicts (echo, same, new version, kept) differed from "
               "the model's on rows not crossed\n",
               R.verdict_diffs);
    if (R.stale)
        printf("sim: note: %" PRIu64 " sends were still queued in the hub's row states after "
               "quiescence\n",
               R.stale);
    if (R.unknown_docs)
        printf("sim: warning: %" PRIu64 " histories had hub row states the simulator could not "
               "read (%s); their hub checks were skipped\n",
               R.unknown_docs, R.unknown_why);
    if (R.failed) {
        printf("sim: first failing seed %" PRIu64 "\n", firstfail);
        rc = 1;
    }
    sl_buf_free(&report);
    sl_buf_free(&replay_opts);
    R.st.ops->session_close(R.sess);
    sl_store_destroy(&R.st);
    remove_store_file(&R);
    sl_program_unref(prog);
    if (g_stop) {
        fprintf(stderr, "sim: interrupted after seed %" PRIu64 "\n", first + R.histories - 1);
        rc = 128 + (int)g_stop;
    }
    return rc;
}
