/*
 * test_event.c - decoding Debezium events: every fixture field by field,
 * invalid events, row keys, column reads, scratch stability.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- every fixture, field by field ---------------------------------------------- */

typedef struct colcheck {
    sl_section sec;
    const char *name;
    int present;
    sl_vtype type;
    int64_t i;
    const char *s; /* STRING / COMPOUND text */
    bool b;
} colcheck;

#define CI(sec, name, v)                                                                           \
    {                                                                                              \
        sec, name, 1, SL_V_INT, v, NULL, false                                                     \
    }
#define CS(sec, name, v)                                                                           \
    {                                                                                              \
        sec, name, 1, SL_V_STRING, 0, v, false                                                     \
    }
#define CB(sec, name, v)                                                                           \
    {                                                                                              \
        sec, name, 1, SL_V_BOOL, 0, NULL, v                                                        \
    }
#define CN(sec, name)                                                                              \
    {                                                                                              \
        sec, name, 1, SL_V_NULL, 0, NULL, false                                                    \
    }
#define CX(sec, name, v)                                                                           \
    {                                                                                              \
        sec, name, 1, SL_V_COMPOUND, 0, v, false                                                   \
    }
#define CA(sec, name)                                                                              \
    {                                                                                              \
        sec, name, 0, SL_V_NULL, 0, NULL, false                                                    \
    }

#define B SL_SEC_BEFORE
#define A SL_SEC_AFTER
#define R SL_SEC_ROW
#define S SL_SEC_SOURCE
#define K SL_SEC_KEY

typedef struct fixture_case {
    const char *file;
    const char *keyfile; /* used as the record key */
    const char *topic;   /* record topic */
    sl_evkind kind;
    char op;
    bool enveloped, flattened;
    const char *origin, *connector, *db, *schema, *table;
    int64_t source_ts_ms, ts_ms;
    bool snapshot;
    const char *tx_id;
    int64_t tx_total_order, tx_event_count;
    const char *position, *partition;
    bool has_before, has_after;
    const char *key;     /* sl_event_key without columns; NULL: expect an error */
    const char *keycols; /* one key column for sl_event_key, or NULL */
    const char *colkey;  /* its expected text */
    colcheck cols[10];
} fixture_case;

