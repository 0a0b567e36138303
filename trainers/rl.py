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

from agentgym.config import Config, ConfigError, dump_config
from agentgym.images import ImageStore
from agentgym.rollout import RolloutEngine
from agentgym.store import TrajectoryStore
from agentgym.algorithms import algorithm_spec
from agentgym.trainers.algorithm import Algorithm, BuildContext
from agentgym.trainers.pieces import AdvantageStats, CreditContext, zero_advantage_share
from agentgym.trainers.checkpoint import CheckpointManager, model_fingerprint, set_rng_state
from agentgym.trainers.core import PolicyTrainer
from agentgym.trainers.distributed import init_distributed
from agentgym.stats import rollout_metrics
from agentgym.trainers.metrics import RunLogger
from agentgym.trainers.session import Session, mark_step, open_session, task_seeds, write_run_json
from agentgym.trainers.async_loop import Rollout, drop_stale, train_async
from agentgym.trainers.vision import VisionInputs
from agentgym.trainers.weight_sync import open_sampler, push


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


def vision_inputs(session: Session, run_dir: Path, world_size: int) -> VisionInputs | None:
    """The pixel side of the trainer when the policy is a vision-language model (its images are stored where
    the run's trajectory store puts them), else None."""
    processor = getattr(session.policy, "processor", None)
    if processor is None:
        return None
    if world_size > 1:
        raise ConfigError(f"trainer.distributed: a vision-language policy.model ({session.cfg.policy.model}) trains "
                          "in one process (idle ranks' forwards carry no pixels for the sharded vision tower)")
    return VisionInputs(processor, ImageStore.beside(run_dir / "trajectories.jsonl"), run_dir)


