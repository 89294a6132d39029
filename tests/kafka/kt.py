#!/usr/bin/env python3
"""Data side of sluice's Kafka tests (stdlib only): what to produce, what came
back, and how it compares with a file-mode run.

  kt.py plan --partitions N --out DIR [--by-table PREFIX] INPUT...
      Turns sluice input lines (docs/formats.md) into Kafka records:
        wrapper line {"topic","key","value",...} -> that topic, key and value
                                                    (the exact bytes of the members)
        bare Debezium value                      -> topic <source.name>.<schema>.<table>,
                                                    key = the table's key columns
        transaction BEGIN/END value              -> <site>.transaction, key {"id":...}
        a line that is not JSON                  -> topic kt-unparsed, no key
      Each record goes to partition crc32(canonical row key) % N (crc32 of the
      value when there is no key), so one row always lands in one partition
      even when some of its keys carry the JsonConverter schema envelope.
      --by-table PREFIX puts every change event whose source block names its
      site and table on topic PREFIX.<schema>.<table> instead (the topic's
      name does not matter to sluice): then all the changes of a row, from
      every site, are in one partition in input order, as a file-mode run
      reads them. With a store, sluice's outputs depend on the order in which
      it sees different sites' changes of a row (conflicts, echoes;
      docs/conflicts.md), so an exact comparison with a file-mode run needs
      that; with one topic per site the interleaving is Kafka's.
      Writes DIR/produce.tsv (topic, partition, file, count) and one kcat
      input file per partition (key 0x1f value, empty = null with kcat -Z),
      DIR/topics.txt, and DIR/file-input.jsonl: the same records as wrapper
      lines with topic, partition, offset, and key and value as JSON strings
      holding the exact bytes, in input order (so in each partition's order).

  kt.py norm < kcat -J output > JSONL
      {"topic","partition","offset","key","value","headers"}: key and value are
      the message bytes as text (null when absent), headers an object.

  kt.py compare --expected DIR --got FILE --mode exact|at-least-once
                [--bound N] [--topic-prefix P] [--report FILE]
      DIR holds a file-mode run's outputs (one .jsonl per topic), FILE the
      normalized records consumed from Kafka. Prints one check per line as
      "ok|FAIL<TAB>name<TAB>detail". A record is (key, value, sluice.origin).
"""
import argparse
import collections
import glob
import hashlib
import json
import os
import sys
import zlib

# Key columns of examples/retail/retail.rules (sessions is ignored by the
# rules but Debezium still keys its records).
KEY_COLUMNS = {
    "customers": ["id"],
    "products": ["sku"],
    "orders": ["id"],
    "order_lines": ["order_id", "line_no"],
    "inventory": ["sku", "store_id"],
    "sessions": ["id"],
}
UNPARSED_TOPIC = "kt-unparsed"
TX_FALLBACK_TOPIC = "kt-transactions"
KEY_DELIM = b"\x1f"

_dec = json.JSONDecoder()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _no_constants(name):
    raise ValueError("not JSON: " + name)


def is_json(text):
    """RFC 8259 JSON text (Python's parser without NaN/Infinity)."""
    try:
        json.loads(text, parse_constant=_no_constants)
        return True
    except (ValueError, RecursionError):
        return False


