"""Training samples built from trajectory trees: the exact stored token ids, a loss mask that excludes every
token the environment or chat template inserted, and per-token advantages.

One sample per trajectory (leaf), or per context segment for envs that rebuild their prompt each round.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentgym.trainers.advantages import has_signal, leaf_advantages, node_advantages
from agentgym.trajectory import TrajectoryTree


@dataclass
class Sample:
    input_ids: list[int]
    loss_mask: list[int]  # 1 = sampled by the policy (trained), 0 = prompt/observation/tool output
    advantages: list[float]  # per token; 0 where loss_mask is 0
    sampling_logprobs: list[float]  # what the policy reported when it sampled (0 where loss_mask is 0)
    tree_id: str
    leaf: int
    group: int  # index of the tree in the batch: the GRPO group

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)


def build_samples(trees: list[TrajectoryTree], attribution: str = "soft", norm_by_std: bool = True,
                  dynamic_sampling: bool = False) -> list[Sample]:
    """Samples for every trajectory of every tree. With `dynamic_sampling`, groups whose rewards are all
    equal are dropped (their advantages are all zero)."""
    samples: list[Sample] = []
    for g, tree in enumerate(trees):
        if dynamic_sampling and not has_signal(tree):
            continue
        leaf_adv = leaf_advantages(tree, norm_by_std)
        shown = node_advantages(tree, leaf_adv, "hard")  # what the viewer shows per node
        for node in tree.nodes:
            node.advantage = shown.get(node.id)
        for leaf in tree.leaves():
            node_adv = node_advantages(tree, leaf_adv, attribution, leaf)
            samples += _path_samples(tree, leaf, node_adv, g)
    return samples


def _path_samples(tree: TrajectoryTree, leaf: int, node_adv: dict[int, float], group: int) -> list[Sample]:
    out: list[Sample] = []
    ids: list[int] = []
    mask: list[int] = []
    adv: list[float] = []
    lps: list[float] = []
    for node in tree.path(leaf):
        if node.rebuild_context and ids:
            out.append(Sample(ids, mask, adv, lps, tree.id, leaf, group))
            ids, mask, adv, lps = [], [], [], []
        if len(node.logprobs) != len(node.action_ids):
            raise ValueError(f"tree {tree.id} node {node.id}: {len(node.logprobs)} log-probs for "
                             f"{len(node.action_ids)} action tokens")
        n_prefix, n_action = len(node.prefix_ids), len(node.action_ids)
        ids += node.prefix_ids + node.action_ids
        mask += [0] * n_prefix + [1] * n_action
        adv += [0.0] * n_prefix + [node_adv[node.id]] * n_action
        lps += [0.0] * n_prefix + list(node.logprobs)
    if ids:
        out.append(Sample(ids, mask, adv, lps, tree.id, leaf, group))
    last = tree.nodes[leaf]
    # Token-exactness: the last sample is exactly what the policy saw plus what it sampled.
    if out and out[-1].input_ids != tree.context_ids(leaf) + last.action_ids:
        raise AssertionError(f"tree {tree.id} leaf {leaf}: training ids differ from the sampled context")
    return out