class RLRun:
    def __init__(self, cfg: Config, session: Session | None = None, resume: bool = False, quiet: bool = False):
        self.cfg, self.quiet = cfg, quiet
        self.group = init_distributed(cfg)  # validates trainer.distributed against the launch first
        preflight = getattr(algorithm_spec(cfg.algorithm.name), "preflight", None)
        if preflight is not None:  # the algorithm's data checks, before a model loads or a step runs
            preflight(cfg)
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
        self.vision = vision_inputs(s, self.run_dir, self.group.world_size)  # None for a text-only model
        self.trainer = self.group.coordinate(PolicyTrainer(
            self.group.prepare_model(s.model), s.tokenizer.pad_token_id, cfg.trainer, temperature=cfg.rollout.temperature,
            ref_model=ref, total_steps=cfg.trainer.steps, terms=self.algorithm.loss_terms, group=self.group,
            vision=self.vision))
        self.start_step = 0
        self.pending: Rollout | None = None  # asynchronous runs: the next step's batch, saved with checkpoints
        self.sampler = None
        if not self.group.is_main:  # other ranks only train, on rank 0's commands (distributed.py)
            return
        if latest is not None:
            self.start_step = self._restore(latest)
        # where rollouts run when not on the trainer's own module; weights pushed (after the restore) here
        self.sampler = open_sampler(cfg, s.model, s.tokenizer, s.policy.version,
                                    processor=getattr(s.policy, "processor", None))
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
        if self.algorithm.task_sampler and "task_sampler" in state:
            self.algorithm.task_sampler.load_state_dict(state["task_sampler"])
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
        meta = self.ckpt.load_meta(path)
        self.session.policy.version = meta.get("policy_version", meta["step"])
        if state.get("pending") is not None:
            self.pending = Rollout.from_state(state["pending"])
        return int(meta["step"])

    def save(self, step: int, pending: Rollout | None = None) -> Path:
        state = {**self.trainer.state_dict(), "credit": self.credit_state}  # credit memory (e.g. OTC's n) resumes too
        if self.algorithm.task_sampler:
            state["task_sampler"] = self.algorithm.task_sampler.state_dict()
        if pending is not None:
            state["pending"] = pending.state()
        # a vision model's checkpoint carries its processor (tokenizer + image processor): hf-vision:<dir> loads it
        saved_with = getattr(self.session.policy, "processor", None) or self.session.tokenizer
        return self.ckpt.save(step, self.session.model, saved_with, state,
                              {"fingerprint": self.fingerprint, "policy_version": self.session.policy.version,
                               "algorithm": self.algorithm.name})

    def rollout(self, step: int) -> Rollout:
        """The trees of step `step`, sampled on the sampler (the trainer's own module by default)."""
        cfg, s = self.cfg, self.session
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        t0 = time.perf_counter()
        seeds, sampler = task_seeds(cfg.seed, step, cfg.trainer.tasks_per_step), self.algorithm.task_sampler
        tasks = sampler.tasks(step, seeds) if sampler else seeds
        if self.ray is not None:
            trees, rollout_stats = self.ray.rollout(step, cfg.seed, tasks, self.algorithm)
        else:
            engine = RolloutEngine(self.sampler or s.policy, s.env_factory(), env_id=cfg.env.id, config=self.algorithm.rollout,
                                   strategy=self.algorithm.make_strategy(step), progress=cfg.logging.progress and not self.quiet)
            trees = engine.run(tasks)
            rollout_stats = engine.stats
        t_rollout = time.perf_counter() - t0
        for i, tree in enumerate(trees):  # deterministic ids: a step replayed after a resume is stored once
            tree.id = f"train-{step:06d}-{i:04d}"
        return Rollout(trees, dict(rollout_stats), t_rollout)

    def push_weights(self) -> None:
        """After an update: the sampler takes the trainer's weights (nothing to do when they are one module)."""
        if self.sampler is not None and self.cfg.policy.weight_sync:
            push(self.sampler, self.session.model, self.session.policy.version)

    def step(self, step: int) -> dict[str, Any]:
        metrics = self.learn(step, self.rollout(step))
        self.push_weights()
        return metrics

    def learn(self, step: int, batch: Rollout, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Credit, advantages, samples and one update from `batch`; logs the step's metrics."""
        cfg, s = self.cfg, self.session
        trees, trained_trees, t_rollout = batch.trees, batch.trees, batch.seconds
        extra = dict(extra or {})
        if cfg.trainer.max_staleness:
            trained_trees, extra["stale_dropped"], extra["staleness"] = drop_stale(trees, s.policy.version,
                                                                                   cfg.trainer.max_staleness)
        self.algorithm.credit(trained_trees, CreditContext(config=cfg, step=step, tokenizer=s.tokenizer,
                                                   scorer=getattr(s.policy, "score", None), state=self.credit_state))
        adv_stats = AdvantageStats()
        advantages = self.algorithm.advantage(trained_trees, adv_stats)
        samples = self.algorithm.build_samples(trained_trees, advantages)
        if self.vision is not None:  # each sample's context images, as references into the run's image store
            self.vision.attach(samples, trained_trees)
        t1 = time.perf_counter()
        stats = self.trainer.update(samples, step=step)
        t_update = time.perf_counter() - t1
        s.policy.bump_version()
        if self.ray is not None:
            self.ray.sync(s.model, s.policy.version)
        mark_step(trees, step)
        task_sampler = self.algorithm.task_sampler
        if task_sampler:
            task_sampler.observe(trees)
        if self.ray is not None:
            self.ray.commit(trees)  # each worker's own store file (agentgym.store.MergedStore reads them)
        else:
            self.store.append_many(trees)
        metrics = {**rollout_metrics(trees), **stats.metrics(), "infra_error_leaves": adv_stats.infra_error_leaves,
                   "dropped_groups": adv_stats.dropped_groups, "zero_adv_groups": zero_advantage_share(advantages),
                   "tokens_per_s": batch.stats["generated_tokens"] / max(t_rollout, 1e-9),
                   "time_generation_s": batch.stats["generation_s"], "time_env_s": batch.stats["env_s"],
                   "time_rollout_s": t_rollout, "time_update_s": t_update, **extra,
                   **(task_sampler.metrics() if task_sampler else {})}
        self.logger.log(step + 1, metrics)
        return metrics

    def train(self) -> list[dict[str, Any]]:
        if not self.group.is_main:
            return self.group.serve(self.trainer)
        if self.cfg.trainer.max_staleness:
            return train_async(self)
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
            self.close()
        return history

    def close(self) -> None:
        self.logger.close()
        if self.ray is not None:
            self.ray.close()
        if self.sampler is not None:
            self.sampler.close()
