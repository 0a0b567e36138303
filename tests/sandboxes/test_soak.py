"""§8A case 16, scaled to this machine: 64 concurrent sessions for 2 minutes, 10% of them adversarial, with a
benign control sandbox that must keep answering correctly throughout; afterwards every counter (processes,
cgroups, file descriptors) is back at its baseline. Latency is printed, not asserted (shared machines)."""

import os
import random
import threading
import time
from pathlib import Path

import pytest

from agentgym.sandboxes import LocalSandbox, SandboxLimits

pytestmark = pytest.mark.needs_isolation

SESSIONS = 64
DURATION_S = float(os.environ.get("AGENTGYM_SOAK_S", "120"))
ATTACKS = [
    "while True: pass",
    "import os\nwhile True:\n    os.fork()",
    "x = bytearray(8 << 30)",
    "while True: print('x' * 100000)",
    "import subprocess; subprocess.Popen('setsid sleep 1000 &', shell=True)",
    "import ctypes; ctypes.string_at(0)",
    "import socket; socket.create_connection(('1.1.1.1', 80), timeout=1)",
]


def counters() -> dict[str, int]:
    cg = Path("/sys/fs/cgroup/pids/agentgym")
    return {"fds": len(os.listdir("/proc/self/fd")),
            "cgroups": len([p for p in cg.iterdir() if p.is_dir()]) if cg.exists() else 0,
            "sleepers": int(os.popen("pgrep -c -f 'sleep 1000'").read().strip() or "0")}


@pytest.mark.slow(ci=True)
def test_concurrency_soak_with_adversaries_and_a_control():
    baseline = counters()
    limits = SandboxLimits(wall_timeout_s=2, cpu_s=1, memory_bytes=256 << 20, max_processes=16,
                           kill_output_bytes=2 << 20, max_output_bytes=8000)
    stop = time.monotonic() + DURATION_S
    stats = {"benign": 0, "benign_wrong": 0, "infra": 0, "attacks": 0}
    control_latency: list[float] = []
    lock = threading.Lock()

    def benign(i: int) -> None:
        rng = random.Random(i)
        with LocalSandbox(limits) as sb:
            sb.run("total = 0")
            expected = 0
            while time.monotonic() < stop:
                n = rng.randint(1, 1000)
                r = sb.run(f"total += {n}\ntotal")
                expected += n
                with lock:
                    stats["benign"] += 1
                    if r.error_type == "infra_error":
                        stats["infra"] += 1
                    elif r.value != str(expected):
                        stats["benign_wrong"] += 1
                time.sleep(rng.random() * 0.05)

    def adversary(i: int) -> None:
        rng = random.Random(1000 + i)
        with LocalSandbox(limits) as sb:
            while time.monotonic() < stop:
                sb.run(rng.choice(ATTACKS))
                with lock:
                    stats["attacks"] += 1

    def control() -> None:
        with LocalSandbox(limits) as sb:
            sb.run("n = 0")
            k = 0
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = sb.run("n += 1\nn")
                control_latency.append(time.perf_counter() - t)
                k += 1
                assert r.value == str(k), r  # the control never loses state or answers wrongly
                time.sleep(0.02)

    n_adv = SESSIONS // 10
    threads = [threading.Thread(target=adversary, args=(i,)) for i in range(n_adv)]
    threads += [threading.Thread(target=benign, args=(i,)) for i in range(SESSIONS - n_adv)]
    errors: list[BaseException] = []
    ctl = threading.Thread(target=lambda: _catch(control, errors))
    for t in threads + [ctl]:
        t.start()
    for t in threads + [ctl]:
        t.join()
    assert not errors, errors
    lat = sorted(control_latency)
    print(f"\nsoak {DURATION_S:.0f}s: {stats}; control calls {len(lat)}, "
          f"p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms")
    assert stats["benign_wrong"] == 0 and stats["attacks"] > n_adv
    assert stats["infra"] <= 0.001 * stats["benign"]
    time.sleep(1)
    after = counters()  # back to (or below: earlier tests' sandboxes may be collected meanwhile) the baseline
    assert all(after[k] <= baseline[k] for k in baseline), (after, baseline)


def _catch(fn, errors):
    try:
        fn()
    except BaseException as e:  # surfaced by the main thread's assertion
        errors.append(e)
