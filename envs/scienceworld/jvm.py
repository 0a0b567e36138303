"""The JVMs that run ScienceWorld: launched with configurable options, shared by several envs, shut down
when the last env using one closes.

The `scienceworld` package starts one JVM (and a py4j callback server thread) per env. Here one JVM can
host several simulators (one ``PythonInterface`` object each, up to ``envs_per_jvm``): 8 simulators in
one JVM measured 445 MB against ~260 MB for each JVM of its own. Sharing needs care because the simulator
keeps some state in JVM-wide singletons (see `agentgym.envs.scienceworld.simulator`); every call into a
JVM holds its lock, so simulators in one JVM take turns and simulators in different JVMs run in parallel.

No callback server is started (nothing in the simulator calls back into Python), so an env adds no
Python threads beyond py4j's output reader, which ends with the JVM.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GC_OPTIONS = {"serial": "-XX:+UseSerialGC", "parallel": "-XX:+UseParallelGC", "g1": "-XX:+UseG1GC", "default": None}


class ScienceWorldError(RuntimeError):
    """Base of the errors this env raises about its JVM."""


class JavaNotFoundError(ScienceWorldError):
    """No Java runtime to run the simulator (it needs Java 11+; the package's jar was built for 17)."""


class JVMDiedError(ScienceWorldError):
    """The JVM running this env's simulator exited or stopped answering. The episode is lost; `reset()`
    starts a new JVM and the env works again."""


class JVMConfig(BaseModel):
    """How ScienceWorld's JVMs are started and shared. Envs with equal configs share JVMs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    java: str = Field(default="java", description="The java executable (a name on PATH or a path).")
    heap: str | None = Field(default="512m", pattern=r"^\d+[kmgKMG]?$",
                             description="Maximum heap (-Xmx); None keeps the JVM's default (1/4 of RAM). "
                                         "512m measured ~260 MB resident per JVM against 0.5-1.2 GB by default.")
    gc: Literal["serial", "parallel", "g1", "default"] = Field(
        default="serial", description="Garbage collector; serial is the smallest and was slightly faster here.")
    deterministic: bool = Field(
        default=True, description="Constant identity hash codes (-XX:hashCode=2), so the simulator's hash sets "
        "iterate in insertion order: an episode replays identically in any JVM. Without it a second load of the "
        "same variation in one JVM lists objects in another order and living things (bees) act differently.")
    options: tuple[str, ...] = Field(default=(), description="Further JVM options, e.g. ['-Xss4m'].")
    envs_per_jvm: int = Field(default=4, ge=1, description="Simulators sharing one JVM (1 = a JVM per env).")
    start_timeout_s: float = Field(default=60.0, gt=0, description="How long a JVM may take to start.")

    def java_options(self) -> list[str]:
        opts = [f"-Xmx{self.heap}"] if self.heap else []
        if GC_OPTIONS[self.gc]:
            opts.append(GC_OPTIONS[self.gc])
        # The simulator's random generator is a JVM-wide java.util.Random; reading and restoring its state
        # for shared JVMs needs reflective access to java.util (a Java 9+ module boundary).
        if self.deterministic:
            opts += ["-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2"]
        opts += ["--add-opens=java.base/java.util=ALL-UNNAMED", "-Djava.awt.headless=true", *self.options]
        return opts


def _jar_paths() -> tuple[str, str]:
    from scienceworld.constants import BASEPATH, JAR_PATH

    return JAR_PATH, BASEPATH


class JVM:
    """One Java process running ScienceWorld's jar behind a py4j gateway (loopback only)."""

    def __init__(self, config: JVMConfig):
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

        self.config = config
        java = shutil.which(config.java)
        if java is None:
            raise JavaNotFoundError(f"java executable {config.java!r} not found: ScienceWorld needs a Java runtime "
                                    "(Debian: apt-get install openjdk-17-jre-headless; or set jvm.java)")
        jar, cwd = _jar_paths()
        self.stderr: collections.deque[str] = collections.deque(maxlen=20)  # last lines, for error messages
        try:
            port, self.proc = launch_gateway(classpath=jar, javaopts=config.java_options(), die_on_exit=True,
                                             cwd=cwd, java_path=java, return_proc=True,
                                             redirect_stderr=self.stderr)
        except (ValueError, OSError) as e:  # the JVM refused its options or could not start
            raise ScienceWorldError(f"the JVM did not start ({java} {' '.join(config.java_options())}): "
                                    f"{type(e).__name__}: {e}; stderr: {self.stderr_tail()}") from e
        self.gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_field=True,
                                                                        auto_convert=False),
                                   java_process=self.proc)
        self.lock = threading.RLock()  # one call at a time: simulators share JVM-wide state
        self.owner: object | None = None  # the simulator whose JVM-wide state is currently installed
        self.users = 0
        self.dead = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def stderr_tail(self) -> str:
        return " | ".join(line.strip() for line in self.stderr if line.strip())[-500:] or "(empty)"

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the process and release its pipes. Safe to call twice and on a dead JVM."""
        self.dead = True
        try:
            self.gateway.shutdown()
        except Exception:
            pass  # the JVM may be gone already; the process is dealt with below
        if self.proc.poll() is None:
            try:  # --die-on-broken-pipe: the gateway exits when its stdin closes
                self.proc.stdin.close()
                self.proc.wait(timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout_s)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def kill(self) -> None:
        """SIGKILL the process (fault injection in tests; what an OOM killer would do)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)


class JVMPool:
    """Process-wide: hands out a slot in a JVM with the wanted config and capacity, starting JVMs on demand
    and stopping each when its last user leaves (so closing every env leaves no Java process behind)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jvms: list[JVM] = []

    def acquire(self, config: JVMConfig) -> JVM:
        with self._lock:
            self._jvms = [j for j in self._jvms if j.alive() or j.users > 0]
            for jvm in self._jvms:
                if jvm.config == config and jvm.alive() and jvm.users < config.envs_per_jvm:
                    jvm.users += 1
                    return jvm
        jvm = JVM(config)  # started outside the pool lock: another thread may start its own meanwhile
        with self._lock:
            jvm.users = 1
            self._jvms.append(jvm)
        return jvm

    def release(self, jvm: JVM) -> None:
        with self._lock:
            jvm.users -= 1
            last = jvm.users <= 0
            if last and jvm in self._jvms:
                self._jvms.remove(jvm)
        if last:
            jvm.shutdown()

    def running(self) -> list[JVM]:
        with self._lock:
            return [j for j in self._jvms if j.alive()]


POOL = JVMPool()
