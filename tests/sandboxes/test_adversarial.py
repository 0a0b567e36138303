"""The adversarial checklist of reference/sandbox-and-reliability.md §8A, cases 1-15, scaled to this
machine (case 16, the concurrency soak, is in test_soak.py). Time bounds below are generous upper limits
that prove a limit fired, not speed assertions."""

import os
import time

import pytest

from agentgym.sandboxes import LocalSandbox, SandboxLimits, ToolArgumentError, validate_tool_arguments

pytestmark = pytest.mark.needs_isolation


def still_works(sb, control=None):
    assert sb.run("40 + 2").value == "42"
    if control is not None:
        assert control.run("counter += 1\ncounter").value is not None


# 1. CPU spin -------------------------------------------------------------------------------------------
def test_cpu_spin_is_stopped_and_the_session_recovers(sandbox, control):
    start = time.monotonic()
    r = sandbox.run("print('partial', flush=True)\nwhile True: pass")
    assert r.error_type == "timeout" and time.monotonic() - start < 5 + 3
    assert "partial" in r.stdout  # output before the kill is returned
    after = sandbox.run("1 + 1")
    assert after.value == "2" and after.state_lost
    still_works(sandbox, control)


# 2. wall-clock-only stalls ------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "import time; time.sleep(1e9)",
    "input()",
    "import threading; threading.Event().wait()",
    "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); s.accept()",
])
def test_wall_clock_stalls_hit_the_wall_limit(sandbox, code):
    start = time.monotonic()
    r = sandbox.run(code, timeout=1.0)
    if code == "input()":  # stdin is /dev/null: EOF at once, reported as the code's own error
        assert r.exception and "EOFError" in r.exception
    else:
        assert r.error_type == "timeout" and time.monotonic() - start < 5
    still_works(sandbox)


def test_cpu_limit_is_enforced_separately():
    sb = LocalSandbox(SandboxLimits(wall_timeout_s=30, cpu_s=1))
    try:
        start = time.monotonic()
        r = sb.run("while True: pass")
        assert r.error_type == "timeout" and "CPU" in r.error and time.monotonic() - start < 15
    finally:
        sb.close()


# 3. fork bombs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "import os\nwhile True:\n    os.fork()",
    "import subprocess\nsubprocess.run(['bash', '-c', ':(){ :|:& };:'])",
    "import multiprocessing\nmultiprocessing.Pool(1000)",
])
def test_fork_bombs_are_contained(sandbox, control, code):
    r = sandbox.run(code, timeout=3)
    if "os.fork" in code:
        assert r.exception and "Resource temporarily unavailable" in r.exception  # pids.max reached
    time.sleep(0.2)
    assert len(sandbox._cgroup.processes()) <= 3 if sandbox._cgroup else True  # nothing left but the driver
    still_works(sandbox, control)
    assert sandbox.run("import os; os.cpu_count()").value is not None


# 4. memory bombs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "x = bytearray(64 << 30)",
    "x = []\nwhile True:\n    x.append(bytearray(10 << 20))",
    "import mmap\nm = mmap.mmap(-1, 8 << 30)",
])
def test_memory_bombs_are_typed_oom(sandbox, control, code):
    r = sandbox.run(code)
    assert r.error_type == "oom", r
    still_works(sandbox, control)


# 5. output floods --------------------------------------------------------------------------------------
def test_output_flood_is_capped_and_killed(sandbox, control, limits):
    r = sandbox.run("while True: print('x' * 10**6)")
    assert r.error_type == "output_limit"
    assert len(r.stdout.encode()) <= limits.max_output_bytes and r.truncated_bytes > 0
    marker = r.to_observation().split("[truncated ")[1].split(" bytes]")[0]
    assert int(marker) >= r.truncated_bytes  # the model is told how much it did not see
    still_works(sandbox, control)


def test_large_output_that_ends_is_truncated_not_a_timeout(sandbox, limits):
    r = sandbox.run("import sys; sys.stdout.write('y' * (2 << 20)); 7")
    assert r.error_type is None and r.value == "7" and r.truncated_bytes == (2 << 20) - limits.max_output_bytes


def test_invalid_utf8_nul_and_escapes_are_made_printable(sandbox):
    r = sandbox.run(r"import sys; sys.stdout.buffer.write(b'ok\xff\xfe\x00\x1b[31mred'); sys.stdout.flush()")
    assert r.error_type is None and "ok\ufffd\ufffd\ufffd" in r.stdout and "\x00" not in r.stdout


def test_many_short_lines(sandbox, limits):
    r = sandbox.run("for i in range(10**5): print(i)")
    assert r.truncated_bytes > 0 and r.error_type is None


