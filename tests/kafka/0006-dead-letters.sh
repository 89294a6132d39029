#!/usr/bin/env bash
# Dead letters through Kafka. One input topic (1 partition, so offsets are
# known) gets two valid order changes of store_01 around records a user could
# find there by mistake: not JSON, truncated JSON, bytes that are not UTF-8,
# text that looks like a JSON object but is not, a JSON array, an event of a
# table the rules do not know, garbage with no key, and a JSON object holding
# a string that is not UTF-8. sluice (Kafka in, Kafka out) must, record by
# record:
#   - route the valid changes (sluice.central.public.orders, origin store_01)
#     and write no dead letter for them;
#   - write one dead letter per bad record to sluice.dead, with
#     sluice.error (the reason a user reads), sluice.error.code,
#     sluice.source.topic = the input topic, sluice.input = TOPIC/0:OFFSET,
#     sluice.rules, and the original key and value as docs/formats.md says:
#     JSON as it was, other UTF-8 text as a JSON string, other bytes base64
#     with sluice.value.encoding: base64 (the exact bytes, as in file mode);
#   - count the bad records as processed: every input offset committed;
#   - exit 0 on SIGTERM, its --stats saying read 10, dead letters 8.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kt_init 0006-dead

TOPIC=store_01.public.orders
GROUP=sluice-dead
W=$KT_WORK

kt_broker_start || kt_finish

# the records (kcat input: key 0x1f value, one per line; empty key = null)
# and what each one must become (cases.json)
python3 - "$W" <<'EOF'
import base64, json, sys
w = sys.argv[1]

def event(id_, table="orders", status="placed"):
    return json.dumps({
        "before": None,
        "after": {"id": id_, "customer_id": 5, "store_id": "store_01", "status": status,
                  "total": 10.5, "created_at": "2025-03-05T08:00:00Z",
                  "updated_at": "2025-03-05T08:00:00Z"},
        "source": {"version": "2.7.4.Final", "connector": "postgresql", "name": "store_01",
                   "ts_ms": 1741161842403, "db": "retail", "schema": "public",
                   "table": table, "lsn": 1000 + id_},
        "op": "c", "ts_ms": 1741161842423}, separators=(",", ":")).encode()

# (name, key, value, expected: None = routed, else (error code, text in sluice.error))
cases = [
    ("valid-first", b'{"id":9001}', event(9001), None),
    ("not-json", b'{"id":9002}', b"this is not json at all", ("parse", "not valid JSON")),
    ("truncated-json", b'{"id":9003}', b'{"before":null,"after":{"id":', ("parse", "not valid JSON")),
    ("not-utf8", b'{"id":9004}', b"\xff\xfe caf\xe9 \xc3\x28 end", ("parse", "not valid JSON")),
    ("object-lookalike", b'{"id":9005}', b"{oops}", ("parse", "not valid JSON")),
    ("json-array", b'{"id":9006}', b"[1,2,3]", ("invalid", "array")),
    ("unknown-table", b'{"id":9007}', event(9007, table="no_such_table"),
     (None, "no rules for table")),
    ("no-key-garbage", None, b"garbage without a key", ("parse", "not valid JSON")),
    ("json-not-utf8", b'{"id":9009}', b'{"note":"caf\xe9"}', ("parse", "")),
    ("valid-last", b'{"id":9010}', event(9010), None),
]
with open(w + "/records.txt", "wb") as fh:
    for _name, k, v, _exp in cases:
        assert b"\n" not in (k or b"") + v and b"\x1f" not in (k or b"") + v
        fh.write((k or b"") + b"\x1f" + v + b"\n")
json.dump([{"name": n, "offset": i,
            "key": None if k is None else base64.b64encode(k).decode(),
            "value": base64.b64encode(v).decode(),
            "code": e[0] if e else None, "reason": e[1] if e else None,
            "dead": e is not None}
           for i, (n, k, v, e) in enumerate(cases)], open(w + "/cases.json", "w"), indent=1)
EOF
NREC=$(wc -l <"$W/records.txt")
NDEAD=$(python3 -c 'import json,sys; print(sum(c["dead"] for c in json.load(open(sys.argv[1]))))' "$W/cases.json")

if kt_create_topics 1 "$TOPIC" &&
  kcat -P -b "$KT_BOOTSTRAP" -t "$TOPIC" -p 0 -K "$(printf '\037')" -Z -q \
    -X enable.idempotence=true <"$W/records.txt" 2>"$W/kcat.log" &&
  end=$(python3 "$KT_PROTO" "$KT_BOOTSTRAP" end-offsets "$TOPIC") &&
  [ "$end" = "{\"$TOPIC\": {\"0\": $NREC}}" ]; then
  kt_check produce 1 "$NREC records on $TOPIC [0] ($NDEAD of them bad)"
else
  kt_tail "$W/kcat.log"
  kt_check produce 0 "creating $TOPIC or kcat failed (end offsets: ${end:-?})"
  kt_finish
fi

kt_sluice_kafka_start "$W/run.log" "$GROUP" --topics "$TOPIC" --store "sqlite:$W/kafka.db" \
  --stats "$W/run.stats"
pid=$KT_LAST_PID
# dead letters count as processed: their offsets are committed like the rest
if out=$(kt_wait_committed "$pid" "$GROUP" 120 "$TOPIC"); then
  kt_check offsets-committed 1 "$out"
else
  kt_tail "$W/run.log"
  kt_check offsets-committed 0 "$out"
