"""The Python interpreter env: tasks, scoring, the scripted expert, sandbox state, forks, bad input."""

import json

import pytest

import agentgym
from agentgym.envs.answers import as_number, grade, parse_number
from agentgym.envs.python.expert import python_expert
from agentgym.envs.python.tasks import GENERATORS, TaskFileError, load_jsonl
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutEngine

ENV = "agentgym/Python-v0"


def solve_rate(policy_fn, n, **env_kwargs):
    trees = RolloutEngine(ScriptedPolicy(policy_fn), lambda: agentgym.make(ENV, **env_kwargs), env_id=ENV).run(range(n))
    return sum(t.leaf_reward(t.leaves()[0]) for t in trees) / n, trees


@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_solves_at_least_99_percent_of_every_kind(split):
    rate, trees = solve_rate(python_expert, 300, difficulty="mixed", split=split)
    kinds = {t.task["kind"] for t in trees}
    assert kinds == set(GENERATORS)  # every kind appears
    assert rate >= 0.99, [t.task for t in trees if t.leaf_reward(t.leaves()[0]) < 1][:3]


def test_noop_policies_solve_none():
    for noop in (lambda ctx: "<answer>0</answer>", lambda ctx: "I am not sure."):
        rate, _ = solve_rate(noop, 60, difficulty="mixed")
        assert rate == 0.0


def test_same_seed_same_task_and_splits_are_disjoint():
    a, b = agentgym.make(ENV), agentgym.make(ENV)
    assert a.reset(seed=4)[0] == b.reset(seed=4)[0]
    train = {agentgym.make(ENV, difficulty="mixed").reset(seed=s)[0] for s in range(200)}
    test = {agentgym.make(ENV, difficulty="mixed", split="test").reset(seed=s)[0] for s in range(200)}
    assert not train & test


def test_state_persists_across_calls_and_forks_are_independent():
    env = agentgym.make(ENV)
    env.reset(seed=0)
    obs, *_ = env.step("<python>x = 20\nprint(x)</python>")
    assert "20" in obs
    fork = env.fork()
    env.step("<python>x = x + 1</python>")
    mine, *_ = env.step("<python>print(x)</python>")
    theirs, *_ = fork.step("<python>print(x * 2)</python>")
    assert "21" in mine and "40" in theirs  # each copy went its own way from x = 20
    env.close()
    fork.close()


@pytest.mark.parametrize("code, expect", [
    ("def f(:\n  pass", "SyntaxError"),
    ("x = 1\n" * 2_000_000, "limit"),
    ("", "empty"),
])
def test_bad_code_is_an_error_observation_and_the_episode_goes_on(code, expect):
    env = agentgym.make(ENV, limits={"max_turns": 5, "max_action_chars": 20_000_000})
    env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(f"<python>{code}</python>")
    assert expect in obs and not terminated and not truncated
    obs, *_ = env.step("<python>print(6*7)</python>")
    assert "42" in obs
    env.close()


def test_non_utf8_action_is_an_error_observation():
    env = agentgym.make(ENV)
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step(b"<python>print('\xff')</python>")
    assert "not valid UTF-8" in obs and not terminated and info["errors"] == 1
    env.close()


def test_hermes_variant_rejects_extra_keys_and_runs_code():
    env = agentgym.make("agentgym/PythonHermes-v0")
    env.reset(seed=0)
    call = {"name": "python", "arguments": {"code": "print(1)", "timeout": 1e9}}
    obs, *_ = env.step(f"<tool_call>{json.dumps(call)}</tool_call>")
    assert "limits and sessions are set by the environment" in obs
    obs, *_ = env.step('<tool_call>{"name": "python", "arguments": {"code": "print(2**10)"}}</tool_call>')
    assert "1024" in obs
    env.close()


def test_timeouts_and_crashes_are_observations():
    env = agentgym.make(ENV, sandbox={"wall_timeout_s": 1})
    env.reset(seed=0)
    obs, *_ = env.step("<python>while True: pass</python>")
    assert "[timeout]" in obs
    obs, *_ = env.step("<python>print('alive')</python>")
    assert "alive" in obs and "state" in obs and "lost" in obs
    env.close()


def test_answer_grading_forms():
    assert grade("<answer>1,234</answer>".replace("<answer>", "").replace("</answer>", ""), 1234)
    assert grade(r"the result is \boxed{3/4}", 0.75)
    assert grade("12.50 dollars", 12.5) and not grade("12.51", 12.5, abs_tol=0.005)
    assert grade("Paris.", "paris") and not grade("Lyon", "Paris")
    assert parse_number("x = -2e3") == -2000 and as_number(r"\frac{\pi}{2}") is None and as_number("$1,000") == 1000


def test_task_file_loader(tmp_path):
    good = tmp_path / "gsm.jsonl"
    good.write_text(json.dumps({"question": "2+2?", "answer": "reasoning... #### 4"}) + "\n"
                    + json.dumps({"problem": "Half of 3?", "solution": r"so \boxed{\frac{3}{2}}"}) + "\n")
    tasks = load_jsonl(good)
    assert [t["answer"] for t in tasks] == [4.0, 1.5]
    env = agentgym.make(ENV, task_file=str(good))
    env.reset(seed=0)
    assert env.task["question"] in ("2+2?", "Half of 3?")
    env.close()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "no answer here"}) + "\n")
    with pytest.raises(TaskFileError, match=r"bad.jsonl:1: missing field 'answer'"):
        load_jsonl(bad)
    with pytest.raises(TaskFileError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl")
