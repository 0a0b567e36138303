"""What makes a run reproducible from its directory and honest about its failures.

- `RunInfo` is ``RUN/run.json``: the env id and kwargs, the policy and tokenizer, the seeds and the
  versions a run was made with. ``agentgym replay --reexecute`` makes the env from it (so a run made with
  ``--env-kwarg`` replays with the same kwargs) and the viewer decodes tokens with its tokenizer.
- `parse_env_kwargs` reads ``key=value`` options (values are YAML: ``3``, ``true``, ``[a, b]``).
- `failure_counts` / `start_failures` turn the ``failed_paths`` the rollout engine records into what
  ``agentgym run`` prints and the exit code it returns.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentgym.trajectory import TrajectoryTree

RUN_FILE = "run.json"


class RunInfo(BaseModel):
    """``run.json``. Written by ``agentgym run`` (and, with fewer fields, by training); unknown keys from
    other writers are kept, not rejected, because this file is read back, never hand-written."""

    model_config = ConfigDict(extra="allow")

    env_id: str = Field(description="The registered env id the trees were rolled out on.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments the env was made with.")
    policy: str | None = Field(default=None, description="Policy spec: embedded, tiny, hf:..., openai:..., scripted:...")
    tokenizer: str | None = Field(default=None, description="Tokenizer that decodes the stored token ids.")
    seeds: list[int] = Field(default_factory=list, description="Task seeds, in order.")
    group_size: int = 1
    temperature: float | None = None
    versions: dict[str, str] = Field(default_factory=dict, description="agentgym, python, gymnasium, ... versions.")
    command: list[str] = Field(default_factory=list, description="The command line that made the run.")
    created_at: float = Field(default_factory=time.time)

    def write(self, run_dir: Path) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / RUN_FILE
        path.write_text(json.dumps(self.model_dump(), indent=2, default=str) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> RunInfo:
        """A run.json that must be there and valid: a ValueError naming the file and what is wrong."""
        try:
            return cls.model_validate_json(path.read_text())
        except OSError as e:
            raise ValueError(f"{path}: cannot read it: {e.strerror or e}") from None
        except ValueError as e:
            first = e.errors()[0] if hasattr(e, "errors") else {"loc": (), "msg": str(e)}
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{path} is not a valid run.json: {where + ': ' if where else ''}{first['msg']}") from None

    @classmethod
    def find(cls, store_or_dir: Path) -> RunInfo | None:
        """The run.json beside a store file (or in a run directory), if there is a readable one."""
        run_dir = store_or_dir if store_or_dir.is_dir() else store_or_dir.parent
        path = run_dir / RUN_FILE
        if not path.is_file():
            return None
        try:
            return cls.model_validate_json(path.read_text())
        except ValueError:
            return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("agentgym", "gymnasium", "transformers", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def tokenizer_name(policy: str) -> str:
    """The tokenizer a policy spec samples with (scripted policies use the embedded one by default)."""
    kind, _, arg = policy.partition(":")
    if kind == "hf":
        return arg
    if kind in ("embedded", "tiny"):
        return kind
    if kind == "vllm":
        return arg or "embedded"
    if kind == "scripted":
        return "embedded"
    return policy


def parse_env_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["split=test", "kinds=[multiply]"]`` -> ``{"split": "test", "kinds": ["multiply"]}``."""
    from agentgym.config import load_yaml

    kwargs: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--env-kwarg {item!r} must look like key=value")
        # the bounded loader: an alias bomb, deep nesting or a huge integer is one ConfigError (a ValueError)
        kwargs[key.strip()] = load_yaml(value, f"--env-kwarg {key.strip()}")
    return kwargs


def failed_paths(trees: list[TrajectoryTree]) -> list[dict[str, Any]]:
    return [f for t in trees for f in t.meta.get("failed_paths", [])]


def failure_counts(trees: list[TrajectoryTree]) -> Counter:
    """Failed paths by (stage, error type), e.g. ``{("reset", "timeout"): 3}``."""
    return Counter((f["stage"], f["error_type"]) for f in failed_paths(trees))


def start_failures(trees: list[TrajectoryTree]) -> list[dict[str, Any]]:
    """Episodes that never started: the env could not be made or reset."""
    return [f for f in failed_paths(trees) if f["stage"] in ("factory", "reset")]


def all_failed(trees: list[TrajectoryTree]) -> bool:
    """Every path of every tree was cut short by an env failure (none ended on its own)."""
    if not failed_paths(trees):
        return False
    return not any(leaf not in _failed_step_nodes(t) for t in trees for leaf in t.leaves())


def _failed_step_nodes(tree: TrajectoryTree) -> set[int]:
    return {f.get("node") for f in tree.meta.get("failed_paths", []) if f["stage"] == "step"}


def causes(trees: list[TrajectoryTree], limit: int = 3) -> list[str]:
    """The distinct failure messages, most frequent first."""
    common = Counter(f"{f['stage']} {f['error_type']}: {f['error']}" for f in failed_paths(trees)).most_common(limit)
    return [f"{text} (x{n})" if n > 1 else text for text, n in common]
