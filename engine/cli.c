/*
 * cli.c - subcommands: check, explain, run, status, version, help.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../connectors/kafka.h"
#include "../connectors/sink.h"
#include "../connectors/source.h"
#include "../connectors/store.h"
#include "cli.h"
#include "json.h"
#include "luahook.h"
#include "pipeline.h"
#include "process.h"
#include "rowstate.h"

#define SLUICE_VERSION "0.1.0"

static const char usage_text[] =
    "usage: sluice <command> [options]\n"
    "\n"
    "commands:\n"
    "  check FILE.rules...            compile the rule set; print diagnostics; exit 0 or 1\n"
    "  explain FILE.rules...          print the compiled rule set readably\n"
    "  run [options] FILE.rules...    run the engine over change events\n"
    "  test [--input PATH|-] [--records] FILE.rules...\n"
    "                                 what the rules decide for each event; writes nothing\n"
    "  status [--store URI]           show what the metadata store has processed\n"
    "  conflicts [--store URI] [--table T] [--key K] [--site S] [--status open|resolved|operator]\n"
    "            [--limit N] [--json]  list recorded conflicts, newest first\n"
    "  conflicts decide ID [--store URI] [--result ROW]  mark a conflict decided by an operator\n"
    "  rows [--store URI] [--table T] [--key K] [--limit N]\n"
    "                                 the consolidated view: each row's state as JSON lines\n"
    "  version                        print the version\n"
    "  help                           this text\n"
    "\n"
    "run options:\n"
    "  --input PATH|-     events: a file, a directory of files (name order) or - for stdin\n"
    "                     (default -)\n"
    "  --output DIR|-     one JSON-lines file per destination topic in DIR, or - for stdout\n"
    "                     (default -)\n"
    "  --store URI        metadata store: sqlite:PATH or none (default " SL_STORE_DEFAULT_URI ")\n"
    "  --threads N        worker threads (default: the number of cores)\n"
    "  --batch N          messages per batch handed to a worker (default 256)\n"
    "  --stats FILE       write the run's counters as JSON to FILE\n"
    "  --progress         always draw the progress line (default: only on a terminal)\n"
    "  --quiet            no progress line and no summary\n"
    "  --set kafka.PROP=VALUE   a librdkafka property; with kafka.bootstrap.servers the\n"
    "                     input is Kafka (unless --input) and so is the output (unless --output)\n"
    "  --topics A,B|^RE   the topics to consume (Kafka input)\n"
    "  --idle-exit SECS   stop after no message arrived for SECS seconds (Kafka input)\n"
    "  --tombstone-retention DURATION\n"
    "                     how long a deleted row still catches late changes (default 7d)\n"
    "  --config FILE      settings as `key = value` lines (input, output, store, topics,\n"
    "                     threads, batch, stats, idle-exit, kafka.*); flags win\n"
    "\n"
    "See docs/cli.md for details.\n";

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requests;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    reload_requests++;
}

typedef struct reload_ctx {
    char **files;
    int nfiles;
} reload_ctx;

static sl_program *compile(char **files, int nfiles);

/* SIGHUP: compile the same files again; on any error keep the running rules. */
static sl_program *reload_rules(void *arg, const sl_program *current)
{
    reload_ctx *rc = arg;
    sl_program *p;

    fprintf(stderr, "sluice: SIGHUP: reloading rules\n");
    p = compile(rc->files, rc->nfiles);
    if (p == NULL) {
        fprintf(stderr, "sluice: reload failed; still running rules version %s\n",
                current->version);
        return NULL;
    }
    fprintf(stderr, "sluice: rules reloaded: version %s -> %s\n", current->version, p->version);
    return p;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "sluice: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'sluice help'.\n");
    return 2;
}

/* Compile the rule files; print diagnostics (warnings too) to stderr. */
static sl_program *compile(char **files, int nfiles)
{
    sl_diags d;
    sl_buf out = SL_BUF_INIT;
    sl_program *p;

    sl_diags_init(&d);
    p = sl_compile_files((const char *const *)files, (size_t)nfiles, &d);
    sl_diags_format(&d, &out);
    if (out.len)
        fputs(out.data, stderr);
    sl_buf_free(&out);
    sl_diags_free(&d);
    if (p != NULL && p->nlua > 0) {
        /* the Lua files load, and every `on conflict lua FN` names a function */
        sl_error err;
        sl_lua *L;

        sl_error_clear(&err);
        L = sl_lua_new(p, &err);
        if (L == NULL || sl_lua_check_program(L, p, &err) != 0) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            sl_program_unref(p);
            p = NULL;
        }
        sl_lua_free(L);
    }
    return p;
}

