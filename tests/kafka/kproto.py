#!/usr/bin/env python3
"""Minimal Kafka admin requests for sluice's Kafka tests (stdlib only).

kcat produces and consumes; what kcat cannot do is done here with a few
non-flexible (pre-KIP-482) request versions that Kafka 3.9 still accepts,
sent to the single test broker (which is also every group's coordinator):

  kproto.py BOOTSTRAP create-topics PARTITIONS TOPIC...   create, wait for leaders
  kproto.py BOOTSTRAP topics [REGEX]                      list topic names
  kproto.py BOOTSTRAP end-offsets TOPIC...                {"topic":{"p":end}} (JSON)
  kproto.py BOOTSTRAP group GROUP                         state and members (JSON)
  kproto.py BOOTSTRAP wait-group GROUP MEMBERS SECONDS    until Stable with MEMBERS
                                                          members, each owning partitions
  kproto.py BOOTSTRAP committed GROUP TOPIC...            {"topic":{"p":offset}} (JSON)
  kproto.py BOOTSTRAP wait-committed [--pid=PID] GROUP SECONDS TOPIC...
                                                          until the group's committed offsets
                                                          reach the end of every partition
                                                          (or process PID is gone)
  kproto.py BOOTSTRAP records REGEX                       records in the topics matching REGEX
                                                          (sum of end offsets; 0 if none)
  kproto.py BOOTSTRAP wait-records [--pid=PID] REGEX N SECONDS
                                                          until those topics hold N records
                                                          (or process PID is gone)

Creating topics here takes milliseconds; `kafka.sh topic NAME create` starts
one JVM per topic (about 2.5 s each), and a test needs dozens of topics.
Exit status: 0 ok, 1 a request failed or timed out, 2 usage.
"""
import json
import re
import socket
import struct
import sys
import time

API_LIST_OFFSETS = 2
API_METADATA = 3
API_OFFSET_FETCH = 9
API_DESCRIBE_GROUPS = 15
API_CREATE_TOPICS = 19

ERR_NONE = 0
ERR_COORDINATOR_LOAD_IN_PROGRESS = 14
ERR_COORDINATOR_NOT_AVAILABLE = 15
ERR_NOT_COORDINATOR = 16
ERR_TOPIC_ALREADY_EXISTS = 36
RETRIABLE_GROUP_ERRORS = (
    ERR_COORDINATOR_LOAD_IN_PROGRESS,
    ERR_COORDINATOR_NOT_AVAILABLE,
    ERR_NOT_COORDINATOR,
)


class KafkaError(Exception):
    pass


# ---------------------------------------------------------------- encoding


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


class Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, n):
        if self.p + n > len(self.d):
            raise KafkaError("response shorter than expected")
        b = self.d[self.p : self.p + n]
        self.p += n
        return b

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def bytes(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def array(self, dec):
        n = self.i32()
        return [] if n < 0 else [dec(self) for _ in range(n)]


# ---------------------------------------------------------------- transport


class Conn:
    """One connection to the broker; request header v1, response header v0."""

    def __init__(self, bootstrap, timeout=15.0):
        host, port = bootstrap.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.corr = 0

    def close(self):
        self.s.close()

    def _recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise KafkaError("broker closed the connection")
            out += chunk
        return out

    def request(self, api, version, body):
        self.corr += 1
        msg = i16(api) + i16(version) + i32(self.corr) + string("sluice-kt") + body
        self.s.sendall(i32(len(msg)) + msg)
        size = struct.unpack(">i", self._recv(4))[0]
        r = Reader(self._recv(size))
        if r.i32() != self.corr:
            raise KafkaError("response for another request")
        return r


# ---------------------------------------------------------------- requests


def metadata(c, topics=None):
    """{topic: {partition: leader}} (all topics when topics is None)."""
    r = c.request(API_METADATA, 0, array(topics or [], string))
    r.array(lambda r: (r.i32(), r.string(), r.i32()))  # brokers

    def part(r):
        err, pid, leader = r.i16(), r.i32(), r.i32()
        r.array(lambda r: r.i32())
        r.array(lambda r: r.i32())
        return pid, leader, err

    out = {}
    for err, name, parts in r.array(lambda r: (r.i16(), r.string(), r.array(part))):
        if err == ERR_NONE:
            out[name] = {pid: leader for pid, leader, perr in parts if perr == ERR_NONE}
    return out


def create_topics(c, names, partitions, timeout_ms=30000):
    def topic(name):
        return string(name) + i32(partitions) + i16(1) + array([], None) + array([], None)

    r = c.request(API_CREATE_TOPICS, 0, array(names, topic) + i32(timeout_ms))
    bad = []
    for name, err in r.array(lambda r: (r.string(), r.i16())):
        if err not in (ERR_NONE, ERR_TOPIC_ALREADY_EXISTS):
            bad.append("%s: error %d" % (name, err))
    if bad:
        raise KafkaError("create-topics: " + ", ".join(bad))


def end_offsets(c, topic_parts):
    """topic_parts: {topic: [partition]} -> {topic: {partition: end offset}}."""

    def topic(item):
        name, parts = item
        return string(name) + array(parts, lambda p: i32(p) + i64(-1))

    body = i32(-1) + array(sorted(topic_parts.items()), topic)
    r = c.request(API_LIST_OFFSETS, 1, body)
    out = {}
    for name, parts in r.array(
        lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64())))
    ):
        for pid, err, _ts, off in parts:
            if err != ERR_NONE:
                raise KafkaError("list-offsets %s[%d]: error %d" % (name, pid, err))
            out.setdefault(name, {})[pid] = off
    return out


