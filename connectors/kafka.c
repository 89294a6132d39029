/*
 * kafka.c - consume the sites' change topics, produce per-destination topics.
 *
 * Threads: the consumer is polled by the engine's reader thread and
 * committed by its checkpointing thread (librdkafka handles are thread
 * safe); the producer is called by every worker. librdkafka's own threads
 * talk to the brokers; its callbacks (delivery reports) run inside
 * rd_kafka_poll/rd_kafka_flush on whichever of our threads called them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "../common/buf.h"
#include "kafka.h"

/* ---- configuration ----------------------------------------------------------- */

void sl_kafka_conf_set(sl_kafka_conf *kc, const char *key, const char *value)
{
    size_t i;

    for (i = 0; i < kc->n; i++)
        if (strcmp(kc->keys[i], key) == 0) {
            free(kc->values[i]);
            kc->values[i] = sl_xstrdup(value);
            return;
        }
    kc->keys = sl_xrealloc(kc->keys, (kc->n + 1) * sizeof(*kc->keys));
    kc->values = sl_xrealloc(kc->values, (kc->n + 1) * sizeof(*kc->values));
    kc->keys[kc->n] = sl_xstrdup(key);
    kc->values[kc->n++] = sl_xstrdup(value);
}

const char *sl_kafka_conf_get(const sl_kafka_conf *kc, const char *key)
{
    size_t i;

    for (i = 0; i < kc->n; i++)
        if (strcmp(kc->keys[i], key) == 0)
            return kc->values[i];
    return NULL;
}

void sl_kafka_conf_free(sl_kafka_conf *kc)
{
    size_t i;

    for (i = 0; i < kc->n; i++) {
        free(kc->keys[i]);
        free(kc->values[i]);
    }
    free(kc->keys);
    free(kc->values);
    memset(kc, 0, sizeof(*kc));
}

/* sluice's own kafka.* settings (output topic creation); everything else
 * goes to librdkafka, topic.* properties included */
static bool sluice_key(const char *k)
{
    return strcmp(k, "topic.partitions") == 0 || strcmp(k, "topic.replication") == 0;
}

/* The properties librdkafka knows for one kind of client only, from its
 * own table (rd_kafka_conf_properties_show: "NAME | C/P | ...", where the
 * second column is C, P or *), read once: "\nNAME\n" for each, in one
 * string per kind. A user's property for the other kind of client is not
 * given to this one, which would accept it and log a warning at every
 * start ("... is a consumer property and will be ignored by this producer
 * instance"). */
static char *only_consumer, *only_producer;
static pthread_once_t scopes_once = PTHREAD_ONCE_INIT;

static void read_scopes(void)
{
    char *table = NULL, *line, *next;
    size_t len = 0;
    sl_buf c = {0}, p = {0};
    FILE *f = open_memstream(&table, &len);

    if (f == NULL)
        return;
    rd_kafka_conf_properties_show(f);
    fclose(f);
    sl_buf_puts(&c, "\n");
    sl_buf_puts(&p, "\n");
    for (line = table; line && *line; line = next) {
        char name[128], scope[8];

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (sscanf(line, "%127s | %7s |", name, scope) != 2 || scope[1] != '\0')
            continue;
        if (scope[0] == 'C' || scope[0] == 'P') {
            sl_buf *b = scope[0] == 'C' ? &c : &p;

            sl_buf_puts(b, name);
            sl_buf_puts(b, "\n");
        }
    }
    free(table);
    only_consumer = c.data;
    only_producer = p.data;
}

/* Is `key` a property librdkafka knows for the other kind of client only? */
static bool for_the_other(const char *key, bool producer)
{
    const char *list;
    char probe[160];

    pthread_once(&scopes_once, read_scopes);
    list = producer ? only_consumer : only_producer;
    if (list == NULL || strlen(key) > sizeof(probe) - 3)
        return false;
    snprintf(probe, sizeof(probe), "\n%s\n", key);
    return strstr(list, probe) != NULL;
}

/* Build a librdkafka configuration: sluice's defaults first, then every
 * user property (which wins), skipping sluice's own keys and the
 * properties of the other kind of client. */
