"""Rollout workers on a Ray cluster: whole episodes run in actors, each actor writes its own store file.

Where the policy lives: in every worker, as a replica. A worker runs the ordinary `RolloutEngine` over its
share of a step's tasks — its envs, its env forks and prefix replays for branching, and its policy are all
local, so an env step costs no network round trip and one worker's generations are batched as on one
machine. The trainer keeps the master weights and pushes them to the replicas after each update
(`Policy.load_weights`, or the module's `load_state_dict`), and every turn is stamped with the policy
version that sampled it. This is the layout verl and SkyRL use (rollout workers colocated with an engine, weight
sync after each step); the alternatives were worse here: a central sampler with remote env calls pays a
cluster round trip per turn and cannot fork envs locally, and a server sampler needs a weight-update
endpoint on the server (a server policy such as ``openai:URL`` works as a worker's replica factory all the same).

Storage: worker K appends to ``<store_dir>/trajectories-wK.jsonl`` — one file per actor, no lock shared across
nodes — and `agentgym.store.MergedStore` reads the run's files as one store (first id wins). A worker only
writes trees handed to `commit`, so a step's trees are stored after the trainer has credited them, once.

Faults: a worker that dies (node lost, process killed) fails its pending call with Ray's actor error; the
fleet starts a fresh actor in its slot, pushes the current weights, and reschedules that worker's episodes
(tree ids are fixed by the caller, and the store skips an id it already has, so nothing is stored twice), at
most `max_retries` times; a worker that does not answer within `timeout_s` is killed and treated the same.
Past the retries the step fails with `RayRolloutError`.

Ray is optional (`pip install 'agentgym[ray]'`); this module imports it only when a fleet starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.config import RayConfig, RolloutConfig
from agentgym.trajectory import TrajectoryTree


class RayRolloutError(RuntimeError):
    """A worker's episodes could not be completed (worker lost past the retries, or timed out)."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayRolloutError("Ray is not installed: pip install 'agentgym[ray]'") from None
    return ray


@dataclass(frozen=True)
class EnvSpec:
    """How a worker makes its envs: the registered id with its entry point (registered again in the worker
    process, so envs registered at run time in the driver work too) and constructor kwargs."""

    env_id: str
    entry_point: str
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, env_id: str, kwargs: dict[str, Any] | None = None) -> EnvSpec:
        from agentgym.registry import spec

        entry = spec(env_id).entry_point
        if not isinstance(entry, str):
            raise RayRolloutError(f"env {env_id!r} is registered with a callable, not a 'module:Class' entry "
                                  "point; Ray workers need one they can import")
        return cls(env_id, entry, dict(kwargs or {}))

    def make(self) -> Any:
        from agentgym.registry import make, register

        register(self.env_id, self.entry_point)
        return make(self.env_id, **self.kwargs)