static const fixture_case fixtures[] = {
    {.file = "postgresql-create-with-schema.value.json",
     .keyfile = "postgresql-customers-with-schema.key.json",
     .kind = SL_EV_CHANGE,
     .op = 'c',
     .enveloped = true,
     .origin = "PostgreSQL_server",
     .connector = "postgresql",
     .db = "postgres",
     .schema = "public",
     .table = "customers",
     .source_ts_ms = 1559033904863,
     .ts_ms = 1559033904863,
     .snapshot = true,
     .tx_id = "",
     .position = "00000000016e9058",
     .partition = "postgres",
     .has_after = true,
     .key = "{\"id\":\"1\"}",
     .keycols = "id",
     .colkey = "{\"id\":1}",
     .cols = {CI(A, "id", 1), CS(A, "first_name", "Anne"), CS(R, "email", "annek@noanswer.org"),
              CA(B, "id"), CI(S, "txId", 555), CN(S, "xmin"), CB(S, "snapshot", true),
              CS(S, "sequence", "[\"24023119\",\"24023128\"]"), CS(K, "id", "1"),
              CA(A, "missing")}},
    {.file = "postgresql-update.value.json",
     .kind = SL_EV_CHANGE,
     .op = 'u',
     .origin = "PostgreSQL_server",
     .connector = "postgresql",
     .db = "postgres",
     .schema = "public",
     .table = "customers",
     .source_ts_ms = 1559033904863,
     .ts_ms = 1465584025523,
     .tx_id = "",
     .position = "00000000016e9058",
     .partition = "postgres",
     .has_before = true,
     .has_after = true,
     .keycols = "id",
     .colkey = "{\"id\":1}",
     .cols = {CI(B, "id", 1), CA(B, "first_name"), CS(A, "first_name", "Anne Marie"),
              CS(R, "first_name", "Anne Marie"), CI(S, "lsn", 24023128),
              CS(S, "version", "3.7.0.Alpha2"), CA(K, "id")}},
    {.file = "postgresql-delete.value.json",
     .kind = SL_EV_CHANGE,
     .op = 'd',
     .origin = "PostgreSQL_server",
     .connector = "postgresql",
     .db = "postgres",
     .schema = "public",
     .table = "customers",
     .source_ts_ms = 1559033904863,
     .ts_ms = 1465581902461,
     .tx_id = "",
     .position = "0000000002c5e2f8",
     .partition = "postgres",
     .has_before = true,
     .keycols = "id",
     .colkey = "{\"id\":1}",
     .cols = {CI(R, "id", 1), CI(B, "id", 1), CA(A, "id"), CI(S, "txId", 556)}},
    {.file = "postgresql-tombstone.value.json",
     .keyfile = "postgresql-customers-with-schema.key.json",
     .topic = "PostgreSQL_server.public.customers",
     .kind = SL_EV_TOMBSTONE,
     .origin = "PostgreSQL_server",
     .connector = "",
     .db = "",
     .schema = "public",
     .table = "customers",
     .tx_id = "",
     .position = "",
     .partition = "",
     .key = "{\"id\":\"1\"}",
     .cols = {CA(R, "id"), CA(S, "table"), CS(K, "id", "1")}},
    {.file = "postgresql-truncate.value.json",
     .kind = SL_EV_CHANGE,
     .op = 't',
     .origin = "PostgreSQL_server",
     .connector = "postgresql",
     .db = "postgres",
     .schema = "public",
     .table = "customers",
     .source_ts_ms = 1559033904863,
     .ts_ms = 1559033904961,
     .tx_id = "",
     .position = "0000000002c5e2f8",
     .partition = "postgres",
     .cols = {CA(R, "id"), CS(S, "table", "customers")}},
    {.file = "postgresql-message.value.json",
     .kind = SL_EV_MESSAGE,
     .op = 'm',
     .origin = "PostgreSQL_server",
     .connector = "postgresql",
     .db = "postgres",
     .schema = "",
     .table = "",
     .source_ts_ms = 1559033904863,
     .ts_ms = 1559033904961,
     .tx_id = "",
     .position = "0000000002c5e2f8",
     .partition = "postgres",
     .cols = {CA(R, "prefix"), CI(S, "txId", 556)}},
    {.file = "postgresql-transaction-begin.value.json",
     .kind = SL_EV_TX_BEGIN,
     .origin = "",
     .connector = "",
     .db = "",
     .schema = "",
     .table = "",
     .ts_ms = 1486500577125,
     .tx_id = "571:53195829",
     .position = "0000015a1a56bf65",
     .partition = ""},
    {.file = "postgresql-transaction-end.value.json",
     .kind = SL_EV_TX_END,
     .origin = "",
     .connector = "",
     .db = "",
     .schema = "",
     .table = "",
     .ts_ms = 1486500577691,
     .tx_id = "571:53195832",
     .tx_event_count = 2,
     .position = "0000015a1a56c19b",
     .partition = ""},
    /* no source block at all: table and origin come from the topic */
    {.file = "postgresql-transaction-enriched-create.value.json",
     .topic = "dbserver1.public.orders",
     .kind = SL_EV_CHANGE,
     .op = 'c',
     .origin = "dbserver1",
     .connector = "",
     .db = "",
     .schema = "public",
     .table = "orders",
     .ts_ms = 1580390884335,
     .tx_id = "571:53195832",
     .tx_total_order = 1,
     .position = "0000016ff6a323ef",
     .partition = "",
     .has_after = true,
     .keycols = "pk",
     .colkey = "{\"pk\":\"2\"}",
     .cols = {CS(A, "pk", "2"), CS(R, "aa", "1"), CA(S, "name")}},
    {.file = "mysql-create-with-schema.value.json",
     .keyfile = "mysql-customers-with-schema.key.json",
     .kind = SL_EV_CHANGE,
     .op = 'c',
     .enveloped = true,
     .origin = "mysql-server-1",
     .connector = "mysql",
     .db = "inventory",
     .schema = "",
     .table = "customers",
     .source_ts_ms = 0,
     .ts_ms = 1465491411815,
     .tx_id = "",
     .position = "mysql-bin.0000000003/000000000000009a/00000000",
     .partition = "inventory",
     .has_after = true,
     .key = "{\"id\":1001}",
     .keycols = "id",
     .colkey = "{\"id\":1004}",
     .cols = {CI(A, "id", 1004), CS(A, "email", "annek@noanswer.org"), CB(S, "snapshot", false),
              CN(S, "gtid"), CI(S, "pos", 154), CI(K, "id", 1001), CA(K, "payload"),
              CS(S, "query",
                 "INSERT INTO customers (first_name, last_name, email) VALUES ('Anne', "
                 "'Kretchmar', 'annek@noanswer.org')")}},
    {.file = "mysql-update.value.json",
     .kind = SL_EV_CHANGE,
     .op = 'u',
     .origin = "mysql-server-1",
     .connector = "mysql",
     .db = "inventory",
     .schema = "",
     .table = "customers",
     .source_ts_ms = 1465581029100,
     .ts_ms = 1465581029523,
     .tx_id = "",
     .position = "mysql-bin.0000000003/00000000000001e4/00000000",
     .partition = "inventory",
     .has_before = true,
     .has_after = true,
     .cols = {CS(B, "first_name", "Anne"), CS(R, "first_name", "Anne Marie"),
              CI(S, "server_id", 223344)}},
    {.file = "mysql-delete.value.json",
     .kind = SL_EV_CHANGE,
     .op = 'd',
     .origin = "mysql-server-1",
     .connector = "mysql",
     .db = "inventory",
     .schema = "",
     .table = "customers",
     .source_ts_ms = 1465581902300,
     .ts_ms = 1465581902461,
     .tx_id = "",
     .position = "mysql-bin.0000000003/0000000000000325/00000000",
     .partition = "inventory",
     .has_before = true,
     .keycols = "email",
     .colkey = "{\"email\":\"annek@noanswer.org\"}",
     .cols = {CS(R, "first_name", "Anne Marie"), CI(R, "id", 1004), CA(A, "id")}},
    /* source.name appears twice (same value) */
    {.file = "mysql-truncate.value.json",
     .kind = SL_EV_CHANGE,
     .op = 't',
     .origin = "mysql-server-1",
     .connector = "mysql",
     .db = "inventory",
     .schema = "",
     .table = "customers",
     .source_ts_ms = 1465581029100,
     .ts_ms = 1465581029523,
     .tx_id = "",
     .position = "mysql-bin.0000000003/00000000000001e4/00000000",
     .partition = "inventory",
     .cols = {CS(S, "name", "mysql-server-1"), CI(S, "thread", 7)}},
    {.file = "mysql-transaction-end.value.json",
     .kind = SL_EV_TX_END,
     .origin = "",
     .connector = "",
     .db = "",
     .schema = "",
     .table = "",
     .ts_ms = 1486500577691,
     .tx_id = "0e4d5dcd-a33b-11ea-80f1-02010a22a99e:10",
     .tx_event_count = 2,
     .position = "0000015a1a56c19b",
     .partition = ""},
    {.file = "mysql-schema-change.value.json",
     .kind = SL_EV_SCHEMA_CHANGE,
     .origin = "mysql",
     .connector = "mysql",
     .db = "inventory",
     .schema = "",
     .table = "customers",
     .source_ts_ms = 1651535750218,
     .tx_id = "",
     .position = "mysql-bin.0000000003/000000000000023a/00000000",
     .partition = "inventory",
     .cols = {CS(S, "snapshot", "false"), CN(S, "query"), CA(R, "ddl")}},
    {.file = "mysql-snapshot-read-with-schema.value.json",
     .keyfile = "mysql-snapshot-read-with-schema.key.json",
     .kind = SL_EV_CHANGE,
     .op = 'r',
     .enveloped = true,
     .origin = "inventory-connector-mysql",
     .connector = "mysql",
     .db = "inventory",
     .schema = "",
     .table = "products_on_hand",
     .source_ts_ms = 1638985247805,
     .ts_ms = 1638985247805,
     .snapshot = true,
     .tx_id = "",
     .position = "mysql-bin.0000000003/000000000000009c/00000000",
     .partition = "inventory",
     .has_after = true,
     .key = "{\"product_id\":101}",
     .keycols = "product_id",
     .colkey = "{\"product_id\":101}",
     .cols = {CI(A, "quantity", 3), CI(R, "product_id", 101), CI(K, "product_id", 101),
              CS(S, "version", "{debezium-version}-redhat-{debezium-build-number}"),
              CI(S, "ts_us", 1638985247805000000)}},
    /* payload.ts_ms three times: the last wins */
    {.file = "sqlserver-create-with-schema.value.json",
     .keyfile = "sqlserver-customers-with-schema.key.json",
     .kind = SL_EV_CHANGE,
     .op = 'c',
     .enveloped = true,
     .origin = "server1",
     .connector = "sqlserver",
     .db = "testDB",
     .schema = "dbo",
     .table = "customers",
     .source_ts_ms = 1559729468470,
     .ts_ms = 1559729471739876149,
     .tx_id = "",
     .position = "00000027:00000758:0005/00000027:00000758:0003/00000001",
     .partition = "testDB",
     .has_after = true,
     .key = "{\"id\":1004}",
     .keycols = "id",
     .colkey = "{\"id\":1005}",
     .cols = {CI(A, "id", 1005), CS(R, "email", "john.doe@example.org"),
              CS(S, "event_serial_no", "1"), CS(S, "change_lsn", "00000027:00000758:0003")}},
    {.file = "sqlserver-update.value.json",
     .kind = SL_EV_CHANGE,
     .op = 'u',
     .origin = "server1",
     .connector = "sqlserver",
     .db = "testDB",
     .schema = "dbo",
     .table = "customers",
     .source_ts_ms = 1559729995937,
     .ts_ms = 1559729998706,
     .tx_id = "",
     .position = "00000027:00000ac0:0007/00000027:00000ac0:0002/00000002",
     .partition = "testDB",
     .has_before = true,
     .has_after = true,
     .cols = {CS(B, "email", "john.doe@example.org"), CS(R, "email", "noreply@example.org")}},
    {.file = "sqlserver-delete.value.json",
     .kind = SL_EV_CHANGE,
     .op = 'd',
     .origin = "server1",
     .connector = "sqlserver",
     .db = "testDB",
     .schema = "dbo",
     .table = "customers",
     .source_ts_ms = 1559730445243,
     .ts_ms = 1559730450205,
     .tx_id = "",
     .position = "00000027:00000db0:0007/00000027:00000db0:0005/00000001",
     .partition = "testDB",
     .has_before = true,
     .cols = {CI(R, "id", 1005), CS(R, "last_name", "doe")}},
    {.file = "sqlserver-transaction-end.value.json",
     .kind = SL_EV_TX_END,
     .origin = "",
     .connector = "",
     .db = "",
     .schema = "",
     .table = "",
     .ts_ms = 1486500577691,
     .tx_id = "00000025:00000d08:0025",
     .tx_event_count = 2,
     .position = "0000015a1a56c19b",
     .partition = ""},
    {.file = "sqlserver-schema-change.value.json",
     .keyfile = "sqlserver-schema-change-with-schema.key.json",
     .kind = SL_EV_SCHEMA_CHANGE,
     .origin = "server1",
     .connector = "sqlserver",
     .db = "testDB",
     .schema = "dbo",
     .table = "customers",
     .ts_ms = 1588252618953,
     .snapshot = true,
     .tx_id = "",
     .position = "00000025:00000d98:00a2//00000000",
     .partition = "testDB",
     .key = "{\"databaseName\":\"testDB\"}",
     .cols = {CS(K, "databaseName", "testDB"), CN(S, "change_lsn")}},
    {.file = "oracle-truncate.value.json",
     .kind = SL_EV_CHANGE,
     .op = 't',
     .origin = "oracle_server",
     .connector = "oracle",
     .db = "ORCLPDB1",
     .schema = "DEBEZIUM",
     .table = "TEST_TABLE",
     .source_ts_ms = 1638974535000,
     .ts_ms = 1638974558961,
     .tx_id = "",
     .position = "000000000000000013234397/000000000000000013271102",
     .partition = "ORCLPDB1",
     .cols = {CS(S, "txId", "02000a0037030000"), CI(S, "ssn", 1), CA(B, "x")}},
    /* source holds only snapshot: the table comes from the topic */
    {.file = "incremental-snapshot-read.value.json",
     .topic = "dbserver1.public.t1",
     .kind = SL_EV_CHANGE,
     .op = 'r',
     .origin = "dbserver1",
     .connector = "",
     .db = "",
     .schema = "public",
     .table = "t1",
     .ts_ms = 1620393591654,
     .snapshot = true,
     .tx_id = "",
     .position = "0000017946fc0366",
     .partition = "",
     .has_after = true,
     .keycols = "pk",
     .colkey = "{\"pk\":\"1\"}",
     .cols = {CS(R, "pk", "1"), CS(A, "value", "New data"), CS(S, "snapshot", "incremental")}},
    {.file = "event-flattening-update.value.json",
     .topic = "dbserver1.inventory.customers",
     .kind = SL_EV_CHANGE,
     .op = 'u',
     .flattened = true,
     .origin = "dbserver1",
     .connector = "",
     .db = "",
     .schema = "inventory",
     .table = "customers",
     .tx_id = "",
     .position = "",
     .partition = "",
     .has_after = true,
     .keycols = "field1",
     .colkey = "{\"field1\":\"newvalue1\"}",
     .cols = {CS(R, "field1", "newvalue1"), CS(A, "field2", "newvalue2"), CA(B, "field1")}},
    {.file = "event-flattening-delete-rewrite.value.json",
     .topic = "dbserver1.inventory.t",
     .kind = SL_EV_CHANGE,
     .op = 'd',
     .flattened = true,
     .origin = "dbserver1",
     .connector = "",
     .db = "",
     .schema = "inventory",
     .table = "t",
     .tx_id = "",
     .position = "",
     .partition = "",
     .has_after = true,
     .keycols = "pk",
     .colkey = "{\"pk\":2}",
     .cols = {CI(R, "pk", 2), CN(R, "cola"), CA(R, "__deleted"), CA(A, "__deleted"),
              CS(S, "deleted", "true")}},
};

