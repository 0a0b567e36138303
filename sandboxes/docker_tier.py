"""The Docker tier: each session is a locked-down container (no network, memory, CPU and PID limits, read-only
root, private /tmp, unprivileged user, all capabilities dropped), built from docker/sandbox.Dockerfile.

State across calls: every call runs `driver.py` in one-shot mode (``--replay``) with the session's earlier
cells replayed first, then the new one — the container holds no long-lived interpreter, so a crash never
leaves a half-dead process and `fork()` is a new container with the same history. Replaying costs time for
long sessions; the local tier keeps a live interpreter instead. Needs the `docker` package and an engine.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentgym.sandboxes.base import ExecResult, Sandbox, SandboxLimits, check_code
from agentgym.sandboxes.channel import Reply, new_nonce, reply_cap

IMAGE = "agentgym-sandbox:latest"
DOCKERFILE = Path(__file__).resolve().parents[1] / "docker" / "sandbox.Dockerfile"
LABEL = "agentgym.sandbox"


class DockerUnavailable(RuntimeError):
    pass


def docker_client() -> Any:
    try:
        import docker
    except ImportError:
        docker = None
    if docker is None or not hasattr(docker, "from_env"):  # absent, or the repo's docker/ folder shadowing it
        raise DockerUnavailable("the docker package is not installed (pip install 'agentgym[docker]')")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # the client library raises several types for "no engine"
        raise DockerUnavailable(f"no Docker engine answers ({type(e).__name__})") from e
    return client


def ensure_image(client: Any) -> str:
    try:
        client.images.get(IMAGE)
    except Exception:
        client.images.build(path=str(DOCKERFILE.parents[1]), dockerfile=str(DOCKERFILE.relative_to(DOCKERFILE.parents[1])),
                            tag=IMAGE, rm=True)
    return IMAGE


class DockerSandbox(Sandbox):
    def __init__(self, limits: SandboxLimits | None = None, client: Any = None):
        self.limits = limits or SandboxLimits()
        self.client = client
        self.container: Any = None
        self.history: list[str] = []

    def start(self) -> None:
        if self.container is not None:
            return
        self.client = self.client or docker_client()
        image = ensure_image(self.client)
        self.container = self.client.containers.run(
            image, ["sleep", "infinity"], detach=True, network_mode="none" if not self.limits.network else "bridge",
            mem_limit=self.limits.memory_bytes, memswap_limit=self.limits.memory_bytes,
            pids_limit=self.limits.max_processes, nano_cpus=1_000_000_000, read_only=True,
            tmpfs={"/tmp": f"size={self.limits.tmpfs_bytes}"}, user="65534:65534", cap_drop=["ALL"],
            security_opt=["no-new-privileges"], labels={LABEL: uuid.uuid4().hex}, auto_remove=False)

    def run(self, code: str | bytes, timeout: float | None = None) -> ExecResult:
        code, problem = check_code(code, self.limits)
        if problem is not None:
            return problem
        self.start()
        wall = min(timeout, self.limits.wall_timeout_s) if timeout else self.limits.wall_timeout_s
        nonce = new_nonce()
        payload = json.dumps({"history": self.history, "code": code, "nonce": nonce, "max_chars": self.limits.max_output_bytes})
        start = time.perf_counter()
        cmd = ["timeout", "-s", "KILL", str(wall), "python3", "-I", "-S", "/opt/agentgym/driver.py", "--replay", payload]
        try:
            exit_code, (out, err) = self.container.exec_run(cmd, demux=True, user="65534:65534")
        except Exception as e:
            return ExecResult(error_type="infra_error", error=f"docker exec failed: {e}")
        result = _parse_replay(out or b"", err or b"", exit_code, self.limits, nonce)
        result.duration_s = time.perf_counter() - start
        if exit_code == 137 and result.error_type is None:
            result.error_type, result.error = "timeout", f"the code ran longer than {wall:g} s and was stopped"
        if result.error_type is None:
            self.history.append(code)
        return result

    def reset(self) -> None:
        self.close()
        self.history = []
        self.start()

    def fork(self) -> DockerSandbox:
        copy = DockerSandbox(self.limits, self.client)
        copy.history = list(self.history)
        return copy

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:
                pass  # already gone; `sweep` removes labelled leftovers
            self.container = None

    def info(self) -> dict[str, Any]:
        return {"tier": "docker", "image": IMAGE, "network": "none", "limits": self.limits.model_dump()}


def _parse_replay(out: bytes, err: bytes, exit_code: int, limits: SandboxLimits, nonce: str) -> ExecResult:
    """The driver's --replay mode prints the user's output, then a last line with the JSON reply. The cell
    shares that stream, so the line is held to the same rules as the local tier's reply channel (see
    channel.py): this call's nonce, the size cap, the exact schema; anything else is a crash."""
    text = out.decode("utf-8", "replace")
    head, _, last = text.rstrip("\n").rpartition("\n")
    body = None
    if len(last) <= reply_cap(limits.max_output_bytes):
        try:
            body = Reply.model_validate_json(last)
        except ValidationError:
            pass
    if body is None or not secrets.compare_digest(body.nonce.encode(), nonce.encode()):
        return ExecResult(stdout=text[: limits.max_output_bytes], stderr=err.decode("utf-8", "replace")[: limits.max_output_bytes],
                          error_type="crash", error=f"the interpreter exited with status {exit_code} without a valid reply",
                          exit_status=exit_code)
    result = ExecResult(stdout=head[: limits.max_output_bytes], stderr=err.decode("utf-8", "replace")[: limits.max_output_bytes],
                        value=body.value, exception=body.exception, traceback=body.traceback)
    result.truncated_bytes = max(0, len(head) - limits.max_output_bytes) + body.cut
    if body.oom:
        result.error_type, result.error = "oom", "the memory limit was reached (MemoryError)"
    return result


def sweep(client: Any = None) -> int:
    """Remove containers left by crashed processes (every sandbox container carries the label)."""
    client = client or docker_client()
    removed = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        container.remove(force=True)
        removed += 1
    return removed
