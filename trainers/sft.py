"""Supervised fine-tuning on trajectories: loss on the tokens the policy sampled (assistant actions) only,
from the exact stored ids — never on prompts, observations or tool outputs.

Data: trajectory stores (scripted-expert runs, or a run's rollouts filtered by reward), the token export
of `agentgym replay --export-sft` (JSONL rows with ``input_ids`` and ``loss_mask``), or, with no data given,
fresh rollouts of a scripted expert on training tasks.
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Any

import torch

from agentgym.config import SFTConfig
from agentgym.jsonl import read_rows
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.store import TrajectoryFileError, TrajectoryStore
from agentgym.trainers.core import pack_by_tokens
from agentgym.trainers.logprobs import pad_batch, token_logprobs
from agentgym.trainers.samples import Sample
from agentgym.trajectory import TrajectoryTree, trajectory_tokens


class DatasetError(ValueError):
    """SFT data is missing, empty or malformed; the message names the file, line and field."""


def samples_from_trees(trees: list[TrajectoryTree], min_reward: float) -> list[Sample]:
    out = []
    for tree in trees:
        for leaf in tree.leaves():
            if tree.leaf_reward(leaf) < min_reward:
                continue
            for ids, mask, lps in trajectory_tokens(tree, leaf):
                out.append(Sample(ids, mask, [float(m) for m in mask], lps, tree.id, leaf, 0))
    return out


def samples_from_token_file(path: Path) -> list[Sample]:
    out = []
    for lineno, row in read_rows(path, DatasetError, required=("input_ids", "loss_mask")):
        ids, mask = row["input_ids"], row["loss_mask"]
        if len(ids) != len(mask):
            raise DatasetError(f"{path}:{lineno}: input_ids and loss_mask differ in length ({len(ids)} vs {len(mask)})")
        out.append(Sample(ids, mask, [float(m) for m in mask], [0.0] * len(ids), str(lineno), 0, 0))
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


def sft_train(model: torch.nn.Module, pad_id: int, samples: list[Sample], cfg: SFTConfig, seed: int = 0,
              micro_batch_tokens: int = 4096, log: Any = None) -> list[float]:
    """Token-mean negative log-likelihood of the action tokens; returns the loss of each batch."""
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    losses = []
    model.train()
    device = next(model.parameters()).device
    for epoch in range(cfg.epochs):
        order = samples[:]
        rng.shuffle(order)
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            tokens = float(sum(s.trained_tokens for s in batch))
            total = 0.0
            for mb in pack_by_tokens(batch, micro_batch_tokens):
                t = {k: v.to(device) for k, v in pad_batch(mb, pad_id).items()}
                logp, _ = token_logprobs(model, t["input_ids"], t["attention_mask"], t["loss_mask"])
                loss = -(logp * t["loss_mask"]).sum() / tokens
                loss.backward()
                total += loss.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(total)
            if log:
                log(epoch, len(losses), total)
    model.eval()
    return losses
