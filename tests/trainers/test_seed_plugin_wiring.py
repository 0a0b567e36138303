"""The seed plugins as algorithms: registered through the entry-point group, their configs (and bad values),
their credit/advantage/loss pieces on real trees and batches, and 2 training steps each on the tiny model."""

from __future__ import annotations

import math
from importlib.metadata import entry_points

import pytest
import torch

import agentgym
from agentgym.algorithms import algorithm_spec
from agentgym.config import ConfigError, load_config
from agentgym.trainers.pieces import AdvantageStats, CreditContext, LossBatch, zero_advantage_share
from agentgym.trajectory import ToolCallRecord, TrajectoryTree, Turn

PLUGINS = ("otc_grpo", "aspo", "epo", "tapo")
agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")


def ctx(state=None, tokenizer=None, **algorithm):
    return CreditContext(config=load_config(algorithm=algorithm), step=0, tokenizer=tokenizer,
                         state=state if state is not None else {})


def tool_tree(paths: list[tuple[list[tuple[int, bool, str]], float]], question: str = "q1") -> TrajectoryTree:
    """A flat group: each path is [(action tokens, calls a tool, action text), ...] and its outcome reward."""
    tree = TrajectoryTree(task={"question": question})
    for turns, reward in paths:
        parent = None
        for n_tokens, calls, text in turns:
            node = tree.add(Turn(id=0, parent=parent, prefix_ids=[1] * 5, action_ids=[7] * n_tokens,
                                 logprobs=[-1.0] * n_tokens, action_text=text,
                                 tool_calls=[ToolCallRecord(name="python")] if calls else []))
            parent = node.id
        tree.final_rewards[parent] = reward
    return tree


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_is_registered_through_the_entry_point_group(name):
    assert name in {ep.name for ep in entry_points(group="agentgym.algorithms")}
    spec = algorithm_spec(name)
    assert spec.name == name and spec.config.__module__ == f"agentgym.trainers.{name}"
    assert type(load_config(algorithm={"name": name}).algorithm) is spec.config


@pytest.mark.parametrize("section, message", [
    ({"name": "epo", "penalty_weight": 0.6}, "algorithm.penalty_weight"),
    ({"name": "epo", "kappa_low": 1.5, "kappa_high": 1.0}, "kappa_low (1.5) must be below kappa_high (1.0)"),
    ({"name": "epo", "entropy_coef": 0}, "algorithm.entropy_coef"),
    ({"name": "aspo", "delta": 2.0}, "algorithm.delta"),
    ({"name": "aspo", "k": 1.5}, "algorithm.k"),
    ({"name": "otc_grpo", "alpha": -1}, "algorithm.alpha"),
    ({"name": "otc_grpo", "n_estimate": "local"}, "algorithm.n_estimate"),
    ({"name": "tapo", "overlong_buffer": 4096}, "overlong_buffer (4096) must not exceed max_length (2048)"),
    ({"name": "tapo", "allowed_tags": ["python"]}, "allowed_tags must include 'answer'"),
    ({"name": "grpo", "delta": -2.0}, "`delta` belongs to algorithm 'aspo', not 'grpo'"),
    ({"name": "aspo", "kappa_low": 0.5}, "`kappa_low` belongs to algorithm 'epo', not 'aspo'"),
    ({"name": "tapo", "alpha": 1.0}, "`alpha` belongs to algorithm"),
])
def test_bad_plugin_config_is_a_clear_error(section, message):
    with pytest.raises(ConfigError, match="invalid configuration") as err:
        load_config(algorithm=section)
    assert message in str(err.value)