static int cmd_check(int argc, char **argv)
{
    sl_program *p;
    size_t i, nt = 0;

    if (argc < 1)
        return usage_error("%s", "check needs at least one FILE.rules");
    p = compile(argv, argc);
    if (p == NULL)
        return 1;
    for (i = 0; i < p->ntables; i++)
        nt += !p->tables[i].ignored;
    printf("ok: %d file%s, %zu site%s, %zu table block%s, rules version %s\n", argc,
           argc == 1 ? "" : "s", p->nsites, p->nsites == 1 ? "" : "s", nt, nt == 1 ? "" : "s",
           p->version);
    sl_program_unref(p);
    return 0;
}

static int cmd_explain(int argc, char **argv)
{
    sl_program *p;
    sl_buf out = SL_BUF_INIT;

    if (argc < 1)
        return usage_error("%s", "explain needs at least one FILE.rules");
    p = compile(argv, argc);
    if (p == NULL)
        return 1;
    sl_program_explain(p, &out);
    fputs(out.data ? out.data : "", stdout);
    sl_buf_free(&out);
    sl_program_unref(p);
    return 0;
}

static void thousands(char *buf, size_t n, uint64_t v)
{
    char tmp[32];
    int len = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v), i, o = 0;

    for (i = 0; i < len && (size_t)o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
}

static void print_summary(const sl_run_report *r, const sl_program *p, const char *input,
                          const char *output)
{
    char a[32];
    size_t i;

#define LINE(label, v, note)                                                                       \
    do {                                                                                           \
        thousands(a, sizeof(a), (v));                                                              \
        fprintf(stderr, "  %-13s %12s  %s\n", label, a, note);                                     \
    } while (0)

    thousands(a, sizeof(a), r->read);
    fprintf(stderr, "sluice: %s events from %s in %.2f s (%.0f events/s, %d worker thread%s)%s\n",
            a, input, r->seconds, r->seconds > 0 ? (double)r->read / r->seconds : 0.0, r->threads,
            r->threads == 1 ? "" : "s", r->stopped ? ", stopped early" : "");
    LINE("routed", r->routed, "changes sent to at least one site");
    LINE("written", r->written, "output records:");
    for (i = 0; i < r->ntopics; i++) {
        if (strcmp(r->topics[i].topic, p->dead_letter_topic) == 0)
            continue;
        thousands(a, sizeof(a), r->topics[i].n);
        fprintf(stderr, "      %-44s %10s\n", r->topics[i].topic, a);
    }
    LINE("filtered", r->filtered, "rejected by a `where`");
    LINE("unrouted", r->unrouted, "no route applied");
    LINE("ignored", r->ignored, "`ignore table`");
    LINE("duplicates", r->duplicate, "already processed (same or older source position)");
    LINE("skipped", r->skipped, "transaction markers, schema changes, messages, tombstones");
    if (r->echo || r->same || r->conflicts || r->kept) {
        LINE("echoes", r->echo, "a site applying what sluice sent it (acknowledged)");
        LINE("unchanged", r->same, "a site reporting the content the row already has");
        LINE("conflicts", r->conflicts, "a site changed a row without having seen its version");
        LINE("  manual", r->manual, "of them waiting for an operator (sluice conflicts)");
        LINE("kept", r->kept, "changes that lost: the current version was sent back");
    }
    LINE("dead letters", r->dead, p->dead_letter_topic);
    if (r->round_trips)
        fprintf(stderr, "  %-16s %9llu  requests to the store (%.3f per event)\n", "store requests",
                (unsigned long long)r->round_trips,
                r->read ? (double)r->round_trips / (double)r->read : 0.0);
    if (r->resumed)
        LINE("resumed", r->resumed, "input lines finished by an earlier run, not read again");
    if (r->reloads)
        LINE("reloads", (uint64_t)r->reloads, "rule reloads (SIGHUP) that took effect");
    if (strcmp(output, "kafka") == 0)
        fprintf(stderr, "outputs: Kafka topics above\n");
    else if (strcmp(output, "-") != 0)
        fprintf(stderr, "outputs: %s/\n", output);
#undef LINE
}

