/*
 * testutil.h - helpers shared by the event tests (fixture files, records).
 */
#ifndef SL_TEST_EVENT_UTIL_H
#define SL_TEST_EVENT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/event.h"

/* Contents of $SHARED_DIR/fixtures/debezium/<name>, NUL-terminated, or NULL. */
static inline char *fixture_read(const char *name, size_t *len)
{
    const char *shared = getenv("SHARED_DIR");
    char path[1024];
    FILE *f;
    char *buf = NULL;
    long n;

    snprintf(path, sizeof(path), "%s/fixtures/debezium/%s", shared ? shared : "../shared", name);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* A record with just a value (and optionally a key and a topic). */
static inline void record_make(sl_record *rec, const char *topic, const char *key, size_t key_len,
                               const char *value, size_t value_len)
{
    memset(rec, 0, sizeof(*rec));
    rec->topic.p = topic ? topic : "";
    rec->topic.len = topic ? strlen(topic) : 0;
    rec->partition = -1;
    rec->offset = -1;
    rec->key = key;
    rec->key_len = key_len;
    rec->value = value;
    rec->value_len = value_len;
}

static inline int str_is(sl_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

#endif