# 6. disk exhaustion ------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["/tmp/big", "/dev/shm/big"])
def test_disk_exhaustion_is_bounded(sandbox, control, target):
    r = sandbox.run(f"with open({target!r}, 'wb') as f:\n    [f.write(b'0' * (1 << 20)) for _ in range(10240)]")
    assert r.exception and ("No space" in r.exception or "File too large" in r.exception or r.error_type)
    still_works(sandbox, control)


def test_inode_exhaustion_is_bounded(sandbox):
    r = sandbox.run("import os\nfor i in range(10**6):\n    open(f'/tmp/f{i}', 'w').close()", timeout=4)
    assert r.exception or r.error_type
    still_works(sandbox)


# 7. cross-episode persistence --------------------------------------------------------------------------
def test_nothing_persists_into_a_new_episode(limits):
    first = LocalSandbox(limits)
    first.run("import subprocess, os\nfor p in ['/tmp/x', '/dev/shm/x']: open(p, 'w').write('secret')\n"
              "subprocess.Popen(['sleep', '1000'], start_new_session=True)")
    first.close()
    second = LocalSandbox(limits)
    try:
        r = second.run("import os\n[os.path.exists(p) for p in ['/tmp/x', '/dev/shm/x', '/var/tmp/x']]")
        assert r.value == "[False, False, False]"
        assert second.run("import os; [p for p in os.listdir('/proc') if p.isdigit()]").value.count("'") <= 6
    finally:
        second.close()
    assert "sleep 1000" not in os.popen("ps -eo args").read()


# 8. host secret canaries -------------------------------------------------------------------------------
def test_host_secrets_never_reach_the_sandbox(tmp_path, monkeypatch, limits):
    canary = "CANARY-7f3a9c"
    monkeypatch.setenv("HF_TOKEN", canary)
    (tmp_path / "credentials").write_text(canary)
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "credentials", 0o644)
    sb = LocalSandbox(limits)
    try:
        probes = ["import os; dict(os.environ)", "open('/proc/1/environ','rb').read()", "open('/proc/self/environ','rb').read()",
                  f"open({str(tmp_path / 'credentials')!r}).read()", "open('/etc/shadow').read()",
                  "import os; os.path.exists('/var/run/docker.sock')",
                  "import glob; glob.glob('/root/**', recursive=True)[:5]",
                  "import subprocess; subprocess.run('grep -r CANARY / --include=* -s -l 2>/dev/null | head', shell=True, capture_output=True, timeout=3).stdout"]
        for code in probes:
            r = sb.run(code, timeout=4)
            assert canary not in r.to_observation(), code
        env = sb.run("import os; sorted(os.environ)").value
        assert "HF_TOKEN" not in env
    finally:
        sb.close()


# 9. network egress -------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["('1.1.1.1', 80)", "('169.254.169.254', 80)", "('10.0.0.1', 22)",
                                    "('127.0.0.1', 22)", "('::1', 80)"])
def test_network_egress_fails_fast(sandbox, target):
    start = time.monotonic()
    r = sandbox.run(f"import socket; socket.create_connection({target}, timeout=2)")
    assert r.exception and time.monotonic() - start < 3
    dns = sandbox.run("import socket; socket.gethostbyname('example.com')")
    assert dns.exception


# 10. privilege and escape probes -----------------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "import os; os.setuid(0)",
    "import subprocess; subprocess.run(['mount', '-t', 'tmpfs', 'x', '/mnt'], check=True, capture_output=True)",
    "import os; os.chroot('/')",
    "open('/usr/bin/python3.11', 'ab').write(b'x')",
    "open('/bin/bash', 'wb')",
    "import subprocess; subprocess.run(['unshare', '-r', 'true'], check=True, capture_output=True)",
])
def test_privilege_probes_are_denied(sandbox, code):
    before = os.stat("/bin/bash").st_mtime
    r = sandbox.run(code)
    assert r.exception or r.error_type
    assert os.stat("/bin/bash").st_mtime == before


# 11. symlink attacks on host-side glue -----------------------------------------------------------------
def test_symlinks_cannot_reach_host_files(sandbox):
    r = sandbox.run("import os; os.symlink('/etc/passwd', '/tmp/run.sh'); os.symlink('/root', '/tmp/r')\n"
                    "os.listdir('/tmp/r')")
    assert r.value == "[]" or r.exception  # /root is an empty tmpfs inside the sandbox
    # the host never reads or writes paths inside the sandbox: its /tmp is a private tmpfs
    assert not os.path.exists("/tmp/run.sh") or not os.path.islink("/tmp/run.sh")


