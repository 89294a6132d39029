/*
 * kafka_passthrough.c - the Kafka-to-Kafka baseline for tests/bench/kafka.sh.
 *
 *   kafka_passthrough -b BOOTSTRAP -g GROUP -t TOPICS -o OUTPUT [-i IDLE_SECONDS]
 *                     [-m] [-r RECORDS -n INPUTS] [-X PROP=VALUE]...
 *   kafka_passthrough -b BOOTSTRAP -C PARTITIONS TOPIC...
 *
 * A librdkafka consumer group reads TOPICS (a comma-separated list, or one
 * '^REGEX' as sluice's --topics takes it) and produces every message
 * unchanged (key, value, headers) to the topic OUTPUT, keyed, so librdkafka's
 * partitioner picks the partition. Consumer and producer get the settings
 * sluice gives its own (docs/kafka.md): no auto commit, earliest,
 * read_committed, the same prefetch (queued.max.messages.kbytes=32768,
 * fetch.max.bytes=8 MiB) and metadata refresh; idempotent producer,
 * acks=all, linger.ms=5, one produce request in flight per broker, a 32
 * MiB producer queue, no message timeout.
 * About once a second it waits for every delivery (rd_kafka_flush:
 * single-threaded, nothing is produced meanwhile) and then commits the
 * consumed offsets, as sluice's checkpoint does. It exits after
 * IDLE_SECONDS (default 5) without a message, after a final flush and
 * commit. -X sets a librdkafka property on both, after those defaults.
 * -m (a diagnostic, not the baseline) writes each message to the topic
 * OUTPUT<input topic> instead, so the output spreads over as many topics
 * and partitions as the input, as sluice's one topic per destination does.
 *
 * -r RECORDS -n INPUTS (the replay, a ceiling for sluice, not the baseline)
 * consumes the input the same way but produces the records of the file
 * RECORDS instead of what it reads: one record per line, tab-separated
 * topic, key, value (empty: null) and header name/value pairs, such as
 * sluice's own outputs for that input (kafka.sh writes the file from a
 * file-mode run). They go out in file order, paced by the input: after k of
 * the INPUTS messages, the first k * records / INPUTS of them. So the broker
 * and librdkafka do all the work sluice's run makes them do, and the program
 * none of its processing: its time is the best any engine could reach here.
 *
 * One thread polls the consumer and calls the producer: this is the least a
 * consume->produce program can do, the floor sluice is compared with.
 *
 * On success prints one line to stdout:
 *   messages=N bytes=B first_ms=T0 last_ms=T1 outputs=M load_ms=L
 * (bytes = keys + values; T0/T1 = wall-clock milliseconds of the first
 * message consumed and of the last one acknowledged by the broker; M =
 * messages produced; L = milliseconds spent reading RECORDS before the
 * consumer started, which a timing of the replay leaves out).
 * Exit status 0, or 1 with a message on stderr.
 *
 * -C creates the benchmark's topics (PARTITIONS each, the broker's default
 * replication; existing ones are left as they are) and exits: one admin
 * request instead of one JVM per topic with kafka.sh topic create.
 *
 * Build: cc -O2 -o kafka_passthrough kafka_passthrough.c -lrdkafka
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

typedef struct {
    int64_t delivered;
    int64_t last_ack_ms;
    int failed;
    char why[512];
} stats;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    stats *st = opaque;

    (void)rk;
    if (m->err) {
        if (!st->failed)
            snprintf(st->why, sizeof(st->why), "delivery failed: %s", rd_kafka_err2str(m->err));
        st->failed = 1;
        return;
    }
    st->delivered++;
    st->last_ack_ms = wall_ms();
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_passthrough: %s=%s: %s\n", k, v, errstr);
        return -1;
    }
    return 0;
}

/* Wait until the broker acknowledged everything produced, then commit the
 * offsets of everything consumed: every consumed message has been produced
 * before this point, so the commit never runs ahead of the output. */
