#!/usr/bin/env python3
"""Generate Debezium PostgreSQL change events for the sluice retail example.

Four sites run the same PostgreSQL database "retail": the hub `central` and the
stores `store_01`, `store_02`, `store_03`. Each site's Debezium connector is
named after the site (source.name). The generator plays a plausible day of
business against one shared model of the data (as if replication were
instantaneous) and writes, per site, the change events its connector would
emit: a snapshot first, then transactions. Deliberate concurrent edits of the
same row at two sites (conflicts), re-deliveries (exact duplicates) and a few
bad lines are mixed in.

Output is deterministic for a given set of options (--seed, default 42).

    generate.py --out DIR        one file per site: 00-central.jsonl, 01-store_01.jsonl, ...
    generate.py --single FILE    all sites interleaved in commit-time order ('-' = stdout)
    generate.py --bench ...      the benchmark mix (see --help)

Only the Python standard library is used.
"""

import argparse
import collections
import json
import os
import random
import sys
import time

SITES = ["central", "store_01", "store_02", "store_03"]
STORES = SITES[1:]
# Sites whose connector runs with provide.transaction.metadata=true.
TX_META_SITES = ("central", "store_02")
VERSION = "2.7.4.Final"
START_US = 1741161600 * 1000000  # 2025-03-05T08:00:00Z

# Column types as JsonConverter names them; key columns are not optional.
TABLES = {
    "customers": (
        ("id", "int32"),
        ("name", "string"),
        ("email", "string"),
        ("tier", "string"),
        ("home_store", "string"),
        ("points", "int32"),
        ("updated_at", "string"),
    ),
    "products": (
        ("sku", "string"),
        ("name", "string"),
        ("category", "string"),
        ("price", "double"),
        ("active", "boolean"),
        ("updated_at", "string"),
    ),
    "orders": (
        ("id", "int32"),
        ("customer_id", "int32"),
        ("store_id", "string"),
        ("status", "string"),
        ("total", "double"),
        ("created_at", "string"),
        ("updated_at", "string"),
    ),
    "order_lines": (
        ("order_id", "int32"),
        ("line_no", "int32"),
        ("sku", "string"),
        ("qty", "int32"),
        ("unit_price", "double"),
    ),
    "inventory": (
        ("sku", "string"),
        ("store_id", "string"),
        ("qty", "int32"),
        ("price", "double"),
        ("updated_at", "string"),
    ),
    "sessions": (
        ("id", "string"),
        ("customer_id", "int32"),
        ("started_at", "string"),
    ),
    "unknown_things": (
        ("id", "int32"),
        ("label", "string"),
    ),
}
KEYS = {
    "customers": ("id",),
    "products": ("sku",),
    "orders": ("id",),
    "order_lines": ("order_id", "line_no"),
    "inventory": ("sku", "store_id"),
    "sessions": ("id",),
    "unknown_things": ("id",),
}
# REPLICA IDENTITY FULL: updates and deletes carry the whole old row. The
# other tables use the default identity: updates have "before": null and
# deletes carry only the key columns.
FULL_IDENTITY = ("orders", "inventory")

