"""How fast is the Jepsen history checker?  Generates realistic synthetic Jepsen Kafka
histories and times reading + checking them in a fresh child process.

Usage::

    python benchmarks/jepsen_check.py                    # 10^4, 10^5, 10^6 ops
    python benchmarks/jepsen_check.py --ops 10000 --ww-deps
    python benchmarks/jepsen_check.py --write 100000 out.edn   # just write a history

The synthetic system is a correct Kafka: 8 partitions, 10 concurrent clients that send
(1-3 records, transactional, so a commit marker leaves a gap in the offsets; the first
record lands when the op starts and the rest when it ends, so concurrent transactions
interleave), poll (up to 10 records per assigned partition) and now and then re-assign
themselves.  About 1% of
sends crash (``:info``; half of those still land) and 0.5% fail.  Clients that crash come
back under a new process number, as in Jepsen.  A final phase assigns every partition
and polls until caught up, like Jepsen's final polls, so the history is valid.
The seed is fixed: the same size always gives the same history.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KEYS = 8
CLIENTS = 10
BATCH = 10


def generate(n_ops: int, out, seed: int = 42) -> int:
    """Write about ``n_ops`` Jepsen ops (EDN, one per line) to ``out``; returns the count."""
    rng = random.Random(seed)
    logs: list[list[int | None]] = [[] for _ in range(KEYS)]  # offset -> value (None: marker)
    next_value = 0
    index = 0
    clock = 0
    process_of = list(range(CLIENTS))
    next_process = CLIENTS
    assigned: list[dict[int, int]] = [{k: 0 for k in rng.sample(range(KEYS), 3)}
                                      for _ in range(CLIENTS)]
    in_flight: dict[int, tuple] = {}

    def emit(type_: str, client: int, f: str, value: str) -> None:
        nonlocal index, clock
        clock += rng.randint(1_000, 2_000_000)
        out.write(f"{{:index {index}, :time {clock}, :type :{type_}, :process "
                  f"{process_of[client]}, :f :{f}, :value {value}}}\n")
        index += 1

    def poll_value(client: int) -> str:
        parts = []
        pos = assigned[client]
        for k in sorted(pos):
            log, o = logs[k], pos[k]
            pairs = []
            while o < len(log) and len(pairs) < BATCH:
                if log[o] is not None:
                    pairs.append(f"[{o} {log[o]}]")
                o += 1
            pos[k] = o
            if pairs:
                parts.append(f"{k} [{' '.join(pairs)}]")
        return "[[:poll {" + ", ".join(parts) + "}]]"

    def invoke(client: int) -> None:
        nonlocal next_value
        r = rng.random()
        if r < 0.5:
            sends = []
            for _ in range(rng.randint(1, 3)):
                sends.append((rng.randrange(KEYS), next_value))
                next_value += 1
            emit("invoke", client, "send",
                 "[" + " ".join(f"[:send {k} {v}]" for k, v in sends) + "]")
            r = rng.random()
            fate = ("fail" if r < 0.005 else "lost" if r < 0.01 else "crash" if r < 0.015
                    else "ok")
            first = None
            if fate in ("ok", "crash"):
                # The first record lands at once, the others when the op completes, so
                # concurrent transactions interleave in the log (as real ones do).
                k, v = sends[0]
                first = len(logs[k])
                logs[k].append(v)
            in_flight[client] = ("send", (sends, fate, first))
        elif r < 0.96:
            emit("invoke", client, "poll", "[[:poll]]")
            in_flight[client] = ("poll", None)
        else:
            keys = sorted(rng.sample(range(KEYS), rng.randint(1, 4)))
            emit("invoke", client, "assign", "[" + " ".join(map(str, keys)) + "]")
            in_flight[client] = ("assign", keys)

    def complete(client: int) -> None:
        nonlocal next_process
        f, arg = in_flight.pop(client)
        if f == "send":
            sends, fate, first = arg
            invoked = "[" + " ".join(f"[:send {k} {v}]" for k, v in sends) + "]"
            if fate == "fail":
                emit("fail", client, "send", invoked)
                return
            done = []
            if fate != "lost":
                touched = set()
                for i, (k, v) in enumerate(sends):
                    if i == 0:
                        offset = first
                    else:
                        offset = len(logs[k])
                        logs[k].append(v)
                    done.append(f"[:send {k} [{offset} {v}]]")
                    touched.add(k)
                for k in touched:
                    logs[k].append(None)  # transaction commit marker: a gap in offsets
            if fate in ("lost", "crash"):
                emit("info", client, "send", invoked)
                process_of[client] = next_process
                next_process += 1
                assigned[client] = {}
            else:
                emit("ok", client, "send", "[" + " ".join(done) + "]")
        elif f == "poll":
            emit("ok", client, "poll", poll_value(client))
        else:
            # Kept partitions keep their position; new ones resume near the end, as from
            # a consumer group's committed offset.
            old = assigned[client]
            assigned[client] = {k: old[k] if k in old else
                                max(0, len(logs[k]) - rng.randint(0, 30)) for k in arg}
            emit("ok", client, "assign", "[" + " ".join(map(str, arg)) + "]")

    body_ops = max(n_ops - 200, 0)
    while index < body_ops:
        idle = [c for c in range(CLIENTS) if c not in in_flight]
        if idle and (not in_flight or rng.random() < 0.5):
            invoke(rng.choice(idle))
        else:
            complete(rng.choice(sorted(in_flight)))
    for c in sorted(in_flight):
        complete(c)
    # Final polls: one fresh client reads every partition to the end.
    final = 0
    process_of[final] = next_process
    assigned[final] = {k: 0 for k in range(KEYS)}
    keys = " ".join(map(str, range(KEYS)))
    emit("invoke", final, "assign", f"[{keys}]")
    emit("ok", final, "assign", f"[{keys}]")
    while any(assigned[final][k] < len(logs[k]) for k in range(KEYS)):
        emit("invoke", final, "poll", "[[:poll]]")
        emit("ok", final, "poll", poll_value(final))
    return index


_CHILD = """
import json, resource, sys, time
def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime
S, C = resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN
t0, s0, c0 = time.perf_counter(), cpu(S), cpu(C)
from kafkacheck.jepsen_io import read_jepsen
from invariants.jepsen import analyze
events = read_jepsen(sys.argv[1])
t1, s1, c1 = time.perf_counter(), cpu(S), cpu(C)
a = analyze(events, ww_deps=sys.argv[2] == "1")
t2, s2, c2 = time.perf_counter(), cpu(S), cpu(C)
print(json.dumps({"read_s": t1 - t0, "analyze_s": t2 - t1, "events": len(events),
                  "valid": a.valid, "anomalies": sorted(a.anomalies),
                  "maxrss_mb": resource.getrusage(S).ru_maxrss / 1024,
                  "helper_maxrss_mb": resource.getrusage(C).ru_maxrss / 1024,
                  "cpu_s": s2 - s0 + c2 - c0,
                  "read_cpu": [s1 - s0, c1 - c0], "analyze_cpu": [s2 - s1, c2 - c1]}))
