"""Issue 9 item 5: the sandbox's reply channel against the code it runs (forged, garbage and flooding
replies; closed standard streams). Each case ends in a restart the model is told about, and host memory
stays bounded. Memory bounds are generous: they prove the host never holds an announced 4 GB reply."""

import os
import shutil
import threading

import pytest

from agentgym.sandboxes import LocalSandbox, SandboxLimits

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0,
                                reason="the sandbox suite needs bubblewrap and root (to drop to uid nobody)")

REPLY_FD = "int(__import__('sys').argv[2])"  # the driver's reply descriptor, as the cell can find it
LOST = "[sandbox restarted: previous state (variables, imports, files) was lost]"


@pytest.fixture
def sandbox():
    sb = LocalSandbox(SandboxLimits(wall_timeout_s=10, cpu_s=5, memory_bytes=512 << 20, max_output_bytes=16_000))
    sb.start()
    yield sb
    sb.close()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """The host's resident memory, sampled while a call runs (ru_maxrss is a process-lifetime high mark)."""

    def __enter__(self):
        self.base = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.growth = self.peak - self.base


def restarted(sb, result):
    """The call says the sandbox was restarted, the next call says the state was lost, and it works."""
    assert result.error_type == "crash" and "restarted" in (result.error or "")
    after = sb.run("40 + 2")
    assert after.state_lost and LOST in after.to_observation() and after.value == "42"


FORGED = f"""import json, os, struct
d = json.dumps({{"value": "'forged'", "exception": None, "traceback": None, "oom": False}}).encode()
os.write({REPLY_FD}, struct.pack(">I", len(d)) + d)
secret = 1
"""


def test_forged_reply_is_rejected_and_later_cells_get_their_own_output(sandbox):
    sandbox.run("kept = 7")
    result = sandbox.run(FORGED)
    assert result.value != "'forged'"
    restarted(sandbox, result)
    assert sandbox.run("'own'").value == "'own'"  # not the previous cell's reply
    assert sandbox.run("'again'").value == "'again'"


def test_forged_reply_with_the_stolen_nonce_is_caught_at_the_next_call(sandbox):
    """The cell can read this call's nonce from the driver's frame and answer for itself (as it could by
    printing); the genuine reply that follows is never taken for the next call's."""
    steal = f"""import json, os, struct, sys
f = sys._getframe(1)
while "request" not in f.f_locals:
    f = f.f_back
d = json.dumps({{"nonce": f.f_locals["request"]["nonce"], "value": "'forged'", "exception": None,
                "traceback": None, "oom": False, "stdio": True, "cut": 0}}).encode()
os.write({REPLY_FD}, struct.pack(">I", len(d)) + d)
"""
    sandbox.run(steal)
    nxt = sandbox.run("'mine'")
    if nxt.error_type is None:  # the stale reply was seen before the request: fresh sandbox, cell ran
        assert nxt.value == "'mine'" and nxt.state_lost
    else:  # it arrived after the request: refused as another call's reply
        restarted(sandbox, nxt)
    assert sandbox.run("'third'").value == "'third'"


@pytest.mark.parametrize("payload", [
    "b'garbage without a header'",
    "struct.pack('>I', 5) + b'12345'",  # framed, not JSON
    "struct.pack('>I', 2) + b'[]'",  # JSON, not the schema
    "struct.pack('>I', 13) + b'{\"value\": 1}'",  # missing keys, wrong type
])
def test_garbage_replies_restart_the_sandbox(sandbox, payload):
    result = sandbox.run(f"import os, struct\nos.write({REPLY_FD}, {payload})\nimport time; time.sleep(0.2)")
    restarted(sandbox, result)


def test_a_4gb_length_header_and_flood_is_refused_before_reading(sandbox):
    flood = f"""import os, struct
fd = {REPLY_FD}
os.write(fd, struct.pack(">I", 0xFFFFFFF0))
try:
    for _ in range(4096):
        os.write(fd, b"A" * 65536)
except OSError:
    pass
"""
    for _ in range(3):
        with PeakRSS() as mem:
            result = sandbox.run(flood)
        restarted(sandbox, result)
        assert mem.growth < 64 << 20, f"host grew by {mem.growth >> 20} MB"


def test_a_large_but_honest_value_is_cut_not_a_violation(sandbox):
    with PeakRSS() as mem:
        result = sandbox.run("'x' * 10_000_000")
    assert result.error_type is None and result.truncated_bytes > 9_000_000
    assert len(result.value) <= 16_000
    assert mem.growth < 64 << 20
    assert sandbox.run("1").value == "1" and not sandbox.run("2").state_lost


@pytest.mark.parametrize("code", [
    "import os; os.close(1)",
    "import os; os.close(2)",
    "import os; os.dup2(os.open('/dev/null', os.O_WRONLY), 1)",
    "import sys; sys.stdout.close()",
    "import sys; sys.stderr.close()",
    "import sys, io; sys.stdout = io.StringIO()",
])
def test_closed_stdio_is_detected_and_restarted(sandbox, code):
    result = sandbox.run(code)
    assert result.error_type == "crash" and "standard output or error" in result.error
    after = sandbox.run("print('hello'); import sys; print('err', file=sys.stderr)")
    assert after.state_lost and after.stdout == "hello\n" and after.stderr == "err\n"


def test_redirect_within_a_cell_is_fine(sandbox):
    code = "import contextlib, io\nbuf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n    print('x')\nbuf.getvalue()"
    assert sandbox.run(code).value == "'x\\n'"
    assert sandbox.run("print('seen')").stdout == "seen\n"


def replay_once(code, nonce="n" * 32):
    """The Docker tier's one-shot driver mode, run directly (the same parser; no Docker engine needed)."""
    import json
    import subprocess
    import sys

    from agentgym.sandboxes.docker_tier import _parse_replay
    from agentgym.sandboxes.isolation import DRIVER

    request = json.dumps({"history": [], "code": code, "nonce": nonce, "max_chars": 1000})
    out = subprocess.run([sys.executable, "-I", "-S", str(DRIVER), "--replay", request], capture_output=True, timeout=30)
    return _parse_replay(out.stdout, out.stderr, out.returncode, SandboxLimits(), nonce)


@pytest.mark.parametrize("code", [
    "import os, sys; sys.stdout.write('\\n[1, 2]\\n'); sys.stdout.flush(); os._exit(0)",  # a JSON list last
    "import os, sys; sys.stdout.write('\\n{\"value\": \"1\"}\\n'); sys.stdout.flush(); os._exit(0)",
    "import os, sys; sys.stdout.write('\\n' + '[' * 100000 + '\\n'); sys.stdout.flush(); os._exit(0)",
])
def test_docker_tier_reply_line_is_validated_too(code):
    result = replay_once(code)
    assert result.error_type == "crash" and "without a valid reply" in result.error
    good = replay_once("print('hi')\n'x' * 5000")
    assert good.error_type is None and good.stdout == "hi\n" and good.truncated_bytes == 4002  # the repr with its quotes, cut to 1000


def test_the_channel_checks_work_with_descriptors_above_1024(sandbox):
    """Hundreds of live sandboxes push their pipes past select()'s limit: the checks must not care."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        sb = LocalSandbox(SandboxLimits(wall_timeout_s=10))
        try:
            assert sb.run("40 + 2").value == "42" and sb.run("1").value == "1"
        finally:
            sb.close()
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
