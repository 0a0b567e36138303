"""The RL training loop shared by every algorithm: rollout -> credit -> samples -> update -> log -> checkpoint.

Data order and sampling are functions of (seed, step): each step's tasks come from `task_seeds` and torch is
re-seeded per step, so a run killed at step k and resumed from its checkpoint continues exactly as the
uninterrupted run would (with ``rollout.deterministic``, batches are formed identically too).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from agentgym.config import Config, dump_config
from agentgym.rollout import RolloutEngine
from agentgym.store import TrajectoryStore
from agentgym.algorithms import algorithm_spec
from agentgym.trainers.algorithm import Algorithm, BuildContext
from agentgym.trainers.pieces import AdvantageStats, CreditContext
from agentgym.trainers.checkpoint import CheckpointManager, model_fingerprint, set_rng_state
from agentgym.trainers.core import PolicyTrainer
from agentgym.trainers.distributed import init_distributed
from agentgym.stats import rollout_metrics
from agentgym.trainers.metrics import RunLogger
from agentgym.trainers.session import Session, mark_step, open_session, task_seeds, write_run_json


def build_algorithm(cfg: Config, tokenizer: Any) -> Algorithm:
    """Compose the algorithm the config names, through the algorithm registry (entry points)."""
    return algorithm_spec(cfg.algorithm.name).build(cfg, BuildContext(tokenizer=tokenizer))


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    """Restore model (or LoRA adapter) weights saved by `save_pretrained`."""
    if (folder / "adapter_model.safetensors").exists():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        return
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")}  # tied embeddings are saved once
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint weights do not fit the model: missing {sorted(missing)[:5]}, "
                           f"unexpected {sorted(unexpected)[:5]}")


class RLRun:
    def __init__(self, cfg: Config, session: Session | None = None, resume: bool = False, quiet: bool = False):
        self.cfg, self.quiet = cfg, quiet
        self.group = init_distributed(cfg)  # validates trainer.distributed against the launch first
        self.run_dir = Path(cfg.run_dir)
        self.ckpt = CheckpointManager(self.run_dir, keep=cfg.trainer.keep_checkpoints)
        latest = self.ckpt.latest() if resume else None
        self.session = session or open_session(cfg)
        s = self.session
        self.fingerprint = model_fingerprint(s.model, s.tokenizer)
        if latest is not None:
            self.ckpt.check_compatible(latest, self.fingerprint)  # before any training work
        self.algorithm = build_algorithm(cfg, s.tokenizer)
        self.credit_state: dict[str, Any] = {}
        ref = None
        if cfg.trainer.kl_coef > 0:
            import copy

            ref = copy.deepcopy(s.model).eval().requires_grad_(False)
        self.trainer = self.group.coordinate(PolicyTrainer(
            self.group.prepare_model(s.model), s.tokenizer.pad_token_id, cfg.trainer, temperature=cfg.rollout.temperature,
            ref_model=ref, total_steps=cfg.trainer.steps, terms=self.algorithm.loss_terms, group=self.group))
        self.start_step = 0
        if not self.group.is_main:  # other ranks only train, on rank 0's commands (distributed.py)
            return
        if latest is not None:
            self.start_step = self._restore(latest)
        self.store = TrajectoryStore(self.run_dir / "trajectories.jsonl")
        self.ray = None  # with cfg.ray, rollouts run on Ray workers that store their own files (ray_rollout.py)
        if cfg.ray is not None:
            from agentgym.trainers.ray_rollout import RayRollouts

            self.ray = RayRollouts(cfg, s.model, s.policy.version)
        self.logger = RunLogger(self.run_dir, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                                quiet=quiet, config=cfg.model_dump(mode="json"))
        write_run_json(self.run_dir, cfg)
        (self.run_dir / "config.yaml").write_text(dump_config(cfg))

    def _restore(self, path: Path) -> int:
        load_weights(self.session.model, path / "model")
        state = torch.load(path / "trainer.pt", weights_only=False)
        self.trainer.load_state_dict(state)
        self.credit_state.update(state.get("credit", {}))
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
        meta = self.ckpt.load_meta(path)
        self.session.policy.version = meta.get("policy_version", meta["step"])
        return int(meta["step"])

    def save(self, step: int) -> Path:
        state = {**self.trainer.state_dict(), "credit": self.credit_state}  # credit memory (e.g. OTC's n) resumes too
        return self.ckpt.save(step, self.session.model, self.session.tokenizer, state,
                              {"fingerprint": self.fingerprint, "policy_version": self.session.policy.version,
                               "algorithm": self.algorithm.name})

    def step(self, step: int) -> dict[str, Any]:
        cfg, s = self.cfg, self.session
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        t0 = time.perf_counter()
        if self.ray is not None:
            trees, rollout_stats = self.ray.rollout(step, cfg.seed, task_seeds(cfg.seed, step, cfg.trainer.tasks_per_step),
                                                    self.algorithm)
        else:
            engine = RolloutEngine(s.policy, s.env_factory(), env_id=cfg.env.id, config=self.algorithm.rollout,
                                   strategy=self.algorithm.make_strategy(step), progress=cfg.logging.progress and not self.quiet)
            trees = engine.run(task_seeds(cfg.seed, step, cfg.trainer.tasks_per_step))
            rollout_stats = engine.stats
        t_rollout = time.perf_counter() - t0
        for i, tree in enumerate(trees):  # deterministic ids: a step replayed after a resume is stored once
            tree.id = f"train-{step:06d}-{i:04d}"
        self.algorithm.credit(trees, CreditContext(config=cfg, step=step, tokenizer=s.tokenizer,
                                                   scorer=getattr(s.policy, "score", None), state=self.credit_state))
        adv_stats = AdvantageStats()
        advantages = self.algorithm.advantage(trees, adv_stats)
        samples = self.algorithm.build_samples(trees, advantages)
        t1 = time.perf_counter()
        stats = self.trainer.update(samples, step=step)
        t_update = time.perf_counter() - t1
        s.policy.bump_version()
        if self.ray is not None:
            self.ray.sync(s.model, s.policy.version)
        mark_step(trees, step)
        if self.ray is not None:
            self.ray.commit(trees)  # each worker's own store file (agentgym.store.MergedStore reads them)
        else:
            self.store.append_many(trees)
        metrics = {**rollout_metrics(trees), **stats.metrics(), "infra_error_leaves": adv_stats.infra_error_leaves,
                   "dropped_groups": adv_stats.dropped_groups,
                   "tokens_per_s": rollout_stats["generated_tokens"] / max(t_rollout, 1e-9),
                   "time_generation_s": rollout_stats["generation_s"], "time_env_s": rollout_stats["env_s"],
                   "time_rollout_s": t_rollout, "time_update_s": t_update}
        self.logger.log(step + 1, metrics)
        return metrics

    def train(self) -> list[dict[str, Any]]:
        if not self.group.is_main:
            return self.group.serve(self.trainer)
        history = []
        every = self.cfg.trainer.checkpoint_every
        try:
            for step in range(self.start_step, self.cfg.trainer.steps):
                history.append(self.step(step))
                if every and (step + 1) % every == 0:
                    self.save(step + 1)
            if self.cfg.trainer.steps > self.start_step and (not every or self.cfg.trainer.steps % every):
                self.save(self.cfg.trainer.steps)
            self.group.finish(self.trainer)
        finally:
            self.logger.close()
            if self.ray is not None:
                self.ray.close()
        return history
