"""EAPO (trainers/eapo.py): discounted round credit, the round z-score with its std floor, one sample per
distinct round with seeded adaptive downsampling, GSPO's sequence ratio, and 2 steps on the deep-research env."""

from __future__ import annotations

import pytest
import torch

from agentgym.algorithms import algorithm_spec
from agentgym.config import ConfigError, load_config
from agentgym.trainers.eapo import GSPOSurrogate
from agentgym.trainers.pieces import AdvantageStats, CreditContext, LossBatch
from agentgym.trajectory import TrajectoryTree, Turn

G = 0.995


def rounds_tree(paths: list[tuple[int | None, int, float]]) -> tuple[TrajectoryTree, list[int]]:
    """Each entry: (node to branch from or None, new rounds, final reward). Every round rebuilds its context."""
    tree, leaves = TrajectoryTree(), []
    for parent, n, reward in paths:
        for _ in range(n):
            node = tree.add(Turn(id=0, parent=parent, rebuild_context=True, prefix_ids=[1, 2, 3],
                                 action_ids=[4, 5], logprobs=[-1.0, -1.0]))
            parent = node.id
        tree.final_rewards[parent] = reward
        leaves.append(parent)
    return tree, leaves


def algo(**kw):
    return algorithm_spec("eapo").build(load_config(algorithm={"name": "eapo", **kw}), None)


def credit_and_advantage(a, tree):
    a.credit([tree], CreditContext(config=None, step=0))
    return a.advantage([tree], AdvantageStats())[0]


def zscore(r, floor=0.1):
    t = torch.tensor(r, dtype=torch.float64)
    return ((t - t.mean()) / max(float(t.std()), floor)).tolist()


def test_discounted_round_rewards_and_group_zscore_match_hand_values():
    a = algo()
    tree, (l1, l2, l3) = rounds_tree([(None, 3, 1.0), (None, 1, 0.0), (None, 2, 1.0)])
    adv = credit_and_advantage(a, tree)
    rewards = [n.credit_reward for n in tree.nodes]
    assert rewards == pytest.approx([G ** 2, G, 1.0, 0.0, G, 1.0])  # T=3: t=1,2,3; failed; T=2
    expected = dict(zip(range(6), zscore(rewards)))
    for leaf in (l1, l2, l3):
        assert adv[leaf] == pytest.approx({n.id: expected[n.id] for n in tree.path(leaf)})
    assert adv[l2] == {3: pytest.approx(expected[3])} and expected[3] < 0  # single-round failed episode
    assert tree.nodes[0].advantage == pytest.approx(expected[0])  # shown on the tree for the viewer


def test_all_correct_group_is_guarded_by_the_std_floor_and_all_wrong_is_zero():
    a = algo()
    tree, _ = rounds_tree([(None, 2, 1.0), (None, 3, 1.0)])
    adv = credit_and_advantage(a, tree)
    r = [G, 1.0, G ** 2, G, 1.0]
    raw_std = float(torch.tensor(r).std())
    assert raw_std < 0.01  # unguarded, the advantages would be of order 1
    flat = {k: v for per in adv.values() for k, v in per.items()}
    assert flat == pytest.approx({i: (x - sum(r) / 5) / 0.1 for i, x in enumerate(r)})
    assert max(abs(v) for v in flat.values()) < 0.1
    wrong, _ = rounds_tree([(None, 2, 0.0), (None, 1, 0.0)])
    assert all(v == 0 for per in credit_and_advantage(a, wrong).values() for v in per.values())


def test_a_group_of_one_round_gets_zero_advantage_and_one_sample():
    a = algo()
    tree, (leaf,) = rounds_tree([(None, 1, 1.0)])
    adv = credit_and_advantage(a, tree)
    assert adv == {leaf: {leaf: 0.0}}
    samples = a.build_samples([tree], [adv])
    assert len(samples) == 1 and samples[0].advantages == [0.0] * 5 and samples[0].loss_mask == [0, 0, 0, 1, 1]


