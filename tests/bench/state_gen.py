#!/usr/bin/env python3
"""state_gen.py - events for the consolidated-view benchmark (tests/bench/state.sh).

ROWS distinct rows (public.items and public.stock alternating), each inserted
once at one of four sites, then UPDATES updates of random earlier rows from
random sites (many of them conflicts: the updating site has not seen the
other site's version). PostgreSQL-style Debezium events, one per line,
deterministic for a seed.
"""
import json
import random
import sys

SITES = ["central", "store_01", "store_02", "store_03"]


def main():
    rows = int(sys.argv[1])
    updates = int(sys.argv[2])
    rnd = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    lsn = {s: 1000 for s in SITES}
    ts = 1700000000000
    out = sys.stdout
    w = out.write

    def event(site, table, op, before, after):
        nonlocal ts
        lsn[site] += 1
        ts += 1
        src = {"version": "2.7.0.Final", "connector": "postgresql", "name": site,
               "ts_ms": ts, "snapshot": "false", "db": "shop", "schema": "public",
               "table": table, "txId": lsn[site], "lsn": lsn[site]}
        w(json.dumps({"before": before, "after": after, "source": src, "op": op,
                      "ts_ms": ts + 3}, separators=(",", ":")))
        w("\n")

    def image(i, v):
        if i % 2 == 0:
            return "items", {"id": i, "name": "item %d" % i, "price": (i * 37) % 1000,
                             "note": "v%d" % v}
        return "stock", {"sku": "sku-%d" % i, "qty": (i * 13) % 50, "shelf": "s%d" % v}

    for i in range(rows):
        table, after = image(i, 0)
        event(SITES[i % 4], table, "c", None, after)
    for u in range(updates):
        i = rnd.randrange(rows)
        table, after = image(i, u + 1)
        event(rnd.choice(SITES), table, "u", None, after)


if __name__ == "__main__":
    main()
