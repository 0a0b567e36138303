"""The seed plugins' math against the hand-computed cases of reference/seed-plugins.md, plus edge cases:
single-turn episodes, all-equal groups, no tool calls."""

from __future__ import annotations

import math

import pytest
import torch

from agentgym.trainers.aspo import aspo_shape
from agentgym.trainers.epo import code_epoch_weight, corridor_penalty, epo_objective, smoothing_weight
from agentgym.trainers.otc_grpo import lowest_correct_calls, otc_rewards, otc_tool_reward
from agentgym.trainers.tapo import keep_group, overlong_penalty, tapo_reward
from agentgym.trainers.turn_stats import nested_turn_mean
from agentgym.trainers.tool_use import (first_tool_call_position, model_tokens, strict_format, tag_sequence,
                                        tool_call_turns)
from agentgym.trajectory import ToolCallRecord, TrajectoryTree, Turn


def grpo(rewards):
    r = torch.tensor(rewards, dtype=torch.float64)
    return ((r - r.mean()) / (r.std() + 1e-6)).tolist()


# ---- OTC-GRPO ---------------------------------------------------------------------------------------

def test_otc_case_1_n_from_the_group():
    r, m = [1, 1, 0, 1], [2, 1, 0, 3]
    n = lowest_correct_calls(None, r, m)
    assert n == 1
    rewards = otc_rewards(r, m, n, alpha=1.0, c=4)
    assert rewards == pytest.approx([math.sin(2 * math.pi / 3), 1.0, 0.0, math.sin(3 * math.pi / 4)])
    assert rewards == pytest.approx([0.8660, 1.0, 0.0, 0.7071], abs=1e-4)
    assert grpo(rewards) == pytest.approx([0.500, 0.801, -1.445, 0.143], abs=1e-3)


def test_otc_case_2_no_call_needed():
    r, m = [1, 1, 0, 0], [0, 2, 1, 3]
    n = lowest_correct_calls(None, r, m)
    assert n == 0
    assert otc_rewards(r, m, n, 1.0, 4) == pytest.approx([1.0, 0.7071, 0.0, 0.0], abs=1e-4)


def test_otc_case_3_ppo_form_and_under_use():
    assert otc_tool_reward(3, 0, c=3) == pytest.approx(0.5)
    assert otc_tool_reward(0, 0, c=3) == 1.0
    assert otc_tool_reward(0, 2, c=3) == 0.0  # f = 0: calling no tool when 2 are needed scores 0
    assert otc_tool_reward(2, 2, c=3) == pytest.approx(1.0)  # the maximum is at m = n


def test_otc_global_n_only_goes_down_and_edge_cases():
    assert lowest_correct_calls(1, [1, 1], [3, 2]) == 1  # a group's worse minimum does not raise n
    assert lowest_correct_calls(3, [1, 0], [2, 0]) == 2
    assert lowest_correct_calls(None, [0, 0], [1, 2]) is None  # no correct answer yet: n undefined
    # all wrong: the tool term has no effect; a format penalty is kept as is
    assert otc_rewards([0, 0, -1], [0, 3, 1], None, 1.0, 4) == [0, 0, -1]
    # n undefined (nothing correct seen) but a positive reward: the cosine (n = 0) form
    assert otc_rewards([1], [1], None, 1.0, 4) == pytest.approx([math.cos(math.pi / 6)])
    # all equal (all correct with the same calls): equal rewards, GRPO gives 0
    assert len(set(otc_rewards([1, 1, 1], [1, 1, 1], 1, 1.0, 4))) == 1
    assert otc_rewards([1, 1], [1, 2], 1, alpha=2.0, c=4)[0] == pytest.approx(2.0)


# ---- ASPO -------------------------------------------------------------------------------------------

def test_aspo_case_1_earlier_call_gets_more():
    r = [1, 1, 1, 0]
    a = grpo(r)
    assert a == pytest.approx([0.5, 0.5, 0.5, -1.5], abs=1e-5)
    assert aspo_shape(a, r, [100, 300, 500, None], [1000] * 4, delta=-2.0, k=0.7) == \
        pytest.approx([0.85, 0.50, 0.15, -1.5], abs=1e-5)


