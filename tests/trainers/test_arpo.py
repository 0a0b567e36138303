"""ARPO's branching decisions, driven by a scripted policy whose entropies are controlled."""

import math

import pytest

import agentgym
from agentgym.envs.calculator.expert import calculator_expert
from agentgym.policies import ScriptedPolicy
from agentgym.policies.base import Generation
from agentgym.rollout import RolloutConfig, RolloutEngine, TurnView
from agentgym.trainers.arpo import ARPOConfig, EntropyBranching
from agentgym.trajectory import Turn

V = 49152
LN_V = math.log(V)


def gen_with_entropy(h_normalised: float, n: int = 30) -> Generation:
    return Generation([1] * n, [0.0] * n, [h_normalised * LN_V] * n, "x", "eos")


def turn(previous: str, h: float, memory: dict, tool_env: bool = True, node_id: int = 0) -> TurnView:
    return TurnView(node=Turn(id=node_id), generation=gen_with_entropy(h), previous=previous, tool_env=tool_env,
                    memory=memory)


def test_paper_rule_branches_iff_entropy_rises_after_a_tool_result():
    s = EntropyBranching(ARPOConfig(alpha=0.5, beta=0.2, tau=0.5, branches_per_point=2), V)
    memory: dict = {}
    assert s.branches(turn("reset", 0.3, memory)).count == 0  # first turn: sets H_initial only
    assert memory["h_initial"] == pytest.approx(0.3)
    decision = s.branches(turn("tool", 0.5, memory, node_id=1))
    assert decision.count == 2 and decision.signal == pytest.approx(0.2)  # ΔH = +0.2 -> P = 0.54 > 0.5 -> Z = 2
    assert s.branches(turn("tool", 0.2, memory, node_id=2)).count == 0  # ΔH = -0.1 -> P = 0.48
    # on a tool env, `auto` branches only after tool results, not after other observations
    assert s.branches(turn("observation", 0.9, memory, node_id=3)).count == 0


@pytest.mark.parametrize("branch_after, tool_env, previous, branches", [
    ("auto", True, "tool", True), ("auto", True, "observation", False),
    ("auto", False, "observation", True), ("auto", False, "tool", True),
    ("tool", False, "observation", False), ("tool", True, "tool", True),
    ("observation", True, "observation", True), ("observation", True, "tool", True),
    ("observation", False, "reset", False),
])
def test_branch_after_decides_which_env_answers_are_branch_points(branch_after, tool_env, previous, branches):
    s = EntropyBranching(ARPOConfig(branch_after=branch_after), V)
    memory = {"h_initial": 0.2}
    assert (s.branches(turn(previous, 0.6, memory, tool_env=tool_env)).count > 0) == branches


def test_entropy_uses_only_the_first_k_tokens():
    s = EntropyBranching(ARPOConfig(entropy_k=2), V)
    g = Generation([1] * 4, [0.0] * 4, [0.2 * LN_V, 0.4 * LN_V, 5 * LN_V, 5 * LN_V], "x", "eos")
    assert s.entropy_signal(g) == pytest.approx(0.3)


def test_stochastic_rule_branches_with_probability_alpha_plus_beta_delta():
    s = EntropyBranching(ARPOConfig(alpha=0.5, beta=0.5, stochastic_branching=True), V, seed=7)
    hits = 0
    for _ in range(4000):
        hits += s.branches(turn("tool", 0.6, {"h_initial": 0.2})).count > 0  # P = 0.5 + 0.5 * 0.4 = 0.7
    assert hits / 4000 == pytest.approx(0.7, abs=0.03)


def run_arpo(entropy_after_tool: float, n: int = 2, m: int = 4):
    def entropy_fn(context: str, action: str) -> float:
        return (entropy_after_tool if "<result>" in context.rsplit("<|im_start|>assistant", 1)[-1] else 0.3) * LN_V

    policy = ScriptedPolicy(calculator_expert, entropy_fn=entropy_fn)
    strategy = EntropyBranching(ARPOConfig(), V)
    engine = RolloutEngine(policy, lambda: agentgym.make("agentgym/Calculator-v0"), env_id="agentgym/Calculator-v0",
                           config=RolloutConfig(group_size=n, max_trajectories=m, supplement=True), strategy=strategy)
    (tree,) = engine.run([11])
    return tree


def test_engine_branches_at_entropy_spikes_and_shares_the_prefix():
    tree = run_arpo(entropy_after_tool=0.8)
    assert len(tree.roots()) == 2 and len(tree.leaves()) == 4
    branches = [n for n in tree.nodes if n.branch_entropy is not None]
    assert len(branches) == 2
    for b in branches:
        assert b.branch_entropy == pytest.approx(0.5)  # ΔH = 0.8 - 0.3, stored in the tree
        source = tree.nodes[b.branched_from]
        assert b.parent == source.parent and tree.context_ids(b.id) == tree.context_ids(source.id)
    assert all(tree.leaf_reward(leaf) == 1.0 for leaf in tree.leaves())


def test_engine_supplements_fresh_trajectories_when_entropy_falls():
    tree = run_arpo(entropy_after_tool=0.1)
    assert [n for n in tree.nodes if n.branch_entropy is not None] == []
    assert len(tree.roots()) == 4 and len(tree.leaves()) == 4  # N=2 from scratch, topped up to M=4