static void check_str(const char *file, const char *field, sl_str got, const char *want)
{
    if (!str_is(got, want))
        print_error("%s: %s is '%.*s', want '%s'\n", file, field, (int)got.len, got.p, want);
    assert_true(str_is(got, want));
}

static void check_column(const char *file, sl_event *ev, const colcheck *c)
{
    sl_value v;
    int rc = sl_event_column(ev, c->sec, c->name, strlen(c->name), &v);

    if (rc != c->present || v.type != c->type)
        print_error("%s: column %d.%s: rc %d type %d, want %d %d\n", file, (int)c->sec, c->name, rc,
                    (int)v.type, c->present, (int)c->type);
    assert_int_equal(rc, c->present);
    assert_int_equal(v.type, c->type);
    switch (c->type) {
    case SL_V_INT:
        assert_true(v.u.i == c->i);
        break;
    case SL_V_BOOL:
        assert_int_equal(v.u.b, c->b);
        break;
    case SL_V_STRING:
    case SL_V_COMPOUND:
        check_str(file, c->name, v.u.s, c->s);
        break;
    default:
        break;
    }
}

static void check_fixture(sl_event *ev, const fixture_case *fc)
{
    size_t vlen = 0, klen = 0;
    char *value = fixture_read(fc->file, &vlen);
    char *key = fc->keyfile ? fixture_read(fc->keyfile, &klen) : NULL;
    sl_record rec;
    sl_error err;
    sl_buf out = SL_BUF_INIT;
    size_t i;
    int rc;

    assert_non_null(value);
    if (fc->keyfile)
        assert_non_null(key);
    record_make(&rec, fc->topic, key, klen, value, vlen);
    rc = sl_event_decode(ev, &rec, &err);
    if (rc != 0)
        print_error("%s: %s\n", fc->file, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(ev->kind, fc->kind);
    assert_int_equal(ev->op, fc->op);
    assert_int_equal(ev->enveloped, fc->enveloped);
    assert_int_equal(ev->flattened, fc->flattened);
    check_str(fc->file, "origin", ev->origin, fc->origin);
    check_str(fc->file, "connector", ev->connector, fc->connector);
    check_str(fc->file, "db", ev->db, fc->db);
    check_str(fc->file, "schema", ev->schema, fc->schema);
    check_str(fc->file, "table", ev->table, fc->table);
    assert_true(ev->source_ts_ms == fc->source_ts_ms);
    assert_true(ev->ts_ms == fc->ts_ms);
    assert_int_equal(ev->snapshot, fc->snapshot);
    check_str(fc->file, "tx_id", ev->tx_id, fc->tx_id);
    assert_true(ev->tx_total_order == fc->tx_total_order);
    assert_true(ev->tx_event_count == fc->tx_event_count);
    check_str(fc->file, "position", ev->position, fc->position);
    check_str(fc->file, "partition", ev->partition, fc->partition);
    assert_int_equal(ev->has_before, fc->has_before);
    assert_int_equal(ev->has_after, fc->has_after);
    for (i = 0; i < sizeof(fc->cols) / sizeof(fc->cols[0]) && fc->cols[i].name; i++)
        check_column(fc->file, ev, &fc->cols[i]);

    /* the key from the record key */
    rc = sl_event_key(ev, NULL, 0, &out, &err);
    if (fc->key) {
        if (rc != 0)
            print_error("%s: key: %s\n", fc->file, err.msg);
        assert_int_equal(rc, 0);
        check_str(fc->file, "key", (sl_str){out.data, out.len}, fc->key);
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, SL_ERR_INVALID);
        assert_int_equal(out.len, 0);
    }
    /* the key from a key column */
    if (fc->keycols) {
        const char *cols[1] = {fc->keycols};

        sl_buf_reset(&out);
        rc = sl_event_key(ev, cols, 1, &out, &err);
        if (rc != 0)
            print_error("%s: key cols: %s\n", fc->file, err.msg);
        assert_int_equal(rc, 0);
        check_str(fc->file, "column key", (sl_str){out.data, out.len}, fc->colkey);
    }
    sl_buf_free(&out);
    free(value);
    free(key);
}