fi
kt_sigterm "$pid" 60
rc=$?
[ $rc -eq 0 ] || kt_tail "$W/run.log"
read_n=$(kt_stat_sum read "$W/run.stats")
dead_n=$(kt_stat_sum dead_letters "$W/run.stats")
kt_check run "$([ $rc -eq 0 ] && [ "$read_n" = "$NREC" ] && [ "$dead_n" = "$NDEAD" ] && echo 1 || echo 0)" \
  "exit status $rc after SIGTERM; --stats: read $read_n of $NREC, dead letters $dead_n of $NDEAD, written $(
    kt_stat_sum written "$W/run.stats")"

# every output record, bytes kept (kcat -J copies non-UTF-8 bytes as they are)
for t in $(python3 "$KT_PROTO" "$KT_BOOTSTRAP" topics '^sluice\.'); do
  kcat -C -b "$KT_BOOTSTRAP" -t "$t" -o beginning -e -J -q >>"$W/got.json" 2>>"$W/kcat.log"
done

kt_check_lines < <(python3 - "$W/cases.json" "$W/got.json" "$TOPIC" <<'EOF'
import base64, json, sys

cases = json.load(open(sys.argv[1]))
topic = sys.argv[3]

def check(name, ok, detail):
    print("%s\t%s\t%s" % ("ok" if ok else "FAIL", name, detail.replace("\t", " ")))

# kcat -J: one JSON object per line; strings may hold raw non-UTF-8 bytes
recs = []
for line in open(sys.argv[2], "rb"):
    if line.strip():
        m = json.loads(line.decode("utf-8", "surrogateescape"))
        h = m.get("headers") or []
        enc = lambda s: None if s is None else s.encode("utf-8", "surrogateescape")
        recs.append({"topic": m["topic"], "key": enc(m.get("key")), "value": enc(m.get("payload")),
                     "headers": {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}})
dead = [r for r in recs if r["topic"] == "sluice.dead"]
routed = [r for r in recs if r["topic"] != "sluice.dead"]

def is_json(b):
    try:
        json.loads(b.decode("utf-8"), parse_constant=lambda c: 1 / 0)
        return True
    except (ValueError, ZeroDivisionError, RecursionError):
        return False


def original_kept(orig, got, encoding):
    """-> (ok, how) for one key or value of a dead letter."""
    if orig is None:
        return got is None, "null" if got is None else "should be null, is %r" % got[:60]
    if got is None:
        return False, "missing"
    if is_json(orig):
        return got == orig, "JSON as it was" if got == orig else "JSON changed: %r" % got[:80]
    try:
        text = orig.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        s = json.loads(got.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False, "not a JSON string: %r" % got[:80]
    if not isinstance(s, str):
        return False, "not a JSON string: %r" % got[:80]
    if text is not None:
        return s == text, "a JSON string holding it" if s == text else "JSON string differs: %r" % s[:80]
    if encoding != "base64":
        return False, "not UTF-8, but no sluice.*.encoding: base64 (value %r)" % got[:80]
    ok = base64.b64decode(s) == orig
    return ok, "base64, exact bytes" if ok else "base64 of other bytes"

for c in cases:
    inp = "%s/0:%d" % (topic, c["offset"])
    mine = [r for r in dead if r["headers"].get("sluice.input") == inp]
    key = None if c["key"] is None else base64.b64decode(c["key"])
    value = base64.b64decode(c["value"])
    label = "%s@%d" % (c["name"], c["offset"])
    if not c["dead"]:
        check("routed " + label, not mine, "no dead letter for it" if not mine else
              "dead-lettered: %s" % mine[0]["headers"].get("sluice.error"))
        continue
    if len(mine) != 1:
        check("dead " + label, False, "%d dead letters with sluice.input %s (want 1)" % (len(mine), inp))
        continue
    d = mine[0]
    h = d["headers"]
    problems = []
    err = h.get("sluice.error", "")
    if not err or c["reason"] not in err:
        problems.append("sluice.error %r lacks %r" % (err, c["reason"]))
    if c["code"] and h.get("sluice.error.code") != c["code"]:
        problems.append("sluice.error.code %r, want %r" % (h.get("sluice.error.code"), c["code"]))
    if h.get("sluice.source.topic") != topic:
        problems.append("sluice.source.topic %r" % h.get("sluice.source.topic"))
    if not h.get("sluice.rules"):
        problems.append("no sluice.rules")
    kok, khow = original_kept(key, d["key"], h.get("sluice.key.encoding"))
    vok, vhow = original_kept(value, d["value"], h.get("sluice.value.encoding"))
    if not kok:
        problems.append("key: " + khow)
    if not vok:
        problems.append("value: " + vhow)
    check("dead " + label, not problems,
          "; ".join(problems) if problems else "%s (%s); value: %s" % (err[:90], h.get("sluice.error.code"), vhow))

good = [r for r in routed if r["headers"].get("sluice.origin") == "store_01"]
ids = sorted(json.loads(r["key"])["id"] for r in good if r["topic"] == "sluice.central.public.orders")
check("routed-outputs", ids == [9001, 9010] and len(good) == len(routed),
      "%d routed records, ids %s on sluice.central.public.orders (want [9001, 9010])" % (len(routed), ids))
check("dead-letter-count", len(dead) == sum(c["dead"] for c in cases),
      "%d records on sluice.dead" % len(dead))
EOF
)
kt_finish