def test_otc_credit_keeps_the_lowest_correct_call_count_per_question():
    credit = algorithm_spec("otc_grpo").build(load_config(algorithm={"name": "otc_grpo", "c": 4}), None).credit
    state: dict = {}
    first = tool_tree([([(3, True, ""), (3, True, ""), (2, False, "")], 1.0), ([(3, True, ""), (2, False, "")], 1.0),
                       ([(2, False, "")], 0.0)])
    credit([first], ctx(state, name="otc_grpo", c=4))
    assert state["otc_n_best"] == {"q1": 1}
    assert [first.nodes[leaf].credit_reward for leaf in first.leaves()] == pytest.approx([math.sin(2 * math.pi / 3), 1.0, 0.0])
    assert all(n.credit_reward is None for n in first.nodes if n.id not in first.leaves())
    # a later group of the same question: calling twice is now below the best (n = 1), no call scores 0
    later = tool_tree([([(3, True, ""), (3, True, ""), (2, False, "")], 1.0), ([(2, False, "")], 1.0)])
    credit([later], ctx(state, name="otc_grpo", c=4))
    assert state["otc_n_best"] == {"q1": 0}  # a correct answer without tools lowers n to 0
    assert [later.nodes[leaf].credit_reward for leaf in later.leaves()] == pytest.approx([math.cos(2 * math.pi / 8), 1.0])


def test_aspo_advantage_matches_the_hand_computed_case_on_a_tree():
    algo = algorithm_spec("aspo").build(load_config(algorithm={"name": "aspo"}), None)
    tree = tool_tree([([(100, True, ""), (900, False, "")], 1.0), ([(300, True, ""), (700, False, "")], 1.0),
                      ([(500, True, ""), (500, False, "")], 1.0), ([(1000, False, "")], 0.0)])
    algo.credit([tree], ctx(name="aspo"))
    per_leaf = algo.advantage([tree], AdvantageStats())[0]
    leaves = tree.leaves()
    assert [per_leaf[leaf][leaf] for leaf in leaves] == pytest.approx([0.85, 0.50, 0.15, -1.5], abs=1e-5)
    assert all(len(set(per_leaf[leaf].values())) == 1 for leaf in leaves)  # one advantage per trajectory
    assert tree.nodes[leaves[0]].advantage == pytest.approx(0.85, abs=1e-5)  # shown to the viewer


def test_tapo_credit_and_dynamic_sampling_on_trees():
    cfg = load_config(algorithm={"name": "tapo", "max_length": 100, "overlong_buffer": 50},
                      trainer={"dynamic_sampling": True})
    algo = algorithm_spec("tapo").build(cfg, None)
    mixed = tool_tree([([(20, True, "<python>print(4)</python>"), (10, False, "<answer>4</answer>")], 1.0),
                       ([(70, True, "<python>print(4)</python>"), (5, False, "<answer>4</answer>")], 1.0),
                       ([(5, False, "I think 4 <answer>4</answer>")], 1.0),  # free text: format error
                       ([(5, False, "<answer>5</answer>")], 0.0)])
    tied = tool_tree([([(5, False, "<answer>5</answer>")], 0.0), ([(5, False, "<answer>6</answer>")], 0.0)], "q2")
    algo.credit([mixed, tied], CreditContext(config=cfg, step=0))
    assert [mixed.nodes[leaf].credit_reward for leaf in mixed.leaves()] == pytest.approx([1.0, 1 - 25 / 50, -1.0, 0.0])
    stats = AdvantageStats()
    advantages = algo.advantage([mixed, tied], stats)
    assert stats.dropped_groups == 1 and advantages[1] == {} and len(advantages[0]) == 4
    assert zero_advantage_share(advantages) == 0.5  # the dropped group teaches nothing; the mixed one does


def test_zero_advantage_share_counts_groups_without_signal():
    assert zero_advantage_share([]) == 0.0
    flat, signal = {3: {0: 0.0, 3: 0.0}, 4: {0: 0.0, 4: 0.0}}, {3: {0: 0.5, 3: 1.0}, 4: {0: 0.5, 4: -1.0}}
    assert zero_advantage_share([flat, signal, {}]) == pytest.approx(2 / 3)
    assert zero_advantage_share([{3: {0: 0.0, 3: 1e-3}}]) == 0.0  # one turn with signal is enough