static void test_fixtures(void **state)
{
    sl_event ev;
    size_t i;

    (void)state;
    sl_event_init(&ev); /* one event reused for all: decode must reset everything */
    for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++)
        check_fixture(&ev, &fixtures[i]);
    /* and again in reverse order */
    for (i = sizeof(fixtures) / sizeof(fixtures[0]); i-- > 0;)
        check_fixture(&ev, &fixtures[i]);
    sl_event_free(&ev);
}

/* Every value fixture in the directory is in the table above. */
static void test_fixtures_all_covered(void **state)
{
    const char *shared = getenv("SHARED_DIR");
    char path[1024];
    DIR *d;
    struct dirent *de;
    int nvalues = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/fixtures/debezium", shared ? shared : "../shared");
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name), i;
        bool found = false;

        if (n < 11 || strcmp(de->d_name + n - 11, ".value.json") != 0)
            continue;
        nvalues++;
        for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++)
            found = found || strcmp(fixtures[i].file, de->d_name) == 0;
        if (!found)
            print_error("fixture %s is not checked\n", de->d_name);
        assert_true(found);
    }
    closedir(d);
    assert_int_equal(nvalues, sizeof(fixtures) / sizeof(fixtures[0]));
}

/* ---- invalid events -------------------------------------------------------------- */

