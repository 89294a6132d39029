/*
 * check.c - what must hold once every link is up and nothing is in flight.
 *
 * Per table and key:
 *  1. every site holds the identical row, or none of them has it;
 *  2. the hub's consolidated row (its state document in the store, read
 *     with row_get/rows_each) has that image, or is a tombstone when the
 *     sites have no row;
 *  3. unless the row is "crossed" (model.c): the model's final image and
 *     version equal the hub's, and the store holds as many conflicts (and
 *     as many open ones) as the model counted.
 * And for the history: every local write was decided by the model exactly
 * once (nothing lost on the way to the hub).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"
#include "engine/rowstate.h"
#include "sim.h"

typedef struct hubrow {
    bool found; /* the store has a document */
    bool known; /* its format was understood */
    int64_t v;
    sim_row img;   /* present false: deleted */
    char why[160]; /* when the image could not be read */
    int queued;    /* versions still queued to some site */
    int conflicts, open;
} hubrow;

typedef struct hubtab {
    sim *S;
    int t;
    hubrow rows[SIM_MAXKEYS + 1];
    int extra; /* documents for keys the simulator never wrote */
} hubtab;

static int key_id(const char *p, size_t n)
{
    sl_json j;
    sl_error e;
    int t, id = -1;

    sl_json_init(&j);
    if (sl_json_parse(&j, p, n, &e) == 0 && (t = sl_json_get(&j, 0, "id", 2)) >= 0 &&
        j.tok[t].type == SL_J_NUMBER)
        id = atoi(j.src + j.tok[t].start);
    sl_json_free(&j);
    return id;
}

/* The state document, read with the engine's own reader (the hub's state
 * is what is checked here; its encoding has its own tests). An unreadable
 * document is reported, not guessed at. */
static void parse_doc(hubrow *h, sl_str doc)
{
    sl_rowstate st;
    sl_json j;
    sl_error e;
    size_t i;

    sl_rowstate_init(&st);
    sl_json_init(&j);
    h->found = true;
    if (sl_rowstate_read(&st, doc.p, doc.len, &e) != 0) {
        snprintf(h->why, sizeof(h->why), "%.100s", e.msg);
        goto out;
    }
    h->v = st.v;
    if (st.deleted) {
        memset(&h->img, 0, sizeof(h->img));
    } else if (st.row == NULL) {
        if (h->v > 0) {
            snprintf(h->why, sizeof(h->why), "live version without a row");
            goto out;
        }
        memset(&h->img, 0, sizeof(h->img));
    } else if (sl_json_parse(&j, st.row, strlen(st.row), &e) != 0) {
        snprintf(h->why, sizeof(h->why), "row image is not JSON: %.100s", e.msg);
        goto out;
    } else if (sim_row_from_tok(&j, 0, &h->img, h->why, sizeof(h->why)) != 0) {
        goto out;
    }
    h->known = true;
    for (i = 0; i < st.nsites; i++)
        h->queued += (int)st.sites[i].nq;
out:
    sl_json_free(&j);
    sl_rowstate_free(&st);
}

static int on_row(void *arg, sl_str table, sl_str key, sl_str doc)
{
    hubtab *ht = arg;
    int id = key_id(key.p, key.len);

    if (id < 1 || id > ht->S->nkeys) {
        ht->extra++;
        return 0;
    }
    parse_doc(&ht->rows[id], doc);
    return 0;
}

static int on_conflict(void *arg, const sl_conflict_rec *c)
{
    hubtab *ht = arg;
    int id = key_id(c->key.p, c->key.len);

    if (id < 1 || id > ht->S->nkeys) {
        ht->extra++;
        return 0;
    }
    ht->rows[id].conflicts++;
    if (c->status.len == strlen(SL_CONFLICT_OPEN) &&
        memcmp(c->status.p, SL_CONFLICT_OPEN, c->status.len) == 0)
        ht->rows[id].open++;
    return 0;
}

static void row_str(const sim_row *r, char *buf, size_t n)
{
    sl_buf b = SL_BUF_INIT;

    sim_row_json(r, &b);
    snprintf(buf, n, "%s", b.data);
    sl_buf_free(&b);
}