def test_tapo_format_ignores_the_end_of_turn_token(tokenizer):
    cfg = load_config(algorithm={"name": "tapo"})
    ids = tokenizer.encode("<answer>4</answer>", add_special_tokens=False) + [tokenizer.eos_token_id]
    tree = TrajectoryTree()
    leaf = tree.add(Turn(id=0, action_ids=ids, logprobs=[0.0] * len(ids), action_text=tokenizer.decode(ids)))
    tree.final_rewards[leaf.id] = 1.0
    algorithm_spec("tapo").build(cfg, None).credit([tree], CreditContext(config=cfg, step=0, tokenizer=tokenizer))
    assert tree.nodes[0].credit_reward == 1.0


def loss_batch(entropy: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor, step: int) -> LossBatch:
    zeros = torch.zeros_like(mask)
    return LossBatch(logp=zeros, old_logp=zeros, sampling_logp=zeros, is_weight=torch.ones_like(mask), advantages=zeros,
                     mask=mask, entropy=entropy, ref_logp=None, turn_ids=turn_ids, total_tokens=float(mask.sum()),
                     total_sequences=float(mask.shape[0]), step=step)


def test_epo_term_value_history_and_gradient():
    cfg = load_config(algorithm={"name": "epo"}, trainer={"steps": 150})
    term = next(t for t in algorithm_spec("epo").build(cfg, None).loss_terms if t.name == "epo")
    assert term.needs_entropy_grad
    h = torch.tensor([[0.2, 1.0, 2.0], [1.0, 1.0, 3.0]], requires_grad=True)
    turns, mask = torch.tensor([[0, 0, 0], [0, 0, 1]]), torch.ones(2, 3)
    value, _ = term(loss_batch(h, turns, mask, step=0))  # step 0: no history, entropy bonus only
    assert float(value.detach()) == pytest.approx(-1e-3 * (3.2 / 3 + 2.0) / 2)
    term.end_step(type("Stats", (), {"trained_tokens": 6, "entropy": 1.0})())
    assert term.state_dict() == {"history": [1.0]}
    value, _ = term(loss_batch(h, turns, mask, step=0))  # the spec's case 1 on row 1: beta 2, L_s 0.02667
    smooth_row2 = 0.1 * (0.0 + 1.5) / 2  # row 2: turn means of P = (0, 1.5)
    assert float(value.detach()) == pytest.approx(-1e-3 * ((3.2 / 3 + 2.0) - 2.0 * (0.08 / 3 + smooth_row2)) / 2, abs=1e-9)
    value.backward()
    g = h.grad[0].tolist()  # the bonus raises every entropy; the corridor adds to it below, takes from it above
    assert g[0] < g[1] < g[2] < 0
    fresh = next(t for t in algorithm_spec("epo").build(cfg, None).loss_terms if t.name == "epo")
    fresh.load_state_dict(term.state_dict())
    assert fresh.history == [1.0]


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_trains_two_steps_on_the_tiny_model(tmp_path, name):
    """Single-turn episodes with no tool calls: every plugin's edge case, end to end through RLRun."""
    from agentgym.trainers.rl import RLRun

    cfg = load_config(run_dir=str(tmp_path / name), seed=1, env={"id": "agentgym/TestLetterE-v0"},
                      policy={"model": "tiny"}, rollout={"group_size": 4, "deterministic": True},
                      algorithm={"name": name}, logging={"tensorboard": False, "progress": False},
                      trainer={"steps": 2, "tasks_per_step": 2, "lr": 1e-3})
    run = RLRun(cfg, quiet=True)
    history = run.train()
    assert len(history) == 2 and run.algorithm.name == name
    assert (tmp_path / name / "checkpoints" / "step-000002").exists()
    assert any(h["trained_tokens"] > 0 for h in history)
    trees = run.store.read_all()
    credited = [t.nodes[leaf].credit_reward for t in trees for leaf in t.leaves()]
    if name == "tapo":  # free text is a format error: every trajectory is credited -1
        assert credited == [-1.0] * len(credited)
    else:  # no tool calls: OTC's n is 0 and r_tool is 1; the others keep the outcome
        assert credited == pytest.approx([t.leaf_reward(leaf) for t in trees for leaf in t.leaves()])