def test_branched_tree_trains_a_shared_round_once_with_the_mean_reward():
    a = algo()
    tree, (l1, l2) = rounds_tree([(None, 2, 1.0), (0, 2, 0.0)])  # both leaves share round 0
    adv = credit_and_advantage(a, tree)
    assert tree.nodes[0].credit_reward == pytest.approx((G * 1.0 + G ** 2 * 0.0) / 2)
    assert [n.credit_reward for n in tree.nodes[1:]] == pytest.approx([1.0, 0.0, 0.0])
    samples = a.build_samples([tree], [adv])
    assert sorted(s.turn_ids[-1] for s in samples) == [0, 1, 2, 3]  # 4 distinct rounds, not 5 path rounds


def test_adaptive_downsampling_is_a_multiple_of_the_world_size_and_seeded():
    tree, _ = rounds_tree([(None, 3, 1.0), (None, 4, 0.0)])
    a = algo(dp_world_size=3)
    adv = credit_and_advantage(a, tree)
    kept = a.build_samples([tree], [adv])
    assert len(kept) == 6 and a.build_samples.dropped == 1
    again = algo(dp_world_size=3).build_samples([tree], [adv])
    assert [s.turn_ids for s in again] == [s.turn_ids for s in kept]  # the same trees drop the same sample


def test_gspo_term_uses_the_length_normalised_sequence_ratio():
    term = GSPOSurrogate(0.2, 0.2)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    logp = torch.tensor([[0.1, 0.3, 5.0], [0.0, 0.0, 0.0]], requires_grad=True)
    zeros = torch.zeros(2, 3)
    adv = torch.tensor([[1.0, 1.0, 0.0], [-2.0, -2.0, -2.0]])
    b = LossBatch(logp=logp, old_logp=zeros, sampling_logp=zeros, is_weight=torch.ones(2, 3), advantages=adv,
                  mask=mask, entropy=None, ref_logp=None, turn_ids=zeros.long(), total_tokens=5.0,
                  total_sequences=2.0, step=0)
    loss, _ = term(b)
    rho = torch.exp(torch.tensor(0.2))  # mean log-ratio of row 1 over its 2 trained tokens; the padding ignored
    assert float(loss.detach()) == pytest.approx(float(-(min(rho, 1.2) * 1.0 + 1.0 * -2.0) / 2))
    assert isinstance(algo().loss_terms[0], GSPOSurrogate)
    assert algo(loss="token").loss_terms[0].__class__.__name__ == "ClippedSurrogate"


@pytest.mark.parametrize("section,message", [({"gamma": 0}, "gamma"), ({"dp_world_size": 0}, "dp_world_size"),
                                             ({"beta": 1}, "beta")])
def test_bad_config_is_a_clear_error(section, message):
    with pytest.raises(ConfigError, match=message):
        load_config(algorithm={"name": "eapo", **section})


@pytest.mark.slow(ci=True)
def test_eapo_trains_two_steps_on_the_deep_research_workspace(tmp_path):
    from agentgym.trainers.rl import RLRun

    cfg = load_config(run_dir=str(tmp_path / "eapo"), seed=1, policy={"model": "tiny"}, rollout={"group_size": 3},
                      env={"id": "agentgym/DeepResearch-v0",
                           "kwargs": {"max_rounds": 3, "round_tokens": 24, "python": False}},
                      algorithm={"name": "eapo", "dp_world_size": 4}, logging={"tensorboard": False, "progress": False},
                      trainer={"steps": 2, "tasks_per_step": 2, "lr": 1e-3})
    run = RLRun(cfg, quiet=True)
    history = run.train()
    assert len(history) == 2 and all(h["samples"] % 4 == 0 and h["samples"] > 0 for h in history)
    trees = run.store.read_all()
    for tree in trees:
        for leaf in tree.leaves():
            path = tree.path(leaf)
            assert all(n.rebuild_context for n in path[1:])
            assert [n.credit_reward for n in path] == pytest.approx(
                [G ** (len(path) - t) * tree.leaf_reward(leaf) for t in range(1, len(path) + 1)])
