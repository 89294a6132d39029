/*
 * event_write.c - the row key and the per-destination output value.
 *
 * Both are written from token slices: numbers and strings are copied as the
 * source wrote them, never re-serialized. The one exception is the row key,
 * which must be canonical (the same row gives the same bytes however the
 * input was spaced or escaped), so escaped strings there are unescaped and
 * written back in sl_buf_json_str's canonical form; unescaped strings are
 * already in that form.
 */
#include "event_priv.h"

#include <string.h>

typedef struct wctx {
    const sl_json *j;
    sl_buf *out;
    sl_buf tmp;     /* unescaped names and strings */
    bool canon;     /* re-escape escaped strings canonically (keys) */
    bool multiline; /* the source has line breaks: compact raw slices */
} wctx;

static void put_raw(wctx *w, int t)
{
    sl_str s = sl_json_raw(w->j, t);

    sl_buf_append(w->out, s.p, s.len);
}

/* An operation letter as a JSON string ("c", "u", "d"). */
static void put_op(sl_buf *out, char op)
{
    char q[3] = {'"', op, '"'};

    sl_buf_append(out, q, 3);
}

static void put_string(wctx *w, int t)
{
    if (!w->canon || !w->j->tok[t].escaped) {
        put_raw(w, t);
        return;
    }
    sl_buf_reset(&w->tmp);
    sl_json_unescape(w->j, t, &w->tmp);
    sl_buf_json_str(w->out, w->tmp.data, w->tmp.len);
}

/* Write value t without white space. Recursion is bounded by the
 * tokenizer's depth limit (SL_JSON_MAX_DEPTH). */
static void put_compact(wctx *w, int t)
{
    const sl_json *j = w->j;
    int k;

    switch (j->tok[t].type) {
    case SL_J_OBJECT:
        sl_buf_putc(w->out, '{');
        for (k = sl_json_first(j, t); k >= 0; k = sl_json_next_member(j, k)) {
            if (k != t + 1)
                sl_buf_putc(w->out, ',');
            put_string(w, k);
            sl_buf_putc(w->out, ':');
            put_compact(w, k + 1);
        }
        sl_buf_putc(w->out, '}');
        break;
    case SL_J_ARRAY:
        sl_buf_putc(w->out, '[');
        for (k = sl_json_elem_first(j, t); k >= 0; k = sl_json_elem_next(j, t, k)) {
            if (k != t + 1)
                sl_buf_putc(w->out, ',');
            put_compact(w, k);
        }
        sl_buf_putc(w->out, ']');
        break;
    case SL_J_STRING:
        put_string(w, t);
        break;
    default:
        put_raw(w, t);
        break;
    }
}

/* An untouched part: byte for byte, unless the document spans lines (then
 * compacted, so that an output value is always one line). */
static void put_copy(wctx *w, int t)
{
    if (w->multiline)
        put_compact(w, t);
    else
        put_raw(w, t);
}

static void put_member(wctx *w, int k, bool first)
{
    if (!first)
        sl_buf_putc(w->out, ',');
    put_raw(w, k);
    sl_buf_putc(w->out, ':');
    put_copy(w, k + 1);
}

/* Unescaped text of string token t (a key or a value). */
static sl_str name_of(wctx *w, int t)
{
    const sl_jtok *k = &w->j->tok[t];
    sl_str s;

    if (!k->escaped) {
        s.p = w->j->src + k->start + 1;
        s.len = k->len - 2;
        return s;
    }
    sl_buf_reset(&w->tmp);
    sl_json_unescape(w->j, t, &w->tmp);
    s.p = w->tmp.data;
    s.len = w->tmp.len;
    return s;
}

static bool is_meta(sl_str s)
{
    return s.len >= 2 && s.p[0] == '_' && s.p[1] == '_';
}

bool sl_colsel_keeps(const sl_colsel *sel, const char *name, size_t len)
{
    size_t i;

    if (sel == NULL)
        return true;
    if (!sel->all) {
        bool found = false;

        for (i = 0; i < sel->ncols && !found; i++)
            found = strlen(sel->cols[i]) == len && memcmp(sel->cols[i], name, len) == 0;
        if (!found)
            return false;
    }
    for (i = 0; i < sel->ndrop; i++)
        if (strlen(sel->drop[i]) == len && memcmp(sel->drop[i], name, len) == 0)
            return false;
    return true;
}

/* A row object reduced to the kept columns, in input order. A flattened row
 * also keeps the SMT's "__" fields. */
