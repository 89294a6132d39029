#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sl_error_set(sl_error *err, sl_errcode code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int sl_error_wrap(sl_error *err, const char *fmt, ...)
{
    char old[sizeof(err->msg)];
    size_t n;
    va_list ap;

    if (err == NULL)
        return -1;
    memcpy(old, err->msg, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    if (n + 2 < sizeof(err->msg)) {
        memcpy(err->msg + n, ": ", 2);
        n += 2;
        /* truncation of a long chain of context is acceptable */
        memcpy(err->msg + n, old, strnlen(old, sizeof(err->msg) - n - 1));
        err->msg[n + strnlen(old, sizeof(err->msg) - n - 1)] = '\0';
    }
    return -1;
}

void sl_error_clear(sl_error *err)
{
    if (err == NULL)
        return;
    err->code = SL_OK;
    err->msg[0] = '\0';
}

const char *sl_errcode_name(sl_errcode code)
{
    switch (code) {
    case SL_OK:
        return "ok";
    case SL_ERR_IO:
        return "io";
    case SL_ERR_NOMEM:
        return "nomem";
    case SL_ERR_PARSE:
        return "parse";
    case SL_ERR_INVALID:
        return "invalid";
    case SL_ERR_TYPE:
        return "type";
    case SL_ERR_RULES:
        return "rules";
    case SL_ERR_STORE:
        return "store";
    case SL_ERR_USAGE:
        return "usage";
    case SL_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