FIRST_NAMES = (
    "Amelia Grace", "Oliver James", "Isla Maeve", "Noah Alexander", "Sofia Isabel",
    "Lucas Henrique", "Mia Charlotte", "Elias Johannes", "Hannah Louise", "Mateo Andres",
    "Chloe Anne", "Arjun Vikram", "Freya Ingrid", "Kenji Haruto", "Zara Noor",
    "Liam Patrick", "Aoife Siobhan", "Tomasz Jakub", "Leila Yasmin", "Samuel Ezekiel",
    "Ines Margarida", "Dmitri Pavlovich", "Priya Lakshmi", "Jonas Emil", "Camille Elodie",
)
LAST_NAMES = (
    "Fitzgerald-O'Sullivan", "Vasquez de la Fuente", "Nakamura", "Abernathy", "Kowalczyk",
    "Oyelaran", "Lindqvist", "Papadopoulos", "Castellanos", "Montgomery-Hughes",
    "Achterberg", "Ramanathan", "Delacroix", "Schwarzenbach", "Okonkwo",
    "Van der Westhuizen", "MacAllister", "Haugland", "Benedetti", "Ruiz-Tagle",
)
MAIL_DOMAINS = ("example.com", "mail.example.org", "customers.example.net", "inbox.example.co.uk")
CATEGORIES = ("grocery", "beverages", "household", "personal care", "garden", "electronics")
PRODUCT_WORDS = {
    "grocery": ("Organic Rolled Oats", "Stone-Ground Whole Wheat Flour", "Extra Virgin Olive Oil",
                "Sea Salt Kettle Chips", "Wild Alaskan Salmon Fillets", "Aged Parmigiano Reggiano"),
    "beverages": ("Single-Origin Ethiopian Coffee Beans", "Sparkling Mineral Water",
                  "Cold-Pressed Orange Juice", "Darjeeling First Flush Tea", "Oat Milk Barista Edition"),
    "household": ("Concentrated Laundry Detergent", "Bamboo Kitchen Towels", "Beeswax Food Wraps",
                  "Stainless Steel Scrub Pads", "Eucalyptus Multi-Surface Cleaner"),
    "personal care": ("Fragrance-Free Sensitive Skin Lotion", "Charcoal Whitening Toothpaste",
                      "Argan Oil Repair Shampoo", "Mineral Sunscreen SPF 50"),
    "garden": ("Heirloom Tomato Seed Collection", "Peat-Free Multipurpose Compost",
               "Galvanised Watering Can", "Slow-Release Lawn Fertiliser"),
    "electronics": ("Rechargeable AA Batteries", "USB-C Braided Charging Cable",
                    "Noise-Cancelling Wireless Earbuds", "Smart LED Bulb E27 Warm White"),
}
PACK_SIZES = ("250 g", "500 g", "1 kg", "6 x 1 l", "12-pack", "750 ml", "family size", "2 x 400 g")
BAD_KINDS = ("truncated", "not_json", "unknown_op", "unknown_table", "store_99", "total_string")
NEXT_STATUS = {"draft": "placed", "placed": "paid", "paid": "shipped"}