static void put_row(wctx *w, int obj, const sl_colsel *sel, bool flattened)
{
    const sl_json *j = w->j;
    bool first = true;
    int k;

    sl_buf_putc(w->out, '{');
    for (k = sl_json_first(j, obj); k >= 0; k = sl_json_next_member(j, k)) {
        sl_str name = name_of(w, k);

        if ((flattened && is_meta(name)) || sl_colsel_keeps(sel, name.p, name.len)) {
            put_member(w, k, first);
            first = false;
        }
    }
    sl_buf_putc(w->out, '}');
}

/* A schema "fields" array reduced to the entries whose "field" is kept. */
static void put_field_list(wctx *w, int arr, const sl_colsel *sel, bool flattened)
{
    const sl_json *j = w->j;
    bool first = true;
    int e;

    sl_buf_putc(w->out, '[');
    for (e = sl_json_elem_first(j, arr); e >= 0; e = sl_json_elem_next(j, arr, e)) {
        int f = sl_json_get(j, e, "field", 5);
        bool keep = true;

        if (f >= 0 && j->tok[f].type == SL_J_STRING) {
            sl_str name = name_of(w, f);

            keep = (flattened && is_meta(name)) || sl_colsel_keeps(sel, name.p, name.len);
        }
        if (keep) {
            if (!first)
                sl_buf_putc(w->out, ',');
            put_copy(w, e);
            first = false;
        }
    }
    sl_buf_putc(w->out, ']');
}

/* The envelope's schema block: the before/after struct schemas' field lists
 * (or, for a flattened record, the top-level list) reduced to match the row. */
static void put_schema(wctx *w, int s, const sl_colsel *sel, bool flattened)
{
    const sl_json *j = w->j;
    bool first = true;
    int k;

    sl_buf_putc(w->out, '{');
    for (k = sl_json_first(j, s); k >= 0; k = sl_json_next_member(j, k)) {
        int v = k + 1;

        if (j->tok[v].type != SL_J_ARRAY || !sl_json_str_eq(j, k, "fields", 6)) {
            put_member(w, k, first);
            first = false;
            continue;
        }
        if (!first)
            sl_buf_putc(w->out, ',');
        first = false;
        put_raw(w, k);
        sl_buf_putc(w->out, ':');
        if (flattened) {
            put_field_list(w, v, sel, true);
            continue;
        }
        {
            bool efirst = true;
            int e;

            sl_buf_putc(w->out, '[');
            for (e = sl_json_elem_first(j, v); e >= 0; e = sl_json_elem_next(j, v, e)) {
                int f = sl_json_get(j, e, "field", 5);
                int sub = sl_json_get(j, e, "fields", 6);
                int m;
                bool mfirst = true;

                if (!efirst)
                    sl_buf_putc(w->out, ',');
                efirst = false;
                if (f < 0 || sub < 0 || j->tok[sub].type != SL_J_ARRAY ||
                    !(sl_json_str_eq(j, f, "before", 6) || sl_json_str_eq(j, f, "after", 5))) {
                    put_copy(w, e);
                    continue;
                }
                sl_buf_putc(w->out, '{');
                for (m = sl_json_first(j, e); m >= 0; m = sl_json_next_member(j, m)) {
                    if (m + 1 == sub) {
                        if (!mfirst)
                            sl_buf_putc(w->out, ',');
                        put_raw(w, m);
                        sl_buf_putc(w->out, ':');
                        put_field_list(w, sub, sel, false);
                    } else {
                        put_member(w, m, mfirst);
                    }
                    mfirst = false;
                }
                sl_buf_putc(w->out, '}');
            }
            sl_buf_putc(w->out, ']');
        }
    }
    sl_buf_putc(w->out, '}');
}

static void put_payload(wctx *w, const sl_event *ev, const sl_colsel *sel)
{
    const sl_json *j = w->j;
    int p = ev->t_payload, k;
    bool first = true;

    if (ev->flattened) {
        put_row(w, p, sel, true);
        return;
    }
    sl_buf_putc(w->out, '{');
    for (k = sl_json_first(j, p); k >= 0; k = sl_json_next_member(j, k)) {
        int v = k + 1;

        if (v == ev->t_before || v == ev->t_after) {
            if (!first)
                sl_buf_putc(w->out, ',');
            put_raw(w, k);
            sl_buf_putc(w->out, ':');
            put_row(w, v, sel, false);
        } else {
            put_member(w, k, first);
        }
        first = false;
    }
    sl_buf_putc(w->out, '}');
}

static void put_payload_version(wctx *w, const sl_event *ev, const sl_colsel *sel, char op,
                                wctx *iw);