static rd_kafka_conf_t *make_conf(const sl_kafka_conf *kc, const char *const *defaults,
                                  bool producer, sl_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    size_t i;

    for (i = 0; defaults[i]; i += 2)
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            sl_error_set(err, SL_ERR_USAGE, "kafka.%s: %s", defaults[i], errstr);
            goto fail;
        }
    for (i = 0; i < kc->n; i++) {
        if (sluice_key(kc->keys[i]) || for_the_other(kc->keys[i], producer))
            continue;
        if (rd_kafka_conf_set(conf, kc->keys[i], kc->values[i], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            sl_error_set(err, SL_ERR_USAGE, "--set kafka.%s=%s: %s", kc->keys[i], kc->values[i],
                         errstr);
            goto fail;
        }
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same clock, read cheaply (to within a few ms): once per message. */
static int64_t coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- source ------------------------------------------------------------------ */

typedef struct kpart {
    char *name; /* "topic/partition" */
    char *topic;
    int32_t partition;
    bool assigned;       /* in this member's assignment now (under ksource.mu) */
    bool lost;           /* taken away as lost (the session expired), not handed over */
    uint64_t revoked_at; /* ksource.assign_gen when it was taken away */
    bool moved_logged;   /* its uncommitted offsets were reported as moved */
    struct kpart *next;
} kpart;

typedef struct ksource {
    rd_kafka_t *rk;
    rd_kafka_message_t *cur; /* the message handed out last, destroyed on the next poll */
    kpart *parts;            /* interned stream names; read by the reader, committed by main */
    kpart *last;             /* the partition of the last message (the reader's own) */
    pthread_mutex_t mu;
    int idle_exit_ms;
    int64_t last_msg_ms;
    bool regex; /* topics that do not exist yet may appear later */
    void (*release_hook)(void *arg);
    void *release_arg;
    /* The engine has stopped polling (it cleared its release hook after its
     * reader ended): the final commit serves the consumer itself, so that
     * the group can be rejoined and the partitions paused. */
    bool detached;
    uint64_t assign_gen;              /* assignments received so far (under mu) */
    bool refusal_logged;              /* a refused commit was reported since the last assignment */
    int session_ms;                   /* session.timeout.ms in force */
    char group[256];                  /* group.id in force */
    rd_kafka_resp_err_t last_refusal; /* the group's last answer to a refused commit */
} ksource;

static const char *const consumer_defaults[] = {
    "group.id",
    "sluice",
    "enable.auto.commit",
    "false",
    "auto.offset.reset",
    "earliest",
    "isolation.level",
    "read_committed",
    "enable.partition.eof",
    "false",
    "client.id",
    "sluice",
    /* librdkafka prefetches up to 64 MiB per consumer by default, plus a
     * fetch response of up to 50 MiB on top; sluice keeps its own bounded
     * batches, so a smaller prefetch keeps the whole process well under
     * 200 MB. Not much smaller: librdkafka (2.0) looks at a full queue again
     * only about once a second, so a prefetch that drains faster than that
     * leaves the reader waiting (16 MiB did, at 40,000 events/s). */
    "queued.max.messages.kbytes",
    "32768",
    "fetch.max.bytes",
    "8388608",
    /* a regex subscription sees topics created later at the next metadata
     * refresh: every 10 s rather than librdkafka's 5 minutes */
    "topic.metadata.refresh.interval.ms",
    "10000",
    NULL,
};

static kpart *part_for(ksource *ks, const char *topic, int32_t partition)
{
    kpart *p;
    char name[512];

    pthread_mutex_lock(&ks->mu);
    for (p = ks->parts; p; p = p->next)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            break;
    if (p == NULL) {
        p = sl_xcalloc(1, sizeof(*p));
        snprintf(name, sizeof(name), "%s/%d", topic, (int)partition);
        p->name = sl_xstrdup(name);
        p->topic = sl_xstrdup(topic);
        p->partition = partition;
        p->next = ks->parts;
        ks->parts = p;
    }
    pthread_mutex_unlock(&ks->mu);
    return p;
}

static int ks_poll(void *self, sl_msg *msg, int timeout_ms, sl_error *err)
{
    ksource *ks = self;
    rd_kafka_message_t *m;
    rd_kafka_headers_t *hdrs = NULL;
    size_t i;

    if (ks->cur) {
        rd_kafka_message_destroy(ks->cur);
        ks->cur = NULL;
    }
    m = rd_kafka_consumer_poll(ks->rk, timeout_ms);
    if (m == NULL) {
        /* idle is counted from the group's first assignment (joining a
         * busy group can take longer than the idle time) or the last message */
        if (ks->idle_exit_ms > 0 && ks->last_msg_ms > 0 &&
            now_ms() - ks->last_msg_ms >= ks->idle_exit_ms)
            return 0;
        return 2;
    }
    if (m->err) {
        /* Transient trouble (broker down, rebalancing) is retried by
         * librdkafka; it has already logged it. Only a fatal error ends us. */
        rd_kafka_resp_err_t e = m->err;
        char what[512];

        snprintf(what, sizeof(what), "%s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        if (e == RD_KAFKA_RESP_ERR__FATAL ||
            (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && !ks->regex) ||
            e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
            e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
            return sl_error_set(err, SL_ERR_IO, "kafka consumer: %s", what);
        return 2;
    }
    ks->cur = m;
    ks->last_msg_ms = coarse_ms();
    memset(msg, 0, sizeof(*msg));
    msg->is_line = false;
    msg->rec.topic.p = rd_kafka_topic_name(m->rkt);
    msg->rec.topic.len = strlen(msg->rec.topic.p);
    msg->rec.partition = m->partition;
    msg->rec.offset = m->offset;
    msg->rec.key = m->key;
    msg->rec.key_len = m->key ? m->key_len : 0;
    msg->rec.value = m->payload;
    msg->rec.value_len = m->payload ? m->len : 0;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (i = 0; i < SL_MAX_HEADERS; i++) {
            const char *name;
            const void *val;
            size_t vlen;

            if (rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen) != RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            msg->rec.headers[i].name.p = name;
            msg->rec.headers[i].name.len = strlen(name);
            msg->rec.headers[i].value.p = val;
            msg->rec.headers[i].value.len = val ? vlen : 0;
            msg->rec.headers[i].null_value = val == NULL;
        }
        msg->rec.nheaders = i;
    }
    /* messages come in runs from one partition: look the list up only when
     * it changes */
    if (ks->last == NULL || ks->last->partition != m->partition ||
        strcmp(ks->last->topic, msg->rec.topic.p) != 0)
        ks->last = part_for(ks, msg->rec.topic.p, m->partition);
    msg->input = ks->last->name;
    msg->input_fp = 0; /* Kafka keeps the progress, not the store */
    msg->pos = m->offset;
    return 1;
}

/* Note which partitions this member holds now (under ks->mu): a commit is
 * sent only for those, and a partition whose commit was refused is known to
 * have moved once an assignment without it arrives. */
static void note_assignment(ksource *ks, rd_kafka_resp_err_t e,
                            const rd_kafka_topic_partition_list_t *parts, bool all, bool lost)
{
    kpart *p;
    int i;

    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (i = 0; i < parts->cnt; i++)
            part_for(ks, parts->elems[i].topic, parts->elems[i].partition);
    }
    pthread_mutex_lock(&ks->mu);
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ks->assign_gen++;
        ks->refusal_logged = false;
        for (i = 0; i < parts->cnt; i++)
            for (p = ks->parts; p; p = p->next)
                if (p->partition == parts->elems[i].partition &&
                    strcmp(p->topic, parts->elems[i].topic) == 0) {
                    p->assigned = true;
                    p->lost = false;
                    p->moved_logged = false;
                }
    } else {
        for (p = ks->parts; p; p = p->next) {
            bool hit = all;

            for (i = 0; !hit && i < parts->cnt; i++)
                hit = p->partition == parts->elems[i].partition &&
                      strcmp(p->topic, parts->elems[i].topic) == 0;
            if (hit && p->assigned) {
                p->assigned = false;
                p->lost = lost;
                p->revoked_at = ks->assign_gen;
            }
        }
    }
    pthread_mutex_unlock(&ks->mu);
}