static const struct bad_case {
    const char *value;
    const char *topic;
    sl_errcode code;
    const char *msg;
} bad_cases[] = {
    {"{\"op\":\"x\",\"after\":{},\"source\":{\"table\":\"t\"}}", NULL, SL_ERR_INVALID,
     "op 'x' is not one of c, u, d, r, t, m"},
    {"{\"op\":\"cc\",\"after\":{}}", NULL, SL_ERR_INVALID, "op 'cc' is not one of"},
    {"{\"op\":\"\",\"after\":{}}", NULL, SL_ERR_INVALID, "op '' is not one of"},
    {"{\"op\":1,\"after\":{}}", NULL, SL_ERR_INVALID, "\"op\" is a number, expected a one-letter"},
    {"{\"op\":null}", NULL, SL_ERR_INVALID, "\"op\" is null"},
    {"[1]", NULL, SL_ERR_INVALID, "value is an array, expected a JSON object"},
    {"\"text\"", NULL, SL_ERR_INVALID, "value is a string"},
    {"42", NULL, SL_ERR_INVALID, "value is a number"},
    {"{\"op\":\"c\"", NULL, SL_ERR_PARSE, "value is not valid JSON: offset 9: unexpected end"},
    {"{\"op\":\"c\",}", NULL, SL_ERR_PARSE, "offset 10: trailing comma"},
    {"{\"op\":\"c\xff\"}", NULL, SL_ERR_PARSE, "offset 8: invalid UTF-8"},
    {"", NULL, SL_ERR_PARSE, "offset 0: unexpected end of input"},
    {"{\"op\":\"c\",\"after\":[],\"source\":{\"table\":\"t\"}}", NULL, SL_ERR_INVALID,
     "\"after\" is an array, expected an object or null"},
    {"{\"op\":\"u\",\"before\":\"x\",\"after\":{},\"source\":{\"table\":\"t\"}}", NULL,
     SL_ERR_INVALID, "\"before\" is a string, expected an object or null"},
    {"{\"op\":\"c\",\"after\":{\"a\":1}}", NULL, SL_ERR_INVALID,
     "op 'c' event has no source.table"},
    {"{\"op\":\"d\",\"before\":{\"a\":1},\"source\":{\"db\":\"x\"}}", "notopic", SL_ERR_INVALID,
     "op 'd' event has no source.table"},
    {"{\"op\":\"t\",\"source\":{\"table\":\"\"}}", NULL, SL_ERR_INVALID,
     "op 't' event has no source.table"},
    {"{\"op\":\"c\",\"after\":null,\"source\":{\"table\":\"t\"}}", NULL, SL_ERR_INVALID,
     "op 'c' event has no \"after\" row"},
    {"{\"op\":\"u\",\"source\":{\"table\":\"t\"}}", NULL, SL_ERR_INVALID,
     "op 'u' event has no \"after\" row"},
    {"{\"op\":\"c\",\"after\":{},\"source\":5}", NULL, SL_ERR_INVALID,
     "\"source\" is a number, expected an object"},
    {"{\"status\":\"MIDDLE\",\"id\":\"1\"}", NULL, SL_ERR_INVALID,
     "transaction status 'MIDDLE' is not BEGIN or END"},
    {"{\"status\":\"BEGIN\",\"ts_ms\":1}", NULL, SL_ERR_INVALID,
     "transaction BEGIN record has no \"id\""},
    {"{\"status\":\"END\",\"id\":null}", NULL, SL_ERR_INVALID,
     "transaction END record has no \"id\""},
    {"{\"schema\":{},\"payload\":\"x\"}", NULL, SL_ERR_INVALID,
     "\"payload\" is a string, expected an object"},
    {"{\"a\":1}", NULL, SL_ERR_INVALID, "it has no __table field and the record has no topic"},
    {"{\"__op\":\"z\",\"a\":1}", "p.s.t", SL_ERR_INVALID, "__op 'z' is not one of"},
    {"{\"before\":{},\"after\":{},\"source\":{\"table\":\"t\"}}", NULL, SL_ERR_INVALID,
     "has \"source\" and \"before\"/\"after\" but no \"op\""},
};

static void test_bad_events(void **state)
{
    sl_event ev;
    size_t i;

    (void)state;
    sl_event_init(&ev);
    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        sl_record rec;
        sl_error err;
        int rc;

        sl_error_clear(&err);
        record_make(&rec, c->topic, NULL, 0, c->value, strlen(c->value));
        rc = sl_event_decode(&ev, &rec, &err);
        if (rc == 0 || err.code != c->code || strstr(err.msg, c->msg) == NULL)
            print_error("case %zu: rc %d code %d msg '%s', want '%s'\n", i, rc, (int)err.code,
                        err.msg, c->msg);
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, c->code);
        assert_non_null(strstr(err.msg, c->msg));
    }
    sl_event_free(&ev);
}

