/*
 * program.h - a compiled rule set: immutable plain data.
 *
 * This is the only header the engine uses to see rules. A program is built by
 * sl_compile() from one or more .rules files that together form one rule set,
 * never changes afterwards, and is shared read-only by every worker thread.
 * Reference counting lets a hot reload swap programs while events compiled
 * against the old one finish.
 *
 * Nothing here touches Kafka, threads or the metadata store.
 */
#ifndef SL_PROGRAM_H
#define SL_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/value.h"
#include "diag.h"

/* ---- sites ------------------------------------------------------------- */

#define SL_MAX_SITES 1024

/* A set of sites, as a bitset over sl_program.sites indexes. */
typedef struct sl_siteset {
    uint64_t w[SL_MAX_SITES / 64];
} sl_siteset;

static inline bool sl_siteset_has(const sl_siteset *s, int i)
{
    return i >= 0 && (s->w[i / 64] >> (i % 64)) & 1;
}

static inline void sl_siteset_add(sl_siteset *s, int i)
{
    s->w[i / 64] |= (uint64_t)1 << (i % 64);
}

typedef struct sl_site {
    const char *name;        /* as declared: `site store_01;` */
    const char *source_name; /* Debezium source.name that identifies it; = name unless
                                `site store_01 source "pg-store-01";` */
    bool hub;
    int priority; /* higher wins ties; default 0 */
    sl_loc loc;
} sl_site;

/* ---- expressions --------------------------------------------------------- */

typedef enum sl_xkind {
    SL_X_LITERAL, /* lit */
    SL_X_OP,      /* the event's op as a one-letter string: 'c' 'u' 'd' 'r' 't' */
    SL_X_ORIGIN,  /* the origin site's name */
    SL_X_FIELD,   /* sec + name: after.status, source.ts_ms, ... */
    SL_X_NOT,     /* NOT a */
    SL_X_NEG,     /* - a */
    SL_X_AND,     /* a AND b (SQL three-valued logic) */
    SL_X_OR,      /* a OR b */
    SL_X_CMP,     /* a <cmp> b */
    SL_X_ARITH,   /* a <arith> b */
    SL_X_CONCAT,  /* a || b */
    SL_X_IN,      /* a [NOT] IN (args...) */
    SL_X_LIKE,    /* a [NOT] LIKE b   (% and _ wildcards, no escape char) */
    SL_X_ISNULL,  /* a IS [NOT] NULL */
    SL_X_CALL,    /* fn(args...) */
} sl_xkind;

typedef enum sl_section {
    SL_SEC_BEFORE, /* before.col */
    SL_SEC_AFTER,  /* after.col */
    SL_SEC_ROW,    /* row.col: after, or before for a delete */
    SL_SEC_SOURCE, /* source.field */
    SL_SEC_KEY,    /* key.col: the record key */
} sl_section;

typedef enum sl_cmp { SL_CMP_EQ, SL_CMP_NE, SL_CMP_LT, SL_CMP_LE, SL_CMP_GT, SL_CMP_GE } sl_cmp;
typedef enum sl_arith { SL_AR_ADD, SL_AR_SUB, SL_AR_MUL, SL_AR_DIV, SL_AR_MOD } sl_arith;

typedef enum sl_fn {
    SL_FN_LOWER,    /* lower(s) */
    SL_FN_UPPER,    /* upper(s) */
    SL_FN_LENGTH,   /* length(s): bytes */
    SL_FN_SUBSTR,   /* substr(s, from1 [, len]) */
    SL_FN_TRIM,     /* trim(s) */
    SL_FN_COALESCE, /* coalesce(a, b, ...) */
    SL_FN_STARTS,   /* starts_with(s, prefix) */
    SL_FN_ENDS,     /* ends_with(s, suffix) */
    SL_FN_CONTAINS, /* contains(s, part) */
    SL_FN_ABS,      /* abs(n) */
} sl_fn;

/* The static type the checker inferred; SL_T_ANY for columns (JSON decides). */
typedef enum sl_type { SL_T_ANY, SL_T_BOOL, SL_T_NUMBER, SL_T_STRING, SL_T_NULL } sl_type;

typedef struct sl_expr sl_expr;
struct sl_expr {
    sl_xkind kind;
    sl_type type;
    int op;       /* sl_cmp, sl_arith or sl_fn, by kind */
    bool negated; /* NOT IN, NOT LIKE, IS NOT NULL */
    sl_loc loc;
    sl_value lit;     /* LITERAL */
    sl_section sec;   /* FIELD */
    const char *name; /* FIELD: column or source field name */
    size_t name_len;
    const sl_expr *a, *b;       /* operands */
    const sl_expr *const *args; /* IN list, CALL arguments */
    size_t nargs;
};

/* ---- per-table rules ----------------------------------------------------- */

/* A route: changes from a site in `from` go to the sites in `to`, or to the
 * site named by the value of to_expr (`site(after.store_id)`), when `where`
 * (if any) holds. A change never goes back to its own origin through a route;
 * the conflict referee decides when the origin needs a winner re-sent. */
typedef struct sl_route {
    sl_siteset from;
    sl_siteset to;
    const sl_expr *to_expr; /* NULL unless content-based */
    const sl_expr *where;   /* NULL = always */
    sl_loc loc;
} sl_route;

