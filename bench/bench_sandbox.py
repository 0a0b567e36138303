"""Sandbox latency and throughput: a persistent isolated session vs a fresh `python -c` subprocess per call.

Prints warm tool-call latency p50/p99, cold isolated-sandbox start p50/p99, calls/s at 1, 8 and 32
concurrent sessions, and the same workload through a fresh subprocess per call, with the ratio.
Targets: warm call p50 <= 5 ms, isolated cold start p50 <= 150 ms, >= 10x faster per call than fresh
subprocesses. Usage: python bench/bench_sandbox.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

from agentgym.sandboxes import LocalSandbox, SandboxLimits
from agentgym.sandboxes.isolation import default_python, describe

CELL = "total = sum(i * i for i in range(1000))\ntotal"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def warm_latency(n: int) -> list[float]:
    with LocalSandbox() as sb:
        sb.run(CELL)
        out = []
        for _ in range(n):
            t = time.perf_counter()
            sb.run(CELL)
            out.append(time.perf_counter() - t)
    return out


def cold_start(n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        sb = LocalSandbox()
        sb.run("1")  # started, isolated, and answered its first call
        out.append(time.perf_counter() - t)
        sb.close()
    return out


def throughput(sessions: int, seconds: float) -> float:
    boxes = [LocalSandbox() for _ in range(sessions)]
    for b in boxes:
        b.start()
    count = [0] * sessions
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            boxes[i].run(CELL)
            count[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in boxes:
        b.close()
    return sum(count) / seconds


def fresh_subprocess(n: int) -> list[float]:
    """What many RL stacks do: one new interpreter per tool call (no isolation, no state)."""
    out = []
    code = "print(sum(i * i for i in range(1000)))"
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 100 if args.quick else 500
    secs = 3.0 if args.quick else 8.0
    info = describe(SandboxLimits())
    print(f"sandbox tier: {info['tier']} ({info['namespaces']}), cgroups: {info['cgroups']}, python {default_python()}")
    warm = warm_latency(n)
    cold = cold_start(20 if args.quick else 50)
    fresh = fresh_subprocess(30 if args.quick else 100)
    print(f"warm tool call (persistent isolated session): p50 {pct(warm, .5):.2f} ms, p99 {pct(warm, .99):.2f} ms  (target p50 <= 5 ms)")
    print(f"cold isolated sandbox start + first call:      p50 {pct(cold, .5):.1f} ms, p99 {pct(cold, .99):.1f} ms  (target p50 <= 150 ms)")
    for sessions in (1, 8, 32):
        print(f"throughput, {sessions:>2} concurrent sessions: {throughput(sessions, secs):8.0f} calls/s")
    seq_fresh = 1 / statistics.mean(fresh)
    seq_warm = 1 / statistics.mean(warm)
    print(f"fresh `{sys.executable} -c` per call: p50 {pct(fresh, .5):.1f} ms = {seq_fresh:.0f} calls/s sequential")
    print(f"stateful session vs fresh subprocess per call: {seq_warm / seq_fresh:.1f}x faster  (target >= 10x)")


if __name__ == "__main__":
    main()
