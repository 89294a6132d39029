/*
 * event.h - input records and decoded Debezium change events.
 *
 * An sl_record is what a source hands the engine: one Kafka-like message
 * (topic, partition, offset, key bytes, value bytes, headers) whose bytes the
 * source owns. sl_event_decode() reads its Debezium value (and key) into an
 * sl_event: the tokens of the JSON plus a few fields every event needs
 * (op, origin, source table, position, transaction). Columns are then read on
 * demand through sl_event_column(): the rule evaluator never sees a JSON
 * library's types and no DOM is built.
 *
 * An sl_event is reused across records by one thread: init once, decode many
 * times, free once. Every sl_str it exposes points into the record's bytes or
 * into the event's own scratch memory, and is valid until the next decode.
 */
#ifndef SL_EVENT_H
#define SL_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../common/value.h"
#include "../dsl/program.h"
#include "json.h"

typedef struct sl_header {
    sl_str name;
    sl_str value;
    bool null_value;
} sl_header;

#define SL_MAX_HEADERS 32

typedef struct sl_record {
    sl_str topic;      /* empty when unknown (a bare value line) */
    int32_t partition; /* -1 when unknown */
    int64_t offset;    /* -1 when unknown */
    const char *key;   /* NULL: no key */
    size_t key_len;
    const char *value; /* NULL: tombstone */
    size_t value_len;
    sl_header headers[SL_MAX_HEADERS];
    size_t nheaders;
    sl_str where; /* "events.json:12" - for messages; may be empty */
} sl_record;

/* Parse one input line (see docs/formats.md): either a bare Debezium value,
 * or a wrapper object {"topic","partition","offset","key","value","headers"}
 * (also kcat -J's "payload" and header array form). key/value of the wrapper
 * may be embedded JSON or strings holding JSON. The record points into `line`
 * or into `scratch` (which the caller owns and must keep until done with the
 * record). `j` is a tokenizer the caller reuses. */
int sl_record_parse_line(sl_record *rec, const char *line, size_t len, sl_json *j, sl_buf *scratch,
                         sl_error *err);

/* Write a record as one wrapper line (no trailing newline):
 * {"topic":...,"partition":...,"offset":...,"key":<json|null>,"value":<json|null>,
 *  "headers":{...}}. key and value are embedded raw when they are valid JSON
 * text (the caller says so), else written as JSON strings. */
void sl_record_write_line(const sl_record *rec, bool key_is_json, bool value_is_json, sl_buf *out);

/* The engine's own form of a record inside a batch (Kafka messages): topic,
 * partition, offset, key, value and headers (at most SL_MAX_HEADERS) copied
 * as they are into out, with their lengths, no JSON and no escaping; NULL
 * key, value and header values stay NULL. `where` is not kept. */
void sl_record_pack(const sl_record *rec, sl_buf *out);
/* Read a packed record: rec points into data[0..len), which must stay put
 * while rec is used. Nothing is tokenized. Returns 0, or -1 with err filled
 * (SL_ERR_INTERNAL) when the bytes are not one whole packed record. */
int sl_record_unpack(sl_record *rec, const char *data, size_t len, sl_error *err);

typedef enum sl_evkind {
    SL_EV_CHANGE,        /* op c/u/d/r/t */
    SL_EV_TOMBSTONE,     /* null value after a delete */
    SL_EV_TX_BEGIN,      /* {"status":"BEGIN","id":...} */
    SL_EV_TX_END,        /* {"status":"END","id":...,"event_count":...} */
    SL_EV_MESSAGE,       /* op m: a logical decoding message */
    SL_EV_SCHEMA_CHANGE, /* DDL / tableChanges */
} sl_evkind;