/* ---- other event shapes -------------------------------------------------------- */

static int decode_text(sl_event *ev, const char *topic, const char *key, const char *value,
                       sl_error *err)
{
    sl_record rec;

    record_make(&rec, topic, key, key ? strlen(key) : 0, value, value ? strlen(value) : 0);
    return sl_event_decode(ev, &rec, err);
}

static void test_shapes(void **state)
{
    sl_event ev;
    sl_error err;
    sl_value v;

    (void)state;
    sl_event_init(&ev);

    /* a Kafka tombstone has no value bytes at all */
    assert_int_equal(decode_text(&ev, "a.b.c", "{\"id\":7}", NULL, &err), 0);
    assert_int_equal(ev.kind, SL_EV_TOMBSTONE);
    assert_true(str_is(ev.table, "c"));
    assert_true(str_is(ev.schema, "b"));
    assert_true(str_is(ev.origin, "a"));
    /* the converter's null payload is one too */
    assert_int_equal(decode_text(&ev, NULL, NULL, "{\"schema\":null,\"payload\":null}", &err), 0);
    assert_int_equal(ev.kind, SL_EV_TOMBSTONE);
    assert_true(ev.enveloped);

    /* snapshot spellings */
    {
        static const struct {
            const char *snap;
            bool want;
        } snaps[] = {
            {"true", true},
            {"false", false},
            {"\"true\"", true},
            {"\"false\"", false},
            {"\"first\"", true},
            {"\"last\"", true},
            {"\"incremental\"", true},
            {"\"first_in_data_collection\"", true},
            {"\"last_in_data_collection\"", true},
            {"null", false},
            {"\"other\"", false},
        };
        size_t i;

        for (i = 0; i < sizeof(snaps) / sizeof(snaps[0]); i++) {
            char doc[256];

            snprintf(doc, sizeof(doc),
                     "{\"op\":\"r\",\"after\":{\"a\":1},\"source\":{\"table\":\"t\","
                     "\"snapshot\":%s}}",
                     snaps[i].snap);
            assert_int_equal(decode_text(&ev, NULL, NULL, doc, &err), 0);
            assert_int_equal(ev.snapshot, snaps[i].want);
        }
        assert_int_equal(decode_text(&ev, NULL, NULL,
                                     "{\"op\":\"r\",\"after\":{},\"source\":{\"table\":\"t\"}}",
                                     &err),
                         0);
        assert_false(ev.snapshot);
    }

    /* flattened with the SMT's metadata fields */
    assert_int_equal(
        decode_text(&ev, NULL, NULL,
                    "{\"id\":5,\"name\":\"x\",\"__op\":\"c\",\"__table\":\"orders\","
                    "\"__db\":\"shop\",\"__schema\":\"public\",\"__source_name\":\"site1\","
                    "\"__connector\":\"postgresql\",\"__lsn\":255,\"__source_ts_ms\":1000,"
                    "\"__ts_ms\":2000,\"__deleted\":\"false\"}",
                    &err),
        0);
    assert_true(ev.flattened);
    assert_int_equal(ev.op, 'c');
    assert_true(str_is(ev.table, "orders"));
    assert_true(str_is(ev.db, "shop"));
    assert_true(str_is(ev.schema, "public"));
    assert_true(str_is(ev.origin, "site1"));
    assert_true(str_is(ev.position, "00000000000000ff"));
    assert_true(ev.source_ts_ms == 1000 && ev.ts_ms == 2000);
    assert_int_equal(sl_event_column(&ev, SL_SEC_ROW, "__op", 4, &v), 0);
    assert_int_equal(sl_event_column(&ev, SL_SEC_SOURCE, "ts_ms", 5, &v), 1);
    assert_true(v.type == SL_V_INT && v.u.i == 1000);
    assert_int_equal(sl_event_column(&ev, SL_SEC_SOURCE, "table", 5, &v), 1);
    assert_true(v.type == SL_V_STRING && str_is(v.u.s, "orders"));
    /* __deleted true (a JSON boolean) makes a delete */
    assert_int_equal(decode_text(&ev, "p.s.t", NULL, "{\"id\":5,\"__deleted\":true}", &err), 0);
    assert_int_equal(ev.op, 'd');
    assert_true(str_is(ev.table, "t"));
    /* a topic with one dot: prefix.table */
    assert_int_equal(decode_text(&ev, "pre.tab", NULL, "{\"id\":5}", &err), 0);
    assert_true(str_is(ev.table, "tab") && str_is(ev.origin, "pre") && ev.schema.len == 0);
    /* a topic prefix with dots keeps them */
    assert_int_equal(decode_text(&ev, "a.b.c.d", NULL, "{\"id\":5}", &err), 0);
    assert_true(str_is(ev.table, "d") && str_is(ev.schema, "c") && str_is(ev.origin, "a.b"));

    /* escaped source strings are unescaped */
    assert_int_equal(
        decode_text(&ev, NULL, NULL,
                    "{\"op\":\"c\",\"after\":{},\"source\":{\"name\":\"s\\u00e9\",\"table\":"
                    "\"t\\\"q\",\"connector\":\"postgresql\",\"lsn\":\"16\"}}",
                    &err),
        0);
    assert_true(str_is(ev.origin, "s\xc3\xa9"));
    assert_true(str_is(ev.table, "t\"q"));
    assert_true(str_is(ev.position, "0000000000000010"));

    /* unknown connectors: position by the fields present, else ts_ms */
    assert_int_equal(
        decode_text(&ev, NULL, NULL,
                    "{\"op\":\"c\",\"after\":{},\"ts_ms\":5,\"source\":{\"table\":\"t\","
                    "\"connector\":\"mongodb\",\"ts_ms\":4096,\"db\":\"d1\"}}",
                    &err),
        0);
    assert_true(str_is(ev.position, "0000000000001000"));
    assert_true(str_is(ev.partition, "d1"));
    assert_int_equal(decode_text(&ev, NULL, NULL,
                                 "{\"op\":\"c\",\"after\":{},\"source\":{\"table\":\"t\","
                                 "\"file\":\"binlog.12\",\"pos\":16,\"row\":2}}",
                                 &err),
                     0);
    assert_true(str_is(ev.position, "binlog.0000000012/0000000000000010/00000002"));
    assert_int_equal(decode_text(&ev, NULL, NULL,
                                 "{\"op\":\"c\",\"after\":{},\"source\":{\"table\":\"t\","
                                 "\"connector\":\"mysql\",\"file\":\"b.123456789\"}}",
                                 &err),
                     0);
    assert_true(str_is(ev.position, "b.0123456789/0000000000000000/00000000"));
    /* mysql position order follows the file number, then pos, then row */
    {
        static const char *const files[][3] = {
            {"mysql-bin.000009", "999999", "9"}, {"mysql-bin.000010", "4", "0"},
            {"mysql-bin.000010", "5", "0"},      {"mysql-bin.000010", "5", "1"},
            {"mysql-bin.1000000", "1", "0"},
        };
        char prev[128] = "";
        size_t i;

        for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            char doc[256];

            snprintf(doc, sizeof(doc),
                     "{\"op\":\"u\",\"after\":{},\"source\":{\"connector\":\"mysql\",\"table\":"
                     "\"t\",\"file\":\"%s\",\"pos\":%s,\"row\":%s}}",
                     files[i][0], files[i][1], files[i][2]);
            assert_int_equal(decode_text(&ev, NULL, NULL, doc, &err), 0);
            assert_true(ev.position.len < sizeof(prev));
            assert_true(strlen(prev) == 0 || memcmp(prev, ev.position.p, ev.position.len) < 0);
            memcpy(prev, ev.position.p, ev.position.len);
            prev[ev.position.len] = '\0';
        }
    }
    /* postgres lsn order is numeric order */
    {
        sl_event ev2;

        sl_event_init(&ev2);
        assert_int_equal(decode_text(&ev, NULL, NULL,
                                     "{\"op\":\"c\",\"after\":{},\"source\":{\"connector\":"
                                     "\"postgresql\",\"table\":\"t\",\"lsn\":999}}",
                                     &err),
                         0);
        assert_int_equal(decode_text(&ev2, NULL, NULL,
                                     "{\"op\":\"c\",\"after\":{},\"source\":{\"connector\":"
                                     "\"postgresql\",\"table\":\"t\",\"lsn\":1000}}",
                                     &err),
                         0);
        assert_int_equal(ev.position.len, ev2.position.len);
        assert_true(memcmp(ev.position.p, ev2.position.p, ev.position.len) < 0);
        sl_event_free(&ev2);
    }
    sl_event_free(&ev);
}