/* Rebalance: before partitions go to another member, let the engine finish
 * and commit what it read of them, so the new owner starts where we ended.
 * When the session expired (librdkafka revokes the assignment as lost), that
 * commit is refused; ks_commit keeps those offsets until the partitions come
 * back to this member. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ksource *ks = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool lost = e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && rd_kafka_assignment_lost(rk);

    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && ks->last_msg_ms == 0)
        ks->last_msg_ms = now_ms();
    if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        if (ks->cur) {
            rd_kafka_message_destroy(ks->cur);
            ks->cur = NULL;
        }
        if (ks->release_hook)
            ks->release_hook(ks->release_arg);
    }
    /* the cooperative protocol moves only some partitions at a time */
    if (coop) {
        rd_kafka_error_t *err = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                                    ? rd_kafka_incremental_assign(rk, parts)
                                    : rd_kafka_incremental_unassign(rk, parts);

        if (err)
            rd_kafka_error_destroy(err);
    } else {
        rd_kafka_assign(rk, e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? parts : NULL);
    }
    /* after the engine's last commit: nothing more is read, only committed */
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && ks->detached)
        rd_kafka_pause_partitions(rk, parts);
    note_assignment(ks, e, parts, !coop && e != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, lost);
}

static void ks_set_release_hook(void *self, void (*fn)(void *arg), void *arg)
{
    ksource *ks = self;

    ks->release_hook = fn;
    ks->release_arg = arg;
    ks->detached = fn == NULL;
}

static bool ks_finite(void *self)
{
    return false;
}

/* The group refused the commit because this member is not (or no longer)
 * in its current generation: librdkafka rejoins by itself. */
static bool refused(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
           e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR__STATE ||
           e == RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST || e == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
}

/* The coordinator is away or moving (a restarted broker loads its groups). */
static bool transient(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
           e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || e == RD_KAFKA_RESP_ERR__WAIT_COORD ||
           e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
}

/* What became of each partition of a commit (state[i]). */
enum { KC_DONE, KC_WAIT, KC_MOVED, KC_SENT };

/* How long the final commit waits for the partitions to come back after
 * the coordinator has expired this member's old session. */
#define KC_SETTLE_MS 15000

/* One try: commit the partitions of inputs[] that this member holds now.
 * state[i] becomes KC_DONE (committed, or nothing to commit), KC_WAIT (not
 * committed; this member is rejoining and may get it back) or KC_MOVED (an
 * assignment without it came since it was taken away: another member has
 * it). *lost tells whether a partition not committed was taken away because
 * the session expired. Returns the answer to the request (NO_ERROR when
 * none was sent). */
