"""The deep-research workspace: Markovian rounds rebuilt from (question, report, last action, observation),
stored token-exact as one node per round, a per-round token budget, a report cap, the viewer's memory, and
the mono-context ReAct twin on the same questions."""

from __future__ import annotations

import pytest

from agentgym.env import EnvLimits
from agentgym.envs.deep_research import DeepResearchEnv, DeepResearchReActEnv
from agentgym.envs.deep_research.expert import deep_research_expert
from agentgym.envs.web_search.expert import web_search_expert
from agentgym.envs.web_search.index import IndexCache
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.trajectory import trajectory_tokens

DR = "agentgym/DeepResearch-v0"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> IndexCache:
    return IndexCache(tmp_path_factory.mktemp("index"))


def dr_trees(tokenizer, cache, seeds, **env_kwargs):
    policy = ScriptedPolicy(deep_research_expert, tokenizer)
    engine = RolloutEngine(policy, lambda: DeepResearchEnv(split="test", index_cache=cache, **env_kwargs), env_id=DR,
                           config=RolloutConfig(deterministic=True))
    return engine.run(list(seeds))


def test_expert_rounds_are_markovian_token_exact_nodes(tokenizer, cache):
    trees = dr_trees(tokenizer, cache, range(25), round_tokens=700)
    rewards = [t.leaf_reward(t.leaves()[0]) for t in trees]
    assert sum(rewards) / len(rewards) >= 0.99
    for tree in trees:
        (leaf,) = tree.leaves()
        path = tree.path(leaf)
        assert len(path) >= 3 and all(n.rebuild_context for n in path)
        for node in path:
            # the context of each round is exactly its workspace: nothing from earlier rounds is appended
            assert tree.context_ids(node.id) == node.prefix_ids
            text = tokenizer.decode(node.prefix_ids)
            assert text.count("## Question") == 1 and tree.task["question"] in text
        # one training sample per round (EAPO)
        assert len(trajectory_tokens(tree, leaf)) == len(path)
        # the report evolves round by round and is what the viewer shows as memory
        memories = [n.observation.memory for n in path]
        assert all(m for m in memories) and len(set(memories)) >= 3
        assert path[1].observation.memory in tokenizer.decode(path[2].prefix_ids)
        # the per-round budget: the episode used more tokens than one round's budget, without truncation
        assert sum(len(n.action_ids) for n in path) > 700 and path[-1].terminated and not path[-1].truncated


def test_viewer_shows_the_report_per_round(tokenizer, cache):
    from rich.console import Console

    from agentgym.viewer.terminal import tree_renderable

    (tree,) = dr_trees(tokenizer, cache, [3])
    console = Console(record=True, width=200)
    console.print(tree_renderable(tree, limit=None))
    out = console.export_text()
    n_rounds = len(tree.path(tree.leaves()[0]))
    assert out.count("── memory: ") == n_rounds and "Chain so far" in out


def test_round_budget_is_per_round_not_accumulated(tokenizer, cache):
    limits = EnvLimits(max_turns=40, max_tokens_per_turn=64, max_tokens_per_episode=64)
    policy = ScriptedPolicy(lambda ctx: "<think>x</think><report>still looking</report><search>painter</search>",
                            tokenizer)
    engine = RolloutEngine(policy, lambda: DeepResearchEnv(limits=limits, index_cache=cache), env_id=DR)
    (tree,) = engine.run([0])
    leaf = tree.nodes[tree.leaves()[0]]
    assert leaf.truncated_reason == "max_turns" and len(tree.nodes) == 40
    assert sum(len(n.action_ids) for n in tree.nodes) > 64 * 5


@pytest.fixture
def env(cache):
    e = DeepResearchEnv(max_rounds=3, max_report_chars=200, index_cache=cache)
    e.reset(seed=0)
    yield e
    e.close()