/* ---- row keys ------------------------------------------------------------------------ */

static const struct key_case {
    const char *key;   /* record key */
    const char *value; /* NULL: a default update with after {"id":1,"name":"x"} */
    const char *cols;  /* comma-separated, or NULL for the record key */
    const char *want;  /* NULL: error */
    const char *msg;
} key_cases[] = {
    {"{\"id\":1001}", NULL, NULL, "{\"id\":1001}", NULL},
    {"{ \"id\" : 1001 }", NULL, NULL, "{\"id\":1001}", NULL},
    {"\n{\n  \"\\u0069d\":\t1001\n}\n", NULL, NULL, "{\"id\":1001}", NULL},
    {"{\"schema\":{\"type\":\"struct\"},\"payload\":{\"id\":1001}}", NULL, NULL, "{\"id\":1001}",
     NULL},
    {"{\"k\":\"a\\u00e9\\/b\"}", NULL, NULL, "{\"k\":\"a\xc3\xa9/b\"}", NULL},
    {"{\"k\":\"tab\\there \\\"q\\\" \\u0001\"}", NULL, NULL,
     "{\"k\":\"tab\\there \\\"q\\\" \\u0001\"}", NULL},
    {"{\"k\": [1, {\"a\": null}, true], \"n\": -1.5e3}", NULL, NULL,
     "{\"k\":[1,{\"a\":null},true],\"n\":-1.5e3}", NULL},
    {"{\"b\":2,\"a\":1}", NULL, NULL, "{\"b\":2,\"a\":1}", NULL},
    {NULL, NULL, NULL, NULL, "the record has no key"},
    {"null", NULL, NULL, NULL, "the record has no key"},
    {"not json", NULL, NULL, NULL, "the record key is not valid JSON"},
    {"42", NULL, NULL, NULL, "the record key is a number, expected a JSON object"},
    {NULL, NULL, "id", "{\"id\":1}", NULL},
    {NULL, NULL, "name,id", "{\"name\":\"x\",\"id\":1}", NULL},
    {"{\"id\":99}", NULL, "id", "{\"id\":1}", NULL}, /* columns win over the record key */
    {NULL, NULL, "id,zz", NULL, "key column 'zz' is missing from after"},
    {NULL,
     "{\"op\":\"d\",\"before\":{\"id\" : 3, \"name\": \"y\"},\"after\":null,\"source\":{"
     "\"table\":\"t\"}}",
     "id", "{\"id\":3}", NULL},
    {NULL, "{\"op\":\"d\",\"before\":{\"id\" : 3},\"after\":null,\"source\":{\"table\":\"t\"}}",
     "name", NULL, "key column 'name' is missing from before"},
    {NULL, "{\"op\":\"t\",\"source\":{\"table\":\"t\"}}", "id", NULL, "has no before or after row"},
    {NULL, "{\"op\":\"u\",\"after\":{\"id\":{ \"x\" : [ 1 , 2 ] }},\"source\":{\"table\":\"t\"}}",
     "id", "{\"id\":{\"x\":[1,2]}}", NULL},
};