"""


def measure(path: Path, ww_deps: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), "1" if ww_deps else "0"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"checker failed on {path}:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, action="append",
                    help="history size (repeatable); default 10^4, 10^5, 10^6")
    ap.add_argument("--ww-deps", action="store_true", help="check with ww dependencies")
    ap.add_argument("--write", nargs=2, metavar=("OPS", "FILE"),
                    help="only write a synthetic history of OPS ops to FILE")
    args = ap.parse_args(argv)
    if args.write:
        with open(args.write[1], "w") as fh:
            n = generate(int(args.write[0]), fh)
        print(f"wrote {n} ops to {args.write[1]}")
        return 0
    sizes = args.ops or [10**4, 10**5, 10**6]
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}"
          f"{', ww-deps' if args.ww_deps else ''}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"history-{n}.edn"
            t0 = time.perf_counter()
            with open(path, "w") as fh:
                written = generate(n, fh)
            gen_s = time.perf_counter() - t0
            r = measure(path, args.ww_deps)
            r.update(ops=written, size_mb=path.stat().st_size / 2**20, gen_s=gen_s)
            rows.append(r)
            print(f"{written:>9} ops  {r['size_mb']:7.1f} MB  read {r['read_s']:6.2f} s  "
                  f"analyze {r['analyze_s']:6.2f} s  total {r['read_s'] + r['analyze_s']:6.2f} s"
                  f"  cpu {r['cpu_s']:6.1f} s"
                  f"  peak {r['maxrss_mb']:7.0f} MB (helper {r['helper_maxrss_mb']:5.0f} MB)"
                  f"  valid={r['valid']} "
                  f"anomalies={r['anomalies']}\n"
                  f"{'':>9}      CPU main/helper: read {r['read_cpu'][0]:.1f}/"
                  f"{r['read_cpu'][1]:.1f} s, check {r['analyze_cpu'][0]:.1f}/"
                  f"{r['analyze_cpu'][1]:.1f} s", flush=True)
    if len(rows) > 1:
        for a, b in zip(rows, rows[1:]):
            ta = a["read_s"] + a["analyze_s"]
            tb = b["read_s"] + b["analyze_s"]
            print(f"growth {a['ops']} -> {b['ops']}: x{tb / ta:.1f} time, "
                  f"x{b['maxrss_mb'] / a['maxrss_mb']:.1f} peak memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
