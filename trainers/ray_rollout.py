"""`agentgym train --ray`: a step's rollouts on Ray workers that hold replicas of the trained model.

The trainer keeps the master weights; each worker (`agentgym.ray_workers.RolloutWorker`) builds the same
model as the trainer (same config: model, LoRA, seed) and receives the trainer's weights before the first
step and after every update, so every replica samples from the policy being trained, stamped with its
version. Trees come back to the trainer for credit and the update, then go to their worker's store file.
"""

from __future__ import annotations

import functools
from typing import Any

from agentgym.config import Config
from agentgym.policies.hf import HFPolicy
from agentgym.ray_workers import EnvSpec, RolloutFleet
from agentgym.trajectory import TrajectoryTree


class HFReplica(HFPolicy):
    """A worker's copy of the trained model; weights arrive from the trainer by value."""

    supports_weight_sync = True

    def load_weights(self, named_tensors: Any, version: int) -> None:
        import torch

        state = dict(named_tensors)
        with torch.no_grad():
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"weights do not fit the replica: missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}")
        self.version = version


def _replica(cfg_json: dict[str, Any]) -> HFReplica:
    from agentgym.trainers.session import open_session

    s = open_session(Config.model_validate(cfg_json))
    return HFReplica(s.model, s.tokenizer, max_batch_size=s.cfg.policy.max_batch_size)


def trainer_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class RayRollouts:
    """The fleet a training run uses; `RLRun` calls `rollout`, `commit` and `sync` once per step."""

    def __init__(self, cfg: Config, model: Any, version: int):
        from agentgym.trainers.session import env_kwargs

        assert cfg.ray is not None
        replica_cfg = cfg.model_dump(mode="json", exclude={"ray"})
        replica_cfg["policy"]["device"] = "cpu" if cfg.policy.device is None else cfg.policy.device
        self.fleet = RolloutFleet(cfg.ray, functools.partial(_replica, replica_cfg),
                                  EnvSpec.of(cfg.env.id, env_kwargs(cfg)), cfg.run_dir)
        self.sync(model, version)

    def rollout(self, step: int, seed: int, tasks: list[int], algorithm: Any) -> tuple[list[TrajectoryTree], dict]:
        ids = [f"train-{step:06d}-{i:04d}" for i in range(len(tasks))]
        return self.fleet.rollout(tasks, ids, algorithm.rollout, algorithm.make_strategy(step),
                                  torch_seed=seed * 1_000_003 + step)

    def commit(self, trees: list[TrajectoryTree]) -> int:
        return self.fleet.commit(trees)

    def sync(self, model: Any, version: int) -> None:
        self.fleet.sync_weights(trainer_state(model), version)

    def close(self) -> None:
        self.fleet.close()