static void test_keys(void **state)
{
    static const char dflt[] =
        "{\"op\":\"u\",\"after\":{\"id\":1,\"name\":\"x\"},\"source\":{\"table\":\"t\"}}";
    sl_event ev;
    sl_buf out = SL_BUF_INIT;
    size_t i;

    (void)state;
    sl_event_init(&ev);
    for (i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
        const struct key_case *c = &key_cases[i];
        const char *cols[4];
        char colbuf[64];
        size_t ncols = 0;
        sl_error err;
        int rc;

        if (c->cols) {
            char *p;

            snprintf(colbuf, sizeof(colbuf), "%s", c->cols);
            for (p = strtok(colbuf, ","); p; p = strtok(NULL, ","))
                cols[ncols++] = p;
        }
        assert_int_equal(decode_text(&ev, NULL, c->key, c->value ? c->value : dflt, &err), 0);
        sl_buf_reset(&out);
        sl_buf_puts(&out, "prefix:");
        rc = sl_event_key(&ev, cols, ncols, &out, &err);
        if (c->want) {
            if (rc != 0 || strcmp(out.data + 7, c->want) != 0)
                print_error("case %zu: rc %d '%s' (%s), want '%s'\n", i, rc, out.data + 7,
                            rc ? err.msg : "", c->want);
            assert_int_equal(rc, 0);
            assert_string_equal(out.data + 7, c->want);
        } else {
            if (rc == 0 || strstr(err.msg, c->msg) == NULL)
                print_error("case %zu: rc %d msg '%s', want '%s'\n", i, rc, err.msg, c->msg);
            assert_int_equal(rc, -1);
            assert_int_equal(err.code, SL_ERR_INVALID);
            assert_non_null(strstr(err.msg, c->msg));
            assert_string_equal(out.data, "prefix:"); /* nothing appended on error */
        }
    }
    sl_buf_free(&out);
    sl_event_free(&ev);
}

/* ---- scratch stability ---------------------------------------------------------------- */

/* Strings read earlier stay valid while more columns are read, however often. */
static void test_scratch_stable(void **state)
{
    sl_buf doc = SL_BUF_INIT;
    sl_event ev;
    sl_error err;
    sl_str first[40];
    char name[16], want[32];
    const char *data;
    int i, round;

    (void)state;
    sl_buf_puts(&doc, "{\"op\":\"c\",\"source\":{\"table\":\"t\\u0031\"},\"after\":{");
    for (i = 0; i < 40; i++)
        sl_buf_printf(&doc, "%s\"c%d\":\"v\\u00e9%d\\n\"", i ? "," : "", i, i);
    sl_buf_puts(&doc, "}}");
    sl_event_init(&ev);
    assert_int_equal(decode_text(&ev, NULL, NULL, doc.data, &err), 0);
    assert_true(str_is(ev.table, "t1"));
    data = ev.scratch.data;
    for (round = 0; round < 200; round++) {
        for (i = 0; i < 40; i++) {
            sl_value v;
            int n = snprintf(name, sizeof(name), "c%d", i);

            assert_int_equal(sl_event_column(&ev, SL_SEC_AFTER, name, (size_t)n, &v), 1);
            snprintf(want, sizeof(want), "v\xc3\xa9%d\n", i);
            assert_true(v.type == SL_V_STRING && str_is(v.u.s, want));
            if (round == 0)
                first[i] = v.u.s;
            else
                assert_ptr_equal(first[i].p, v.u.s.p); /* unescaped once */
        }
    }
    assert_ptr_equal(ev.scratch.data, data);
    for (i = 0; i < 40; i++) {
        snprintf(want, sizeof(want), "v\xc3\xa9%d\n", i);
        assert_true(str_is(first[i], want));
    }
    assert_true(str_is(ev.table, "t1"));
    sl_buf_free(&doc);
    sl_event_free(&ev);
}

/* ---- sl_colsel_keeps ----------------------------------------------------------------- */

static void test_colsel(void **state)
{
    static const char *const cols[] = {"id", "email"};
    static const char *const drop[] = {"email", "secret"};
    const sl_colsel only = {false, cols, 2, NULL, 0};
    const sl_colsel all_but = {true, NULL, 0, drop, 2};
    const sl_colsel both = {false, cols, 2, drop, 2};

    (void)state;
    assert_true(sl_colsel_keeps(NULL, "x", 1));
    assert_true(sl_colsel_keeps(&only, "id", 2));
    assert_true(sl_colsel_keeps(&only, "email", 5));
    assert_false(sl_colsel_keeps(&only, "i", 1));
    assert_false(sl_colsel_keeps(&only, "idx", 3));
    assert_true(sl_colsel_keeps(&all_but, "id", 2));
    assert_false(sl_colsel_keeps(&all_but, "secret", 6));
    assert_true(sl_colsel_keeps(&both, "id", 2));
    assert_false(sl_colsel_keeps(&both, "email", 5));
    assert_false(sl_colsel_keeps(&both, "secret", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),   cmocka_unit_test(test_fixtures_all_covered),
        cmocka_unit_test(test_bad_events), cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_keys),       cmocka_unit_test(test_scratch_stable),
        cmocka_unit_test(test_colsel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
