"""The package's own tests, as its author would write them (run with the package installed)."""

import gymnasium
import pytest

import agentgym
from agentgym.policies import ScriptedPolicy
from agentgym.policies.models import load_tokenizer
from agentgym.rollout import RolloutEngine


def test_envs_are_registered_by_the_entry_point():
    assert {"example/GuessNumber-v0", "example/Glossary-v0"} <= set(agentgym.list_envs("example"))
    env = gymnasium.make("example/GuessNumber-v0")  # plain Gymnasium works after `import agentgym`
    obs, _ = env.reset(seed=3)
    assert "between 1 and 100" in obs


def test_guess_game_answers_hints_and_rejects_non_numbers():
    env = agentgym.make("example/GuessNumber-v0")
    env.reset(seed=0, options={"task": {"secret": 42}})
    assert env.step("50")[0] == "Lower."
    assert env.step("a big one")[0].startswith("Say a number")
    obs, reward, terminated, _, _ = env.step("42")
    assert (obs, reward, terminated) == ("Correct!", 1.0, True)


def test_glossary_tool_errors_are_observations():
    env = agentgym.make("example/Glossary-v0")
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<define>nonsense</define>")
    assert "No entry for 'nonsense'" in obs and info["tool_calls"][0]["error_type"] == "tool_error"


@pytest.mark.parametrize("env_id,expert", [
    ("example/GuessNumber-v0", "agentgym_example_envs.guess:bisect"),
    ("example/Glossary-v0", "agentgym_example_envs.glossary:look_up_then_count"),
])
def test_experts_solve_every_task_through_the_rollout_engine(env_id, expert):
    policy = ScriptedPolicy.from_spec(expert, tokenizer=load_tokenizer("embedded"))
    trees = RolloutEngine(policy, lambda: agentgym.make(env_id), env_id=env_id).run(range(5))
    assert [t.leaf_reward(t.leaves()[0]) for t in trees] == [1.0] * 5
