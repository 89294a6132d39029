/*
 * passthrough.c - benchmark baseline (a): copy a JSON-lines file line by line.
 *
 *     passthrough INPUT OUTPUT        ('-' for stdin / stdout)
 *
 * The floor any line-oriented processor pays: read in 1 MiB chunks, find each
 * newline with memchr, write every line unchanged through a 1 MiB stdio
 * buffer. Single-threaded on purpose: it is bound by memory and I/O bandwidth.
 * With -v it reports the number of lines and bytes on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (1u << 20)

/* Static so that stdout may keep using it until exit. */
static char obuf[CHUNK];

static FILE *open_or_std(const char *path, const char *mode, FILE *std)
{
    if (strcmp(path, "-") == 0)
        return std;
    return fopen(path, mode);
}

int main(int argc, char **argv)
{
    int verbose = 0;
    int argi = 1;
    if (argi < argc && strcmp(argv[argi], "-v") == 0) {
        verbose = 1;
        argi++;
    }
    if (argc - argi != 2) {
        fprintf(stderr, "usage: passthrough [-v] INPUT OUTPUT\n");
        return 2;
    }
    int rc = 1;
    size_t cap = CHUNK;
    char *buf = NULL;
    FILE *in = open_or_std(argv[argi], "rb", stdin);
    FILE *out = open_or_std(argv[argi + 1], "wb", stdout);
    unsigned long long lines = 0, bytes = 0;

    if (!in || !out) {
        fprintf(stderr, "passthrough: %s: %s\n", !in ? argv[argi] : argv[argi + 1],
                strerror(errno));
        goto out;
    }
    buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "passthrough: out of memory\n");
        goto out;
    }
    setvbuf(out, obuf, _IOFBF, CHUNK);

    /* buf[0..have) holds the unfinished tail of the previous chunk followed
     * by fresh bytes; a line longer than the buffer doubles it. */
    size_t have = 0;
    for (;;) {
        if (have == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                fprintf(stderr, "passthrough: out of memory\n");
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + have, 1, cap - have, in);
        if (n == 0) {
            if (ferror(in)) {
                fprintf(stderr, "passthrough: read error: %s\n", strerror(errno));
                goto out;
            }
            break;
        }
        bytes += n;
        size_t end = have + n;
        size_t start = 0;
        /* Only the new bytes can hold the first newline: the tail had none. */
        const char *nl = memchr(buf + have, '\n', n);
        while (nl) {
            size_t len = (size_t)(nl - (buf + start)) + 1;
            if (fwrite(buf + start, 1, len, out) != len)
                goto write_error;
            lines++;
            start += len;
            nl = memchr(buf + start, '\n', end - start);
        }
        have = end - start;
        memmove(buf, buf + start, have);
    }
    if (have > 0) {
        /* A last line without a newline is copied as it is. */
        if (fwrite(buf, 1, have, out) != have)
            goto write_error;
        lines++;
    }
    if (fflush(out) != 0)
        goto write_error;
    if (verbose)
        fprintf(stderr, "%llu lines, %llu bytes\n", lines, bytes);
    rc = 0;
    goto out;

write_error:
    fprintf(stderr, "passthrough: write error: %s\n", strerror(errno));
out:
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "passthrough: close: %s\n", strerror(errno));
        rc = 1;
    }
    if (out == stdout)
        fflush(stdout);
    free(buf);
    return rc;
}