/* A version written in place of the change's row (NULL: the change as it
 * is): its op and its image. */
typedef struct vrow {
    char op;
    wctx *iw; /* the image; NULL: none (a delete) */
} vrow;

/* The value: the envelope (when there is one) with its payload and schema
 * rewritten for the destination and every other member copied, or the
 * payload alone. */
static void put_envelope(wctx *w, const sl_event *ev, const sl_colsel *sel, const vrow *vr)
{
    const sl_json *j = w->j;
    bool first = true;
    int k;

    if (!ev->enveloped) {
        if (vr)
            put_payload_version(w, ev, sel, vr->op, vr->iw);
        else
            put_payload(w, ev, sel);
        return;
    }
    sl_buf_putc(w->out, '{');
    for (k = sl_json_first(j, 0); k >= 0; k = sl_json_next_member(j, k)) {
        int v = k + 1;

        if (v == ev->t_payload || (v == ev->t_schema && ev->t_schema >= 0)) {
            if (!first)
                sl_buf_putc(w->out, ',');
            put_raw(w, k);
            sl_buf_putc(w->out, ':');
            if (v == ev->t_payload && vr)
                put_payload_version(w, ev, sel, vr->op, vr->iw);
            else if (v == ev->t_payload)
                put_payload(w, ev, sel);
            else
                put_schema(w, v, sel, ev->flattened);
        } else {
            put_member(w, k, first);
        }
        first = false;
    }
    sl_buf_putc(w->out, '}');
}

void sl_event_write_value(const sl_event *ev, const sl_colsel *sel, sl_buf *out)
{
    const sl_json *j = &ev->v;
    wctx w = {j, out, SL_BUF_INIT, false, false};

    if (j->ntok == 0) { /* a tombstone without bytes */
        sl_buf_append(out, "null", 4);
        return;
    }
    w.multiline = memchr(j->src, '\n', j->src_len) != NULL || memchr(j->src, '\r', j->src_len);
    if (ev->kind != SL_EV_CHANGE || ev->t_payload < 0) {
        put_copy(&w, 0);
        goto out;
    }
    put_envelope(&w, ev, sel, NULL);
out:
    sl_buf_free(&w.tmp);
}

int sl_event_key(sl_event *ev, const char *const *cols, size_t ncols, sl_buf *out, sl_error *err)
{
    wctx w = {&ev->v, out, SL_BUF_INIT, true, false};
    size_t mark = out->len;
    size_t i;
    int rc = -1;

    if (ncols > 0) {
        int row = ev->t_after >= 0 ? ev->t_after : ev->t_before;
        const char *part = ev->t_after >= 0 ? "after" : "before";

        if (row < 0) {
            sl_error_set(err, SL_ERR_INVALID,
                         "cannot build the row key: the event has no before or after row");
            goto out;
        }
        sl_buf_putc(out, '{');
        for (i = 0; i < ncols; i++) {
            size_t n = strlen(cols[i]);
            int t = sl_json_get(w.j, row, cols[i], n);

            if (t < 0 || (ev->flattened && n >= 2 && cols[i][0] == '_' && cols[i][1] == '_')) {
                sl_error_set(err, SL_ERR_INVALID, "key column '%s' is missing from %s", cols[i],
                             part);
                goto out;
            }
            if (i > 0)
                sl_buf_putc(out, ',');
            sl_buf_json_str(out, cols[i], n);
            sl_buf_putc(out, ':');
            put_compact(&w, t);
        }
        sl_buf_putc(out, '}');
        rc = 0;
        goto out;
    }
    if (!ev->has_key) {
        sl_error_set(err, SL_ERR_INVALID,
                     ev->t_key == SL_EV_BAD_KEY
                         ? "the record key is not valid JSON (and the table declares no key "
                           "columns)"
                         : "the record has no key (and the table declares no key columns)");
        goto out;
    }
    w.j = &ev->k;
    if (ev->k.tok[ev->t_key].type != SL_J_OBJECT) {
        sl_error_set(err, SL_ERR_INVALID, "the record key is %s, expected a JSON object",
                     sl_ev_jtype_name(ev->k.tok[ev->t_key].type));
        goto out;
    }
    put_compact(&w, ev->t_key);
    rc = 0;
out:
    if (rc < 0 && out->data != NULL) {
        out->len = mark;
        out->data[mark] = '\0';
    }
    sl_buf_free(&w.tmp);
    return rc;
}

/* ---- row images and versions (the consolidated view) -------------------------- */