static rd_kafka_resp_err_t commit_held(ksource *ks, const char *const *inputs, const int64_t *done,
                                       size_t n, char *state, bool *lost)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    size_t i;
    kpart *p;

    *lost = false;
    pthread_mutex_lock(&ks->mu);
    for (i = 0; i < n; i++) {
        for (p = ks->parts; p; p = p->next)
            if (strcmp(p->name, inputs[i]) == 0)
                break;
        if (p == NULL) {
            state[i] = KC_DONE; /* not a partition of this consumer */
        } else if (p->assigned) {
            /* Kafka's committed offset is the next one to read. */
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = done[i] + 1;
            state[i] = KC_SENT;
        } else {
            state[i] = ks->assign_gen > p->revoked_at ? KC_MOVED : KC_WAIT;
            *lost = *lost || p->lost;
        }
    }
    pthread_mutex_unlock(&ks->mu);
    if (l->cnt)
        e = rd_kafka_commit(ks->rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    for (i = 0; i < n; i++)
        if (state[i] == KC_SENT)
            state[i] = e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR__NO_OFFSET
                           ? KC_DONE
                           : KC_WAIT;
    return e;
}

/* "a/0 up to offset 12, b/1 up to offset 40 and 3 more": the partitions in
 * state `which` (KC_WAIT also takes KC_MOVED). */
static size_t list_parts(char *buf, size_t size, const char *const *inputs, const int64_t *done,
                         size_t n, const char *state, int which)
{
    size_t i, k = 0, shown = 0;
    int len = 0;

    buf[0] = '\0';
    for (i = 0; i < n; i++) {
        if (state[i] != which && !(which == KC_WAIT && state[i] == KC_MOVED))
            continue;
        if (k++ < 4 && (size_t)len < size) {
            len += snprintf(buf + len, size - (size_t)len, "%s%s up to offset %lld",
                            shown ? ", " : "", inputs[i], (long long)done[i]);
            shown++;
        }
    }
    if (k > shown && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len, " and %zu more", k - shown);
    return k;
}

/* Serve the consumer for about ms (rebalance callbacks: the group is
 * rejoined and the partitions assigned again, paused). A message fetched
 * before the pause is not taken: its offset is not committed. */
static void serve(ksource *ks, int ms)
{
    int64_t end = now_ms() + ms;
    int64_t left;

    while ((left = end - now_ms()) > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ks->rk, (int)left);

        if (m)
            rd_kafka_message_destroy(m);
    }
}

/* One commit request for every partition of this checkpoint this member
 * holds. A commit the group refuses (this member's session expired and it
 * is rejoining, or a rebalance is under way) is not lost: the engine keeps
 * those offsets ("not now") and they are committed once the partitions come
 * back; a partition that went to another member instead is redone by it from
 * the last commit (at least once) and is reported. The engine's last commit
 * (detached: nobody else polls any more) serves the consumer itself until
 * the partitions come back, for session.timeout.ms + KC_SETTLE_MS at most,
 * and otherwise answers "not now" with err naming what was not committed. */