def test_aspo_case_2_and_3_no_code_and_all_correct():
    r = [1, 1, 0, 0]
    a = grpo(r)
    assert aspo_shape(a, r, [None, 40, 10, None], [100] * 4, -2.0, 0.7) == pytest.approx(a)  # one in E: p = mean p
    assert aspo_shape(a, r, [None, None, 5, 9], [100] * 4, -2.0, 0.7) == a  # no correct answer called code
    all_correct = grpo([1, 1, 1, 1])
    assert aspo_shape(all_correct, [1] * 4, [10, 50, 90, 200], [300] * 4, -2.0, 0.7) == [0.0] * 4


def test_aspo_unclipped_nudge_and_negative_advantage_bound():
    # small spread: the nudge -2 * (p - mean p) / mean L stays inside the clip
    assert aspo_shape([1.0, 1.0], [1, 1], [90, 110], [1000, 1000], -2.0, 0.7) == pytest.approx([1.02, 0.98])
    # a correct answer below its group mean (non-binary rewards) gets a valid, symmetric bound
    assert aspo_shape([-0.1, 1.0], [0.2, 1], [0, 1000], [1000, 1000], -2.0, 0.7) == pytest.approx([-0.03, 0.3])


# ---- EPO --------------------------------------------------------------------------------------------

def test_epo_case_1_corridor_and_schedule():
    h = torch.tensor([[0.2, 1.0, 2.0]])
    mask, turns = torch.ones(1, 3), torch.zeros(1, 3, dtype=torch.long)
    assert corridor_penalty(h, 1.0, 0.5, 1.5).tolist()[0] == pytest.approx([0.3, 0.0, 0.5])
    l_h, l_s = epo_objective(h, turns, mask, h_ref=1.0, alpha=0.1, kappa_low=0.5, kappa_high=1.5)
    assert float(l_s) == pytest.approx(0.02667, abs=1e-5)
    assert float(l_h) == pytest.approx(1.0667, abs=1e-4)
    beta = smoothing_weight(0, 150, gamma=3.0)
    assert beta == 2.0
    assert 1e-3 * (float(l_h) - beta * float(l_s)) == pytest.approx(1.0133e-3, abs=1e-7)
    assert smoothing_weight(75, 150, 3.0) == pytest.approx(1.0498, abs=1e-4)
    assert smoothing_weight(150, 150, 3.0) == pytest.approx(1.0025, abs=1e-4)