def iso(us):
    """ISO-8601 UTC text with microseconds, as Debezium renders timestamptz."""
    secs, frac = divmod(us, 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % frac


def money(cents):
    return cents / 100


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class PickList:
    """A list with O(1) random pick and removal (order is deterministic)."""

    def __init__(self):
        self.items = []
        self.pos = {}

    def add(self, item):
        if item not in self.pos:
            self.pos[item] = len(self.items)
            self.items.append(item)

    def remove(self, item):
        i = self.pos.pop(item, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def pick(self, rng):
        return self.items[rng.randrange(len(self.items))] if self.items else None

    def __len__(self):
        return len(self.items)


class Site:
    def __init__(self, name, idx, rng, sink):
        self.name = name
        self.idx = idx
        self.lsn = 22_000_000_000 + idx * 1_700_000_000 + rng.randrange(1_000_000)
        self.last_commit_lsn = self.lsn - rng.randrange(200, 4000)
        self.txid = 700 + idx * 40_000 + rng.randrange(500)
        self.sink = sink
        self.offsets = collections.Counter()  # Kafka offset per topic
        self.recent = collections.deque(maxlen=24)  # for re-deliveries
        self.count = 0
        self.bytes = 0
        # Per-site id sequences (START WITH idx * 10,000,000) keep ids unique.
        self.next_customer = idx * 10_000_000 + 1000
        self.next_order = idx * 10_000_000 + 1000


class Generator:
    def __init__(self, opts, sinks):
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.sites = {n: Site(n, i, self.rng, sinks[n]) for i, n in enumerate(SITES)}
        self.clock = START_US
        self.customers = {}
        self.products = {}
        self.orders = {}
        self.lines = {}
        self.inventory = {}
        self.sessions = {}
        self.cust_pick = PickList()
        self.prod_pick = PickList()
        self.inv_pick = {s: PickList() for s in STORES}
        self.open_orders = {s: PickList() for s in SITES}  # by the site that owns the order
        self.draft_orders = PickList()
        self.session_pick = {s: PickList() for s in SITES}
        self.order_site = {}
        self.next_sku = 1
        self.total = 0
        self.stats = collections.Counter()
        self.events_total = 0

    # ---- time and data helpers ------------------------------------------

    def tick(self, mean_ms):
        self.clock += int(self.rng.expovariate(1.0 / (mean_ms * 1000))) + 1

    def now(self):
        return iso(self.clock)

    def person(self):
        r = self.rng
        first = r.choice(FIRST_NAMES)
        last = r.choice(LAST_NAMES)
        name = first + " " + last
        local = (first.split()[0] + "." + last.replace(" ", "").replace("'", "")).lower()
        email = "%s%d@%s" % (local, r.randrange(10, 99), r.choice(MAIL_DOMAINS))
        return name, email

    def new_customer_row(self, cid, home):
        name, email = self.person()
        return {
            "id": cid,
            "name": name,
            "email": email,
            "tier": self.rng.choices(("bronze", "silver", "gold"), (6, 3, 1))[0],
            "home_store": home,
            "points": self.rng.randrange(0, 2500),
            "updated_at": self.now(),
        }

    def new_product_row(self):
        r = self.rng
        sku = "SKU-%05d" % self.next_sku
        self.next_sku += 1
        cat = r.choice(CATEGORIES)
        name = "%s, %s" % (r.choice(PRODUCT_WORDS[cat]), r.choice(PACK_SIZES))
        return {
            "sku": sku,
            "name": name,
            "category": cat,
            "price": money(r.randrange(149, 8999)),
            "active": True,
            "updated_at": self.now(),
        }

    def cents(self, price):
        return int(round(price * 100))

    # ---- emitting -----------------------------------------------------------

    def source(self, site, table, ts_us, lsn, snapshot):
        return {
            "version": VERSION,
            "connector": "postgresql",
            "name": site.name,
            "ts_ms": ts_us // 1000,
            "snapshot": snapshot,
            "db": "retail",
            "sequence": dumps([str(site.last_commit_lsn), str(lsn)]),
            "ts_us": ts_us,
            "ts_ns": ts_us * 1000,
            "schema": "public",
            "table": table,
            "txId": site.txid,
            "lsn": lsn,
            "xmin": None,
        }

    def write(self, site, line):
        site.sink.write(line)
        site.sink.write("\n")
        site.count += 1
        site.bytes += len(line.encode("utf-8")) + 1
        self.events_total += 1

    def emit_value(self, site, table, key, value, kind, allow_dup=True):
        """Write one Debezium value for `table` in a randomly chosen line form."""
        r = self.rng
        o = self.o
        if kind == "marker":
            topic = "%s.transaction" % site.name
        else:
            topic = "%s.public.%s" % (site.name, table)
        if kind == "data" and r.random() < o.envelope_rate:
            value = {"schema": envelope_schema(site.name, table), "payload": value}
            key = {"schema": key_schema(site.name, table), "payload": key}
            self.stats["envelope"] += 1
        # Every message takes an offset, whether or not its line shows it.
        off = site.offsets[topic]
        site.offsets[topic] += 1
        if r.random() < o.wrapper_rate:
            line = dumps({"topic": topic, "partition": 0, "offset": off, "key": key, "value": value})
            self.stats["wrapper"] += 1
        else:
            line = dumps(value)
        self.write(site, line)
        site.recent.append(line)
        if allow_dup and r.random() < o.dup_rate and site.recent:
            # A consumer re-delivers a short run after a rebalance.
            run = list(site.recent)[-r.randint(1, 3):]
            for dup in run:
                self.write(site, dup)
                self.stats["duplicate"] += 1
        return line

    def tx(self, site_name, changes, mean_gap_ms=None):
        """Commit one transaction at a site: changes = [(table, op, before, after)]."""
        r = self.rng
        site = self.sites[site_name]
        self.tick(mean_gap_ms if mean_gap_ms is not None else self.o.gap_ms)
        site.txid += r.randint(1, 4)
        commit_us = self.clock
        first_lsn = site.lsn + r.randrange(40, 400)
        tx_id = "%d:%d" % (site.txid, first_lsn)
        meta = site_name in TX_META_SITES
        markers = meta and r.random() < self.o.tx_marker_rate
        if markers:
            self.emit_value(site, "transaction", {"id": tx_id}, {
                "status": "BEGIN", "id": tx_id, "ts_ms": commit_us // 1000,
                "event_count": None, "data_collections": None}, "marker", allow_dup=False)
            self.stats["tx_marker"] += 1
        per_table = collections.Counter()
        site.lsn = first_lsn
        for n, (table, op, before, after) in enumerate(changes, 1):
            if n > 1:
                site.lsn += r.randrange(56, 900)
            per_table[table] += 1
            value = {
                "before": before,
                "after": after,
                "source": self.source(site, table, commit_us, site.lsn, "false"),
                "transaction": None,
                "op": op,
            }
            if meta:
                value["transaction"] = {
                    "id": tx_id, "total_order": n, "data_collection_order": per_table[table]}
            emit_us = commit_us + r.randrange(3000, 400000)
            value["ts_ms"] = emit_us // 1000
            value["ts_us"] = emit_us
            value["ts_ns"] = emit_us * 1000 + r.randrange(1000)
            row = after if after is not None else before
            key = {k: row[k] for k in KEYS[table]}
            self.emit_value(site, table, key, value, "data")
            self.stats["op_" + op] += 1
            if op == "d" and r.random() < self.o.wrapper_rate * 3:
                # Debezium follows a delete with a tombstone (null value).
                topic = "%s.public.%s" % (site.name, table)
                off = site.offsets[topic]
                site.offsets[topic] += 1
                self.write(site, dumps({"topic": topic, "partition": 0, "offset": off,
                                        "key": key, "value": None}))
                self.stats["tombstone"] += 1
        if markers:
            self.emit_value(site, "transaction", {"id": tx_id}, {
                "status": "END", "id": tx_id, "ts_ms": commit_us // 1000 + r.randrange(1, 30),
                "event_count": len(changes),
                "data_collections": [{"data_collection": "public." + t, "event_count": c}
                                     for t, c in per_table.items()]}, "marker", allow_dup=False)
        site.lsn += r.randrange(40, 200)
        site.last_commit_lsn = site.lsn
        if self.o.bad_rate > 0 and r.random() < self.o.bad_rate * len(changes):
            self.bad_line(site_name)

    def snapshot(self, site_name, rows):
        site = self.sites[site_name]
        site.txid += 1
        lsn = site.lsn
        ts = self.clock
        for n, (table, row) in enumerate(rows):
            snap = "first" if n == 0 else "last" if n == len(rows) - 1 else "true"
            ts += self.rng.randrange(50, 3000)
            value = {
                "before": None,
                "after": row,
                "source": self.source(site, table, ts, lsn, snap),
                "transaction": None,
                "op": "r",
                "ts_ms": ts // 1000,
                "ts_us": ts,
                "ts_ns": ts * 1000 + self.rng.randrange(1000),
            }
            key = {k: row[k] for k in KEYS[table]}
            self.emit_value(site, table, key, value, "data", allow_dup=False)
            self.stats["op_r"] += 1
        site.lsn += self.rng.randrange(1000, 5000)
        site.last_commit_lsn = site.lsn

    # ---- bad input ---------------------------------------------------------------

    def bad_line(self, site_name):
        r = self.rng
        site = self.sites[site_name]
        # Round-robin, so that even a short run has every kind.
        kind = BAD_KINDS[self.stats["bad"] % len(BAD_KINDS)]
        self.stats["bad"] += 1
        if kind == "store_99":
            # Only the hub routes an order by its store_id.
            site_name = "central"
            site = self.sites[site_name]
        self.stats["bad_" + kind] += 1
        if kind == "truncated":
            line = site.recent[-1] if site.recent else '{"before":null,"after":{"id":1}}'
            self.write(site, line[: max(5, int(len(line) * r.uniform(0.2, 0.9)))])
            return
        if kind == "not_json":
            self.write(site, r.choice((
                "%% Reached end of topic %s.public.orders [0] at offset %d"
                % (site_name, site.offsets["%s.public.orders" % site_name]),
                "2025-03-05 09:14:07,311 WARN  [%s|task-0] Exception while polling "
                "(io.debezium.connector.postgresql.PostgresStreamingChangeEventSource)" % site_name,
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )))
            return
        commit_us = self.clock
        site.lsn += r.randrange(56, 900)
        if kind == "unknown_op":
            cid = self.cust_pick.pick(r)
            table, op, after = "customers", "x", dict(self.customers[cid])
        elif kind == "unknown_table":
            table, op, after = "unknown_things", "c", {
                "id": r.randrange(1, 5000), "label": "calibration run %d" % r.randrange(100)}
        else:
            oid = site.next_order
            site.next_order += 1
            cid = self.cust_pick.pick(r)
            now = self.now()
            table, op = "orders", "c"
            after = {"id": oid, "customer_id": cid,
                     "store_id": ("store_99" if kind == "store_99" else
                                  site_name if site_name != "central" else r.choice(STORES)),
                     "status": "placed", "total": money(r.randrange(500, 20000)),
                     "created_at": now, "updated_at": now}
            if kind == "total_string":
                after["total"] = "%d,%02d" % (r.randrange(5, 200), r.randrange(100))
        value = {"before": None, "after": after,
                 "source": self.source(site, table, commit_us, site.lsn, "false"),
                 "transaction": None, "op": op, "ts_ms": commit_us // 1000 + 20,
                 "ts_us": commit_us + 20000, "ts_ns": (commit_us + 20000) * 1000}
        self.write(site, dumps(value))
        site.last_commit_lsn = site.lsn

    # ---- the business --------------------------------------------------------------

    def initial_data(self):
        """The data every site already holds when its connector takes its snapshot."""
        r = self.rng
        for i in range(1, 9):
            row = self.new_customer_row(i, r.choice(STORES))
            self.customers[i] = row
            self.cust_pick.add(i)
        for _ in range(8):
            row = self.new_product_row()
            self.products[row["sku"]] = row
            self.prod_pick.add(row["sku"])
        for s in STORES:
            for sku in r.sample(sorted(self.products), 6):
                self.inventory[(sku, s)] = {
                    "sku": sku, "store_id": s, "qty": r.randrange(5, 120),
                    "price": self.products[sku]["price"], "updated_at": self.now()}
                self.inv_pick[s].add((sku, s))
        for s in STORES:
            for _ in range(2):
                self.create_order(s, s, commit=False, status=r.choice(("placed", "paid")))

        def rows_for(site):
            out = [("customers", dict(c)) for c in self.customers.values()]
            out += [("products", dict(p)) for p in self.products.values()]
            out += [("inventory", dict(v)) for k, v in self.inventory.items()
                    if site == "central" or k[1] == site]
            for oid, o in self.orders.items():
                if site == "central" or o["store_id"] == site:
                    out.append(("orders", dict(o)))
                    out += [("order_lines", dict(ln)) for ln in self.lines[oid]]
            return out

        for s in SITES:
            self.snapshot(s, rows_for(s))

    def create_order(self, site_name, store, commit=True, status="draft"):
        r = self.rng
        site = self.sites[site_name]
        oid = site.next_order
        site.next_order += 1
        now = self.now()
        skus = r.sample(self.prod_pick.items, min(len(self.prod_pick), r.randint(1, 4)))
        lines = []
        total = 0
        for n, sku in enumerate(skus, 1):
            qty = r.choices((1, 2, 3, 6), (8, 4, 2, 1))[0]
            price = self.products[sku]["price"]
            total += qty * self.cents(price)
            lines.append({"order_id": oid, "line_no": n, "sku": sku, "qty": qty,
                          "unit_price": price})
        order = {"id": oid, "customer_id": self.cust_pick.pick(r), "store_id": store,
                 "status": status, "total": money(total), "created_at": now, "updated_at": now}
        self.orders[oid] = order
        self.lines[oid] = lines
        self.order_site[oid] = site_name
        self.open_orders[site_name].add(oid)
        if status == "draft":
            self.draft_orders.add(oid)
        if commit:
            self.tx(site_name, [("orders", "c", None, dict(order))]
                    + [("order_lines", "c", None, dict(ln)) for ln in lines])

    def set_order_status(self, oid, status):
        before = dict(self.orders[oid])
        after = dict(before, status=status, updated_at=self.now())
        self.orders[oid] = after
        if status != "draft":
            self.draft_orders.remove(oid)
        if status in ("shipped", "cancelled"):
            self.open_orders[self.order_site[oid]].remove(oid)
        return ("orders", "u", before, dict(after))

    def advance_order(self):
        r = self.rng
        site_name = r.choice(SITES)
        oid = self.open_orders[site_name].pick(r)
        if oid is None:
            return self.create_order(site_name, site_name if site_name != "central"
                                     else r.choice(STORES))
        status = NEXT_STATUS[self.orders[oid]["status"]]
        changes = [self.set_order_status(oid, status)]
        store = self.orders[oid]["store_id"]
        if status == "paid" and site_name == store:
            # The store's till takes the goods off its shelf in the same transaction.
            for ln in self.lines[oid]:
                key = (ln["sku"], store)
                if key in self.inventory:
                    changes.append(self.inv_change(key, qty=-ln["qty"]))
        self.tx(site_name, changes)

    def cancel_order(self):
        r = self.rng
        site_name = r.choice(SITES)
        oid = self.open_orders[site_name].pick(r)
        if oid is None or self.orders[oid]["status"] == "paid" and r.random() < 0.7:
            return
        self.tx(site_name, [self.set_order_status(oid, "cancelled")])

    def delete_draft(self):
        oid = self.draft_orders.pick(self.rng)
        if oid is None:
            return
        site_name = self.order_site[oid]
        order = self.orders.pop(oid)
        self.draft_orders.remove(oid)
        self.open_orders[site_name].remove(oid)
        lines = self.lines.pop(oid)
        # Lines first (they reference the order), key-only before (default identity).
        changes = [("order_lines", "d", {"order_id": oid, "line_no": ln["line_no"]}, None)
                   for ln in lines]
        changes.append(("orders", "d", order, None))
        self.tx(site_name, changes)

    def inv_change(self, key, qty=0, price=None):
        before = self.inventory[key]
        after = dict(before, qty=max(0, before["qty"] + qty), updated_at=self.now())
        if price is not None:
            after["price"] = price
        self.inventory[key] = after
        return ("inventory", "u", dict(before), dict(after))

    def stock_change(self):
        r = self.rng
        store = r.choice(STORES)
        changes = []
        if r.random() < 0.1:
            sku = self.prod_pick.pick(r)
            key = (sku, store)
            if key not in self.inventory:
                row = {"sku": sku, "store_id": store, "qty": r.randrange(6, 48),
                       "price": self.products[sku]["price"], "updated_at": self.now()}
                self.inventory[key] = row
                self.inv_pick[store].add(key)
                self.tx(store, [("inventory", "c", None, dict(row))])
                return
        for _ in range(r.choices((1, 2, 3), (6, 3, 1))[0]):
            key = self.inv_pick[store].pick(r)
            delta = r.choice((-1, -1, -2, -3, 12, 24, -1, 6))
            changes.append(self.inv_change(key, qty=delta))
        self.tx(store, changes)

    def central_inventory_price(self):
        r = self.rng
        store = r.choice(STORES)
        key = self.inv_pick[store].pick(r)
        price = money(max(99, self.cents(self.inventory[key]["price"]) + r.randrange(-150, 150)))
        self.tx("central", [self.inv_change(key, price=price)])

    def product_price(self):
        r = self.rng
        sku = self.prod_pick.pick(r)
        p = self.products[sku]
        newp = dict(p, price=money(max(99, self.cents(p["price"]) + r.randrange(-200, 250))),
                    updated_at=self.now())
        if r.random() < 0.08:
            newp["active"] = not p["active"]
        self.products[sku] = newp
        changes = [("products", "u", None, dict(newp))]
        # The hub moves the shelf price of every store with it.
        for s in STORES:
            if (sku, s) in self.inventory:
                changes.append(self.inv_change((sku, s), price=newp["price"]))
        self.tx("central", changes)

    def product_insert(self):
        row = self.new_product_row()
        self.products[row["sku"]] = row
        self.prod_pick.add(row["sku"])
        self.tx("central", [("products", "c", None, dict(row))])

    def customer_insert(self):
        r = self.rng
        site_name = r.choice(SITES)
        site = self.sites[site_name]
        cid = site.next_customer
        site.next_customer += 1
        row = self.new_customer_row(cid, site_name if site_name != "central" else r.choice(STORES))
        row["points"] = 0
        row["tier"] = "bronze"
        self.customers[cid] = row
        self.cust_pick.add(cid)
        self.tx(site_name, [("customers", "c", None, dict(row))])

    def customer_edit(self, cid=None, site_name=None, base=None):
        r = self.rng
        cid = cid if cid is not None else self.cust_pick.pick(r)
        site_name = site_name or r.choice(SITES)
        row = dict(base if base is not None else self.customers[cid])
        if site_name == "central":
            what = r.choice(("tier", "email", "name"))
        else:
            what = r.choice(("points", "points", "points", "email", "home_store"))
        if what == "tier":
            row["tier"] = r.choice(("bronze", "silver", "gold"))
        elif what == "email":
            row["email"] = self.person()[1]
        elif what == "name":
            row["name"] = self.person()[0]
        elif what == "points":
            row["points"] += r.randrange(5, 400)
        else:
            row["home_store"] = site_name
        row["updated_at"] = self.now()
        self.customers[cid] = row
        self.tx(site_name, [("customers", "u", None, dict(row))])

    def customer_delete(self):
        r = self.rng
        if len(self.cust_pick) < 10:
            return
        cid = self.cust_pick.pick(r)
        self.cust_pick.remove(cid)
        del self.customers[cid]
        self.tx("central", [("customers", "d", {"id": cid}, None)])

    def concurrent_customer(self):
        """The same customer edited at two sites before either saw the other's change."""
        r = self.rng
        cid = self.cust_pick.pick(r)
        base = dict(self.customers[cid])
        a, b = r.sample(SITES, 2)
        self.customer_edit(cid, a, base)
        self.customer_edit(cid, b, base)
        self.stats["conflict_customer"] += 1

    def concurrent_inventory(self):
        """A store sells while the hub reprices the same shelf row."""
        r = self.rng
        store = r.choice(STORES)
        key = self.inv_pick[store].pick(r)
        base = dict(self.inventory[key])
        self.tx(store, [self.inv_change(key, qty=-r.randint(1, 3))], mean_gap_ms=20)
        self.inventory[key] = base
        price = money(max(99, self.cents(base["price"]) + r.randrange(-150, 150)))
        self.tx("central", [self.inv_change(key, price=price)], mean_gap_ms=20)
        self.stats["conflict_inventory"] += 1

    def concurrent_order(self):
        """The hub cancels an order the store is just marking paid."""
        r = self.rng
        store = r.choice(STORES)
        oid = self.open_orders[store].pick(r)
        if oid is None or self.orders[oid]["status"] not in ("placed", "draft"):
            return
        base = dict(self.orders[oid])
        self.tx(store, [self.set_order_status(oid, NEXT_STATUS[base["status"]])], mean_gap_ms=20)
        self.orders[oid] = base
        self.tx("central", [self.set_order_status(oid, "cancelled")], mean_gap_ms=20)
        self.stats["conflict_order"] += 1

    def session_insert(self):
        r = self.rng
        site_name = r.choice(SITES)
        sid = "%08x-%04x-4%03x-%04x-%012x" % (
            r.getrandbits(32), r.getrandbits(16), r.getrandbits(12),
            0x8000 | r.getrandbits(14), r.getrandbits(48))
        row = {"id": sid, "customer_id": self.cust_pick.pick(r), "started_at": self.now()}
        self.sessions[sid] = row
        self.session_pick[site_name].add(sid)
        self.tx(site_name, [("sessions", "c", None, row)])

    def session_delete(self):
        r = self.rng
        site_name = r.choice(SITES)
        sid = self.session_pick[site_name].pick(r)
        if sid is None:
            return
        self.session_pick[site_name].remove(sid)
        del self.sessions[sid]
        self.tx(site_name, [("sessions", "d", {"id": sid}, None)])

    def store_order(self):
        store = self.rng.choice(STORES)
        self.create_order(store, store)

    def hub_order(self):
        self.create_order("central", self.rng.choice(STORES))

    def run(self):
        self.initial_data()
        if self.o.bench:
            mix = ((self.advance_order, 30), (self.stock_change, 22), (self.customer_edit, 16),
                   (self.store_order, 9), (self.hub_order, 2), (self.product_price, 3),
                   (self.central_inventory_price, 5), (self.cancel_order, 2),
                   (self.delete_draft, 1), (self.customer_insert, 2), (self.product_insert, 1),
                   (self.concurrent_customer, 1), (self.concurrent_inventory, 1),
                   (self.concurrent_order, 1), (self.session_insert, 3),
                   (self.session_delete, 1))
        else:
            mix = ((self.advance_order, 25), (self.stock_change, 12), (self.customer_edit, 8),
                   (self.store_order, 14), (self.hub_order, 3), (self.product_price, 4),
                   (self.central_inventory_price, 4), (self.cancel_order, 3),
                   (self.delete_draft, 2), (self.customer_insert, 4), (self.product_insert, 2),
                   (self.concurrent_customer, 2), (self.concurrent_inventory, 1),
                   (self.concurrent_order, 1), (self.customer_delete, 0.5),
                   (self.session_insert, 8), (self.session_delete, 2))
        funcs = [f for f, _ in mix]
        weights = [w for _, w in mix]
        while self.events_total < self.o.events:
            self.rng.choices(funcs, weights)[0]()


def field(name, typ, optional=True):
    return {"type": typ, "optional": optional, "field": name}


def row_schema(site, table, name):
    keys = KEYS[table]
    fields = [field(c, t, c not in keys) for c, t in TABLES[table]]
    return {"type": "struct", "fields": fields, "optional": True,
            "name": "%s.public.%s.Value" % (site, table), "field": name}


SOURCE_SCHEMA = {
    "type": "struct",
    "fields": [
        field("version", "string", False),
        field("connector", "string", False),
        field("name", "string", False),
        field("ts_ms", "int64", False),
        {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": "true,first,first_in_data_collection,"
                                   "last_in_data_collection,last,false,incremental"},
         "default": "false", "field": "snapshot"},
        field("db", "string", False),
        field("sequence", "string"),
        field("ts_us", "int64"),
        field("ts_ns", "int64"),
        field("schema", "string", False),
        field("table", "string", False),
        field("txId", "int64"),
        field("lsn", "int64"),
        field("xmin", "int64"),
    ],
    "optional": False,
    "name": "io.debezium.connector.postgresql.Source",
    "field": "source",
}
TX_SCHEMA = {
    "type": "struct",
    "fields": [field("id", "string", False), field("total_order", "int64", False),
               field("data_collection_order", "int64", False)],
    "optional": True, "name": "event.block", "version": 1, "field": "transaction",
}
_schema_cache = {}


def envelope_schema(site, table):
    k = ("v", site, table)
    if k not in _schema_cache:
        _schema_cache[k] = {
            "type": "struct",
            "fields": [row_schema(site, table, "before"), row_schema(site, table, "after"),
                       SOURCE_SCHEMA, TX_SCHEMA, field("op", "string", False),
                       field("ts_ms", "int64"), field("ts_us", "int64"), field("ts_ns", "int64")],
            "optional": False,
            "name": "%s.public.%s.Envelope" % (site, table),
            "version": 2,
        }
    return _schema_cache[k]


def key_schema(site, table):
    k = ("k", site, table)
    if k not in _schema_cache:
        types = dict(TABLES[table])
        _schema_cache[k] = {
            "type": "struct",
            "fields": [field(c, types[c], False) for c in KEYS[table]],
            "optional": False,
            "name": "%s.public.%s.Key" % (site, table),
        }
    return _schema_cache[k]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=4000, help="approximate number of lines")
    p.add_argument("--seed", type=int, default=42)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", metavar="DIR", help="one file per site (default: events/ here)")
    out.add_argument("--single", metavar="FILE", help="one interleaved file; '-' for stdout")
    p.add_argument("--bad-rate", type=float, default=None, help="bad lines per event (0.005)")
    p.add_argument("--dup-rate", type=float, default=None, help="re-delivery runs per event (0.003)")
    p.add_argument("--wrapper-rate", type=float, default=0.10,
                   help="fraction of lines in the {topic,partition,offset,key,value} form")
    p.add_argument("--envelope-rate", type=float, default=None,
                   help="fraction with the schema/payload envelope (0.05)")
    p.add_argument("--tx-marker-rate", type=float, default=0.03,
                   help="fraction of transactions at central/store_02 with BEGIN/END records")
    p.add_argument("--gap-ms", type=float, default=None, help="mean time between transactions")
    p.add_argument("--bench", action="store_true",
                   help="benchmark mix: no bad lines, duplicates or envelopes; mostly updates")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    o = p.parse_args(argv)
    defaults = {"bad_rate": (0.005, 0.0), "dup_rate": (0.003, 0.0), "envelope_rate": (0.05, 0.0),
                "gap_ms": (400.0, 20.0)}
    for name, (normal, bench) in defaults.items():
        if getattr(o, name) is None:
            setattr(o, name, bench if o.bench else normal)

    files = []
    try:
        if o.single is not None:
            f = sys.stdout if o.single == "-" else open(o.single, "w", encoding="utf-8",
                                                        buffering=1 << 20)
            files.append(f)
            # One stream for all sites: lines are generated in commit-time order.
            sinks = {s: f for s in SITES}
            where = o.single
        else:
            d = o.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "events")
            os.makedirs(d, exist_ok=True)
            sinks = {}
            for i, s in enumerate(SITES):
                f = open(os.path.join(d, "%02d-%s.jsonl" % (i, s)), "w", encoding="utf-8",
                         buffering=1 << 20)
                files.append(f)
                sinks[s] = f
            where = d
        g = Generator(o, sinks)
        g.run()
    finally:
        for f in files:
            if f is not sys.stdout:
                f.close()
            else:
                f.flush()
    if not o.quiet:
        nbytes = sum(s.bytes for s in g.sites.values())
        print("%d lines, %d bytes, mean %.0f bytes/line -> %s" % (
            g.events_total, nbytes, nbytes / max(1, g.events_total), where), file=sys.stderr)
        print("  " + ", ".join("%s=%d" % kv for kv in sorted(g.stats.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
