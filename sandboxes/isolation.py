"""How a local sandbox process is isolated: bubblewrap namespaces, an unprivileged uid, rlimits, an
allow-listed environment, and cgroup v1 pids/memory limits where the host lets us create cgroups.

Tiers, strongest first: ``bwrap`` (user, PID, network, mount, IPC, UTS namespaces; read-only root; private
/tmp; host folders that may hold secrets hidden) > ``rlimits`` (no bubblewrap: unprivileged uid, rlimits,
scrubbed environment, own session — but the network and file system are the host's). `describe()` says
which is in force; `agentgym sandbox info` prints it.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from agentgym.sandboxes.base import SandboxLimits

NOBODY = 65534
DRIVER = Path(__file__).with_name("driver.py")
DRIVER_IN_SANDBOX = "/tmp/.agentgym/driver.py"
SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
# Host folders hidden behind empty tmpfs mounts: projects, checkpoints, credentials, sockets.
HIDDEN = ("/work", "/root", "/home", "/mnt", "/media", "/srv", "/opt", "/var/tmp", "/var/run", "/run", "/var/lib")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def default_python() -> str:
    """A bare system interpreter starts fastest (-I -S: no site-packages, no user paths)."""
    for candidate in ("/usr/bin/python3.11", "/usr/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("python3") or "python3"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _bwrap_works() -> bool:
    path = bwrap_path()
    if not path:
        return False
    try:
        probe = subprocess.run([path, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                                "--ro-bind", "/", "/", "true"],
                               capture_output=True, timeout=10, user=NOBODY if os.geteuid() == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


_TIER: str | None = None


def tier() -> str:
    global _TIER
    if _TIER is None:
        _TIER = "bwrap" if _bwrap_works() else "rlimits"
    return _TIER


class Cgroup:
    """A per-sandbox cgroup v1 directory under the pids and memory controllers (when writable)."""

    _created = 0

    def __init__(self, limits: SandboxLimits):
        Cgroup._created += 1
        if Cgroup._created % 256 == 1:  # now and then, clean up after crashed processes
            sweep_stale_cgroups()
        self.name = f"agentgym/{uuid.uuid4().hex[:12]}"
        self.dirs: dict[str, Path] = {}
        for controller, settings in (("pids", {"pids.max": str(limits.max_processes)}),
                                     ("memory", {"memory.limit_in_bytes": str(limits.memory_bytes + (64 << 20))})):
            base = CGROUP_ROOT / controller
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            path = base / self.name
            try:
                path.mkdir(parents=True, exist_ok=True)
                for key, value in settings.items():
                    (path / key).write_text(value)
                if os.geteuid() == 0:  # the sandbox (uid nobody) moves itself in from preexec
                    os.chown(path / "cgroup.procs", NOBODY, NOBODY)
            except OSError:
                continue
            self.dirs[controller] = path

    def join_self(self) -> None:
        """Called in the child before exec: every process the sandbox starts inherits the cgroups."""
        for path in self.dirs.values():
            with open(path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def oom_killed(self) -> bool:
        path = self.dirs.get("memory")
        if path is None:
            return False
        try:
            lines = (path / "memory.oom_control").read_text().splitlines()
            counts = [int(line.split()[1]) for line in lines if line.startswith("oom_kill ")]
            if counts:
                return counts[0] > 0
            return int((path / "memory.failcnt").read_text()) > 0  # kernels without the oom_kill counter
        except (OSError, ValueError):
            return False

    def processes(self) -> list[int]:
        pids: set[int] = set()
        for path in self.dirs.values():
            try:
                pids |= {int(x) for x in (path / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return sorted(pids)

    def kill_all(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        deadline = time.monotonic() + 2.0
        while True:  # killed processes leave the cgroup once they have fully exited
            self.kill_all()
            if not self.processes() or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        for path in self.dirs.values():
            try:
                path.rmdir()
            except OSError:
                pass  # still busy: `sweep_stale_cgroups` removes it later
        self.dirs = {}


def sweep_stale_cgroups(min_age_s: float = 60.0) -> int:
    """Remove leftover sandbox cgroups (empty, older than `min_age_s`: never one being set up right now)."""
    removed = 0
    now = time.time()
    for controller in ("pids", "memory"):
        base = CGROUP_ROOT / controller / "agentgym"
        if not base.is_dir():
            continue
        for path in base.iterdir():
            try:
                if path.is_dir() and now - path.stat().st_mtime > min_age_s and not (path / "cgroup.procs").read_text().strip():
                    path.rmdir()
                    removed += 1
            except OSError:
                continue
    return removed


def rlimits_preexec(limits: SandboxLimits, cgroup: Cgroup | None):
    """The child-side set-up, run after fork and after dropping to uid nobody, before exec."""

    def setup() -> None:
        os.setsid()  # own session and process group: the host kills the group on timeout
        if cgroup is not None:
            cgroup.join_self()
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # uid nobody is shared by all sandboxes: this caps them together; the pids cgroup caps each one
        nproc = max(limits.max_processes * 64, 1024)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return setup


def command(limits: SandboxLimits, python: str) -> list[str]:
    interpreter = [python, "-I", "-S", "-X", "utf8"]
    if tier() != "bwrap":
        return [*interpreter, str(DRIVER)]
    args = [bwrap_path() or "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--clearenv",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if limits.network:
        args.append("--share-net")
    for folder in HIDDEN:
        if os.path.isdir(folder) and not os.path.islink(folder):
            args += ["--tmpfs", folder]
    args += ["--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
             "--size", str(limits.tmpfs_bytes), "--tmpfs", "/dev/shm"]
    if any(python.startswith(h + "/") for h in HIDDEN):  # e.g. a venv under /work: make it visible again
        root = str(Path(python).resolve().parents[1])
        args += ["--ro-bind", root, root]
    args += ["--ro-bind", str(DRIVER), DRIVER_IN_SANDBOX, "--chdir", "/tmp"]
    for key, value in SAFE_ENV.items():
        args += ["--setenv", key, value]
    return [*args, *interpreter, DRIVER_IN_SANDBOX]


def describe(limits: SandboxLimits | None = None) -> dict[str, Any]:
    limits = limits or SandboxLimits()
    probe = Cgroup(limits)
    controllers = sorted(probe.dirs)
    probe.remove()
    bwrap = tier() == "bwrap"
    version = None
    if bwrap_path():
        version = subprocess.run([bwrap_path(), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "tier": tier(),
        "bubblewrap": version,
        "namespaces": "user, pid, net, mount, ipc, uts" if bwrap else "none (bubblewrap unavailable)",
        "network": "on" if limits.network else ("off (network namespace)" if bwrap else "HOST NETWORK (no isolation)"),
        "filesystem": "read-only root, private /tmp, host folders hidden" if bwrap else "host file system",
        "uid": "nobody (65534)" if os.geteuid() == 0 else f"{os.geteuid()} (not root: cannot drop privileges)",
        "cgroups": ", ".join(controllers) or "none writable (rlimits only)",
        "environment": f"allow-list: {', '.join(SAFE_ENV)}",
        "python": default_python(),
        "limits": limits.model_dump(),
    }