void sim_check(sim *S)
{
    int t, k, s, crossed = 0, stale = 0;
    size_t i;
    sl_error err;

    for (t = 0; t < S->ntables; t++) {
        hubtab ht;
        sl_conflict_filter f;

        memset(&ht, 0, sizeof(ht));
        ht.S = S;
        ht.t = t;
        sl_error_clear(&err);
        if (S->st->ops->rows_each(S->sess, S->qname[t], on_row, &ht, &err) != 0)
            sim_failf(S, "store: rows_each(%s): %s", S->qname[t], err.msg);
        memset(&f, 0, sizeof(f));
        f.table = S->qname[t];
        if (S->st->ops->conflicts_each(S->sess, &f, 0, on_conflict, &ht, &err) != 0)
            sim_failf(S, "store: conflicts_each(%s): %s", S->qname[t], err.msg);
        if (ht.extra)
            sim_failf(S, "%s: the store has %d documents/conflicts for keys never written",
                      S->tname[t], ht.extra);

        for (k = 1; k <= S->nkeys; k++) {
            const sim_row *r0 = &S->site[0].cell[t][k].row;
            hubrow *h = &ht.rows[k];
            sim_mfinal mf;
            char a[96], b[96];
            bool sites_agree = true;

            for (s = 1; s < S->nsites; s++)
                if (!sim_row_eq(r0, &S->site[s].cell[t][k].row))
                    sites_agree = false;
            if (!sites_agree) {
                sl_buf all = SL_BUF_INIT;

                for (s = 0; s < S->nsites; s++) {
                    sl_buf_printf(&all, " %s=", sim_site_name(S, s));
                    sim_row_json(&S->site[s].cell[t][k].row, &all);
                }
                sim_failf(S, "%s#%d: sites differ:%s", S->tname[t], k, all.data);
                sl_buf_free(&all);
            }

            /* the hub's consolidated row */
            if (!h->found) {
                if (r0->present)
                    sim_failf(S, "%s#%d: the sites hold a row but the store has no state for it",
                              S->tname[t], k);
            } else if (!h->known) {
                /* reported once per run by main; the hub checks are skipped */
                if (S->unknown_docs++ == 0)
                    snprintf(S->unknown_why, sizeof(S->unknown_why), "%s", h->why);
                sim_tracef(S, "  note: %s#%d: cannot read the hub's state: %s\n", S->tname[t], k,
                           h->why);
            } else if (!sim_row_eq(&h->img, r0)) {
                row_str(&h->img, a, sizeof(a));
                row_str(r0, b, sizeof(b));
                sim_failf(S, "%s#%d: hub v%" PRId64 " is %s but %s holds %s", S->tname[t], k, h->v,
                          a, sim_site_name(S, 0), b);
            }
            if (h->queued) {
                stale += h->queued;
                sim_tracef(S,
                           "  note: %s#%d: %d sends still queued in the hub's state after "
                           "quiescence\n",
                           S->tname[t], k, h->queued);
            }

            /* the model */
            sim_model_final(S->model, t, k, &mf);
            if (mf.crossed) {
                crossed++;
                sim_tracef(S, "  note: %s#%d crossed: %s\n", S->tname[t], k, mf.why);
                continue;
            }
            if (!sim_row_eq(&mf.img, r0)) {
                row_str(&mf.img, a, sizeof(a));
                row_str(r0, b, sizeof(b));
                sim_failf(S, "%s#%d: the model says v%" PRId64 " = %s but %s holds %s", S->tname[t],
                          k, mf.v, a, sim_site_name(S, 0), b);
            }
            if (h->known && h->v != mf.v)
                sim_failf(S, "%s#%d: hub is at v%" PRId64 ", the model at v%" PRId64, S->tname[t],
                          k, h->v, mf.v);
            if (h->conflicts != mf.conflicts || h->open != mf.open)
                sim_failf(S,
                          "%s#%d: the store has %d conflicts (%d open), the model counted %d "
                          "(%d open)",
                          S->tname[t], k, h->conflicts, h->open, mf.conflicts, mf.open);
        }
    }
    for (i = 0; i < S->nwrites; i++)
        if (S->writes[i].outcome == SIM_W_PENDING)
            sim_failf(S, "write %zu (ev%d at %s) never reached the model: lost on the way", i,
                      S->writes[i].ev, sim_site_name(S, S->writes[i].site));
    S->crossed_rows = crossed;
    S->stale_queued = stale;
    if (crossed)
        sim_tracef(S, "  %d row(s) crossed: model not applied to them\n", crossed);
    if (stale)
        sim_tracef(S, "  %d send(s) still queued in the hub's state\n", stale);
}