def _check_reachable(address: str) -> None:
    """A HOST:PORT address answers TCP, checked in seconds (Ray itself retries an unreachable GCS for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return  # 'auto', 'ray://...': Ray resolves these itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise RayRolloutError(f"ray.address: nothing answers at {address} ({e.strerror or e}); start the head "
                              "with `ray start --head` or use --ray local") from None


class RolloutWorker:
    """The actor body (wrapped with ``ray.remote`` by `RolloutFleet`): one policy replica, one store file."""

    def __init__(self, policy_factory: Callable[[], Any], env: EnvSpec, store_path: str):
        from agentgym.registry import register
        from agentgym.store import TrajectoryStore

        register(env.env_id, env.entry_point)  # before the policy factory, which may validate the env id
        self.policy = policy_factory()
        self.env = env
        self.store = TrajectoryStore(store_path)

    def pid(self) -> int:
        return os.getpid()

    def load_weights(self, state: Any, version: int) -> int:
        if getattr(self.policy, "supports_weight_sync", False):
            self.policy.load_weights(state.items() if isinstance(state, dict) else state, version)
        else:
            raise RayRolloutError(f"{type(self.policy).__name__} cannot receive weights; "
                                  "use a policy factory whose policy supports weight sync")
        return self.policy.version

    def rollout(self, tasks: list[Any], ids: list[str], config: RolloutConfig, strategy: Any,
                torch_seed: int | None) -> tuple[list[TrajectoryTree], dict[str, float]]:
        from agentgym.rollout import RolloutEngine

        if torch_seed is not None:
            import torch

            torch.manual_seed(torch_seed)
        engine = RolloutEngine(self.policy, self.env.make, env_id=self.env.env_id, config=config, strategy=strategy)
        trees = engine.run(tasks)
        for tree, tree_id in zip(trees, ids):
            tree.id = tree_id
        return trees, dict(engine.stats)

    def commit(self, trees: list[TrajectoryTree]) -> int:
        return self.store.append_many(trees)


class RolloutFleet:
    """`workers` actors on the cluster at `cfg.address` (a local one if None), tasks spread round-robin."""

    def __init__(self, cfg: RayConfig, policy_factory: Callable[[], Any], env: EnvSpec, store_dir: str | Path,
                 runtime_env: dict[str, Any] | None = None):
        self.ray = import_ray()
        self.cfg, self.env, self.policy_factory = cfg, env, policy_factory
        self.store_dir = Path(store_dir).resolve()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._owns_cluster = not self.ray.is_initialized()
        if self._owns_cluster:
            local = cfg.address is None  # a fresh cluster on this machine, bound to loopback
            if not local:
                _check_reachable(cfg.address)
            try:
                self.ray.init(address="local" if local else cfg.address, runtime_env=runtime_env,
                              include_dashboard=False, log_to_driver=False,
                              **({"_node_ip_address": "127.0.0.1"} if local else {}))
            except (ConnectionError, ValueError, RuntimeError) as e:
                where = "a local cluster" if local else f"the Ray cluster at {cfg.address!r}"
                hint = "" if local or os.environ.get("RAY_AUTH_MODE") == "token" else (
                    "; a head started by Ray >= 2.59 requires token authentication: set RAY_AUTH_MODE=token here "
                    "and on every node, with the head's token (~/.ray/auth_token or RAY_AUTH_TOKEN)")
                raise RayRolloutError(f"ray.address: cannot start or reach {where}: {str(e)[:200]}{hint}") from None
        # Restarts are ours (see `_respawn`): a restarted actor would come back with stale weights.
        self._actor_cls = self.ray.remote(max_restarts=0, max_task_retries=0,
                                          num_cpus=cfg.cpus_per_worker)(RolloutWorker)
        self._weights: tuple[Any, int] | None = None
        self.workers = [self._spawn(k) for k in range(cfg.workers)]
        self.respawns = 0

    def store_path(self, k: int) -> Path:
        return self.store_dir / f"trajectories-w{k}.jsonl"

    def _spawn(self, k: int) -> Any:
        actor = self._actor_cls.remote(self.policy_factory, self.env, str(self.store_path(k)))
        if self._weights is not None:
            actor.load_weights.remote(*self._weights)  # ordered before any later call on this actor
        return actor

    def _respawn(self, k: int) -> None:
        try:
            self.ray.kill(self.workers[k], no_restart=True)
        except Exception:  # already dead: nothing to release
            pass
        self.workers[k] = self._spawn(k)
        self.respawns += 1

    def pids(self) -> list[int]:
        return self.ray.get([w.pid.remote() for w in self.workers], timeout=self.cfg.timeout_s)

    def sync_weights(self, state: dict[str, Any], version: int) -> None:
        """Push `state` (a state dict of CPU tensors) to every replica; put once in the object store."""
        self._weights = (self.ray.put(state), version)
        self._each(lambda k, w: w.load_weights.remote(*self._weights), "weight sync")

    def rollout(self, tasks: Sequence[Any], ids: Sequence[str], config: RolloutConfig, strategy: Any = None,
                torch_seed: int | None = None) -> tuple[list[TrajectoryTree], dict[str, float]]:
        """Every task's tree, in task order, with the given ids; stats summed over the workers."""
        shards = [list(range(k, len(tasks), len(self.workers))) for k in range(len(self.workers))]

        def call(k: int, w: Any) -> Any:
            seed = None if torch_seed is None else torch_seed * 1009 + k
            return w.rollout.remote([tasks[i] for i in shards[k]], [ids[i] for i in shards[k]], config, strategy, seed)

        results = self._each(call, "rollout", only=[k for k, s in enumerate(shards) if s])
        trees: list[TrajectoryTree | None] = [None] * len(tasks)
        stats: dict[str, float] = {}
        for k, (shard_trees, shard_stats) in results.items():
            for i, tree in zip(shards[k], shard_trees):
                trees[i] = tree
            for key, value in shard_stats.items():
                stats[key] = stats.get(key, 0.0) + value
        return [t for t in trees if t is not None], stats

    def commit(self, trees: Sequence[TrajectoryTree]) -> int:
        """Append each tree to the store file of the worker its task was sharded to (same round-robin)."""
        n = len(self.workers)
        parts = {k: list(trees[k::n]) for k in range(n) if trees[k::n]}
        return sum(self._each(lambda k, w: w.commit.remote(parts[k]), "commit", only=list(parts)).values())

    def _each(self, call: Callable[[int, Any], Any], what: str, only: list[int] | None = None) -> dict[int, Any]:
        """Run `call` on each worker, rescheduling a lost or hung worker's call on a fresh actor."""
        ray = self.ray
        todo = list(range(len(self.workers)) if only is None else only)
        results: dict[int, Any] = {}
        attempts = {k: 0 for k in todo}
        while todo:
            refs = {call(k, self.workers[k]): k for k in todo}
            deadline = time.monotonic() + self.cfg.timeout_s
            pending, failed = list(refs), []
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
                if not ready:
                    for ref in pending:
                        failed.append((refs[ref], f"no answer within {self.cfg.timeout_s:g} s"))
                    break
                k = refs[ready[0]]
                try:
                    results[k] = ray.get(ready[0])
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                    failed.append((k, f"worker lost ({type(e).__name__})"))
            todo = []
            for k, why in failed:
                attempts[k] += 1
                if attempts[k] > self.cfg.max_retries:
                    raise RayRolloutError(f"{what} on Ray worker {k} failed {attempts[k]} times; last: {why}")
                self._respawn(k)
                todo.append(k)
        return results

    def close(self) -> None:
        for w in self.workers:
            try:
                self.ray.kill(w, no_restart=True)
            except Exception:
                pass
        self.workers = []
        if self._owns_cluster and self.ray.is_initialized():
            self.ray.shutdown()
