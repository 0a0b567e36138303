"""Curriculum sampling (trainers/curriculum.py): success estimates, weights and draws checked against
hand-computed values; checkpointed state; a run that uses it trains and resumes with the same tasks."""

from __future__ import annotations

import numpy as np
import pytest

from agentgym.config import ConfigError, load_config
from agentgym.rollout import Task
from agentgym.trainers.curriculum import CurriculumConfig, DifficultyCurriculum
from agentgym.trajectory import TrajectoryTree, Turn


def tree(name: str | None, rewards: list[float], difficulty: int | None = None) -> TrajectoryTree:
    """A tree with one single-turn trajectory per return."""
    task = {} if name is None else {"name": name, **({"difficulty": difficulty} if difficulty is not None else {})}
    t = TrajectoryTree(env_id="test", seed=0, task=task)
    for r in rewards:
        leaf = t.add(Turn(id=0, parent=None, reward=r, terminated=True))
        t.final_rewards[leaf.id] = r
    return t


def test_success_rate_prior_and_weights_hand_computed():
    cur = DifficultyCurriculum(CurriculumConfig(window=4, prior=2.0, min_weight=0.01), seed=0)
    cur.observe([tree("easy", [1, 1, 1], difficulty=1), tree("hard", [0, 0, 1, 0, 0, 0], difficulty=3),
                 tree("plain", [1, 0])])
    # levels 1 and 3 of max 3: priors 1 - 1/4 = 0.75 and 1 - 3/4 = 0.25; no level: 0.5
    assert cur.prior_rate("easy") == 0.75 and cur.prior_rate("hard") == 0.25 and cur.prior_rate("plain") == 0.5
    # easy: 3 successes of 3, +2*0.75 -> 4.5/5; hard: window 4 keeps [1,0,0,0] -> (1+0.5)/6; plain: (1+1)/4
    assert cur.success_rate("easy") == pytest.approx(0.9)
    assert cur.success_rate("hard") == pytest.approx(0.25)
    assert cur.success_rate("plain") == pytest.approx(0.5)
    assert cur.weights() == pytest.approx({"easy": 0.9 * 0.1 + 0.01, "hard": 0.25 * 0.75 + 0.01, "plain": 0.26})


def test_no_prior_is_the_plain_recent_rate_and_unnamed_tasks_are_ignored():
    cur = DifficultyCurriculum(CurriculumConfig(window=3, prior=0.0), seed=0)
    cur.observe([tree("a", [1, 0, 1, 1]), tree(None, [1])])
    assert list(cur.outcomes) == ["a"] and list(cur.outcomes["a"]) == [0, 1, 1]
    assert cur.success_rate("a") == pytest.approx(2 / 3)
    assert cur.success_rate("unseen") == 0.5  # nothing known, no prior


def test_success_threshold_is_the_trajectory_return():
    cur = DifficultyCurriculum(CurriculumConfig(success_reward=0.5, prior=0.0), seed=0)
    cur.observe([tree("a", [0.49, 0.5, 0.9])])
    assert list(cur.outcomes["a"]) == [0, 1, 1]


def test_draws_follow_the_weights_keep_explored_seeds_and_are_reproducible():
    cfg = CurriculumConfig(prior=0.0, explore=0.25, min_weight=0.01)
    cur = DifficultyCurriculum(cfg, seed=3)
    seeds = list(range(100, 108))
    assert cur.tasks(0, seeds) == seeds  # nothing seen: the env's own choice
    cur.observe([tree("solved", [1] * 8), tree("frontier", [1, 0] * 4), tree("hopeless", [0] * 8)])
    picked = cur.tasks(5, seeds)
    assert picked[:2] == seeds[:2]  # ceil(0.25 * 8) = 2 seeds stay free
    assert all(isinstance(t, Task) for t in picked[2:]) and [t.seed for t in picked[2:]] == seeds[2:]
    assert picked == cur.tasks(5, seeds)  # a function of (seed, step, statistics)
    # weights 0.01, 0.26, 0.01 (sorted: frontier, hopeless, solved): the draw is numpy's with those p
    rng = np.random.default_rng([3, 5, 0x5EED])
    expected = rng.choice(3, size=6, p=np.array([0.26, 0.01, 0.01]) / 0.28)
    assert [t.task["name"] for t in picked[2:]] == [["frontier", "hopeless", "solved"][i] for i in expected]
    many = [t.task["name"] for s in range(200) for t in cur.tasks(s, seeds)[2:]]
    assert many.count("frontier") / len(many) == pytest.approx(0.26 / 0.28, abs=0.03)


def test_state_round_trip():
    cfg = CurriculumConfig(window=2)
    cur = DifficultyCurriculum(cfg, seed=0)
    cur.observe([tree("a", [1, 0, 1], difficulty=2)])
    fresh = DifficultyCurriculum(cfg, seed=0)
    fresh.load_state_dict(cur.state_dict())
    assert fresh.weights() == cur.weights() and fresh.outcomes["a"].maxlen == 2
    assert fresh.tasks(4, [1, 2, 3, 4]) == cur.tasks(4, [1, 2, 3, 4])


@pytest.mark.parametrize("section, message", [
    ({"window": 0}, "window"), ({"explore": 1.5}, "explore"), ({"min_weight": 0}, "min_weight"),
    ({"windw": 4}, "windw"),
])
def test_bad_config_names_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        load_config(algorithm={"name": "curriculum_grpo", **section})


def test_run_trains_with_curriculum_and_resumes_its_state(tmp_path):
    """Android's templates through RLRun with the tiny model: step 1 draws named templates from step 0's
    outcomes, and the sampler's statistics come back from the checkpoint."""
    from agentgym.trainers.rl import RLRun

    cfg = load_config(run_dir=str(tmp_path / "run"), seed=1, env={"id": "agentgym/Android-v0",
                      "limits": {"max_turns": 1, "max_tokens_per_turn": 8}},
                      policy={"model": "tiny"}, rollout={"group_size": 2, "deterministic": True},
                      algorithm={"name": "curriculum_grpo", "explore": 0.5},
                      logging={"tensorboard": False, "progress": False},
                      trainer={"steps": 2, "tasks_per_step": 2, "checkpoint_every": 1})
    run = RLRun(cfg, quiet=True)
    history = run.train()
    sampler = run.algorithm.task_sampler
    assert history[-1]["curriculum_tasks"] == len(sampler.outcomes) >= 1
    assert sum(len(v) for v in sampler.outcomes.values()) == 2 * 2 * 2  # 2 steps x 2 tasks x 2 episodes
    trees = run.store.read_all()
    step1 = [t for t in trees if t.id.startswith("train-000001")]
    assert step1[1].task["name"] in {n for n in sampler.outcomes}  # the drawn half names a seen template
    resumed = RLRun(cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"steps": 3})}),
                    resume=True, quiet=True)
    assert resumed.start_step == 2
    assert resumed.algorithm.task_sampler.state_dict() == sampler.state_dict()
