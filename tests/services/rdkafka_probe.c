/*
 * rdkafka_probe: checks that the system's librdkafka works against a real
 * broker in the ways sluice's Kafka connector will use it.
 *
 *   rdkafka_probe BOOTSTRAP IN_TOPIC OUT_TOPIC [N]
 *
 * IN_TOPIC and OUT_TOPIC must exist and be empty (the brokers started by
 * scripts/services/kafka.sh do not create topics on use). The probe runs, in
 * order, and prints one line per check ("ok NAME: ..." or "FAIL NAME: ..."):
 *
 *   idempotent-produce   N keyed messages to IN with enable.idempotence=true
 *   txn-consume          a consumer group (read_committed) reads them back
 *   txn-commit           a transactional producer writes one message to OUT per
 *                        message read, sends the group's offsets with
 *                        send_offsets_to_transaction and commits
 *   group-offsets        the group's committed offsets on IN add up to N
 *   txn-abort            a second transaction of ABORTED messages is aborted,
 *                        then a third of TAIL messages is committed
 *   read-committed       a new group with isolation.level=read_committed sees
 *                        exactly the N + TAIL committed messages on OUT
 *   read-uncommitted     a group with read_uncommitted also sees the ABORTED ones
 *                        (proves that the isolation level is what filtered them)
 *
 * Exit status 0 when every check passed. This is a test tool, not library
 * code: it prints, and it exits.
 */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTS    64
#define ABORTED      10
#define TAIL         5
#define TIMEOUT_MS   30000
#define MAX_WAIT_SEC 60

struct delivery {
    long ok;
    long failed;
    char first_error[256];
};

struct probe {
    const char *bootstrap;
    const char *in_topic;
    const char *out_topic;
    long n;
    char tag[64]; /* makes group and transactional ids unique per run */
    int failures;
};

