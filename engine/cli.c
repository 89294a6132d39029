/*
 * cli.c - subcommands: check, explain, run, status, version, help.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../connectors/sink.h"
#include "../connectors/source.h"
#include "../connectors/store.h"
#include "cli.h"
#include "pipeline.h"
#include "process.h"

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
    LINE("dead letters", r->dead, p->dead_letter_topic);
    if (r->resumed)
        LINE("resumed", r->resumed, "input lines finished by an earlier run, not read again");
    if (r->reloads)
        LINE("reloads", (uint64_t)r->reloads, "rule reloads (SIGHUP) that took effect");
    if (strcmp(output, "-") != 0)
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
            "\"stopped\":%d,\"reloads\":%d,\"topics\":{",
            (unsigned long long)r->read, (unsigned long long)r->routed,
            (unsigned long long)r->written, (unsigned long long)r->filtered,
            (unsigned long long)r->unrouted, (unsigned long long)r->ignored,
            (unsigned long long)r->duplicate, (unsigned long long)r->skipped,
            (unsigned long long)r->dead, (unsigned long long)r->resumed, r->seconds, r->threads,
            r->stopped ? 1 : 0, r->reloads);
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

static int cmd_run(int argc, char **argv)
{
    const char *input = "-", *output = "-", *store_uri = SL_STORE_DEFAULT_URI;
    const char *stats = NULL, *v;
    char **files = sl_xcalloc((size_t)argc + 1, sizeof(*files));
    int nfiles = 0, i, rc = 1;
    bool quiet = false, progress = isatty(STDERR_FILENO);
    sl_run_opts opts = {0};
    sl_run_report rep;
    sl_program *prog = NULL;
    sl_input src = {0};
    sl_sink sink = {0};
    sl_store store = {0};
    sl_error err;
    struct sigaction sa;
    reload_ctx rctx;

    sl_error_clear(&err);
    memset(&rep, 0, sizeof(rep));
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];

#define VALUE(name) ((v = opt_value(argc, argv, &i, name)) != NULL)
        if (VALUE("--input")) {
            input = v;
        } else if (VALUE("--output")) {
            output = v;
        } else if (VALUE("--store")) {
            store_uri = v;
        } else if (VALUE("--stats")) {
            stats = v;
        } else if (VALUE("--threads")) {
            if (parse_count(v, 256, &opts.threads) != 0) {
                rc = usage_error("--threads wants a number from 1 to 256, not '%s'", v);
                goto out;
            }
        } else if (VALUE("--batch")) {
            if (parse_count(v, 65536, &opts.batch) != 0) {
                rc = usage_error("--batch wants a number from 1 to 65536, not '%s'", v);
                goto out;
            }
        } else if (VALUE("--set") || VALUE("--topics") || VALUE("--config")) {
            rc = usage_error("%s: Kafka input and output are not part of this build yet; use "
                             "--input and --output",
                             a);
            goto out;
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
#undef VALUE
        if (v != NULL && *v == '\0') {
            rc = usage_error("option %s needs a value", a);
            goto out;
        }
        v = NULL;
    }
    if (nfiles == 0) {
        rc = usage_error("%s", "run needs at least one FILE.rules");
        goto out;
    }
    prog = compile(files, nfiles);
    if (prog == NULL)
        goto out;
    if (sl_store_open(&store, store_uri, &err) != 0 ||
        sl_input_open_files(&src, input, &err) != 0 ||
        sl_sink_open_files(&sink, output, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        rc = err.code == SL_ERR_USAGE ? 2 : 1;
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    opts.progress = progress && !quiet;
    opts.stop = &stop_requested;
    rctx.files = files;
    rctx.nfiles = nfiles;
    opts.reload_seq = &reload_requests;
    opts.reload = reload_rules;
    opts.reload_arg = &rctx;
    if (sl_pipeline_run(prog, &src, &sink, &store, &opts, &rep, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        rc = 1;
    } else {
        rc = 0;
    }
    if (!quiet)
        print_summary(&rep, prog, input, output);
    if (stats && write_stats(stats, &rep) != 0)
        rc = 1;
out:
    sl_run_report_free(&rep);
    sl_sink_destroy(&sink);
    sl_input_destroy(&src);
    sl_store_destroy(&store);
    if (prog)
        sl_program_unref(prog);
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