static int write_stats(const char *path, const sl_run_report *r)
{
    FILE *f = fopen(path, "w");
    size_t i;

    if (f == NULL) {
        fprintf(stderr, "sluice: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\"read\":%llu,\"routed\":%llu,\"written\":%llu,\"filtered\":%llu,"
            "\"unrouted\":%llu,\"ignored\":%llu,\"duplicates\":%llu,\"skipped\":%llu,"
            "\"dead_letters\":%llu,\"resumed\":%llu,\"seconds\":%.3f,\"threads\":%d,"
            "\"stopped\":%d,\"reloads\":%d,\"echoes\":%llu,\"unchanged\":%llu,"
            "\"conflicts\":%llu,\"manual\":%llu,\"kept\":%llu,\"store_round_trips\":%llu,"
            "\"topics\":{",
            (unsigned long long)r->read, (unsigned long long)r->routed,
            (unsigned long long)r->written, (unsigned long long)r->filtered,
            (unsigned long long)r->unrouted, (unsigned long long)r->ignored,
            (unsigned long long)r->duplicate, (unsigned long long)r->skipped,
            (unsigned long long)r->dead, (unsigned long long)r->resumed, r->seconds, r->threads,
            r->stopped ? 1 : 0, r->reloads, (unsigned long long)r->echo,
            (unsigned long long)r->same, (unsigned long long)r->conflicts,
            (unsigned long long)r->manual, (unsigned long long)r->kept,
            (unsigned long long)r->round_trips);
    for (i = 0; i < r->ntopics; i++) {
        sl_buf t = SL_BUF_INIT;

        sl_buf_json_str(&t, r->topics[i].topic, strlen(r->topics[i].topic));
        fprintf(f, "%s%s:%llu", i ? "," : "", t.data, (unsigned long long)r->topics[i].n);
        sl_buf_free(&t);
    }
    fprintf(f, "}}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* Parse "N" as a positive int within [1, max]. */
static int parse_count(const char *s, int max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* "--name value" or "--name=value": the value, advancing *i; NULL if missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        return "";
    return argv[++*i];
}

/* "7d", "12h", "30m", "90s", "250ms" or plain seconds; more than zero. */
static int parse_duration_ms(const char *v, int64_t *out)
{
    char *end;
    long long n;
    int64_t unit = 1000;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || n <= 0)
        return -1;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        unit = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        unit = 24 * 3600 * 1000;
    else
        return -1;
    if (n > INT64_MAX / unit)
        return -1;
    *out = n * unit;
    return 0;
}

/* What `sluice run` was asked to do, from --config files and flags. */
typedef struct run_cfg {
    const char *input, *output, *store_uri, *stats, *topics;
    bool input_set, output_set;
    int threads, batch, idle_exit_s;
    int64_t tombstone_ms;
    sl_kafka_conf kafka;
    char **owned; /* values read from config files */
    size_t nowned;
} run_cfg;

static const char *keep(run_cfg *c, const char *v)
{
    c->owned = sl_xrealloc(c->owned, (c->nowned + 1) * sizeof(*c->owned));
    return c->owned[c->nowned++] = sl_xstrdup(v);
}

/* One setting by name, from a flag (--input X is "input") or a config line.
 * Returns 0, or 2 after telling the user what is wrong (`where` says where). */
static int apply_setting(run_cfg *c, const char *key, const char *v, const char *where)
{
    int n;

    if (*v == '\0') {
        fprintf(stderr, "sluice: %s: %s needs a value\n", where, key);
        return 2;
    }
    if (strcmp(key, "input") == 0) {
        c->input = v;
        c->input_set = true;
    } else if (strcmp(key, "output") == 0) {
        c->output = v;
        c->output_set = true;
    } else if (strcmp(key, "store") == 0) {
        c->store_uri = v;
    } else if (strcmp(key, "stats") == 0) {
        c->stats = v;
    } else if (strcmp(key, "topics") == 0) {
        c->topics = v;
    } else if (strcmp(key, "threads") == 0) {
        if (parse_count(v, SL_MAX_WORKERS, &c->threads) != 0) {
            fprintf(stderr, "sluice: %s: threads wants a number from 1 to %d, not '%s'\n", where,
                    SL_MAX_WORKERS, v);
            return 2;
        }
    } else if (strcmp(key, "batch") == 0) {
        if (parse_count(v, 65536, &c->batch) != 0) {
            fprintf(stderr, "sluice: %s: batch wants a number from 1 to 65536, not '%s'\n", where,
                    v);
            return 2;
        }
    } else if (strcmp(key, "idle-exit") == 0) {
        if (parse_count(v, 86400 * 365, &n) != 0) {
            fprintf(stderr, "sluice: %s: idle-exit wants a number of seconds, not '%s'\n", where,
                    v);
            return 2;
        }
        c->idle_exit_s = n;
    } else if (strcmp(key, "tombstone-retention") == 0) {
        if (parse_duration_ms(v, &c->tombstone_ms) != 0) {
            fprintf(stderr,
                    "sluice: %s: tombstone-retention wants a duration such as 7d, 12h, 30m or "
                    "90s, not '%s'\n",
                    where, v);
            return 2;
        }
    } else if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
        sl_kafka_conf_set(&c->kafka, key + 6, v);
    } else {
        fprintf(stderr,
                "sluice: %s: unknown setting '%s' (settings: input, output, store, stats, "
                "topics, threads, batch, idle-exit, tombstone-retention, kafka.<librdkafka "
                "property>)\n",
                where, key);
        return 2;
    }
    return 0;
}

/* --config FILE: one `key = value` per line, # comments, blank lines. */
static int read_config(run_cfg *c, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096], where[PATH_MAX + 32];
    int lineno = 0, rc = 0;

    if (f == NULL) {
        fprintf(stderr, "sluice: cannot read config %s: %s\n", path, strerror(errno));
        return 1;
    }
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        char *p = line, *eq, *k, *v, *end;

        lineno++;
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        if ((end = strchr(p, '#')) != NULL)
            *end = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strlen(p);
        while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*p == '\0')
            continue;
        eq = strchr(p, '=');
        if (eq == NULL) {
            fprintf(stderr, "sluice: %s: expected `key = value`\n", where);
            rc = 2;
            break;
        }
        *eq = '\0';
        k = p;
        v = eq + 1;
        for (end = eq; end > k && (end[-1] == ' ' || end[-1] == '\t');)
            *--end = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        rc = apply_setting(c, keep(c, k), keep(c, v), where);
    }
    fclose(f);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    const char *v;
    char **files = sl_xcalloc((size_t)argc + 1, sizeof(*files));
    int nfiles = 0, i, rc = 1;
    bool quiet = false, progress = isatty(STDERR_FILENO), kafka_in, kafka_out;
    run_cfg c = {.input = "-", .output = "-", .store_uri = SL_STORE_DEFAULT_URI};
    sl_run_opts opts = {0};
    sl_run_report rep;
    sl_program *prog = NULL;
    sl_input src = {0};
    sl_sink sink = {0};
    sl_store store = {0};
    sl_error err;
    struct sigaction sa;
    reload_ctx rctx;
    char flag[64];

    sl_error_clear(&err);
    memset(&rep, 0, sizeof(rep));
    /* Signals first: a stop or reload that arrives while sluice is still
     * compiling or connecting must not kill it. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* config files first, so that flags override them wherever they stand */
    for (i = 0; i < argc; i++)
        if ((v = opt_value(argc, argv, &i, "--config")) != NULL) {
            if (*v == '\0') {
                rc = usage_error("%s", "option --config needs a value");
                goto out;
            }
            if ((rc = read_config(&c, v)) != 0)
                goto out;
        }
    rc = 1;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        static const char *const valued[] = {"--input",  "--output",    "--store",
                                             "--stats",  "--threads",   "--batch",
                                             "--topics", "--idle-exit", "--tombstone-retention",
                                             NULL};
        size_t k;

        for (k = 0; valued[k]; k++)
            if ((v = opt_value(argc, argv, &i, valued[k])) != NULL)
                break;
        if (valued[k]) {
            snprintf(flag, sizeof(flag), "%s", valued[k]);
            if (apply_setting(&c, valued[k] + 2, v, flag) != 0) {
                rc = 2;
                goto out;
            }
        } else if ((v = opt_value(argc, argv, &i, "--config")) != NULL) {
            continue; /* read above */
        } else if ((v = opt_value(argc, argv, &i, "--set")) != NULL) {
            char *eq = strchr(v, '=');
            char key[256];

            if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof(key)) {
                rc = usage_error("--set wants KEY=VALUE, not '%s'", v);
                goto out;
            }
            snprintf(key, sizeof(key), "%.*s", (int)(eq - v), v);
            if (strncmp(key, "kafka.", 6) != 0) {
                rc = usage_error("--set %s: only kafka.<property> settings go through --set", v);
                goto out;
            }
            if (apply_setting(&c, key, eq + 1, "--set") != 0) {
                rc = 2;
                goto out;
            }
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strcmp(a, "--progress") == 0) {
            progress = true;
        } else if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                files[nfiles++] = argv[i];
        } else if (a[0] == '-' && a[1] == '-') {
            rc = usage_error("unknown option '%s'", a);
            goto out;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    opts.threads = c.threads;
    opts.batch = c.batch;
    if (nfiles == 0) {
        rc = usage_error("%s", "run needs at least one FILE.rules");
        goto out;
    }
    /* Kafka when a broker is named: in unless --input, out unless --output */
    kafka_in = sl_kafka_conf_get(&c.kafka, "bootstrap.servers") && !c.input_set;
    kafka_out = sl_kafka_conf_get(&c.kafka, "bootstrap.servers") && !c.output_set;
    if (c.topics && !kafka_in) {
        rc = usage_error("%s", "--topics needs --set kafka.bootstrap.servers=HOST:PORT (and no "
                               "--input)");
        goto out;
    }
    if (kafka_in && c.topics == NULL) {
        rc = usage_error("%s", "Kafka input needs --topics NAME[,NAME...] or --topics '^REGEX'");
        goto out;
    }
    if (c.idle_exit_s && !kafka_in) {
        rc = usage_error("%s", "--idle-exit applies to Kafka input (files end by themselves)");
        goto out;
    }
    prog = compile(files, nfiles);
    if (prog == NULL)
        goto out;
    if (sl_store_open(&store, c.store_uri, &err) != 0 ||
        (kafka_in ? sl_input_open_kafka(&src, &c.kafka, c.topics, c.idle_exit_s * 1000, &err)
                  : sl_input_open_files(&src, c.input, &err)) != 0 ||
        (kafka_out ? sl_sink_open_kafka(&sink, &c.kafka, &err)
                   : sl_sink_open_files(&sink, c.output, &err)) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        rc = err.code == SL_ERR_USAGE ? 2 : 1;
        goto out;
    }
    opts.progress = progress && !quiet;
    opts.stop = &stop_requested;
    opts.tombstone_ms = c.tombstone_ms;
    rctx.files = files;
    rctx.nfiles = nfiles;
    opts.reload_seq = &reload_requests;
    opts.reload = reload_rules;
    opts.reload_arg = &rctx;
    if (sl_pipeline_run(prog, &src, &sink, &store, &opts, &rep, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        /* 3: everything is written, only the input offsets were not
         * committed (docs/cli.md); the next run redoes them */
        rc = rep.uncommitted ? 3 : 1;
    } else {
        rc = 0;
    }
    if (!quiet)
        print_summary(&rep, prog, kafka_in ? c.topics : c.input, kafka_out ? "kafka" : c.output);
    if (c.stats && write_stats(c.stats, &rep) != 0)
        rc = 1;
out:
    sl_run_report_free(&rep);
    sl_sink_destroy(&sink);
    sl_input_destroy(&src);
    sl_store_destroy(&store);
    if (prog)
        sl_program_unref(prog);
    sl_kafka_conf_free(&c.kafka);
    for (i = 0; i < (int)c.nowned; i++)
        free(c.owned[i]);
    free(c.owned);
    free(files);
    return rc;
}

/* `sluice test`: what the rules decide for each event, one line each, with
 * no state and no outputs written. */
static void print_verdict(const sl_item *it, bool records, sl_proc *w)
{
    static const char *const fates[] = {
        [SL_FATE_BLANK] = "skipped (blank line)",
        [SL_FATE_TX] = "skipped (transaction marker)",
        [SL_FATE_SCHEMA] = "skipped (schema change)",
        [SL_FATE_MESSAGE] = "skipped (logical decoding message)",
        [SL_FATE_TOMBSTONE] = "skipped (tombstone)",
    };
    const char *name = strrchr(it->input, '/');
    size_t d, n, i;
    bool first = true;

    printf("%s:%lld", name ? name + 1 : it->input, (long long)it->pos);
    if (it->qname.len)
        printf("  %s %s", it->qname.data, it->key.len ? it->key.data : "");
    if (it->origin >= 0)
        printf("  from %s", it->prog->sites[it->origin].name);
    printf(": ");
    switch (it->verdict) {
    case SL_VERDICT_ROUTED:
        printf("routed ->");
        for (d = 0; d < it->prog->nsites; d++)
            if (sl_siteset_has(&it->dests, (int)d)) {
                printf("%s %s", first ? "" : ",", it->prog->sites[d].name);
                first = false;
            }
        printf("\n");
        break;
    case SL_VERDICT_FILTERED:
        printf("filtered (where)\n");
        break;
    case SL_VERDICT_UNROUTED:
        printf("no route applies\n");
        break;
    case SL_VERDICT_IGNORED:
        printf("ignored (ignore table)\n");
        break;
    case SL_VERDICT_SKIPPED:
        printf("%s\n", it->fate < sizeof(fates) / sizeof(fates[0]) && fates[it->fate]
                           ? fates[it->fate]
                           : "skipped");
        break;
    case SL_VERDICT_DUPLICATE:
        printf("duplicate\n");
        break;
    case SL_VERDICT_DEAD:
        printf("dead letter: %s\n", it->err.msg);
        break;
    case SL_VERDICT_ECHO:
        printf("echo (acknowledges a version sluice sent)\n");
        break;
    case SL_VERDICT_SAME:
        printf("unchanged (the row already has this content)\n");
        break;
    case SL_VERDICT_KEPT:
        printf("conflict lost: the current version stays\n");
        break;
    }
    if (records) {
        const sl_record *recs = sl_proc_outputs(w, &n);
        sl_buf line = SL_BUF_INIT;

        for (i = 0; i < n; i++) {
            sl_buf_reset(&line);
            sl_record_write_line(&recs[i], true, true, &line);
            printf("    %s\n", line.data);
        }
        sl_buf_free(&line);
    }
}

static int cmd_test(int argc, char **argv)
{
    const char *input = "-", *v;
    char **files = sl_xcalloc((size_t)argc + 1, sizeof(*files));
    int nfiles = 0, i, r, rc = 1;
    bool records = false;
    sl_program *prog = NULL;
    sl_input src = {0};
    sl_proc *w = NULL;
    sl_item it;
    sl_json j;
    sl_msg msg;
    sl_error err;

    sl_item_init(&it);
    sl_json_init(&j);
    for (i = 0; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--input")) != NULL) {
            if (*v == '\0') {
                rc = usage_error("%s", "option --input needs a value");
                goto out;
            }
            input = v;
        } else if (strcmp(argv[i], "--records") == 0) {
            records = true;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            rc = usage_error("unknown option '%s'", argv[i]);
            goto out;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0) {
        rc = usage_error("%s", "test needs at least one FILE.rules");
        goto out;
    }
    prog = compile(files, nfiles);
    if (prog == NULL)
        goto out;
    if (sl_input_open_files(&src, input, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    w = sl_proc_new(NULL, NULL);
    while ((r = src.ops->poll(src.self, &msg, -1, &err)) != 0) {
        if (r < 0) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            goto out;
        }
        if (r != 1)
            continue;
        sl_item_decode(&it, prog, msg.line, msg.len, msg.input, msg.pos, &j);
        if (sl_proc_item(w, &it, &err) != 0) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            goto out;
        }
        print_verdict(&it, records, w);
        sl_proc_reset(w, NULL);
    }
    rc = 0;
out:
    sl_proc_free(w);
    sl_input_destroy(&src);
    sl_item_free(&it);
    sl_json_free(&j);
    if (prog)
        sl_program_unref(prog);
    free(files);
    return rc;
}

static int print_progress(void *arg, const char *origin, const char *partition,
                          const char *position, int64_t events)
{
    char a[32];

    thousands(a, sizeof(a), (uint64_t)events);
    printf("  %-16s %-16s %12s  %s\n", origin, partition[0] ? partition : "-", a, position);
    return 0;
}

/* ---- sluice conflicts ------------------------------------------------------------ */

typedef struct conf_print {
    bool json;
    size_t n;
} conf_print;

static void json_field(const char *name, sl_str v, bool raw, bool first)
{
    sl_buf b = SL_BUF_INIT;

    if (raw && v.len)
        sl_buf_append(&b, v.p, v.len);
    else
        sl_buf_json_str(&b, v.p ? v.p : "", v.len);
    printf("%s\"%s\":%s", first ? "" : ",", name, b.data);
    sl_buf_free(&b);
}

static void when(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0) {
        snprintf(out, n, "-");
        return;
    }
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int print_conflict(void *arg, const sl_conflict_rec *c)
{
    conf_print *cp = arg;
    char det[32], dec[32];

    cp->n++;
    if (cp->json) {
        printf("{");
        json_field("id", c->id, false, true);
        json_field("table", c->table, false, false);
        json_field("key", c->key, true, false);
        json_field("site_incoming", c->site_incoming, false, false);
        json_field("site_current", c->site_current, false, false);
        printf(",\"v_current\":%lld,\"v_result\":%lld", (long long)c->v_current,
               (long long)c->v_result);
        json_field("base", c->base, true, false);
        json_field("current", c->current, true, false);
        json_field("incoming", c->incoming, true, false);
        json_field("result", c->result, true, false);
        json_field("rule", c->rule, false, false);
        json_field("strategy", c->strategy, false, false);
        json_field("status", c->status, false, false);
        json_field("reason", c->reason, false, false);
        json_field("position", c->position, false, false);
        printf(",\"ts_incoming\":%lld,\"ts_current\":%lld,\"detected_ms\":%lld,"
               "\"decided_ms\":%lld}\n",
               (long long)c->ts_incoming, (long long)c->ts_current, (long long)c->detected_ms,
               (long long)c->decided_ms);
        return 0;
    }
    when(c->detected_ms, det, sizeof(det));
    when(c->decided_ms, dec, sizeof(dec));
    printf("%.*s  %-8.*s %.*s %.*s\n", (int)c->id.len, c->id.p, (int)c->status.len, c->status.p,
           (int)c->table.len, c->table.p, (int)c->key.len, c->key.p);
    printf("    %.*s (v%lld, ts %lld) vs %.*s (ts %lld): %.*s by %.*s -> v%lld\n",
           (int)c->site_current.len, c->site_current.p, (long long)c->v_current,
           (long long)c->ts_current, (int)c->site_incoming.len, c->site_incoming.p,
           (long long)c->ts_incoming, (int)c->strategy.len, c->strategy.p, (int)c->rule.len,
           c->rule.p, (long long)c->v_result);
    printf("    base     %.*s\n    current  %.*s\n    incoming %.*s\n    result   %.*s\n",
           (int)c->base.len, c->base.p, (int)c->current.len, c->current.p, (int)c->incoming.len,
           c->incoming.p, (int)c->result.len, c->result.p);
    if (c->reason.len)
        printf("    reason   %.*s\n", (int)c->reason.len, c->reason.p);
    printf("    detected %s  decided %s\n", det, dec);
    return 0;
}

static int cmd_conflicts(int argc, char **argv)
{
    const char *store_uri = SL_STORE_DEFAULT_URI, *v, *id = NULL, *result = NULL;
    sl_conflict_filter f = {0};
    conf_print cp = {0};
    sl_store store = {0};
    sl_error err;
    void *sess = NULL;
    int i, rc = 1, limit = 0;
    bool decide = argc > 0 && strcmp(argv[0], "decide") == 0;

    for (i = decide ? 1 : 0; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--store")) != NULL && *v)
            store_uri = v;
        else if (!decide && (v = opt_value(argc, argv, &i, "--table")) != NULL && *v)
            f.table = v;
        else if (!decide && (v = opt_value(argc, argv, &i, "--key")) != NULL && *v)
            f.key = v;
        else if (!decide && (v = opt_value(argc, argv, &i, "--site")) != NULL && *v)
            f.site = v;
        else if (!decide && (v = opt_value(argc, argv, &i, "--status")) != NULL && *v)
            f.status = v;
        else if (!decide && (v = opt_value(argc, argv, &i, "--limit")) != NULL && *v) {
            if (parse_count(v, 1 << 30, &limit) != 0)
                return usage_error("conflicts: --limit wants a number, not '%s'", v);
        } else if (!decide && strcmp(argv[i], "--json") == 0)
            cp.json = true;
        else if (decide && (v = opt_value(argc, argv, &i, "--result")) != NULL && *v)
            result = v;
        else if (decide && id == NULL && argv[i][0] != '-')
            id = argv[i];
        else
            return usage_error("conflicts: unexpected argument '%s'", argv[i]);
    }
    if (f.status && strcmp(f.status, SL_CONFLICT_OPEN) && strcmp(f.status, SL_CONFLICT_RESOLVED) &&
        strcmp(f.status, SL_CONFLICT_OPERATOR))
        return usage_error("conflicts: --status is open, resolved or operator, not '%s'", f.status);
    if (decide && id == NULL)
        return usage_error("%s", "conflicts decide: which conflict? (sluice conflicts decide ID)");
    if (result) {
        sl_json j;
        int bad;

        sl_json_init(&j);
        bad = sl_json_parse(&j, result, strlen(result), &err) != 0 || j.tok[0].type != SL_J_OBJECT;
        sl_json_free(&j);
        if (bad)
            return usage_error("%s", "conflicts decide: --result must be a JSON object (the row)");
    }
    if (sl_store_open(&store, store_uri, &err) != 0 ||
        (sess = store.ops->session_open(store.self, &err)) == NULL) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    if (decide) {
        sl_str sid = {id, strlen(id)}, st = {SL_CONFLICT_OPERATOR, strlen(SL_CONFLICT_OPERATOR)};
        sl_str res = {result ? result : "", result ? strlen(result) : 0};
        int r = store.ops->conflict_decide(sess, sid, st, res, &err);

        if (r < 0)
            fprintf(stderr, "sluice: %s\n", err.msg);
        else if (r == 0)
            fprintf(stderr, "sluice: no conflict %s in %s\n", id, store_uri);
        else
            printf("conflict %s: decided by an operator\n", id);
        rc = r == 1 ? 0 : 1;
        goto out;
    }
    if (store.ops->conflicts_each(sess, &f, (size_t)limit, print_conflict, &cp, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    if (!cp.json)
        fprintf(stderr, "%zu conflict%s\n", cp.n, cp.n == 1 ? "" : "s");
    rc = 0;
out:
    if (sess)
        store.ops->session_close(sess);
    sl_store_destroy(&store);
    return rc;
}

typedef struct rows_print {
    const char *key; /* only this key (canonical JSON), or NULL */
    size_t n, limit;
    sl_buf line;
} rows_print;

static int print_row(void *arg, sl_str table, sl_str key, sl_str doc)
{
    rows_print *rp = arg;
    sl_rowstate st;
    sl_error e;

    if (rp->key && (key.len != strlen(rp->key) || memcmp(key.p, rp->key, key.len) != 0))
        return 0;
    sl_rowstate_init(&st);
    sl_buf_reset(&rp->line);
    sl_buf_puts(&rp->line, "{\"table\":");
    sl_buf_json_str(&rp->line, table.p, table.len);
    sl_buf_puts(&rp->line, ",\"key\":");
    sl_buf_append(&rp->line, key.p, key.len); /* canonical key JSON */
    if (sl_rowstate_read(&st, doc.p, doc.len, &e) != 0) {
        /* say so and go on: one damaged row must not hide the others */
        sl_buf_puts(&rp->line, ",\"error\":");
        sl_buf_json_str(&rp->line, e.msg, strlen(e.msg));
    } else {
        sl_buf_puts(&rp->line, ",\"state\":");
        sl_rowstate_json(&st, &rp->line);
    }
    sl_buf_puts(&rp->line, "}\n");
    fwrite(rp->line.data, 1, rp->line.len, stdout);
    sl_rowstate_free(&st);
    rp->n++;
    return rp->limit && rp->n >= rp->limit;
}

/* sluice rows: what the store holds per row, decoded (the documents are
 * binary, docs/store.md). */
static int cmd_rows(int argc, char **argv)
{
    const char *store_uri = SL_STORE_DEFAULT_URI, *table = NULL, *v;
    rows_print rp = {0};
    sl_store store = {0};
    sl_error err;
    void *sess = NULL;
    int i, rc = 1, limit = 0;

    for (i = 0; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--store")) != NULL && *v)
            store_uri = v;
        else if ((v = opt_value(argc, argv, &i, "--table")) != NULL && *v)
            table = v;
        else if ((v = opt_value(argc, argv, &i, "--key")) != NULL && *v)
            rp.key = v;
        else if ((v = opt_value(argc, argv, &i, "--limit")) != NULL && *v) {
            if (parse_count(v, 1 << 30, &limit) != 0)
                return usage_error("rows: --limit wants a number, not '%s'", v);
        } else
            return usage_error("rows: unexpected argument '%s'", argv[i]);
    }
    rp.limit = (size_t)limit;
    if (sl_store_open(&store, store_uri, &err) != 0 ||
        (sess = store.ops->session_open(store.self, &err)) == NULL) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    if (table && rp.key) {
        /* one row: a lookup, not a scan */
        sl_str t = {table, strlen(table)}, k = {rp.key, strlen(rp.key)};
        sl_buf doc = SL_BUF_INIT;
        int r = store.ops->row_get(sess, t, k, &doc, &err);

        if (r == 1)
            print_row(&rp, t, k, (sl_str){doc.data ? doc.data : "", doc.len});
        sl_buf_free(&doc);
        if (r < 0) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            goto out;
        }
    } else if (store.ops->rows_each(sess, table, print_row, &rp, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "%zu row%s\n", rp.n, rp.n == 1 ? "" : "s");
    rc = 0;
out:
    sl_buf_free(&rp.line);
    if (sess)
        store.ops->session_close(sess);
    sl_store_destroy(&store);
    return rc;
}

static int cmd_status(int argc, char **argv)
{
    const char *store_uri = SL_STORE_DEFAULT_URI, *v;
    sl_store store = {0};
    sl_error err;
    void *sess = NULL;
    int i, rc = 1;

    for (i = 0; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--store")) != NULL && *v)
            store_uri = v;
        else
            return usage_error("status: unexpected argument '%s'", argv[i]);
    }
    if (sl_store_open(&store, store_uri, &err) != 0 ||
        (sess = store.ops->session_open(store.self, &err)) == NULL) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    printf("store %s\n  %-16s %-16s %12s  %s\n", store_uri, "origin", "partition", "events",
           "newest position");
    if (store.ops->progress_each(sess, print_progress, NULL, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    rc = 0;
out:
    if (sess)
        store.ops->session_close(sess);
    sl_store_destroy(&store);
    return rc;
}

int sl_cli_main(int argc, char **argv)
{
    const char *cmd;

    sl_store_forget_shm();
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    cmd = argv[1];
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "explain") == 0)
        return cmd_explain(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "test") == 0)
        return cmd_test(argc - 2, argv + 2);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 2, argv + 2);
    if (strcmp(cmd, "conflicts") == 0)
        return cmd_conflicts(argc - 2, argv + 2);
    if (strcmp(cmd, "rows") == 0)
        return cmd_rows(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    return usage_error("unknown command '%s'", cmd);
}