static int ks_commit(void *self, const char *const *inputs, const int64_t *done, size_t n,
                     sl_error *err)
{
    ksource *ks = self;
    char *state = sl_xcalloc(n ? n : 1, 1);
    int64_t t0 = now_ms(), deadline = t0 + ks->session_ms + KC_SETTLE_MS;
    rd_kafka_resp_err_t e;
    bool lost = false, evicted = false, tried = false, was_refused = false;
    size_t i, nwait, nmoved;
    char list[300], why[512];
    int rc = 0;

    for (;;) {
        e = commit_held(ks, inputs, done, n, state, &lost);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET && !refused(e) &&
            !transient(e)) {
            rc = sl_error_set(err, SL_ERR_IO, "kafka: committing offsets of %zu partitions: %s", n,
                              rd_kafka_err2str(e));
            goto out;
        }
        /* lost: librdkafka gave the session up (no answer from the
         * coordinator within session.timeout.ms) and revoked as lost */
        evicted = evicted || lost || rd_kafka_assignment_lost(ks->rk);
        if (refused(e)) {
            bool say;

            ks->last_refusal = e;
            was_refused = true;

            /* once per assignment: the engine tries again every second (the
             * flag is reset by the rebalance callback, on the reader) */
            pthread_mutex_lock(&ks->mu);
            say = !ks->refusal_logged;
            ks->refusal_logged = true;
            pthread_mutex_unlock(&ks->mu);
            if (say) {
                list_parts(list, sizeof(list), inputs, done, n, state, KC_WAIT);
                fprintf(stderr,
                        "sluice: kafka: group %s refused the commit of %s (%s%s); sluice keeps "
                        "these offsets and commits them when it holds the partitions again\n",
                        ks->group, list, rd_kafka_err2str(e),
                        evicted ? ": this member's session expired" : "");
            }
        }
        nwait = nmoved = 0;
        for (i = 0; i < n; i++) {
            nwait += state[i] == KC_WAIT;
            nmoved += state[i] == KC_MOVED;
        }
        if (nwait == 0 || !ks->detached || now_ms() >= deadline)
            break;
        tried = true;
        serve(ks, 500);
    }
    if (ks->detached) {
        if (nwait + nmoved == 0) {
            if (tried)
                fprintf(stderr,
                        "sluice: kafka: committed the offsets of %zu partitions of group %s "
                        "after %s (%.1f s)\n",
                        n, ks->group, was_refused ? "rejoining it" : "waiting for it",
                        (double)(now_ms() - t0) / 1000.0);
            goto out;
        }
        list_parts(list, sizeof(list), inputs, done, n, state, KC_WAIT);
        if (evicted)
            snprintf(why, sizeof(why),
                     "this member was evicted from group %s (no answer from its coordinator "
                     "within session.timeout.ms=%d: an outage longer than that)",
                     ks->group, ks->session_ms);
        else
            snprintf(why, sizeof(why), "group %s did not take the commit (%s)", ks->group,
                     rd_kafka_err2str(was_refused ? ks->last_refusal : e));
        sl_error_set(err, SL_ERR_IO,
                     "kafka: offsets NOT committed for %s: %s, and %s; their outputs are "
                     "written; the next run redoes these records (at least once)",
                     list, why,
                     nmoved ? "the partitions went to another member"
                            : "the partitions did not come back to it in time");
        rc = 1;
        goto out;
    }
    if (nmoved) {
        /* each partition once: the engine then takes it as done */
        pthread_mutex_lock(&ks->mu);
        for (i = 0; i < n; i++) {
            kpart *p;

            if (state[i] != KC_MOVED)
                continue;
            for (p = ks->parts; p; p = p->next)
                if (strcmp(p->name, inputs[i]) == 0)
                    break;
            if (p && p->moved_logged)
                state[i] = KC_DONE;
            else if (p)
                p->moved_logged = true;
        }
        pthread_mutex_unlock(&ks->mu);
        if (list_parts(list, sizeof(list), inputs, done, n, state, KC_MOVED))
            fprintf(stderr,
                    "sluice: kafka: offsets not committed for %s: the partitions went to another "
                    "member of group %s%s; it redoes them from the last commit (at least once)\n",
                    list, ks->group, evicted ? " after this member's session expired" : "");
    }
    if (nwait)
        rc = 1; /* try again at the next checkpoint */
out:
    free(state);
    return rc;
}

static void ks_destroy(void *self)
{
    ksource *ks = self;
    kpart *p, *next;

    if (ks == NULL)
        return;
    if (ks->cur)
        rd_kafka_message_destroy(ks->cur);
    ks->cur = NULL; /* closing may run the rebalance callback, which looks at it */
    if (ks->rk) {
        rd_kafka_consumer_close(ks->rk);
        rd_kafka_destroy(ks->rk);
    }
    for (p = ks->parts; p; p = next) {
        next = p->next;
        free(p->name);
        free(p->topic);
        free(p);
    }
    pthread_mutex_destroy(&ks->mu);
    free(ks);
}

static const sl_input_ops kafka_source_ops = {
    .name = "kafka",
    .poll = ks_poll,
    .finite = ks_finite,
    .commit = ks_commit,
    .set_release_hook = ks_set_release_hook,
    .destroy = ks_destroy,
};