def sluice_json_str(text):
    """A JSON string the way sl_buf_json_str writes it: only '"', '\\' and
    control characters escaped; \\n \\r \\t short, others \\u00xx."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def raw_members(text):
    """Top-level members of a JSON object line -> {name: raw text of the value}
    (the exact characters, so numbers like 2.50 and escapes stay as written)."""
    ws = " \t\r\n"
    i = 0
    n = len(text)

    def skip(j):
        while j < n and text[j] in ws:
            j += 1
        return j

    i = skip(i)
    if i >= n or text[i] != "{":
        raise ValueError("not an object")
    i = skip(i + 1)
    out = {}
    if i < n and text[i] == "}":
        return out
    while True:
        name, i = _dec.raw_decode(text, i)
        i = skip(i)
        if i >= n or text[i] != ":":
            raise ValueError("expected ':'")
        i = skip(i + 1)
        _, end = _dec.raw_decode(text, i)
        out[name] = text[i:end]
        i = skip(end)
        if i < n and text[i] == ",":
            i = skip(i + 1)
            continue
        if i < n and text[i] == "}":
            return out
        raise ValueError("expected ',' or '}'")


def unwrap_payload(obj):
    if isinstance(obj, dict) and set(obj) == {"schema", "payload"}:
        return obj["payload"]
    return obj


def canonical_key(key_text):
    """The row key as compact JSON (envelope payload), for partitioning only."""
    if key_text is None:
        return None
    try:
        k = unwrap_payload(json.loads(key_text))
    except ValueError:
        return key_text
    return compact(k)


# ---------------------------------------------------------------- plan


def read_lines(paths):
    for p in paths:
        files = sorted(
            os.path.join(p, f) for f in os.listdir(p) if not f.startswith(".")
        ) if os.path.isdir(p) else [p]
        for f in files:
            with open(f, "rb") as fh:
                for raw in fh:
                    yield f, raw.rstrip(b"\n")


def tx_sites(paths):
    """transaction id -> source.name, from the change events that carry it."""
    out = {}
    for _f, raw in read_lines(paths):
        if b'"transaction":{' not in raw:
            continue
        try:
            v = unwrap_payload(json.loads(raw))
        except ValueError:
            continue
        if isinstance(v, dict) and "topic" in v:
            v = unwrap_payload(v.get("value"))
        if not isinstance(v, dict):
            continue
        tx, src = v.get("transaction"), v.get("source")
        if isinstance(tx, dict) and isinstance(src, dict) and "id" in tx:
            out.setdefault(str(tx["id"]), src.get("name"))
    return out


def plan_line(raw, txmap):
    """-> (topic, key text or None, value text or None)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        sys.exit("kt.py plan: a line is not UTF-8; the file-mode input cannot hold it")
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return UNPARSED_TOPIC, None, text
    if isinstance(obj, dict) and "topic" in obj:
        m = raw_members(text)
        key = m.get("key")
        val = m.get("value", m.get("payload"))
        # a member holding a string is "a string holding JSON text" (kcat -J form)
        if key is not None and key.startswith('"'):
            key = json.loads(key)
        if val is not None and val.startswith('"'):
            val = json.loads(val)
        if key == "null":
            key = None
        if val == "null":
            val = None
        return obj["topic"], key, val
    v = unwrap_payload(obj)
    if not isinstance(v, dict):
        return UNPARSED_TOPIC, None, text
    if isinstance(v.get("status"), str) and "op" not in v and "id" in v:
        site = txmap.get(str(v["id"]))
        topic = site + ".transaction" if site else TX_FALLBACK_TOPIC
        return topic, compact({"id": v["id"]}), text
    src = v.get("source")
    if not isinstance(src, dict) or not src.get("table") or not src.get("name"):
        return UNPARSED_TOPIC, None, text
    parts = [src["name"]] + ([src["schema"]] if src.get("schema") else []) + [src["table"]]
    topic = ".".join(parts)
    cols = KEY_COLUMNS.get(src["table"])
    key = None
    if cols:
        row = v.get("after") if isinstance(v.get("after"), dict) else v.get("before")
        if isinstance(row, dict) and all(c in row for c in cols):
            key = compact({c: row[c] for c in cols})
    return topic, key, text


def table_topic(prefix, val):
    """PREFIX.<schema>.<table> for a change event that names its site and
    table in its source block, else None."""
    try:
        v = unwrap_payload(json.loads(val))
    except ValueError:
        return None
    src = v.get("source") if isinstance(v, dict) else None
    if "op" not in v or not isinstance(src, dict) or not src.get("table") or not src.get("name"):
        return None
    return ".".join([prefix] + ([src["schema"]] if src.get("schema") else []) + [src["table"]])


def cmd_plan(a):
    os.makedirs(a.out, exist_ok=True)
    txmap = tx_sites(a.inputs)
    parts = collections.OrderedDict()  # (topic, partition) -> [lines]
    kinds = collections.Counter()
    with open(os.path.join(a.out, "file-input.jsonl"), "w", encoding="utf-8") as fi:
        for _f, raw in read_lines(a.inputs):
            if not raw.strip():
                kinds["blank lines left out"] += 1
                continue
            topic, key, val = plan_line(raw, txmap)
            if a.by_table and val is not None:
                topic = table_topic(a.by_table, val) or topic
            kinds[topic if topic in (UNPARSED_TOPIC, TX_FALLBACK_TOPIC) else
                  "tombstones" if val is None else "keyed" if key is not None else "no key"] += 1
            ck = canonical_key(key)
            basis = (ck if ck is not None else (val or "")).encode("utf-8")
            p = zlib.crc32(basis) % a.partitions
            lst = parts.setdefault((topic, p), [])
            fi.write(compact({"topic": topic, "partition": p, "offset": len(lst),
                              "key": key, "value": val}) + "\n")
            kb = (key or "").encode("utf-8")
            vb = (val or "").encode("utf-8")
            if KEY_DELIM in kb or b"\n" in kb or b"\n" in vb:
                sys.exit("kt.py plan: a key holds 0x1f or a newline; kcat cannot send it")
            lst.append(kb + KEY_DELIM + vb)
    with open(os.path.join(a.out, "produce.tsv"), "w") as man:
        for i, ((topic, p), lines) in enumerate(parts.items()):
            fn = os.path.join(a.out, "produce-%03d.txt" % i)
            with open(fn, "wb") as fh:
                fh.write(b"\n".join(lines) + b"\n")
            man.write("%s\t%d\t%s\t%d\n" % (topic, p, fn, len(lines)))
    topics = sorted({t for t, _ in parts})
    with open(os.path.join(a.out, "topics.txt"), "w") as fh:
        fh.write("\n".join(topics) + "\n")
    n = sum(len(v) for v in parts.values())
    summary = "%d records for %d topics (%s)" % (
        n, len(topics), ", ".join("%s %d" % kv for kv in sorted(kinds.items())))
    with open(os.path.join(a.out, "summary.txt"), "w") as fh:
        fh.write(summary + "\n")
    print(summary)
    return 0