/* Which columns of before/after go to one destination. */
typedef struct sl_colsel {
    bool all;                /* true: every column, less `drop` */
    const char *const *cols; /* !all: exactly these, in this order */
    size_t ncols;
    const char *const *drop; /* removed (applies to all and to cols) */
    size_t ndrop;
} sl_colsel;

/* `depends on public.customers (customer_id = id) [timeout 30s];` */
typedef struct sl_dep {
    const char *parent; /* "schema.table" as written */
    int parent_table;   /* index into sl_program.tables */
    const char *const *child_cols;
    const char *const *parent_cols;
    size_t ncols;
    int64_t timeout_ms; /* 0 = the program default */
    sl_loc loc;
} sl_dep;

typedef enum sl_conflict_kind {
    SL_CONFLICT_LATEST, /* highest source ts_ms; ties by site priority, then site name */
    SL_CONFLICT_PREFER, /* the preferred site's version wins; latest among the others */
    SL_CONFLICT_MERGE,  /* per column, see sl_merge_col */
    SL_CONFLICT_LUA,    /* lua function (base, current, incoming, ctx) -> row | nil */
    SL_CONFLICT_MANUAL, /* keep current; park the conflict for an operator */
} sl_conflict_kind;

typedef enum sl_merge_kind {
    SL_MERGE_LATEST,
    SL_MERGE_MAX,
    SL_MERGE_MIN,
    SL_MERGE_DELTA, /* both sides' changes relative to the base are added */
    SL_MERGE_PREFER,
} sl_merge_kind;

typedef struct sl_merge_col {
    const char *column; /* "*" = every column not named */
    sl_merge_kind kind;
    int site; /* PREFER: index into sites */
    sl_loc loc;
} sl_merge_col;

/* What wins when one site updates a row another site deleted. */
typedef enum sl_delete_policy {
    SL_DELETE_LATEST,      /* the default: compare like any other conflict, by ts_ms */
    SL_DELETE_WINS,        /* `on delete conflict delete wins;` */
    SL_DELETE_UPDATE_WINS, /* `on delete conflict update wins;` */
} sl_delete_policy;

typedef struct sl_conflict {
    sl_conflict_kind kind;
    int prefer_site;          /* PREFER */
    const char *lua_fn;       /* LUA */
    const sl_merge_col *cols; /* MERGE, in declaration order; at most one "*" */
    size_t ncols;
    sl_delete_policy on_delete;
    bool detect_before; /* `detect conflicts by before;`: a change whose event has a full
                           before image conflicts when that image differs from the
                           consolidated row; other events (and false, the default:
                           `by version`) conflict when the site had not seen the
                           row's current version */
    sl_loc loc;
} sl_conflict;

typedef struct sl_table {
    const char *pattern; /* "public.orders" or a glob "public.*" as written */
    bool is_glob;
    bool ignored; /* `ignore table ...;`: events are dropped and counted */
    int specificity;

    const char *const *key_cols; /* `key (a, b);` - 0 columns: the record key */
    size_t nkey;
    const sl_expr *where; /* all `where` statements ANDed; NULL = every change */
    const sl_route *routes;
    size_t nroutes;
    const sl_colsel *const *sel; /* [nsites]: selection per destination site */
    const char *topic;           /* destination topic template for this table */
    const sl_dep *deps;
    size_t ndeps;
    sl_conflict conflict;
    sl_loc loc;
} sl_table;

typedef struct sl_program {
    const sl_site *sites;
    size_t nsites;
    int hub; /* index of the hub site */

    /* Exact names first (sorted by name), then globs from most to least
     * specific; sl_program_find_table picks the first match. */
    const sl_table *tables;
    size_t ntables;

    const char *topic_template;    /* default "sluice.{dest}.{schema}.{table}" */
    const char *dead_letter_topic; /* default "sluice.dead" */
    int64_t hold_timeout_ms;       /* default for dependency holds: 60000 */
    const char *const *lua_files;  /* resolved relative to the file declaring them */
    size_t nlua;
    const char *const *files; /* the rule files, as given */
    size_t nfiles;
    char version[17]; /* 16 hex digits: hash of every file's bytes, in order */
} sl_program;

/* Compile the rule set made of `paths` (read from disk) or of one in-memory
 * text. Returns NULL when any error was reported; diagnostics go to `diags`
 * (caller-owned, initialised) in either case (warnings on success). */
sl_program *sl_compile_files(const char *const *paths, size_t npaths, sl_diags *diags);
sl_program *sl_compile_text(const char *name, const char *text, size_t len, sl_diags *diags);

/* Reference counting: a new program has one reference. */
sl_program *sl_program_ref(sl_program *p);
void sl_program_unref(sl_program *p);

/* The table block that governs schema.table, or NULL when none matches. */
const sl_table *sl_program_find_table(const sl_program *p, const char *schema, size_t schema_len,
                                      const char *table, size_t table_len);

/* Index of the site whose name (or source name) is `name`, or -1. */
int sl_program_site(const sl_program *p, const char *name, size_t len);
int sl_program_site_by_source(const sl_program *p, const char *source_name, size_t len);

/* Expand a topic template for one destination. */
void sl_program_topic(const sl_program *p, const sl_table *t, const char *dest, const char *origin,
                      sl_str schema, sl_str table, sl_buf *out);

/* Human-readable listing of the whole program (`sluice explain`). */
void sl_program_explain(const sl_program *p, sl_buf *out);

/* Render an expression back to rule-language text (explain, error messages). */
void sl_expr_format(const sl_expr *e, sl_buf *out);

#endif