/* A row's content hash is ROW_HASH_START plus one member_hash per column,
 * over the column's canonical `"name":value` bytes (row_hash). */
#define ROW_HASH_START 0x51ce5a17ULL

static uint64_t member_hash(const char *p, size_t n)
{
    return sl_mix64(sl_hash64(p, n, SL_HASH_SEED));
}

/* The row object of a change: after, or for a delete before (NULL when absent). */
static int image_tok(const sl_event *ev)
{
    if (ev->flattened)
        return ev->op == 'd' ? -1 : ev->t_after;
    return ev->has_after ? ev->t_after : -1;
}

/* The row object's own bytes when they are already its image: no member
 * whose name or string value has an escape, no object or array value (it
 * may hold blanks), no meta column, and not a byte between the tokens
 * beyond the punctuation (the object is exactly as long as its members
 * plus the braces, colons and commas). Then *sum is the image's hash, each
 * member's "name":value bytes being contiguous in the source. The usual
 * case for a connector's compact JSON; it saves rendering the image member
 * by member (sl_event_row_image). */
static bool image_is_raw(const sl_json *j, int obj, bool flattened, uint64_t *sum)
{
    size_t want = 2, n = 0;
    uint64_t h = ROW_HASH_START;
    int k;

    for (k = sl_json_first(j, obj); k >= 0; k = sl_json_next_member(j, k)) {
        const sl_jtok *key = &j->tok[k], *val = &j->tok[k + 1];

        if (key->escaped || val->type == SL_J_OBJECT || val->type == SL_J_ARRAY ||
            (val->type == SL_J_STRING && val->escaped))
            return false;
        if (flattened && key->len >= 4 && j->src[key->start + 1] == '_' &&
            j->src[key->start + 2] == '_')
            return false;
        want += key->len + 1 + val->len;
        h += member_hash(j->src + key->start, val->start + val->len - key->start);
        n++;
    }
    if (n)
        want += n - 1;
    if (want != j->tok[obj].len)
        return false;
    *sum = h;
    return true;
}

int sl_event_row_image(const sl_event *ev, sl_buf *out, uint64_t *hash)
{
    wctx w = {&ev->v, out, SL_BUF_INIT, true, false};
    int obj = image_tok(ev), k;
    bool first = true;
    uint64_t sum = ROW_HASH_START;

    if (obj < 0) {
        if (hash)
            *hash = SL_EVENT_HASH_DELETED;
        return 0;
    }
    if (image_is_raw(w.j, obj, ev->flattened, &sum)) {
        sl_str raw = sl_json_raw(w.j, obj);

        sl_buf_append(out, raw.p, raw.len);
        if (hash)
            *hash = sum;
        return 1;
    }
    sum = ROW_HASH_START;
    sl_buf_putc(out, '{');
    for (k = sl_json_first(w.j, obj); k >= 0; k = sl_json_next_member(w.j, k)) {
        sl_str name = name_of(&w, k);
        size_t at;

        if (ev->flattened && is_meta(name))
            continue;
        if (!first)
            sl_buf_putc(out, ',');
        first = false;
        /* the member's bytes are the ones row_hash hashes for it */
        at = out->len;
        put_string(&w, k);
        sl_buf_putc(out, ':');
        put_compact(&w, k + 1);
        if (hash)
            sum += member_hash(out->data + at, out->len - at);
    }
    sl_buf_putc(out, '}');
    sl_buf_free(&w.tmp);
    if (hash)
        *hash = sum;
    return 1;
}

/* Order-independent: the sum of one hash per kept column over its name and
 * canonical value, so two sites that list columns differently still agree.
 * FNV-1a ends with a multiplication, so two columns whose last bytes move
 * in opposite directions ("n":37,"qty":16 against "n":39,"qty":14) would
 * cancel out in a plain sum: each column's hash is mixed first
 * (sl_mix64). */
static uint64_t row_hash(const sl_json *j, int obj, const sl_colsel *sel, bool flattened,
                         sl_buf *scratch)
{
    wctx w = {j, scratch, SL_BUF_INIT, true, false};
    uint64_t sum = ROW_HASH_START;
    int k;

    for (k = sl_json_first(j, obj); k >= 0; k = sl_json_next_member(j, k)) {
        sl_str name = name_of(&w, k);

        if ((flattened && is_meta(name)) || !sl_colsel_keeps(sel, name.p, name.len))
            continue;
        sl_buf_reset(scratch);
        put_string(&w, k);
        sl_buf_putc(scratch, ':');
        put_compact(&w, k + 1);
        sum += member_hash(scratch->data, scratch->len);
    }
    sl_buf_free(&w.tmp);
    return sum;
}