static void report(struct probe *p, int ok, const char *check, const char *fmt, ...)
{
    va_list ap;
    printf("%s %s: ", ok ? "ok" : "FAIL", check);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (!ok)
        p->failures++;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct delivery *d = opaque;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        d->ok++;
    } else {
        if (d->failed++ == 0)
            snprintf(d->first_error, sizeof d->first_error, "%s", rd_kafka_err2str(m->err));
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    /* Transient errors (a broker connection dropping) are retried by
     * librdkafka; they are shown to help read a failure, not counted. */
    fprintf(stderr, "rdkafka_probe: %s: %s: %s\n", rd_kafka_name(rk),
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* A configuration with the bootstrap address and the given key=value pairs
 * (NULL-terminated); NULL after printing why. */
static rd_kafka_conf_t *make_conf(const struct probe *p, const char *const *kv)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", p->bootstrap, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK)
        goto fail;
    for (; kv && kv[0]; kv += 2) {
        if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            goto fail;
    }
    /* PROBE_DEBUG=protocol (or any librdkafka debug context list) shows, among
     * others, the API versions negotiated with the broker */
    if (getenv("PROBE_DEBUG") && rd_kafka_conf_set(conf, "debug", getenv("PROBE_DEBUG"), errstr,
                                                   sizeof errstr) != RD_KAFKA_CONF_OK)
        goto fail;
    rd_kafka_conf_set_error_cb(conf, on_error);
    return conf;
fail:
    fprintf(stderr, "rdkafka_probe: config: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static rd_kafka_t *new_producer(const struct probe *p, const char *const *kv, struct delivery *d)
{
    char errstr[512];
    rd_kafka_t *rk;
    rd_kafka_conf_t *conf = make_conf(p, kv);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, d);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "rdkafka_probe: producer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static rd_kafka_t *new_consumer(const struct probe *p, const char *group, const char *isolation,
                                const char *topic)
{
    char errstr[512];
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t err;
    const char *kv[] = {"group.id",
                        group,
                        "isolation.level",
                        isolation,
                        "auto.offset.reset",
                        "earliest",
                        "enable.auto.commit",
                        "false",
                        "enable.partition.eof",
                        "false",
                        NULL};
    rd_kafka_conf_t *conf = make_conf(p, kv);
    if (!conf)
        return NULL;
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "rdkafka_probe: consumer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        fprintf(stderr, "rdkafka_probe: subscribe %s: %s\n", topic, rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

static void close_consumer(rd_kafka_t *rk)
{
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* Produce one message, waiting while the local queue is full. */
static rd_kafka_resp_err_t produce(rd_kafka_t *rk, const char *topic, const char *key,
                                   const char *value)
{
    rd_kafka_resp_err_t err;
    for (;;) {
        err =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return err;
        rd_kafka_poll(rk, 100);
    }
}

/* Did a transactional call fail? Reports and frees the error. */
static int txn_failed(struct probe *p, const char *check, const char *what, rd_kafka_error_t *e)
{
    if (!e)
        return 0;
    report(p, 0, check, "%s: %s%s%s", what, rd_kafka_error_string(e),
           rd_kafka_error_is_fatal(e) ? " (fatal)" : "",
           rd_kafka_error_txn_requires_abort(e) ? " (requires abort)" : "");
    rd_kafka_error_destroy(e);
    return 1;
}

static void check_idempotent(struct probe *p)
{
    struct delivery d = {0};
    const char *kv[] = {"enable.idempotence", "true", "linger.ms", "5", NULL};
    rd_kafka_t *rk = new_producer(p, kv, &d);
    char key[32], val[64], errstr[256];
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    long i;

    if (!rk) {
        report(p, 0, "idempotent-produce", "could not create the producer");
        return;
    }
    for (i = 0; i < p->n && !err; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        snprintf(val, sizeof val, "idem-%ld", i);
        err = produce(rk, p->in_topic, key, val);
    }
    rd_kafka_flush(rk, TIMEOUT_MS);
    if (err)
        report(p, 0, "idempotent-produce", "produce: %s", rd_kafka_err2str(err));
    else if (rd_kafka_fatal_error(rk, errstr, sizeof errstr))
        report(p, 0, "idempotent-produce", "fatal error: %s", errstr);
    else
        report(p, d.ok == p->n && d.failed == 0, "idempotent-produce",
               "%ld of %ld delivered, %ld failed%s%s", d.ok, p->n, d.failed,
               d.failed ? ", first: " : "", d.first_error);
    rd_kafka_destroy(rk);
}

/* Offsets to commit: next offset per partition of what was read. */
struct positions {
    int64_t next[MAX_PARTS];
};

/* Read IN with a read_committed group, write to OUT in one transaction, send
 * the group's offsets in it, commit. Then an aborted and a committed one. */
static void check_transactions(struct probe *p)
{
    struct delivery d = {0};
    char group[128], txid[128], key[64], val[96];
    const char *kv[] = {"transactional.id", txid, "linger.ms", "5", NULL};
    rd_kafka_t *prod = NULL, *cons = NULL;
    rd_kafka_topic_partition_list_t *offsets = NULL, *committed = NULL;
    rd_kafka_consumer_group_metadata_t *cgmd = NULL;
    struct positions pos;
    long got = 0, i, sum;
    double deadline;
    int part, ok;

    for (part = 0; part < MAX_PARTS; part++)
        pos.next[part] = -1;
    snprintf(group, sizeof group, "probe-ctp-%s", p->tag);
    snprintf(txid, sizeof txid, "probe-tx-%s", p->tag);

    cons = new_consumer(p, group, "read_committed", p->in_topic);
    prod = new_producer(p, kv, &d);
    if (!cons || !prod) {
        report(p, 0, "txn-commit", "could not create the clients");
        goto out;
    }
    if (txn_failed(p, "txn-commit", "init_transactions",
                   rd_kafka_init_transactions(prod, TIMEOUT_MS)))
        goto out;
    if (txn_failed(p, "txn-commit", "begin_transaction", rd_kafka_begin_transaction(prod)))
        goto out;

    deadline = now_sec() + MAX_WAIT_SEC;
    while (got < p->n && now_sec() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 500);
        rd_kafka_resp_err_t err;
        if (!m)
            continue;
        if (m->err) {
            fprintf(stderr, "rdkafka_probe: consume: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        snprintf(key, sizeof key, "%.*s", (int)m->key_len, (const char *)m->key);
        snprintf(val, sizeof val, "tx-%.*s", (int)m->len, (const char *)m->payload);
        if (m->partition >= 0 && m->partition < MAX_PARTS)
            pos.next[m->partition] = m->offset + 1;
        rd_kafka_message_destroy(m);
        err = produce(prod, p->out_topic, key, val);
        if (err) {
            report(p, 0, "txn-commit", "produce: %s", rd_kafka_err2str(err));
            goto out;
        }
        got++;
    }
    report(p, got == p->n, "txn-consume", "read %ld of %ld messages from %s", got, p->n,
           p->in_topic);
    if (got != p->n)
        goto out;

    offsets = rd_kafka_topic_partition_list_new(8);
    for (part = 0; part < MAX_PARTS; part++) {
        if (pos.next[part] >= 0)
            rd_kafka_topic_partition_list_add(offsets, p->in_topic, part)->offset = pos.next[part];
    }
    cgmd = rd_kafka_consumer_group_metadata(cons);
    if (txn_failed(p, "txn-commit", "send_offsets_to_transaction",
                   rd_kafka_send_offsets_to_transaction(prod, offsets, cgmd, TIMEOUT_MS)))
        goto out;
    if (txn_failed(p, "txn-commit", "commit_transaction",
                   rd_kafka_commit_transaction(prod, TIMEOUT_MS)))
        goto out;
    report(p, d.ok == p->n && d.failed == 0, "txn-commit",
           "%ld messages and offsets of %d partitions committed, %ld delivery failures", d.ok,
           offsets->cnt, d.failed);

    /* the group's offsets were committed by the transaction, not the consumer */
    committed = rd_kafka_topic_partition_list_copy(offsets);
    for (i = 0; i < committed->cnt; i++)
        committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_committed(cons, committed, TIMEOUT_MS)) {
        report(p, 0, "group-offsets", "committed() failed");
    } else {
        sum = 0;
        ok = 1;
        for (i = 0; i < committed->cnt; i++) {
            if (committed->elems[i].offset < 0)
                ok = 0;
            else
                sum += (long)committed->elems[i].offset;
        }
        report(p, ok && sum == p->n, "group-offsets",
               "group %s has committed offsets adding up to %ld (want %ld)", group, sum, p->n);
    }

    /* an aborted transaction, then a committed one after it */
    if (txn_failed(p, "txn-abort", "begin_transaction", rd_kafka_begin_transaction(prod)))
        goto out;
    for (i = 0; i < ABORTED; i++) {
        snprintf(key, sizeof key, "a%ld", i);
        snprintf(val, sizeof val, "aborted-%ld", i);
        produce(prod, p->out_topic, key, val);
    }
    /* delivered to the log first, so that the abort has something to undo */
    rd_kafka_flush(prod, TIMEOUT_MS);
    if (txn_failed(p, "txn-abort", "abort_transaction",
                   rd_kafka_abort_transaction(prod, TIMEOUT_MS)))
        goto out;
    if (txn_failed(p, "txn-abort", "begin_transaction", rd_kafka_begin_transaction(prod)))
        goto out;
    for (i = 0; i < TAIL; i++) {
        snprintf(key, sizeof key, "t%ld", i);
        snprintf(val, sizeof val, "tail-%ld", i);
        produce(prod, p->out_topic, key, val);
    }
    if (txn_failed(p, "txn-abort", "commit_transaction",
                   rd_kafka_commit_transaction(prod, TIMEOUT_MS)))
        goto out;
    report(p, 1, "txn-abort", "%d messages written and aborted, then %d committed", ABORTED, TAIL);
out:
    if (cgmd)
        rd_kafka_consumer_group_metadata_destroy(cgmd);
    if (offsets)
        rd_kafka_topic_partition_list_destroy(offsets);
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    if (prod)
        rd_kafka_destroy(prod);
    close_consumer(cons);
}

/* Read OUT from the start with a new group: count committed and aborted
 * messages; stop when `want` are in and nothing more came for 2 seconds. */
static void check_read(struct probe *p, const char *check, const char *isolation, long want,
                       long want_aborted)
{
    char group[128];
    rd_kafka_t *cons;
    long total = 0, aborted = 0;
    double deadline, quiet_until = 0;

    snprintf(group, sizeof group, "probe-%s-%s", isolation, p->tag);
    cons = new_consumer(p, group, isolation, p->out_topic);
    if (!cons) {
        report(p, 0, check, "could not create the consumer");
        return;
    }
    deadline = now_sec() + MAX_WAIT_SEC;
    while (now_sec() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 200);
        if (!m) {
            if (quiet_until > 0 && now_sec() > quiet_until)
                break;
            continue;
        }
        if (m->err) {
            fprintf(stderr, "rdkafka_probe: consume: %s\n", rd_kafka_message_errstr(m));
        } else {
            total++;
            if (m->len >= 8 && memcmp(m->payload, "aborted-", 8) == 0)
                aborted++;
            if (total >= want)
                quiet_until = now_sec() + 2;
        }
        rd_kafka_message_destroy(m);
    }
    if (total > 0 && rd_kafka_commit(cons, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
        report(p, 0, check, "commit of the consumer's offsets failed");
    close_consumer(cons);
    report(p, total == want && aborted == want_aborted, check,
           "%ld messages on %s, %ld of them aborted (want %ld and %ld)", total, p->out_topic,
           aborted, want, want_aborted);
}

int main(int argc, char **argv)
{
    struct probe p = {0};
    char *end = NULL;

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP IN_TOPIC OUT_TOPIC [N]\n", argv[0]);
        return 2;
    }
    p.bootstrap = argv[1];
    p.in_topic = argv[2];
    p.out_topic = argv[3];
    p.n = 1000;
    if (argc == 5) {
        p.n = strtol(argv[4], &end, 10);
        if (!end || *end || p.n <= 0) {
            fprintf(stderr, "rdkafka_probe: bad N '%s'\n", argv[4]);
            return 2;
        }
    }
    snprintf(p.tag, sizeof p.tag, "%ld-%ld", (long)getpid(), (long)time(NULL));
    printf("info librdkafka %s, broker %s\n", rd_kafka_version_str(), p.bootstrap);

    check_idempotent(&p);
    if (p.failures == 0)
        check_transactions(&p);
    if (p.failures == 0) {
        check_read(&p, "read-committed", "read_committed", p.n + TAIL, 0);
        check_read(&p, "read-uncommitted", "read_uncommitted", p.n + ABORTED + TAIL, ABORTED);
    }
    printf("%s: %d failed\n", p.failures ? "FAIL" : "ok", p.failures);
    return p.failures ? 1 : 0;
}