# ---------------------------------------------------------------- norm


def cmd_norm(_a):
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line or not line.startswith("{"):
            continue
        m = json.loads(line)
        h = m.get("headers") or []
        headers = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        out.write(compact({"topic": m["topic"], "partition": m["partition"],
                           "offset": m["offset"], "key": m.get("key"),
                           "value": m.get("payload"), "headers": headers}) + "\n")
    return 0


# ---------------------------------------------------------------- compare


def as_file_form(text):
    """How a file-mode output line shows these message bytes: embedded when
    they are JSON text, else a JSON string; null when absent."""
    if text is None:
        return "null"
    return text if is_json(text) else sluice_json_str(text)


class Rec:
    __slots__ = ("topic", "partition", "offset", "key", "digest", "origin",
                 "headers", "preview")


def make_rec(topic, partition, offset, key, value, headers):
    r = Rec()
    r.topic, r.partition, r.offset, r.key = topic, partition, offset, key
    r.origin = headers.get("sluice.origin")
    r.headers = headers
    h = hashlib.blake2b(digest_size=16)
    for part in (key, value, r.origin if r.origin is not None else "\0none"):
        b = part.encode("utf-8")
        h.update(str(len(b)).encode() + b":" + b)
    r.digest = h.digest()
    r.preview = "key=%s origin=%s value=%s" % (key, r.origin, value[:160])
    return r