uint64_t sl_event_row_hash(const sl_event *ev, const sl_colsel *sel, sl_buf *scratch)
{
    int obj = image_tok(ev);

    if (obj < 0)
        return SL_EVENT_HASH_DELETED;
    return row_hash(&ev->v, obj, sel, ev->flattened, scratch);
}

uint64_t sl_image_hash(const sl_json *img, const sl_colsel *sel, sl_buf *scratch)
{
    if (img == NULL || img->ntok == 0 || img->tok[0].type != SL_J_OBJECT)
        return SL_EVENT_HASH_DELETED;
    return row_hash(img, 0, sel, false, scratch);
}

/* The payload with op, before and after replaced: before null, after the
 * image (for a delete: before the image, after null). */
static void put_payload_version(wctx *w, const sl_event *ev, const sl_colsel *sel, char op,
                                wctx *iw)
{
    const sl_json *j = w->j;
    int p = ev->t_payload, k;
    bool first = true, seen_op = false;

    if (ev->flattened) {
        /* the row itself, then the SMT's fields with __op/__deleted set */
        bool rfirst = true;

        sl_buf_putc(w->out, '{');
        if (iw) {
            for (k = sl_json_first(iw->j, 0); k >= 0; k = sl_json_next_member(iw->j, k)) {
                sl_str name = name_of(iw, k);

                if (!sl_colsel_keeps(sel, name.p, name.len))
                    continue;
                put_member(iw, k, rfirst);
                rfirst = false;
            }
        }
        for (k = sl_json_first(j, p); k >= 0; k = sl_json_next_member(j, k)) {
            sl_str name = name_of(w, k);

            if (!is_meta(name))
                continue;
            if (!rfirst)
                sl_buf_putc(w->out, ',');
            rfirst = false;
            put_raw(w, k);
            sl_buf_putc(w->out, ':');
            if (name.len == 4 && memcmp(name.p, "__op", 4) == 0)
                put_op(w->out, op);
            else if (name.len == 9 && memcmp(name.p, "__deleted", 9) == 0)
                sl_buf_puts(w->out, op == 'd' ? "\"true\"" : "\"false\"");
            else
                put_copy(w, k + 1);
        }
        sl_buf_putc(w->out, '}');
        return;
    }
    sl_buf_putc(w->out, '{');
    for (k = sl_json_first(j, p); k >= 0; k = sl_json_next_member(j, k)) {
        bool is_before = sl_json_str_eq(j, k, "before", 6);
        bool is_after = sl_json_str_eq(j, k, "after", 5);
        bool is_op = sl_json_str_eq(j, k, "op", 2);

        if (!is_before && !is_after && !is_op) {
            put_member(w, k, first);
            first = false;
            continue;
        }
        if (!first)
            sl_buf_putc(w->out, ',');
        first = false;
        put_raw(w, k);
        sl_buf_putc(w->out, ':');
        if (is_op) {
            put_op(w->out, op);
            seen_op = true;
        } else if (iw && ((is_after && op != 'd') || (is_before && op == 'd'))) {
            put_row(iw, 0, sel, false);
        } else {
            sl_buf_puts(w->out, "null");
        }
    }
    if (!seen_op) {
        if (!first)
            sl_buf_putc(w->out, ',');
        sl_buf_append(w->out, "\"op\":", 5);
        put_op(w->out, op);
    }
    sl_buf_putc(w->out, '}');
}

void sl_event_write_version(const sl_event *ev, const sl_colsel *sel, char op, const sl_json *img,
                            sl_buf *out)
{
    const sl_json *j = &ev->v;
    wctx w = {j, out, SL_BUF_INIT, false, true};
    wctx iw = {img, out, SL_BUF_INIT, false, false};
    bool has_img = img && img->ntok > 0 && img->tok[0].type == SL_J_OBJECT;
    vrow vr = {op, has_img ? &iw : NULL};

    put_envelope(&w, ev, sel, &vr);
    sl_buf_free(&w.tmp);
    sl_buf_free(&iw.tmp);
}

uint64_t sl_event_before_hash(const sl_event *ev, size_t *ncols, sl_buf *scratch)
{
    if (ev->flattened || !ev->has_before || ev->t_before < 0) {
        *ncols = 0;
        return SL_EVENT_HASH_DELETED;
    }
    *ncols = ev->v.tok[ev->t_before].count;
    return row_hash(&ev->v, ev->t_before, NULL, false, scratch);
}
