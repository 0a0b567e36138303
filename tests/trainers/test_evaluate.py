"""Held-out evaluation (trainers/evaluate.py): several sampled episodes per task (avg@k), and the config
error when they would all be the same greedy episode."""

from __future__ import annotations

import pytest

from agentgym.config import ConfigError, load_config
from agentgym.registry import make
from agentgym.trainers.evaluate import evaluate


def test_several_samples_per_task_need_a_temperature():
    with pytest.raises(ConfigError, match=r"eval: .*samples \(3\) > 1 needs temperature > 0"):
        load_config(eval={"samples": 3, "temperature": 0.0})


@pytest.mark.parametrize("section", [{"temperature": -0.5}, {"samples": 0}, {"samples": 2, "temperature": -1.0}])
def test_a_bad_eval_value_fails_before_work_starts_naming_its_key(section):
    """Caught at load time, not by the rollout engine after training has run."""
    key = "temperature" if "temperature" in section else "samples"
    with pytest.raises(ConfigError, match=rf"eval\.{key}"):
        load_config(eval=section)


def test_eval_samples_k_episodes_per_task_and_averages_them(tiny_policy):
    cfg = load_config(env={"id": "agentgym/Calculator-v0"}, policy={"model": "tiny"},
                      eval={"tasks": 3, "samples": 4, "temperature": 1.0})
    trees, metrics = evaluate(tiny_policy, lambda: make("agentgym/Calculator-v0"), cfg, "avg4", progress=False)
    assert len(trees) == 3 and [len(t.leaves()) for t in trees] == [4, 4, 4]
    rewards = [t.leaf_reward(leaf) for t in trees for leaf in t.leaves()]
    assert metrics["n_trajectories"] == 12 and metrics["accuracy"] == pytest.approx(sum(r > 0 for r in rewards) / 12)
    assert len({tuple(t.nodes[leaf].action_ids) for t in trees for leaf in t.leaves()}) > 3  # really sampled


def test_sampled_eval_is_reproducible_with_the_same_weights(tiny_policy):
    """Paired before/after comparisons need it: the same weights sample the same episodes."""
    cfg = load_config(env={"id": "agentgym/Calculator-v0"}, policy={"model": "tiny"}, rollout={"deterministic": True},
                      eval={"tasks": 2, "samples": 3, "temperature": 1.0})
    runs = [evaluate(tiny_policy, lambda: make("agentgym/Calculator-v0"), cfg, f"r{i}", progress=False)[0] for i in range(2)]
    actions = [[tuple(n.action_ids) for t in trees for n in t.nodes] for trees in runs]
    assert actions[0] == actions[1] and len(set(actions[0])) > 1
