"""Supervised fine-tuning on trajectories: loss on the tokens the policy sampled (assistant actions) only,
from the exact stored ids — never on prompts, observations or tool outputs.

Data: trajectory stores (scripted-expert runs, or a run's rollouts filtered by reward), the token export
of `agentgym replay --export-sft` (``sft_tokens.jsonl``: rows with ``segments`` of ``input_ids`` and
``loss_mask``; rows with top-level ``input_ids``/``loss_mask`` are read too), or, with no data given, fresh
rollouts of a scripted expert on training tasks. Every path is cut into segments by
`agentgym.trajectory.path_segments`, the same segmentation RL samples and exports use.

Training runs the RL update loop (`PolicyTrainer`) with the negative log-likelihood as its only loss term,
so SFT shares the optimiser, micro-batching and the ``trainer`` section's gradient clipping, weight decay and
micro-batch budget; ``sft.lr`` is its learning rate (constant).
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Any

import torch

from agentgym.config import SFTConfig, TrainerConfig
from agentgym.images import context_images
from agentgym.jsonl import read_rows
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.store import TrajectoryFileError, TrajectoryStore
from agentgym.trainers.core import PolicyTrainer
from agentgym.trainers.loss_terms import NegativeLogLikelihood
from agentgym.trainers.samples import Sample
from agentgym.trajectory import TrajectoryTree, path_segments


class DatasetError(ValueError):
    """SFT data is missing, empty or malformed; the message names the file, line and field."""


def samples_from_trees(trees: list[TrajectoryTree], min_reward: float) -> list[Sample]:
    out = []
    for tree in trees:
        for leaf in tree.leaves():
            if tree.leaf_reward(leaf) < min_reward:
                continue
            for seg in path_segments(tree, leaf):
                # the tree's context images, as the tree holds them (`agentgym.trainers.vision.sft_vision` keeps
                # those the context holds as pixels, and refuses them for a text-only model)
                out.append(Sample(seg.input_ids, seg.loss_mask, [float(m) for m in seg.loss_mask], seg.logprobs,
                                  tree.id, leaf, 0, images=context_images(tree, seg.turns[-1][0])))
    return out


def samples_from_token_file(path: Path) -> list[Sample]:
    out = []
    for lineno, row in read_rows(path, DatasetError):
        segments = row.get("segments", [row] if "input_ids" in row or "loss_mask" in row else None)
        if not isinstance(segments, list):
            raise DatasetError(f"{path}:{lineno}: a row needs 'segments' (a list of {{input_ids, loss_mask}}) "
                               f"or 'input_ids' and 'loss_mask'")
        for i, seg in enumerate(segments):
            where = f"{path}:{lineno}" + (f" segment {i}" if "segments" in row else "")
            for key in ("input_ids", "loss_mask"):
                if not isinstance(seg, dict) or key not in seg:
                    raise DatasetError(f"{where}: missing field {key!r}")
                if not isinstance(seg[key], list) or not all(isinstance(x, int) for x in seg[key]):
                    raise DatasetError(f"{where}: {key!r} must be a list of integers")
            ids, mask = seg["input_ids"], seg["loss_mask"]
            if len(ids) != len(mask):
                raise DatasetError(f"{where}: input_ids and loss_mask differ in length ({len(ids)} vs {len(mask)})")
            out.append(Sample(ids, mask, [float(m) for m in mask], [0.0] * len(ids), str(lineno), i, 0))
    return out


def load_data(paths: list[Path], min_reward: float) -> list[Sample]:
    samples: list[Sample] = []
    for path in paths:
        if not path.is_file():
            raise DatasetError(f"SFT data file {path} does not exist")
        try:
            samples += samples_from_trees(TrajectoryStore(path).read_all(), min_reward)
        except TrajectoryFileError:
            samples += samples_from_token_file(path)
    if not samples:
        raise DatasetError(f"no trainable trajectories in {', '.join(map(str, paths))} (min_reward={min_reward})")
    return samples


def expert_trees(expert: str, env_factory: Any, env_id: str, tokenizer: Any, seeds: list[int]) -> list[TrajectoryTree]:
    module, _, fn = expert.partition(":")
    if not fn:
        raise DatasetError(f"sft.expert must be 'module:function', got {expert!r}")
    policy = ScriptedPolicy(getattr(importlib.import_module(module), fn), tokenizer)
    return RolloutEngine(policy, env_factory, env_id=env_id, config=RolloutConfig()).run(seeds)


def sft_train(model: torch.nn.Module, pad_id: int, samples: list[Sample], cfg: SFTConfig,
              trainer: TrainerConfig | None = None, seed: int = 0, log: Any = None, vision: Any = None) -> list[float]:
    """Token-mean negative log-likelihood of the action tokens; returns the loss of each batch. `vision`: a
    vision-language model's `agentgym.trainers.vision.VisionInputs` (samples with images get their pixels)."""
    rng = random.Random(seed)
    batches_per_epoch = -(-len(samples) // cfg.batch_size)
    base = trainer or TrainerConfig()
    update_cfg = base.model_copy(update={"lr": cfg.lr, "schedule": "constant", "warmup_steps": 0, "kl_coef": 0.0,
                                         "epochs_per_batch": 1, "steps": cfg.epochs * batches_per_epoch})
    loop = PolicyTrainer(model, pad_id, update_cfg, terms=[NegativeLogLikelihood()], vision=vision)
    losses = []
    for epoch in range(cfg.epochs):
        order = samples[:]
        rng.shuffle(order)
        for start in range(0, len(order), cfg.batch_size):
            stats = loop.update(order[start : start + cfg.batch_size], step=len(losses))
            if not stats.trained_tokens:
                continue
            losses.append(stats.loss)
            if log:
                log(epoch, len(losses), stats.loss)
    model.eval()
    return losses
