/*
 * fuzz_rules.c - libFuzzer target: arbitrary bytes as a rule file.
 *
 * Compiles the input; when it compiles, explains it and looks a table up, so
 * the checker, the compiler and the printers all see fuzzed programs. The
 * diagnostics are formatted either way (carets over arbitrary lines).
 *
 *   CC=clang cmake -S . -B build-fuzz -G Ninja -DSLUICE_FUZZ=ON -DSLUICE_TESTS=ON
 *   ninja -C build-fuzz fuzz_rules
 *   build-fuzz/tests/fuzz/fuzz_rules -max_total_time=30 tests/fuzz/seeds-rules
 */
#include <stddef.h>
#include <stdint.h>

#include "dsl/program.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_diags d;
    sl_buf out = SL_BUF_INIT;
    sl_program *p;

    sl_diags_init(&d);
    p = sl_compile_text("fuzz.rules", (const char *)data, size, &d);
    sl_diags_format(&d, &out);
    if (p) {
        sl_str schema = {"public", 6}, table = {"orders", 6};

        sl_program_explain(p, &out);
        (void)sl_program_find_table(p, schema.p, schema.len, table.p, table.len);
        if (p->ntables && p->nsites)
            sl_program_topic(p, &p->tables[0], p->sites[0].name, NULL, schema, table, &out);
        sl_program_unref(p);
    }
    sl_buf_free(&out);
    sl_diags_free(&d);
    return 0;
}