int sl_input_open_kafka(sl_input *src, const sl_kafka_conf *kc, const char *topics,
                        int idle_exit_ms, sl_error *err)
{
    ksource *ks;
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *subs;
    rd_kafka_resp_err_t e;
    char errstr[512], *list, *tok, *save = NULL;

    if (topics == NULL || *topics == '\0')
        return sl_error_set(err, SL_ERR_USAGE,
                            "Kafka input needs --topics NAME[,NAME...] or --topics '^REGEX'");
    conf = make_conf(kc, consumer_defaults, false, err);
    if (conf == NULL)
        return -1;
    ks = sl_xcalloc(1, sizeof(*ks));
    pthread_mutex_init(&ks->mu, NULL);
    ks->idle_exit_ms = idle_exit_ms;
    ks->regex = topics[0] == '^';
    ks->last_msg_ms = 0; /* set by the first assignment */
    {
        /* what the group runs with, for the messages of a refused commit */
        char v[32];
        size_t sz = sizeof(v);

        ks->session_ms = rd_kafka_conf_get(conf, "session.timeout.ms", v, &sz) == RD_KAFKA_CONF_OK
                             ? atoi(v)
                             : 45000;
        sz = sizeof(ks->group);
        if (rd_kafka_conf_get(conf, "group.id", ks->group, &sz) != RD_KAFKA_CONF_OK)
            snprintf(ks->group, sizeof(ks->group), "?");
    }
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (ks->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        sl_error_set(err, SL_ERR_USAGE, "kafka consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(ks->rk);
    subs = rd_kafka_topic_partition_list_new(4);
    list = sl_xstrdup(topics);
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (*tok)
            rd_kafka_topic_partition_list_add(subs, tok, RD_KAFKA_PARTITION_UA);
    free(list);
    e = rd_kafka_subscribe(ks->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        sl_error_set(err, SL_ERR_USAGE, "kafka: cannot subscribe to %s: %s", topics,
                     rd_kafka_err2str(e));
        goto fail;
    }
    src->ops = &kafka_source_ops;
    src->self = ks;
    return 0;
fail:
    ks_destroy(ks);
    return -1;
}

/* ---- sink -------------------------------------------------------------------- */

typedef struct ktopic {
    char *name;
    size_t len;
    rd_kafka_topic_t *rkt; /* the producer's handle: no lookup by name per message */
    struct ktopic *next;
} ktopic;

/* Which of the messages produced so far the broker has acknowledged. Every
 * message gets the next number before it is produced; its delivery report
 * marks it, and `low` moves up past the marked ones, so every message
 * numbered below `low` is acknowledged. flush() waits until `low` reaches
 * the number given out when it was called: it waits for what was written
 * before it and nothing else. (rd_kafka_flush waits for an empty queue,
 * which may not come while the workers keep producing, and meanwhile sends
 * everything queued at once, ignoring linger.ms: with a store, whose thread
 * flushes after every group of batches, that made 1.4x the produce
 * requests.) */
typedef struct kacks {
    pthread_mutex_t mu;
    uint64_t next;       /* the number the next message gets */
    uint64_t low;        /* every message numbered below it is acknowledged */
    unsigned char *done; /* done[s % cap]: s, in [low, next), is acknowledged */
    size_t cap;
} kacks;

typedef struct ksink {
    rd_kafka_t *rk;
    pthread_mutex_t mu; /* topics */
    ktopic *topics;
    int partitions, replication;
    kacks acks;
    _Atomic bool failed;
    char fail_msg[512]; /* written once, before failed is set */
    pthread_mutex_t fail_mu;
} ksink;

static const char *const producer_defaults[] = {
    "enable.idempotence",
    "true",
    "acks",
    "all",
    "linger.ms",
    "5",
    /* One produce request at a time per broker. With more, a request that
     * fails (the partition's leader moved, or a partition just created is
     * not ready) can be overtaken by the next one; a broker that has no
     * state yet for this producer on the partition (its first writes there)
     * accepts that one whatever its sequence number, and librdkafka then
     * takes the failed request's messages as written too ("implicit ack")
     * and reports them delivered: they are lost. By all the evidence this
     * lost two records of a new output topic in a CI run (docs/kafka.md). */
    "max.in.flight.requests.per.connection",
    "1",
    /* Outputs waiting for the broker: librdkafka allows 1 GiB. Beyond this
     * the workers wait (backpressure), and memory stays bounded; a second
     * of output at 50,000 events/s is about 35 MB. */
    "queue.buffering.max.kbytes",
    "32768",
    /* Never give up on a message: while the broker is away the queue fills,
     * workers wait, and reading pauses; nothing is dropped. */
    "message.timeout.ms",
    "0",
    "client.id",
    "sluice",
    NULL,
};

/* Numbers for n messages about to be produced: the first of n in a row. */
static uint64_t acks_take(kacks *a, size_t n)
{
    uint64_t first, s;

    pthread_mutex_lock(&a->mu);
    while (a->next - a->low + n > a->cap) {
        size_t ncap = a->cap * 2;
        unsigned char *nd = sl_xcalloc(ncap, 1);

        for (s = a->low; s < a->next; s++)
            nd[s % ncap] = a->done[s % a->cap];
        free(a->done);
        a->done = nd;
        a->cap = ncap;
    }
    first = a->next;
    a->next += n;
    pthread_mutex_unlock(&a->mu);
    return first;
}

/* Message `tag` (its number as a pointer-sized integer) is acknowledged, or
 * will never be sent: nobody waits for it any more. */
static void acks_mark(kacks *a, uintptr_t tag)
{
    uint64_t s;

    pthread_mutex_lock(&a->mu);
    /* fewer than cap numbers are outstanding, so the low bits identify it */
    s = a->low + (uint64_t)(uintptr_t)(tag - (uintptr_t)a->low);
    a->done[s % a->cap] = 1;
    while (a->low < a->next && a->done[a->low % a->cap]) {
        a->done[a->low % a->cap] = 0;
        a->low++;
    }
    pthread_mutex_unlock(&a->mu);
}

static uint64_t acks_get(kacks *a, bool low)
{
    uint64_t v;

    pthread_mutex_lock(&a->mu);
    v = low ? a->low : a->next;
    pthread_mutex_unlock(&a->mu);
    return v;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ksink *ks = opaque;

    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        pthread_mutex_lock(&ks->fail_mu);
        if (!atomic_load(&ks->failed)) {
            snprintf(ks->fail_msg, sizeof(ks->fail_msg), "kafka: delivery to %s failed: %s",
                     rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
            atomic_store(&ks->failed, true);
        }
        pthread_mutex_unlock(&ks->fail_mu);
    }
    /* a failed message is settled too: flush() sees `failed` */
    acks_mark(&ks->acks, (uintptr_t)m->_private);
}

/* Errors that retrying cannot fix. */
static bool permanent(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
        return true;
    default:
        return false;
    }
}

/* Create the topic unless it exists (or was created by us before).
 * Returns 0, 1 to retry later, -1 for good (err filled). */
static int ensure_topic_once(ksink *ks, const char *name, sl_error *err)
{
    ktopic *t;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    char errstr[512];
    int rc = -1;

    pthread_mutex_lock(&ks->mu);
    for (t = ks->topics; t; t = t->next)
        if (strcmp(t->name, name) == 0) {
            pthread_mutex_unlock(&ks->mu);
            return 0;
        }
    {
        /* Does it exist already? (Asking first also works with brokers
         * that refuse CreateTopics to this client.) */
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(ks->rk, name, NULL);
        const struct rd_kafka_metadata *md = NULL;
        bool exists = false;

        if (rkt && rd_kafka_metadata(ks->rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
            exists = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                     md->topics[0].partition_cnt > 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        if (exists)
            goto known;
    }
    nt = rd_kafka_NewTopic_new(name, ks->partitions, ks->replication, errstr, sizeof(errstr));
    if (nt == NULL) {
        sl_error_set(err, SL_ERR_USAGE, "kafka: topic %s: %s", name, errstr);
        goto out;
    }
    q = rd_kafka_queue_new(ks->rk);
    rd_kafka_CreateTopics(ks->rk, &nt, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 60000);
    if (ev == NULL) {
        rc = 1; /* no answer: the broker is away; retry */
        goto out;
    }
    {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev);

        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && n == 1)
            e = rd_kafka_topic_result_error(tr[0]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            if (!permanent(e)) {
                /* the cluster is restarting or short of brokers: retry */
                fprintf(stderr, "sluice: kafka: creating topic %s: %s; retrying\n", name,
                        rd_kafka_err2str(e));
                rc = 1;
                goto out;
            }
            sl_error_set(err, SL_ERR_IO, "kafka: cannot create topic %s: %s", name,
                         rd_kafka_err2str(e));
            goto out;
        }
    }
known:
    t = sl_xcalloc(1, sizeof(*t));
    t->rkt = rd_kafka_topic_new(ks->rk, name, NULL);
    if (t->rkt == NULL) {
        free(t);
        sl_error_set(err, SL_ERR_USAGE, "kafka: topic %s: %s", name,
                     rd_kafka_err2str(rd_kafka_last_error()));
        goto out;
    }
    t->name = sl_xstrdup(name);
    t->len = strlen(name);
    t->next = ks->topics;
    ks->topics = t;
    rc = 0;
out:
    pthread_mutex_unlock(&ks->mu);
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* The topic named by the len bytes at p, created first when missing
 * (retried while the cause can pass); NULL when it cannot be (err filled). */
static ktopic *topic_for(ksink *ks, const char *p, size_t len, sl_error *err)
{
    char name[512];
    ktopic *t;
    int r;

    snprintf(name, sizeof(name), "%.*s", (int)len, p);
    while ((r = ensure_topic_once(ks, name, err)) == 1) {
        struct timespec ts = {1, 0};

        nanosleep(&ts, NULL);
    }
    if (r != 0)
        return NULL;
    pthread_mutex_lock(&ks->mu);
    for (t = ks->topics; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            break;
    pthread_mutex_unlock(&ks->mu);
    return t;
}

static int fail_from(ksink *ks, sl_error *err)
{
    pthread_mutex_lock(&ks->fail_mu);
    sl_error_set(err, SL_ERR_IO, "%s", ks->fail_msg);
    pthread_mutex_unlock(&ks->fail_mu);
    return -1;
}

static int kk_write(void *self, const sl_record *recs, size_t n, sl_error *err)
{
    ksink *ks = self;
    ktopic *t = NULL;
    uint64_t first;
    size_t i, h;

    if (n == 0)
        return 0;
    /* numbered before they are produced: a flush() that starts after this
     * call returned waits for all of them */
    first = acks_take(&ks->acks, n);
    for (i = 0; i < n; i++) {
        const sl_record *r = &recs[i];
        rd_kafka_headers_t *hdrs;
        rd_kafka_resp_err_t e;

        /* the records of one call mostly go to few topics */
        if (t == NULL || t->len != r->topic.len || memcmp(t->name, r->topic.p, t->len) != 0) {
            t = topic_for(ks, r->topic.p, r->topic.len, err);
            if (t == NULL)
                goto unsent;
        }
        hdrs = rd_kafka_headers_new(r->nheaders);
        for (h = 0; h < r->nheaders; h++)
            rd_kafka_header_add(hdrs, r->headers[h].name.p, (ssize_t)r->headers[h].name.len,
                                r->headers[h].null_value ? NULL : r->headers[h].value.p,
                                (ssize_t)r->headers[h].value.len);
        for (;;) {
            e = rd_kafka_producev(
                ks->rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_KEY(r->key, r->key ? r->key_len : 0),
                RD_KAFKA_V_VALUE((void *)r->value, r->value ? r->value_len : 0),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(first + i)), RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            /* backpressure: wait for the broker to take some */
            rd_kafka_poll(ks->rk, 100);
        }
        if (e) {
            rd_kafka_headers_destroy(hdrs);
            sl_error_set(err, SL_ERR_IO, "kafka: produce to %s: %s", t->name, rd_kafka_err2str(e));
            goto unsent;
        }
    }
    rd_kafka_poll(ks->rk, 0);
    if (atomic_load(&ks->failed))
        return fail_from(ks, err);
    return 0;
unsent:
    /* the rest will never be sent: no flush() waits for them */
    for (; i < n; i++)
        acks_mark(&ks->acks, (uintptr_t)(first + i));
    return -1;
}

/* Wait up to a second for the broker to acknowledge every message written
 * before this call (not those the workers write meanwhile; their batches
 * keep filling for linger.ms). Acknowledged by the broker is as safe as
 * Kafka gets: sync changes nothing. */
static int kk_flush(void *self, bool sync, sl_error *err)
{
    ksink *ks = self;
    uint64_t target = acks_get(&ks->acks, false);
    int64_t deadline = now_ms() + 1000, left;

    while (!atomic_load(&ks->failed) && acks_get(&ks->acks, true) < target &&
           (left = deadline - now_ms()) > 0)
        /* serves delivery reports: returns at the first one, or after 5 ms
         * when another thread's poll served them */
        rd_kafka_poll(ks->rk, left < 5 ? (int)left : 5);
    if (atomic_load(&ks->failed))
        return fail_from(ks, err);
    return acks_get(&ks->acks, true) < target ? 1 : 0;
}

static void kk_destroy(void *self)
{
    ksink *ks = self;
    ktopic *t, *next;

    if (ks == NULL)
        return;
    if (ks->rk)
        rd_kafka_flush(ks->rk, 10000);
    for (t = ks->topics; t; t = next) {
        next = t->next;
        rd_kafka_topic_destroy(t->rkt);
        free(t->name);
        free(t);
    }
    if (ks->rk)
        rd_kafka_destroy(ks->rk);
    pthread_mutex_destroy(&ks->mu);
    pthread_mutex_destroy(&ks->fail_mu);
    pthread_mutex_destroy(&ks->acks.mu);
    free(ks->acks.done);
    free(ks);
}

static const sl_sink_ops kafka_sink_ops = {
    .name = "kafka",
    .write = kk_write,
    .flush = kk_flush,
    .destroy = kk_destroy,
};

int sl_sink_open_kafka(sl_sink *sink, const sl_kafka_conf *kc, sl_error *err)
{
    ksink *ks;
    rd_kafka_conf_t *conf;
    const char *v;
    char errstr[512];

    conf = make_conf(kc, producer_defaults, true, err);
    if (conf == NULL)
        return -1;
    ks = sl_xcalloc(1, sizeof(*ks));
    pthread_mutex_init(&ks->mu, NULL);
    pthread_mutex_init(&ks->fail_mu, NULL);
    pthread_mutex_init(&ks->acks.mu, NULL);
    ks->acks.cap = 4096;
    ks->acks.done = sl_xcalloc(ks->acks.cap, 1);
    {
        char inflight[32];
        size_t sz = sizeof(inflight);

        if (rd_kafka_conf_get(conf, "max.in.flight.requests.per.connection", inflight, &sz) ==
                RD_KAFKA_CONF_OK &&
            atoi(inflight) > 1)
            fprintf(stderr,
                    "sluice: warning: kafka.max.in.flight.requests.per.connection=%s: with more "
                    "than one produce request in flight, librdkafka can report records delivered "
                    "that the broker never wrote (a failed request overtaken by the next one); "
                    "sluice's default is 1 (docs/kafka.md)\n",
                    inflight);
    }
    ks->partitions = (v = sl_kafka_conf_get(kc, "topic.partitions")) ? atoi(v) : 3;
    ks->replication = (v = sl_kafka_conf_get(kc, "topic.replication")) ? atoi(v) : -1;
    if (ks->partitions < 1) {
        rd_kafka_conf_destroy(conf);
        kk_destroy(ks);
        return sl_error_set(err, SL_ERR_USAGE, "kafka.topic.partitions must be at least 1");
    }
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (ks->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        kk_destroy(ks);
        return sl_error_set(err, SL_ERR_USAGE, "kafka producer: %s", errstr);
    }
    sink->ops = &kafka_sink_ops;
    sink->self = ks;
    return 0;
}
