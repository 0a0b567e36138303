"""Losses, advantages and attribution against hand-computed values on small tensors."""

import math

import pytest
import torch

from agentgym.trainers.advantages import TrajectoryZScore, group_zscore, has_signal, node_advantages
from agentgym.trainers.credit import outcome_credit, trajectory_return
from agentgym.trainers.losses import aggregate, clipped_surrogate, k3_kl
from agentgym.trainers.pieces import AdvantageStats
from agentgym.trainers.samples import build_samples
from agentgym.trajectory import TrajectoryTree, Turn


def test_clipped_surrogate_by_hand():
    # ratios e^{0.5}=1.6487 (clipped above at 1.28), e^{-0.5}=0.6065 (clipped below at 0.8), 1.0
    logp = torch.tensor([[0.5, -0.5, 0.0, 0.5]])
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, 1.0, -2.0, -1.0]])
    loss, clipped = clipped_surrogate(logp, old, adv, clip_low=0.2, clip_high=0.28, dual_clip=None)
    r = math.exp(0.5)
    expected = [max(-1 * r, -1 * 1.28), max(-1 * math.exp(-0.5), -1 * 0.8), 2.0, max(1 * r, 1 * 1.28)]
    assert loss[0].tolist() == pytest.approx(expected, rel=1e-6)
    # token 0: -1.28 > -1.6487 -> clipped; token 1: -0.6065 > -0.8 -> unclipped; token 3: 1.6487 > 1.28 -> unclipped
    assert clipped[0].tolist() == [True, False, False, False]


def test_dual_clip_caps_negative_advantages():
    logp = torch.tensor([[math.log(5.0), math.log(5.0)]])
    adv = torch.tensor([[-1.0, 1.0]])
    loss, clipped = clipped_surrogate(logp, torch.zeros(1, 2), adv, 0.2, 0.2, dual_clip=3.0)
    # A<0: max(5, 1.2) = 5 -> capped at -A*c = 3; A>0: max(-5, -1.2) = -1.2
    assert loss[0].tolist() == pytest.approx([3.0, -1.2])
    assert clipped[0].tolist() == [True, True]
    with pytest.raises(ValueError):
        clipped_surrogate(logp, torch.zeros(1, 2), adv, dual_clip=1.0)


def test_k3_kl_by_hand():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -2.0])
    d = -0.5
    assert k3_kl(logp, ref).tolist() == pytest.approx([math.exp(d) - d - 1, 0.0])


def test_aggregation_modes_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(values, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    # split into two micro-batches with global normalisers: the sum equals the full-batch value
    parts = [aggregate(values[i : i + 1], mask[i : i + 1], "token-mean", global_tokens=4.0) for i in range(2)]
    assert sum(parts).item() == pytest.approx(10 / 4)
    with pytest.raises(ValueError):
        aggregate(values, mask, "sum-of-everything")


def test_group_zscore_uses_unbiased_std():
    rewards = [1.0, 0.0, 0.0, 1.0]
    std = math.sqrt(sum((r - 0.5) ** 2 for r in rewards) / 3)
    assert group_zscore(rewards) == pytest.approx([(r - 0.5) / (std + 1e-6) for r in rewards])
    assert group_zscore([1.0]) == [0.0]
    assert group_zscore([0.5, 0.5]) == [0.0, 0.0]
    assert group_zscore(rewards, norm_by_std=False) == [0.5, -0.5, -0.5, 0.5]


def branched_tree() -> TrajectoryTree:
    """root 0 -> {1 -> {3 (r=1), 4 (r=0)}, 2 (r=1)}: node 1 is shared by leaves 3 and 4."""
    t = TrajectoryTree()
    t.add(Turn(id=0, prefix_ids=[10, 11], action_ids=[20], logprobs=[-0.1]))
    t.add(Turn(id=0, parent=0, prefix_ids=[12], action_ids=[21, 22], logprobs=[-0.2, -0.3]))
    t.add(Turn(id=0, parent=0, prefix_ids=[12], action_ids=[23], logprobs=[-0.4]))
    t.add(Turn(id=0, parent=1, prefix_ids=[13], action_ids=[24], logprobs=[-0.5]))
    t.add(Turn(id=0, parent=1, prefix_ids=[13], action_ids=[25], logprobs=[-0.6], branch_entropy=0.7, branched_from=3))
    t.final_rewards = {2: 1.0, 3: 1.0, 4: 0.0}
    return t


def leaf_advantages(tree: TrajectoryTree) -> dict[int, float]:
    outcome_credit([tree], None)
    leaves = tree.leaves()
    return dict(zip(leaves, group_zscore([trajectory_return(tree, leaf) for leaf in leaves])))


def grpo_samples(trees, attribution="soft", dynamic_sampling=False):
    outcome_credit(trees, None)
    adv = TrajectoryZScore(attribution, drop_tied_groups=dynamic_sampling)(trees, AdvantageStats())
    return build_samples(trees, adv)


def test_hard_and_soft_attribution_by_hand():
    tree = branched_tree()
    adv = leaf_advantages(tree)
    std = math.sqrt(((1 - 2 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2)
    a_hi, a_lo = (1 / 3) / (std + 1e-6), (-2 / 3) / (std + 1e-6)
    assert adv == pytest.approx({2: a_hi, 3: a_hi, 4: a_lo})
    hard = node_advantages(tree, adv, "hard", leaf=3)
    assert hard[0] == pytest.approx((a_hi + a_hi + a_lo) / 3)  # the root turn is shared by all three
    assert hard[1] == pytest.approx((a_hi + a_lo) / 2)  # shared by leaves 3 and 4
    assert hard[3] == pytest.approx(a_hi)
    soft = node_advantages(tree, adv, "soft", leaf=4)
    assert list(soft.values()) == pytest.approx([a_lo] * 3)


def test_samples_mask_everything_the_env_inserted():
    tree = branched_tree()
    samples = {s.leaf: s for s in grpo_samples([tree], attribution="hard")}
    s = samples[4]
    assert s.input_ids == [10, 11, 20, 12, 21, 22, 13, 25]
    assert s.loss_mask == [0, 0, 1, 0, 1, 1, 0, 1]
    assert s.sampling_logprobs == [0, 0, -0.1, 0, -0.2, -0.3, 0, -0.6]
    assert s.advantages[0] == 0 and s.advantages[3] == 0  # inserted tokens carry no advantage
    assert tree.nodes[1].advantage == pytest.approx(s.advantages[4])  # hard value shown in the viewer


def test_dynamic_sampling_drops_zero_variance_groups():
    tree = branched_tree()
    flat = branched_tree()
    flat.final_rewards = {2: 1.0, 3: 1.0, 4: 1.0}
    assert has_signal(list(tree.final_rewards.values())) and not has_signal(list(flat.final_rewards.values()))
    assert {s.tree_id for s in grpo_samples([tree, flat], dynamic_sampling=True)} == {tree.id}