def load_expected(d, prefix):
    recs = []
    for fn in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
        with open(fn, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                line = line.rstrip("\n")
                if not line:
                    continue
                m = raw_members(line)
                topic = json.loads(m["topic"])
                if not topic.startswith(prefix):
                    continue
                headers = json.loads(m.get("headers", "{}"))
                recs.append(make_rec(topic, 0, i, m.get("key", "null"),
                                     m.get("value", "null"), headers))
    return recs


def load_got(fn, prefix):
    recs = []
    with open(fn, encoding="utf-8") as fh:
        for line in fh:
            m = json.loads(line)
            if not m["topic"].startswith(prefix):
                continue
            recs.append(make_rec(m["topic"], m["partition"], m["offset"],
                                 as_file_form(m["key"]), as_file_form(m["value"]),
                                 m["headers"]))
    recs.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return recs


def is_subsequence(want, have):
    it = iter(have)
    return all(any(x == y for y in it) for x in want)


def cmd_compare(a):
    exp = load_expected(a.expected, a.topic_prefix)
    got = load_got(a.got, a.topic_prefix)
    report = open(a.report, "w", encoding="utf-8") if a.report else None
    results = []

    def check(name, ok, detail):
        results.append(ok)
        print("%s\t%s\t%s" % ("ok" if ok else "FAIL", name, detail))

    def note(text):
        if report:
            report.write(text + "\n")

    exp_by_topic = collections.defaultdict(list)
    got_by_topic = collections.defaultdict(list)
    for r in exp:
        exp_by_topic[r.topic].append(r)
    for r in got:
        got_by_topic[r.topic].append(r)
    topics = sorted(set(exp_by_topic) | set(got_by_topic))
    only_exp = sorted(set(exp_by_topic) - set(got_by_topic))
    only_got = sorted(set(got_by_topic) - set(exp_by_topic))
    check("same-topics", not only_exp and not only_got,
          "%d output topics%s%s" % (
              len(topics),
              "; missing in Kafka: " + ",".join(only_exp) if only_exp else "",
              "; only in Kafka: " + ",".join(only_got) if only_got else ""))

    # ---- records per topic, as multisets
    total_missing = total_extra = total_dups = 0
    for t in topics:
        ce = collections.Counter(r.digest for r in exp_by_topic[t])
        cg = collections.Counter(r.digest for r in got_by_topic[t])
        missing = ce - cg
        extra = cg - ce
        dups = sum(cg[d] - ce[d] for d in cg if d in ce and cg[d] > ce[d])
        unexpected = sum(n for d, n in extra.items() if d not in ce)
        nm = sum(missing.values())
        total_missing += nm
        total_extra += unexpected
        total_dups += dups
        prev = {r.digest: r.preview for r in exp_by_topic[t] + got_by_topic[t]}
        for d in list(missing)[:5]:
            note("%s: missing from Kafka (x%d): %s" % (t, missing[d], prev[d]))
        for d in [d for d in extra if d not in ce][:5]:
            note("%s: only in Kafka (x%d): %s" % (t, extra[d], prev[d]))
        if a.mode == "exact":
            ok = nm == 0 and not extra
            check("records " + t, ok, "%d expected, %d in Kafka%s" % (
                len(exp_by_topic[t]), len(got_by_topic[t]),
                "" if ok else " (%d missing, %d unexpected, %d duplicates)"
                % (nm, unexpected, dups)))
    if a.mode == "at-least-once":
        n_exp = len(exp)
        check("all-present", total_missing == 0,
              "%d of %d expected records in Kafka at least once (%d topics)"
              % (n_exp - total_missing, n_exp, len(topics)))
        check("nothing-unexpected", total_extra == 0,
              "%d records in Kafka that the file-mode run did not write" % total_extra)
        check("duplicates-bounded", total_dups <= a.bound,
              "%d duplicates (%.2f%% of %d; bound %d)"
              % (total_dups, 100.0 * total_dups / max(n_exp, 1), n_exp, a.bound))

    # ---- per-key order: within one output topic, the records of one key
    # from one origin come from one input partition, so their order is defined.
    def groups(recs):
        g = collections.OrderedDict()
        for r in recs:
            if r.key == "null":
                continue
            g.setdefault((r.topic, r.key, r.origin), []).append(r)
        return g

    ge, gg = groups(exp), groups(got)
    bad_order = spread = 0
    for k, erecs in ge.items():
        grecs = gg.get(k, [])
        if len({r.partition for r in grecs}) > 1:
            spread += 1
            if spread <= 5:
                note("key spread over partitions: %s %s" % (k[0], k[1]))
        want = [r.digest for r in erecs]
        have = [r.digest for r in grecs]
        if a.mode == "exact":
            ok = want == have
        else:
            # order only: records missing altogether are reported above; a
            # replay after a crash repeats a stretch, so the file run's
            # sequence must be a subsequence of what Kafka holds
            present = set(have)
            ok = is_subsequence([d for d in want if d in present], have)
        if not ok:
            bad_order += 1
            if bad_order <= 5:
                note("order differs for %s %s origin %s: file %d records, Kafka %d"
                     % (k[0], k[1], k[2], len(want), len(have)))
    multi = sum(1 for v in ge.values() if len(v) > 1)
    check("per-key-order", bad_order == 0 and spread == 0,
          "%d keys (%d with several records): %d in another order%s, %d spread over "
          "partitions" % (len(ge), multi, bad_order,
                          "" if a.mode == "exact" else
                          " (the present records of the file order not a subsequence)",
                          spread))

    # ---- headers a consumer relies on
    rules_versions = {r.headers.get("sluice.rules") for r in exp}
    dead = a.dead_topic
    no_hdr = bad_rules = no_err = 0
    for r in got:
        if r.topic == dead:
            no_err += "sluice.error" not in r.headers
            continue
        if not all(h in r.headers for h in ("sluice.origin", "sluice.rules",
                                            "sluice.position")):
            no_hdr += 1
        if r.headers.get("sluice.rules") not in rules_versions:
            bad_rules += 1
    check("headers", got and no_hdr == 0 and bad_rules == 0 and no_err == 0,
          "%d records: %d routed records without sluice.origin/rules/position, %d with a rules "
          "version the file run did not use, %d dead letters without sluice.error"
          % (len(got), no_hdr, bad_rules, no_err))
    if report:
        report.close()
    return 0 if all(results) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan")
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--by-table", metavar="PREFIX")
    p.add_argument("inputs", nargs="+")
    sub.add_parser("norm")
    c = sub.add_parser("compare")
    c.add_argument("--expected", required=True)
    c.add_argument("--got", required=True)
    c.add_argument("--mode", choices=("exact", "at-least-once"), required=True)
    c.add_argument("--bound", type=int, default=0)
    c.add_argument("--topic-prefix", default="sluice.")
    c.add_argument("--dead-topic", default="sluice.dead")
    c.add_argument("--report")
    a = ap.parse_args()
    return {"plan": cmd_plan, "norm": cmd_norm, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