def parse_assignment(b):
    """Consumer protocol assignment -> {topic: [partitions]}."""
    if not b:
        return {}
    r = Reader(b)
    r.i16()  # version
    return dict(r.array(lambda r: (r.string(), r.array(lambda r: r.i32()))))


def describe_group(c, group):
    r = c.request(API_DESCRIBE_GROUPS, 0, array([group], string))

    def member(r):
        mid, cid, host = r.string(), r.string(), r.string()
        r.bytes()  # subscription metadata
        return {"member_id": mid, "client_id": cid, "host": host,
                "assignment": parse_assignment(r.bytes())}

    groups = r.array(
        lambda r: (r.i16(), r.string(), r.string(), r.string(), r.string(), r.array(member))
    )
    err, gid, state, ptype, proto, members = groups[0]
    return {"error": err, "group": gid, "state": state, "protocol": proto,
            "members": members}


def committed(c, group, topic_parts):
    body = string(group) + array(
        sorted(topic_parts.items()), lambda it: string(it[0]) + array(it[1], i32)
    )
    r = c.request(API_OFFSET_FETCH, 1, body)
    out = {}
    for name, parts in r.array(
        lambda r: (r.string(),
                   r.array(lambda r: (r.i32(), r.i64(), r.string(), r.i16())))
    ):
        for pid, off, _meta, err in parts:
            if err in RETRIABLE_GROUP_ERRORS:
                raise KafkaError("offset-fetch: coordinator not ready (error %d)" % err)
            out.setdefault(name, {})[pid] = off
    return out


# ---------------------------------------------------------------- commands