def test_report_cap_missing_report_and_one_action_per_round(env):
    obs, _, _, _, info = env.step("<report>" + "r" * 500 + "</report><search>painter</search>")
    assert "cut to the limit of 200" in obs and len(info["observation"]["memory"]) == 200
    obs, _, _, _, info = env.step("<search>painter</search><open>person-000001</open>")
    assert "no <report></report>" in obs and "only the first of your 2 tool calls" in obs
    assert info["observation"]["memory"] == "r" * 200 and "This is the last round" in obs
    assert [c["name"] for c in info["tool_calls"]] == ["search"]


def test_python_tool_runs_in_the_sandbox(env):
    obs, _, _, _, info = env.step("<report>compute</report><python>print(6 * 7)</python>")
    assert "42" in obs.split("## Last observation")[1] and info["tool_calls"][0]["name"] == "python"
    clone = env.fork()
    obs2 = clone.step("<report>again</report><python>print(6 * 8)</python>")[0]
    assert "48" in obs2
    clone.close()


def test_answer_ends_the_episode_with_rewards_and_citations(env):
    q = env.task
    obs, reward, terminated, _, info = env.step(f"<report>done</report><answer>{q['answer']} [[1](https://nowhere.org)]</answer>")
    assert terminated and reward == 1.0 and info["em"] == 1.0 and info["citations"]["invalid"]


def test_round_limits_are_validated(cache):
    with pytest.raises(ValueError, match="max_rounds must be between 1 and 2048"):
        DeepResearchEnv(max_rounds=2049, index_cache=cache)
    assert DeepResearchEnv(max_rounds=2048, index_cache=cache).limits.max_turns == 2048
    with pytest.raises(TypeError, match="unknown option"):
        DeepResearchEnv(max_round=3, index_cache=cache)
    with pytest.raises(ValueError, match="hops must be"):
        DeepResearchEnv(hops=[2, 1], index_cache=cache)


def test_hops_reach_the_deep_research_questions(tokenizer, cache):
    trees = dr_trees(tokenizer, cache, range(6), hops=1, python=False)
    assert {t.task["hops"] for t in trees} == {1}
    assert all(t.leaf_reward(leaf) == 1.0 for t in trees for leaf in t.leaves())


def test_react_twin_asks_the_same_questions_in_one_growing_context(tokenizer, cache):
    for seed in range(5):
        a, b = DeepResearchEnv(index_cache=cache), DeepResearchReActEnv(index_cache=cache)
        assert a.reset(seed=seed)[1]["task"]["question"] == b.reset(seed=seed)[1]["task"]["question"]
    policy = ScriptedPolicy(web_search_expert, tokenizer)
    engine = RolloutEngine(policy, lambda: DeepResearchReActEnv(split="test", index_cache=cache),
                           env_id="agentgym/DeepResearchReAct-v0")
    trees = engine.run(list(range(5)))
    for tree in trees:
        (leaf,) = tree.leaves()
        path = tree.path(leaf)
        assert tree.leaf_reward(leaf) == 1.0 and not any(n.rebuild_context for n in path[1:])
        assert len(tree.context_ids(leaf)) > len(path[0].prefix_ids) + sum(len(n.action_ids) for n in path[:-1])
    assert "python" in DeepResearchReActEnv(index_cache=cache).toolset.names()


def test_hermes_format_rounds(cache):
    env = DeepResearchEnv(tool_format="hermes", index_cache=cache)
    env.reset(seed=0)
    obs, _, _, _, info = env.step('<think>go</think><report>plan</report>'
                                  '<tool_call>{"name": "search", "arguments": {"query": "painter", "k": 3}}</tool_call>')
    assert info["tool_calls"][0]["data"]["results"] and '<tool_call>{"name": "search"' in obs
    obs, _, _, _, info = env.step('<report>plan</report><tool_call>{"name": "search", "arguments": {bad}</tool_call>')
    assert info["tool_calls"][0]["error_type"] == "parse_error" and "not valid JSON" in obs
    env.close()