# 12. orphans and zombies -------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "import os\nif os.fork() == 0:\n    if os.fork() == 0:\n        import time; time.sleep(1000)\n    os._exit(0)",
    "import subprocess; subprocess.Popen('setsid sleep 1000 &', shell=True)",
    "import subprocess; subprocess.Popen(['nohup', 'sleep', '1000'], start_new_session=True)",
    "import subprocess, signal; subprocess.Popen(['bash', '-c', 'trap \"\" TERM; sleep 1000'])",
])
def test_leftover_processes_are_killed_after_each_call(sandbox, code):
    sandbox.run(code)
    time.sleep(0.3)
    leftovers = sandbox.run("import os; [p for p in os.listdir('/proc') if p.isdigit()]").value
    assert leftovers.count("'") <= 6, leftovers  # bwrap's init, the driver (+ the listing itself at most)


@pytest.mark.slow
def test_orphans_200_times(sandbox):
    zombies_before = os.popen("ps -eo stat | grep -c Z").read()
    for _ in range(200):
        sandbox.run("import subprocess; subprocess.Popen('setsid sleep 1000 &', shell=True)")
    time.sleep(0.5)
    assert sandbox.run("import os; len([p for p in os.listdir('/proc') if p.isdigit()])").value in ("2", "3")
    assert os.popen("ps -eo stat | grep -c Z").read() == zombies_before


# 13. crashes and reward hacks --------------------------------------------------------------------------
@pytest.mark.parametrize("code, signal_name", [
    ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
    ("import os; os.kill(os.getpid(), 9)", "SIGKILL"),
])
def test_crashes_are_typed_with_the_signal_and_state_is_lost(sandbox, code, signal_name):
    sandbox.run("kept = 1")
    r = sandbox.run(code)
    assert r.error_type == "crash" and signal_name in r.error
    after = sandbox.run("'kept' in dir()")
    assert after.state_lost and after.value == "False"
    assert "state" in after.to_observation() and "lost" in after.to_observation()


def test_deep_recursion_and_early_exits(sandbox):
    r = sandbox.run("import sys; sys.setrecursionlimit(10**6)\ndef f(n): return f(n + 1)\nf(0)")
    assert r.exception or r.error_type in ("crash", "timeout", "oom")
    for code in ("exit(0)", "import sys; sys.exit(0)", "raise SystemExit(0)"):
        r = sandbox.run(code)  # an early exit is reported, never a silent success (`exit` needs site: NameError)
        assert r.exception and r.exception.split(":")[0] in ("SystemExit", "NameError")
    r = sandbox.run("import os; os._exit(0)")
    assert r.error_type == "crash"
    assert sandbox.run("1").state_lost


# 14. model-controlled limits ---------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [{"timeout": 1e9}, {"memory_limit_MB": 1e6}, {"language": "bash"},
                                   {"sandbox_id": "someone-else"}])
def test_extra_tool_call_keys_are_rejected(extra):
    with pytest.raises(ToolArgumentError, match="limits and sessions are set by the environment"):
        validate_tool_arguments({"code": "1", **extra})
    validate_tool_arguments({"code": "1"})


def test_a_call_cannot_raise_its_own_timeout(sandbox):
    start = time.monotonic()
    r = sandbox.run("import time; time.sleep(60)", timeout=1e9)  # clamped to the configured 5 s
    assert r.error_type == "timeout" and time.monotonic() - start < 10


# 15. kill mid-call -------------------------------------------------------------------------------------
def test_killing_the_sandbox_mid_call_gives_a_typed_error_fast(sandbox):
    import threading

    def kill_soon():
        time.sleep(0.5)
        os.kill(sandbox._proc.pid, 9)  # the outer bwrap process: the whole sandbox dies

    threading.Thread(target=kill_soon).start()
    start = time.monotonic()
    r = sandbox.run("import time; time.sleep(60)", timeout=4.9)
    assert r.error_type in ("crash", "infra_error") and time.monotonic() - start < 5
    assert sandbox.run("1").state_lost


# bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code, expect", [
    ("def broken(:\n  pass", "SyntaxError"),
    (b"print('\xff')", "not valid UTF-8"),
    ("x = 1\n" * 2_000_000, "limit"),
    ("", "empty"),
    ("   \n", "empty"),
])
def test_bad_code_is_a_clear_error_and_the_session_goes_on(sandbox, code, expect):
    sandbox.run("alive = True")
    r = sandbox.run(code)
    assert expect in (r.exception or ""), r
    assert sandbox.run("alive").value == "True"
