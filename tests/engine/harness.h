/*
 * harness.h - helpers shared by the engine tests that drive the `sluice`
 * binary (test_engine.c, test_promises.c).
 */
#ifndef SL_TEST_HARNESS_H
#define SL_TEST_HARNESS_H

#include <limits.h>
#include <stddef.h>

#include "common/buf.h"
#include "engine/json.h"

/* The test's scratch directory and the sluice binary under test
 * ($SLUICE_BINARY, else build/sluice), set by harness_setup. */
extern char dir[PATH_MAX];
extern const char *bin;

/* A new scratch directory /tmp/sluice-NAME-XXXXXX; 0, or -1. */
int harness_setup(const char *name);
/* Remove it, unless $SLUICE_KEEP_TMP is set. */
void harness_teardown(void);

/* The lines of a JSON-lines file, each parsed (a missing file: none). */
typedef struct jline {
    char *text;
    sl_json j;
} jline;

typedef struct jfile {
    jline *v;
    size_t n;
} jfile;

/* dir/name, in one of 8 rotating buffers. */
char *path(const char *name);
void write_file(const char *p, const char *text);
/* Run a shell command (printf format); its exit status, 128 + signal. */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A file's bytes, NUL-terminated ("" when it is missing). */
char *slurp(const char *p, size_t *len);
/* The lines of a JSON-lines file, each parsed; a line that is not JSON
 * fails the test. */
jfile load(const char *p);
void unload(jfile *f);
/* Token at a dotted path ("value.after.a"), or -1. "\\." is a dot inside
 * a name ("headers.sluice\\.version"). */
int jat(const sl_json *j, const char *dotted);
/* Raw JSON text at a path, "<absent>" when missing (8 rotating buffers). */
const char *jraw(const jline *l, const char *dotted);
/* A counter of a `--stats` file ("echoes", ...), -1 when missing. */
long stat_of(const char *stats_path, const char *name);

#endif