static int checkpoint(rd_kafka_t *cons, rd_kafka_t *prod, stats *st)
{
    rd_kafka_resp_err_t e;

    while (rd_kafka_flush(prod, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT)
        if (st->failed)
            break;
    if (st->failed) {
        fprintf(stderr, "kafka_passthrough: %s\n", st->why);
        return -1;
    }
    e = rd_kafka_commit(cons, NULL, 0);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        fprintf(stderr, "kafka_passthrough: commit: %s\n", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

/* -C: create TOPICS with `parts` partitions each. */
static int create_topics(const char *bootstrap, int parts, char **names, int n)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    rd_kafka_NewTopic_t **nt = calloc((size_t)n, sizeof(*nt));
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_topic_result_t **res;
    size_t nres = 0, i;
    char errstr[512];
    int rc = 1;

    if (set(conf, "bootstrap.servers", bootstrap))
        goto out;
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_passthrough: %s\n", errstr);
        goto out;
    }
    conf = NULL;
    for (i = 0; i < (size_t)n; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], parts, -1, errstr, sizeof(errstr));
        if (!nt[i]) {
            fprintf(stderr, "kafka_passthrough: %s: %s\n", names[i], errstr);
            goto out;
        }
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
    ev = rd_kafka_queue_poll(q, 60000);
    if (!ev || rd_kafka_event_error(ev)) {
        fprintf(stderr, "kafka_passthrough: create topics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "timed out");
        goto out;
    }
    res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nres);
    for (i = 0; i < nres; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);

        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, "kafka_passthrough: create %s: %s\n",
                    rd_kafka_topic_result_name(res[i]), rd_kafka_err2str(e));
            goto out;
        }
    }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    for (i = 0; nt && i < (size_t)n; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    if (rk)
        rd_kafka_destroy(rk);
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rc;
}

/* -r: the records to produce, each a line cut at its tabs. */
typedef struct {
    rd_kafka_topic_t *rkt;
    char **f; /* key, value, then header name/value pairs */
    size_t *len;
    int nf;
} out_rec;

static rd_kafka_topic_t *topic_handle(rd_kafka_t *prod, rd_kafka_topic_t **known, int *nknown,
                                      const char *name)
{
    int i;

    for (i = 0; i < *nknown; i++)
        if (strcmp(rd_kafka_topic_name(known[i]), name) == 0)
            return known[i];
    if (*nknown == 256)
        return NULL;
    known[*nknown] = rd_kafka_topic_new(prod, name, NULL);
    return known[(*nknown)++];
}

/* Read RECORDS (see the top of the file); returns the count, or -1. */
static long load_records(const char *path, rd_kafka_t *prod, rd_kafka_topic_t **known, int *nknown,
                         out_rec **out)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long nrec = 0, caprec = 0;
    out_rec *recs = NULL;

    if (!fp) {
        perror(path);
        return -1;
    }
    while ((n = getline(&line, &cap, fp)) > 0) {
        out_rec *r;
        char *p, *tab, *copy;
        int nf = 0;

        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (nrec == caprec) {
            caprec = caprec ? caprec * 2 : 4096;
            recs = realloc(recs, (size_t)caprec * sizeof(*recs));
            if (!recs)
                goto oom;
        }
        r = &recs[nrec];
        if (!(copy = strdup(line)))
            goto oom;
        for (p = copy; p; p = tab ? tab + 1 : NULL, nf++)
            tab = strchr(p, '\t');
        r->f = calloc((size_t)nf, sizeof(*r->f));
        r->len = calloc((size_t)nf, sizeof(*r->len));
        if (!r->f || !r->len)
            goto oom;
        nf = 0;
        for (p = copy; p; p = tab) {
            tab = strchr(p, '\t');
            if (tab)
                *tab++ = '\0';
            r->f[nf] = p;
            r->len[nf++] = strlen(p);
        }
        /* topic, key, value, and whole header pairs */
        if (nf < 3 || (nf - 3) % 2 != 0) {
            fprintf(stderr, "kafka_passthrough: %s:%ld: expected topic, key, value, headers\n",
                    path, nrec + 1);
            goto bad;
        }
        r->rkt = topic_handle(prod, known, nknown, r->f[0]);
        if (!r->rkt) {
            fprintf(stderr, "kafka_passthrough: %s: more than 256 topics\n", path);
            goto bad;
        }
        r->f++;
        r->len++;
        r->nf = nf - 1;
        nrec++;
    }
    free(line);
    fclose(fp);
    *out = recs;
    return nrec;
oom:
    fprintf(stderr, "kafka_passthrough: out of memory reading %s\n", path);
bad: /* the program exits on -1: what was read is not freed one by one */
    free(line);
    fclose(fp);
    return -1;
}

/* Produce one message, waiting while the producer queue is full. The
 * headers become librdkafka's on success. */