def test_epo_case_2_turn_averaging():
    h = torch.tensor([[1.0, 1.0, 3.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last token is an observation: not trained
    turns = torch.tensor([[4, 4, 7, -1]])
    assert float(nested_turn_mean(h, turns, mask)) == pytest.approx(2.0)  # a token mean would give 1.667


def test_epo_case_3_code_epoch_weight():
    assert [code_epoch_weight(e) for e in (0, 75, 100, 150)] == pytest.approx([1.0, 0.8271, 0.2943, 0.0398], abs=1e-4)


def test_epo_rows_without_history_and_gradient_direction():
    h = torch.tensor([[0.1, 0.2, 5.0, 0.0], [3.0, 0.0, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # row 2: a single-turn, 1-token episode
    turns = torch.tensor([[0, 0, 1, -1], [0, -1, -1, -1]])
    l_h, l_s = epo_objective(h, turns, mask, None, 0.1, 0.5, 1.5)
    assert l_s.tolist() == [0.0, 0.0] and l_h.tolist() == pytest.approx([(0.15 + 5.0) / 2, 3.0])
    _, l_s = epo_objective(h, turns, mask, 1.0, 0.1, 0.5, 1.5)
    l_s.sum().backward()
    g = h.grad[0].tolist()
    assert g[0] < 0 and g[1] < 0 and g[2] > 0  # minimising the penalty raises low entropy, lowers high
    assert h.grad[0, 3] == 0 and h.grad[1, 1:].abs().sum() == 0  # untrained tokens get no gradient


# ---- TAPO -------------------------------------------------------------------------------------------

def test_tapo_case_1_overlong_on_model_tokens():
    assert tapo_reward(True, 1.0, 1536, 2048, 1024, 1.0) == pytest.approx(0.5)
    assert tapo_reward(True, 1.0, 900, 2048, 1024, 1.0) == 1.0
    assert overlong_penalty(2048, 2048, 1024, 1.0) == -1.0
    assert overlong_penalty(3072, 2048, 1024, 1.0) == -2.0  # the code has no -1 floor


def test_tapo_case_2_format_and_dynamic_sampling():
    allowed = ["think", "python", "search", "answer"]
    assert tapo_reward(strict_format(["<answer>4</answer><python>x</python>"], allowed), 1.0, 10, 2048, 1024, 1) == -1.0
    assert tapo_reward(strict_format(["<python>print(2+2)</python>", "<answer>5</answer>"], allowed), 0.0, 10,
                       2048, 1024, 1) == 0.0
    assert keep_group([1, 1, 1, 1]) is False and keep_group([1, 0, 0, 0]) is True


def test_tapo_case_3_observations_are_not_counted():
    """The spec's case: observation tokens never enter L. (Its figure, 1200 model tokens -> penalty 0,
    contradicts its own formula and case 1: 1200 > 2048 - 1024 gives -176/1024; we test the formula.)"""
    assert overlong_penalty(900, 2048, 1024, 1.0) == 0.0  # with 1500 observation tokens L is still 900
    assert overlong_penalty(1200, 2048, 1024, 1.0) == pytest.approx(-176 / 1024)


def test_tapo_strict_format_edge_cases():
    allowed = ["think", "python", "answer"]
    assert tag_sequence("  <think>a</think>\n<answer>b</answer> ") == ["think", "answer"]
    assert tag_sequence("text <answer>b</answer>") is None  # free text outside tags
    assert tag_sequence("<answer>b</answr>") is None
    assert strict_format(["<answer>7</answer>"], allowed)  # single-turn, no tool call
    assert not strict_format(["<python>1</python>"], allowed)  # ran out of turns: no answer
    assert not strict_format(["<search>q</search>", "<answer>1</answer>"], allowed)  # tag not allowed
    assert not strict_format([], allowed)
    assert keep_group([0.95]) is False and keep_group([0.5, 0.8]) is False  # one member; all below threshold


# ---- tool-use measures on a tree --------------------------------------------------------------------

def _tree() -> TrajectoryTree:
    """Three trajectories: think then call then answer; call right away then answer; answer without tools
    (single-turn). A parse error is not a tool call."""
    tree = TrajectoryTree()
    call = ToolCallRecord(name="python")
    parse = ToolCallRecord(name="(parse)", error_type="parse_error")
    a0 = tree.add(Turn(id=0, prefix_ids=[1] * 9, action_ids=[5] * 4, tool_calls=[parse]))
    a1 = tree.add(Turn(id=0, parent=a0.id, prefix_ids=[1] * 3, action_ids=[5] * 6, tool_calls=[call]))
    tree.add(Turn(id=0, parent=a1.id, prefix_ids=[1] * 50, action_ids=[5] * 2))
    b0 = tree.add(Turn(id=0, prefix_ids=[1] * 9, action_ids=[5] * 3, tool_calls=[call]))
    tree.add(Turn(id=0, parent=b0.id, prefix_ids=[1] * 20, action_ids=[5] * 5))
    tree.add(Turn(id=0, prefix_ids=[1] * 9, action_ids=[5] * 7))
    return tree


def test_tool_use_measures():
    tree = _tree()
    leaves = tree.leaves()
    assert [tool_call_turns(tree, leaf) for leaf in leaves] == [1, 1, 0]
    assert [model_tokens(tree, leaf) for leaf in leaves] == [12, 8, 7]  # observations not counted
    assert [first_tool_call_position(tree, leaf) for leaf in leaves] == [10, 3, None]
