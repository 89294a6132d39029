/*
 * kafka.h - Kafka input and output through librdkafka.
 *
 * Properties: every `--set kafka.NAME=VALUE` is handed to librdkafka as
 * NAME=VALUE for both the consumer and the producer (docs/kafka.md lists the
 * defaults sluice sets and which of them may be overridden). Two keys are
 * sluice's own: `topic.partitions` (partitions of output topics sluice
 * creates, default 3) and `topic.replication` (their replication factor,
 * default -1: the broker's default).
 */
#ifndef SL_KAFKA_H
#define SL_KAFKA_H

#include "../common/error.h"
#include "sink.h"
#include "source.h"

typedef struct sl_kafka_conf {
    char **keys; /* without the "kafka." prefix; owned */
    char **values;
    size_t n;
} sl_kafka_conf;

void sl_kafka_conf_set(sl_kafka_conf *kc, const char *key, const char *value);
const char *sl_kafka_conf_get(const sl_kafka_conf *kc, const char *key);
void sl_kafka_conf_free(sl_kafka_conf *kc);

/* Consume `topics` ("a,b,c", or "^regex") as a member of the consumer group
 * (kafka.group.id, default "sluice"). Messages come out as records (not
 * lines); each partition is an input stream named "topic/partition" whose
 * positions are offsets. With idle_exit_ms > 0 the source ends after that
 * long without a message. Offsets are committed only through the source's
 * commit op, after the engine's outputs for them are acknowledged. */
int sl_input_open_kafka(sl_input *src, const sl_kafka_conf *kc, const char *topics,
                        int idle_exit_ms, sl_error *err);

/* Produce to the topics the records name (created when missing), with the
 * idempotent producer: per partition, the order of writes is kept and
 * retries do not duplicate. flush(sync) waits for the broker's
 * acknowledgements and answers "not yet" (1) while the broker is away. */
int sl_sink_open_kafka(sl_sink *sink, const sl_kafka_conf *kc, sl_error *err);

#endif