typedef struct sl_event {
    sl_evkind kind;
    char op;         /* 'c','u','d','r','t','m'; 0 for other kinds */
    bool enveloped;  /* the value had the {"schema":...,"payload":...} wrapper */
    bool flattened;  /* an ExtractNewRecordState record (after-state only) */
    bool has_before; /* non-null before */
    bool has_after;  /* non-null after */

    sl_str origin;            /* source.name (unescaped) */
    sl_str connector;         /* source.connector: postgresql, mysql, sqlserver, oracle, ... */
    sl_str db, schema, table; /* source.db / schema / table; schema empty for MySQL */
    int64_t source_ts_ms;     /* source.ts_ms, 0 when absent */
    int64_t ts_ms;            /* envelope ts_ms, 0 when absent */
    bool snapshot;            /* source.snapshot is true/"true"/"first"/"last"/"incremental" */
    sl_str tx_id;             /* transaction.id, or the BEGIN/END record's id */
    int64_t tx_total_order;   /* transaction.total_order; 0 when absent */
    int64_t tx_event_count;   /* END: event_count */

    /* Source position encoded so that memcmp order is commit-stream order for
     * one origin and source partition: postgres lsn, mysql file/pos/row,
     * sqlserver commit_lsn/change_lsn/event_serial_no, oracle scn, else ts_ms.
     * partition names the source partition ("postgres", "mysql-bin", db). */
    sl_str position;
    sl_str partition;

    /* private to event.c */
    sl_json v; /* value tokens */
    sl_json k; /* key tokens */
    bool has_key;
    int t_payload, t_before, t_after, t_source, t_tx, t_schema, t_key;
    sl_buf scratch;
} sl_event;

void sl_event_init(sl_event *ev);
void sl_event_free(sl_event *ev);

/* Decode rec into ev. Returns 0, or -1 with err filled: SL_ERR_PARSE for bytes
 * that are not JSON, SL_ERR_INVALID for JSON that is not a Debezium event
 * (unknown op, no source table, before/after not objects, ...). */
int sl_event_decode(sl_event *ev, const sl_record *rec, sl_error *err);

/* Read column `name` of a section (before/after/row/source/key) into out.
 * Returns 1 when present (a JSON null gives SL_V_NULL), 0 when absent (out is
 * SL_V_NULL). Escaped strings are unescaped into the event's scratch memory. */
int sl_event_column(sl_event *ev, sl_section sec, const char *name, size_t len, sl_value *out);

/* The row key as canonical JSON object text {"col":value,...}: from the key
 * columns when ncols > 0 (read from after, else before), otherwise from the
 * record key (its payload when it has a schema envelope). Returns 0, or -1
 * with err filled when a key column is missing or there is no key at all. */
int sl_event_key(sl_event *ev, const char *const *cols, size_t ncols, sl_buf *out, sl_error *err);

/* Write the output value for one destination: the same shape as the input
 * (enveloped or not), before/after reduced to the columns `sel` keeps, the
 * schema block's before/after field lists reduced to match, everything else
 * (source, op, ts_ms, transaction) copied byte for byte. A NULL sel keeps all. */
void sl_event_write_value(const sl_event *ev, const sl_colsel *sel, sl_buf *out);

/* Does sel keep column name? (Exposed for tests and for the engine.) */
bool sl_colsel_keeps(const sl_colsel *sel, const char *name, size_t len);

/* ---- the consolidated view -------------------------------------------------- */

/* The content hash of a deleted row (or a change without a row image). */
#define SL_EVENT_HASH_DELETED 0x9e3779b97f4a7c15ULL

/* The change's row image (after; nothing for a delete) as canonical compact
 * JSON object text appended to out: 1, or 0 when there is none. Flattened
 * records lose their "__" fields. With hash, also its content hash, the
 * one sl_event_row_hash gives for all columns: both come from one pass. */
int sl_event_row_image(const sl_event *ev, sl_buf *out, uint64_t *hash);
/* Content hash of the change's row image restricted to the columns sel
 * keeps (NULL: all), independent of column order and JSON spacing or
 * escaping; SL_EVENT_HASH_DELETED when the change has no image. */
uint64_t sl_event_row_hash(const sl_event *ev, const sl_colsel *sel, sl_buf *scratch);
/* The same hash (all columns) for the change's `before` image, and how many
 * columns it has (0 when there is none: then SL_EVENT_HASH_DELETED). */
uint64_t sl_event_before_hash(const sl_event *ev, size_t *ncols, sl_buf *scratch);
/* The same hash for a stored image (parsed into img; NULL: deleted). */
uint64_t sl_image_hash(const sl_json *img, const sl_colsel *sel, sl_buf *scratch);
/* Write the output value for one destination carrying another version of
 * the row than the change itself: the change's shape (envelope, schema,
 * source, transaction copied), op set to `op`, `after` the image img (parsed
 * image text) reduced by sel and `before` null; for op 'd', `before` the
 * image and `after` null. */
void sl_event_write_version(const sl_event *ev, const sl_colsel *sel, char op, const sl_json *img,
                            sl_buf *out);

#endif
