"""Training samples built from trajectory trees: the exact stored token ids, a loss mask that excludes every
token the environment or chat template inserted, per-token advantages and the sampler's log-probs.

The segmentation (one sample per trajectory, or per context for envs that rebuild their prompt each round)
is `agentgym.trajectory.path_segments`, shared with SFT, export and the viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentgym.trainers.pieces import Advantages
from agentgym.trajectory import TrajectoryTree, path_segments


@dataclass
class Sample:
    input_ids: list[int]
    loss_mask: list[int]  # 1 = sampled by the policy (trained), 0 = prompt/observation/tool output
    advantages: list[float]  # per token; 0 where loss_mask is 0
    sampling_logprobs: list[float]  # what the policy reported when it sampled (0 where loss_mask is 0)
    tree_id: str
    leaf: int
    group: int  # index of the tree in the batch: the GRPO group
    turn_ids: list[int] = field(default_factory=list)  # node id per token (-1 outside actions); [] = unknown
    # The images whose tokens are in `input_ids`, in order, as references into the run's image store
    # (agentgym.images.ImageRef); set by `agentgym.trainers.vision.VisionInputs.attach` for a vision policy.
    images: list[Any] = field(default_factory=list)

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)


def build_samples(trees: list[TrajectoryTree], advantages: list[Advantages]) -> list[Sample]:
    """One sample per segment of every (tree, leaf) that has advantages; leaves without them (an
    infra-error leaf, a dropped group) give no sample at all."""
    samples: list[Sample] = []
    for g, (tree, per_leaf) in enumerate(zip(trees, advantages, strict=True)):
        for leaf, node_adv in per_leaf.items():
            samples += path_samples(tree, leaf, node_adv, g)
    return samples


def path_samples(tree: TrajectoryTree, leaf: int, node_adv: dict[int, float], group: int) -> list[Sample]:
    out = []
    segments = path_segments(tree, leaf)
    for seg in segments:
        adv = [0.0] * len(seg.input_ids)
        turn_ids = [-1] * len(seg.input_ids)
        for node_id, start, end in seg.turns:
            adv[start:end] = [node_adv[node_id]] * (end - start)
            turn_ids[start:end] = [node_id] * (end - start)
        out.append(Sample(seg.input_ids, seg.loss_mask, adv, seg.logprobs, tree.id, leaf, group, turn_ids))
    # Token-exactness: the last sample is exactly what the policy saw plus what it sampled.
    if out and out[-1].input_ids != tree.context_ids(leaf) + tree.nodes[leaf].action_ids:
        raise AssertionError(f"tree {tree.id} leaf {leaf}: training ids differ from the sampled context")
    return out
