#!/usr/bin/env python3
"""Time the benchmark programs and print one Markdown table (run.sh calls this).

For each input file and each program: run it --runs times, keep the fastest
wall-clock time, and the largest peak RSS seen in any run (ru_maxrss of the
child, from GNU time's %M, else os.wait4). Throughput is input lines and input bytes (10^6 bytes
= 1 MB) per second of wall time, process start-up included. The ratios compare
each sluice row with baseline (a) and (b) on the same input.

Prints nothing but the table and, when a row could not be measured, a note
saying why. Exit status 1 when a baseline fails.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT_S = 3600
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def count_lines(path):
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def run_once(cmd, cleanup):
    """Run cmd; return (seconds, peak RSS in KiB, exit status, start of stderr).

    Linux charges a child the high-water RSS of the image it replaced at exec,
    so a child forked from this Python process would report Python's own RSS
    (~17 MiB) as a floor. GNU time forks from a ~1 MiB process and reports the
    child's own peak; os.wait4 is the fallback when it is not installed."""
    cleanup()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        argv = ([GNU_TIME, "-q", "-f", "%M", "-o", rss.name] if GNU_TIME else []) + cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err)
        timer = threading.Timer(TIMEOUT_S, lambda: os.kill(p.pid, 9))
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t0
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)  # already reaped
        err.seek(0)
        # The first line says what went wrong (diagnostics follow with carets).
        tail = err.read(2000).decode("utf-8", "replace").strip()
        peak = ru.ru_maxrss
        if GNU_TIME:
            text = rss.read().strip()
            peak = int(text.splitlines()[-1]) if text and text.splitlines()[-1].isdigit() else 0
    return elapsed, peak, p.returncode, tail


def measure(cmd, runs, cleanup, verify):
    """Best time and peak RSS over `runs` runs; verify() checks the first run's output."""
    best = None
    peak = 0
    for i in range(runs):
        secs, rss, rc, tail = run_once(cmd, cleanup)
        if rc != 0:
            return None, "exit status %d: %s" % (rc, tail.splitlines()[0] if tail else "")
        why = verify() if i == 0 else None
        if why:
            return None, why
        best = secs if best is None else min(best, secs)
        peak = max(peak, rss)
    return (best, peak), None


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 22):
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", action="append", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--passthrough", required=True)
    p.add_argument("--jansson", required=True)
    p.add_argument("--sluice", default="", help="the sluice binary; empty: not available")
    p.add_argument("--sluice-missing", default="sluice binary not built",
                   help="why there is no sluice binary")
    p.add_argument("--rules", required=True)
    p.add_argument("--workdir", required=True)
    o = p.parse_args()

    os.makedirs(o.workdir, exist_ok=True)
    out_file = os.path.join(o.workdir, "bench-out.jsonl")
    out_dir = os.path.join(o.workdir, "bench-out")
    db = os.path.join(o.workdir, "bench-store.db")

    def same_lines(nlines):
        def verify():
            got = count_lines(out_file) if os.path.exists(out_file) else 0
            return None if got == nlines else "wrote %d lines, expected %d" % (got, nlines)
        return verify

    def sluice_wrote():
        outs = [f for f in os.listdir(out_dir) if os.path.getsize(os.path.join(out_dir, f))]
        return None if outs else "ran but wrote no output in --output DIR"

    def cleanup():
        for f in (out_file, db, db + "-wal", db + "-shm", db + "-journal"):
            if os.path.exists(f):
                os.unlink(f)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)

    sluice_why = None
    if not o.sluice:
        sluice_why = o.sluice_missing
    elif not os.path.exists(o.rules):
        sluice_why = "rules file %s does not exist" % o.rules

    rows = []
    notes = []
    # Other work on the machine skews every row; say so rather than mislead.
    load = os.getloadavg()[0]
    if load > 0.5:
        notes.append("the machine was busy (1-minute load average %.1f on %d cores before "
                     "the run): treat these numbers as a lower bound and rerun on a quiet "
                     "machine" % (load, os.cpu_count() or 0))
    failed = False
    nthreads = str(o.threads)
    for path in o.input:
        warm(path)
        nlines = count_lines(path)
        nbytes = os.path.getsize(path)
        progs = [
            ("(a) passthrough", 1, [o.passthrough, path, out_file]),
            ("(b) jansson", o.threads, [o.jansson, "-t", nthreads, path, out_file]),
            ("sluice --store none", o.threads,
             [o.sluice, "run", "--input", path, "--output", out_dir, "--store", "none",
              "--threads", nthreads, "--quiet", o.rules]),
            ("sluice --store sqlite", o.threads,
             [o.sluice, "run", "--input", path, "--output", out_dir, "--store", "sqlite:" + db,
              "--threads", nthreads, "--quiet", o.rules]),
        ]
        base = {}
        for name, threads, cmd in progs:
            row = {"input": nlines, "name": name, "threads": threads}
            rows.append(row)
            if name.startswith("sluice") and sluice_why:
                row["why"] = sluice_why
                continue
            verify = same_lines(nlines) if name.startswith("(") else sluice_wrote
            res, why = measure(cmd, o.runs, cleanup, verify)
            if res is None:
                row["why"] = why
                notes.append("%s on %d events: %s" % (name, nlines, why))
                failed |= name.startswith("(")
                continue
            secs, rss = res
            row["eps"] = nlines / secs
            row["mbs"] = nbytes / secs / 1e6
            row["rss"] = rss / 1024
            if name.startswith("(a)"):
                base["a"] = row["eps"]
            elif name.startswith("(b)"):
                base["b"] = row["eps"]
            else:
                row["va"] = row["eps"] / base["a"] if "a" in base else None
                row["vb"] = row["eps"] / base["b"] if "b" in base else None
        cleanup()
    shutil.rmtree(out_dir, ignore_errors=True)
    if sluice_why:
        notes.append("sluice rows not measured: " + sluice_why)

    print("| input events | program | threads | events/s | MB/s | peak RSS (MiB) "
          "| sluice/(a) | sluice/(b) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "eps" not in r:
            cells = ["not measured", "", ""]
            ratio = ["", ""]
        else:
            cells = ["{:,.0f}".format(r["eps"]), "%.1f" % r["mbs"], "%.1f" % r["rss"]]
            ratio = ["" if r.get(k) is None else "%.2fx" % r[k] for k in ("va", "vb")]
        print("| {:,} | {} | {} | {} |".format(r["input"], r["name"], r["threads"],
                                               " | ".join(cells + ratio)))
    if notes:
        print()
    for n in notes:
        print("Note: " + n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