def retry(fn, seconds=30.0):
    """Call fn until it stops raising (connection refused, coordinator loading)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except (OSError, KafkaError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.3)


def with_conn(bootstrap, fn):
    c = Conn(bootstrap)
    try:
        return fn(c)
    finally:
        c.close()


def parts_of(bootstrap, topics):
    md = with_conn(bootstrap, lambda c: metadata(c, topics))
    missing = [t for t in topics if t not in md]
    if missing:
        raise KafkaError("unknown topics: " + ", ".join(missing))
    return {t: sorted(md[t]) for t in topics}


def cmd_create_topics(bs, args):
    n = int(args[0])
    names = args[1:]
    retry(lambda: with_conn(bs, lambda c: create_topics(c, names, n)))
    # the controller committed them; wait until this broker leads every partition
    deadline = time.monotonic() + 30
    while True:
        md = retry(lambda: with_conn(bs, lambda c: metadata(c, names)))
        ready = [t for t in names
                 if t in md and len(md[t]) == n and all(l >= 0 for l in md[t].values())]
        if len(ready) == len(names):
            return 0
        if time.monotonic() >= deadline:
            raise KafkaError("topics without leaders after 30 s: "
                             + ", ".join(sorted(set(names) - set(ready))))
        time.sleep(0.2)


def cmd_topics(bs, args):
    rx = re.compile(args[0]) if args else None
    md = retry(lambda: with_conn(bs, metadata))
    for t in sorted(md):
        if rx is None or rx.search(t):
            print(t)
    return 0


def cmd_end_offsets(bs, args):
    tp = retry(lambda: parts_of(bs, args))
    print(json.dumps(retry(lambda: with_conn(bs, lambda c: end_offsets(c, tp)))))
    return 0


def group_now(bs, group, retry_seconds=30.0):
    def get(c):
        g = describe_group(c, group)
        if g["error"] in RETRIABLE_GROUP_ERRORS:
            raise KafkaError("group coordinator not ready (error %d)" % g["error"])
        return g

    return retry(lambda: with_conn(bs, get), retry_seconds)


def cmd_group(bs, args):
    print(json.dumps(group_now(bs, args[0])))
    return 0


def cmd_wait_group(bs, args):
    group, want, seconds = args[0], int(args[1]), float(args[2])
    deadline = time.monotonic() + seconds
    g = {"state": "unknown (coordinator not ready)", "members": []}
    while True:
        try:
            g = group_now(bs, group, retry_seconds=0)
        except (OSError, KafkaError):
            # the coordinator appears with the first consumer (which creates
            # __consumer_offsets): not an error while we wait
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.3)
            continue
        owning = [m for m in g["members"]
                  if any(ps for ps in m["assignment"].values())]
        if g["state"] == "Stable" and len(g["members"]) == want and len(owning) == want:
            print(", ".join(sorted(
                "%s %s owns %d partitions" % (m["client_id"], m["member_id"][-8:],
                                              sum(len(p) for p in m["assignment"].values()))
                for m in g["members"])))
            return 0
        if time.monotonic() >= deadline:
            print("group %s: state %s, %d members, %d own partitions"
                  % (group, g["state"], len(g["members"]), len(owning)), file=sys.stderr)
            return 1
        time.sleep(0.3)


def cmd_committed(bs, args):
    group, topics = args[0], args[1:]
    tp = retry(lambda: parts_of(bs, topics))
    print(json.dumps(retry(lambda: with_conn(bs, lambda c: committed(c, group, tp)))))
    return 0


def process_runs(pid):
    """PID exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmd_wait_committed(bs, args):
    """Polls (every 0.3 s, riding out a broker that is away) until every
    partition of TOPIC... with records has the group's committed offset at its
    end offset. Prints "N of M input records committed"; exit 1 on timeout."""
    pid = None
    if args and args[0].startswith("--pid="):
        pid, args = int(args[0][6:]), args[1:]
    group, seconds, topics = args[0], float(args[1]), args[2:]
    deadline = time.monotonic() + seconds
    summary, last_err = "no answer from the broker", ""
    while True:
        try:
            tp = parts_of(bs, topics)
            ends = with_conn(bs, lambda c: end_offsets(c, tp))
            com = with_conn(bs, lambda c: committed(c, group, tp))
            total = sum(e for p in ends.values() for e in p.values())
            done = sum(min(max(com.get(t, {}).get(p, -1), 0), e)
                       for t, ps in ends.items() for p, e in ps.items())
            summary = "%d of %d input records committed by group %s" % (done, total, group)
            last_err = ""
            if total > 0 and done == total:
                print(summary)
                return 0
        except (OSError, KafkaError) as e:
            last_err = " (then: %s)" % e
        if time.monotonic() >= deadline:
            print("after %.0f s: %s%s" % (seconds, summary, last_err), file=sys.stderr)
            return 1
        if pid is not None and not process_runs(pid):
            print("process %d ended: %s%s" % (pid, summary, last_err), file=sys.stderr)
            return 1
        time.sleep(0.3)


def records(bs, rx):
    """Sum of the end offsets of the topics matching rx (0 when none)."""
    md = with_conn(bs, metadata)
    tp = {t: sorted(ps) for t, ps in md.items() if rx.search(t)}
    if not tp:
        return 0
    ends = with_conn(bs, lambda c: end_offsets(c, tp))
    return sum(e for p in ends.values() for e in p.values())


def cmd_records(bs, args):
    print(retry(lambda: records(bs, re.compile(args[0]))))
    return 0


def cmd_wait_records(bs, args):
    """Polls (every 0.1 s) until the topics matching REGEX hold N records;
    exit 1 on timeout or when process PID is gone."""
    pid = None
    if args and args[0].startswith("--pid="):
        pid, args = int(args[0][6:]), args[1:]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    rx, want, seconds = re.compile(args[0]), int(args[1]), float(args[2])
    deadline = time.monotonic() + seconds
    have, last_err = 0, ""
    while True:
        try:
            have, last_err = records(bs, rx), ""
            if have >= want:
                print(have)
                return 0
        except (OSError, KafkaError) as e:
            last_err = " (then: %s)" % e
        if time.monotonic() >= deadline:
            print("after %.0f s: %d of %d records%s" % (seconds, have, want, last_err),
                  file=sys.stderr)
            return 1
        if pid is not None and not process_runs(pid):
            print("process %d ended: %d of %d records%s" % (pid, have, want, last_err),
                  file=sys.stderr)
            return 1
        time.sleep(0.1)


COMMANDS = {
    "create-topics": (cmd_create_topics, 2),
    "topics": (cmd_topics, 0),
    "end-offsets": (cmd_end_offsets, 1),
    "group": (cmd_group, 1),
    "wait-group": (cmd_wait_group, 3),
    "committed": (cmd_committed, 2),
    "wait-committed": (cmd_wait_committed, 3),
    "records": (cmd_records, 1),
    "wait-records": (cmd_wait_records, 3),
}


def main(argv):
    if len(argv) < 3 or argv[2] not in COMMANDS or len(argv) - 3 < COMMANDS[argv[2]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = COMMANDS[argv[2]]
    try:
        return fn(argv[1], argv[3:])
    except (OSError, KafkaError) as e:
        print("kproto.py %s: %s" % (argv[2], e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
