/*
 * error.h - the error object every library layer fills instead of printing.
 *
 * Library code returns a status (or NULL) and fills an sl_error; only main
 * decides what the user sees. The object is caller-owned and fixed-size, so
 * filling it never allocates.
 */
#ifndef SL_ERROR_H
#define SL_ERROR_H

#include <stddef.h>

typedef enum sl_errcode {
    SL_OK = 0,
    SL_ERR_IO,       /* a file, pipe or socket failed */
    SL_ERR_NOMEM,    /* allocation failed */
    SL_ERR_PARSE,    /* malformed input bytes (JSON, config) */
    SL_ERR_INVALID,  /* well-formed but meaningless (unknown op, missing field) */
    SL_ERR_TYPE,     /* a value of the wrong type for an operation */
    SL_ERR_RULES,    /* rule files did not compile; diagnostics hold the detail */
    SL_ERR_STORE,    /* the metadata store failed */
    SL_ERR_USAGE,    /* bad command-line use */
    SL_ERR_INTERNAL, /* a bug: an invariant did not hold */
} sl_errcode;

typedef struct sl_error {
    sl_errcode code;
    char msg[512];
} sl_error;

/* Fill err (which may be NULL) and return -1, so callers can write
 * `return sl_error_set(err, SL_ERR_IO, "cannot open %s", path);`. */
int sl_error_set(sl_error *err, sl_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "ctx: old message". */
int sl_error_wrap(sl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sl_error_clear(sl_error *err);

/* A short stable name for a code ("io", "parse", ...), used in dead-letter headers. */
const char *sl_errcode_name(sl_errcode code);

#endif