static rd_kafka_resp_err_t produce(rd_kafka_t *prod, rd_kafka_topic_t *to, const void *key,
                                   size_t klen, void *val, size_t vlen, rd_kafka_headers_t *hdrs)
{
    rd_kafka_resp_err_t e;

    for (;;) {
        if (hdrs)
            e = rd_kafka_producev(
                prod, RD_KAFKA_V_RKT(to), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(val, vlen),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        else
            e = rd_kafka_producev(prod, RD_KAFKA_V_RKT(to),
                                  RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                                  RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(val, vlen),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return e;
        rd_kafka_poll(prod, 100); /* backpressure: let the broker take some */
    }
}

/* -r: produce record r (headers built as sluice's sink builds them). */
static rd_kafka_resp_err_t produce_rec(rd_kafka_t *prod, const out_rec *r)
{
    rd_kafka_headers_t *h = NULL;
    rd_kafka_resp_err_t e;
    int i;

    if (r->nf > 2) {
        h = rd_kafka_headers_new((size_t)(r->nf - 2) / 2);
        for (i = 2; i + 1 < r->nf; i += 2)
            rd_kafka_header_add(h, r->f[i], (ssize_t)r->len[i], r->f[i + 1],
                                (ssize_t)r->len[i + 1]);
    }
    e = produce(prod, r->rkt, r->f[0], r->len[0], r->len[1] ? r->f[1] : NULL, r->len[1], h);
    if (e && h)
        rd_kafka_headers_destroy(h);
    return e;
}

static void usage(void)
{
    fprintf(stderr, "usage: kafka_passthrough -b BOOTSTRAP -g GROUP -t TOPICS -o OUTPUT "
                    "[-i IDLE_SECONDS] [-m] [-r RECORDS -n INPUTS] [-X PROP=VALUE]...\n"
                    "       kafka_passthrough -b BOOTSTRAP -C PARTITIONS TOPIC...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *group = NULL, *topics = NULL, *output = NULL;
    int idle_s = 5, create = 0, opt, rc = 1;
    rd_kafka_conf_t *cc = NULL, *pc = NULL;
    rd_kafka_t *cons = NULL, *prod = NULL;
    rd_kafka_topic_t *out = NULL;
    rd_kafka_topic_partition_list_t *subs;
    stats st = {0};
    int64_t consumed = 0, bytes = 0, first_ms = 0, last_msg, last_ckpt, load_ms;
    char errstr[512], *list, *tok, *save = NULL, *xprops[32];
    int nx = 0, mirror = 0, i, nknown = 0;
    const char *replay = NULL;
    long nrec = 0, next = 0, inputs = 0;
    out_rec *recs = NULL;
    rd_kafka_topic_t *known[256];

    while ((opt = getopt(argc, argv, "b:g:t:o:i:C:X:mr:n:")) != -1) {
        switch (opt) {
        case 'b':
            bootstrap = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 't':
            topics = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'i':
            idle_s = atoi(optarg);
            break;
        case 'm':
            mirror = 1;
            break;
        case 'r':
            replay = optarg;
            break;
        case 'n':
            inputs = atol(optarg);
            break;
        case 'X':
            if (nx == 32 || !strchr(optarg, '='))
                usage();
            xprops[nx++] = optarg;
            break;
        case 'C':
            create = atoi(optarg);
            if (create < 1)
                usage();
            break;
        default:
            usage();
        }
    }
    if (create && bootstrap && optind < argc)
        return create_topics(bootstrap, create, argv + optind, argc - optind);
    if (!bootstrap || !group || !topics || !output || idle_s < 1 || (replay && inputs < 1))
        usage();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    cc = rd_kafka_conf_new();
    if (set(cc, "bootstrap.servers", bootstrap) || set(cc, "group.id", group) ||
        set(cc, "enable.auto.commit", "false") || set(cc, "auto.offset.reset", "earliest") ||
        set(cc, "isolation.level", "read_committed") || set(cc, "enable.partition.eof", "false") ||
        set(cc, "queued.max.messages.kbytes", "32768") || set(cc, "fetch.max.bytes", "8388608") ||
        set(cc, "topic.metadata.refresh.interval.ms", "10000") ||
        set(cc, "client.id", "passthrough"))
        goto out;
    pc = rd_kafka_conf_new();
    if (set(pc, "bootstrap.servers", bootstrap) || set(pc, "enable.idempotence", "true") ||
        set(pc, "acks", "all") || set(pc, "linger.ms", "5") ||
        set(pc, "max.in.flight.requests.per.connection", "1") ||
        set(pc, "queue.buffering.max.kbytes", "32768") || set(pc, "message.timeout.ms", "0") ||
        set(pc, "client.id", "passthrough"))
        goto out;
    /* -X goes to both, after the defaults, as sluice's --set kafka.* does */
    for (i = 0; i < nx; i++) {
        char *eq = strchr(xprops[i], '=');

        *eq = '\0';
        if (set(cc, xprops[i], eq + 1) || set(pc, xprops[i], eq + 1))
            goto out;
    }
    rd_kafka_conf_set_opaque(pc, &st);
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);

    cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof(errstr));
    if (!cons) {
        fprintf(stderr, "kafka_passthrough: consumer: %s\n", errstr);
        goto out;
    }
    cc = NULL; /* owned by cons now */
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
    if (!prod) {
        fprintf(stderr, "kafka_passthrough: producer: %s\n", errstr);
        goto out;
    }
    pc = NULL;
    load_ms = mono_ms();
    if (replay && (nrec = load_records(replay, prod, known, &nknown, &recs)) < 0)
        goto out;
    load_ms = mono_ms() - load_ms;
    if (!mirror && !replay)
        out = rd_kafka_topic_new(prod, output, NULL);
    rd_kafka_poll_set_consumer(cons);

    subs = rd_kafka_topic_partition_list_new(8);
    list = strdup(topics);
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (*tok)
            rd_kafka_topic_partition_list_add(subs, tok, RD_KAFKA_PARTITION_UA);
    free(list);
    if (rd_kafka_subscribe(cons, subs)) {
        fprintf(stderr, "kafka_passthrough: cannot subscribe to %s\n", topics);
        rd_kafka_topic_partition_list_destroy(subs);
        goto out;
    }
    rd_kafka_topic_partition_list_destroy(subs);

    last_msg = last_ckpt = mono_ms();
    while (!stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
        int64_t now = mono_ms();
        int got = 0;

        if (m && m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                fprintf(stderr, "kafka_passthrough: %s\n", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto out;
            }
            rd_kafka_message_destroy(m); /* transient: librdkafka retries */
            m = NULL;
        }
        if (m) {
            rd_kafka_headers_t *h = NULL, *copy = NULL;
            rd_kafka_topic_t *to = out;
            rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

            if (consumed++ == 0)
                first_ms = wall_ms();
            bytes += (int64_t)m->len + (int64_t)m->key_len;
            if (replay) {
                /* the share of the records that k inputs make */
                long due = (long)((double)consumed * (double)nrec / (double)inputs);

                while (!e && next < nrec && next < due)
                    e = produce_rec(prod, &recs[next++]);
            } else {
                if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
                    copy = rd_kafka_headers_copy(h);
                if (mirror) {
                    char name[512];

                    snprintf(name, sizeof(name), "%s%s", output, rd_kafka_topic_name(m->rkt));
                    to = rd_kafka_topic_new(prod, name, NULL); /* a reference to a known handle */
                }
                e = produce(prod, to, m->key, m->key_len, m->payload, m->len, copy);
                if (mirror)
                    rd_kafka_topic_destroy(to);
                if (e && copy)
                    rd_kafka_headers_destroy(copy); /* still ours when producev fails */
            }
            rd_kafka_message_destroy(m);
            if (e) {
                fprintf(stderr, "kafka_passthrough: produce: %s\n", rd_kafka_err2str(e));
                goto out;
            }
            last_msg = now;
            got = 1;
        }
        rd_kafka_poll(prod, 0); /* delivery reports */
        if (now - last_ckpt >= 1000) {
            if (checkpoint(cons, prod, &st) != 0)
                goto out;
            last_ckpt = mono_ms();
        }
        if (!got && now - last_msg >= (int64_t)idle_s * 1000)
            break;
    }
    while (next < nrec) { /* fewer inputs came than -n said */
        rd_kafka_resp_err_t e = produce_rec(prod, &recs[next++]);

        if (e) {
            fprintf(stderr, "kafka_passthrough: produce: %s\n", rd_kafka_err2str(e));
            goto out;
        }
    }
    if (checkpoint(cons, prod, &st) != 0)
        goto out;
    if (st.delivered != (replay ? nrec : consumed)) {
        fprintf(stderr, "kafka_passthrough: %lld to produce but %lld acknowledged\n",
                (long long)(replay ? nrec : consumed), (long long)st.delivered);
        goto out;
    }
    printf("messages=%lld bytes=%lld first_ms=%lld last_ms=%lld outputs=%lld load_ms=%lld\n",
           (long long)consumed, (long long)bytes, (long long)first_ms, (long long)st.last_ack_ms,
           (long long)st.delivered, (long long)load_ms);
    rc = 0;
out:
    if (cons) {
        rd_kafka_consumer_close(cons);
        rd_kafka_destroy(cons);
    }
    if (out)
        rd_kafka_topic_destroy(out);
    for (i = 0; i < nknown; i++)
        rd_kafka_topic_destroy(known[i]);
    for (next = 0; next < nrec; next++) {
        free(recs[next].f[-1]); /* the line's copy: its first field, the topic */
        free(recs[next].f - 1);
        free(recs[next].len - 1);
    }
    free(recs);
    if (prod) {
        rd_kafka_flush(prod, 10000);
        rd_kafka_destroy(prod);
    }
    if (cc)
        rd_kafka_conf_destroy(cc);
    if (pc)
        rd_kafka_conf_destroy(pc);
    return rc;
}
