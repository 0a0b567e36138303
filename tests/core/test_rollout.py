"""The rollout engine: trees, batching, token-exactness, budgets, timeouts, failures, branching."""

import asyncio
import time

import pytest

import agentgym
from agentgym.env import EnvLimits, TextEnv
from agentgym.envs.calculator.expert import calculator_expert
from agentgym.policies import ScriptedPolicy
from agentgym.policies.base import Generation
from agentgym.rollout import Branching, RolloutConfig, RolloutEngine, RolloutError, Task, TokenDriftError
from agentgym.trajectory import trajectory_tokens

CALC = "agentgym/Calculator-v0"


def calc_engine(policy, **cfg):
    return RolloutEngine(policy, lambda: agentgym.make(CALC), env_id=CALC, config=RolloutConfig(**cfg))


def test_scripted_expert_solves_calculator(tokenizer):
    trees = calc_engine(ScriptedPolicy(calculator_expert, tokenizer)).run(range(12))
    assert len(trees) == 12
    for tree in trees:
        (leaf,) = tree.leaves()
        assert tree.leaf_reward(leaf) == 1.0
        path = tree.path(leaf)
        assert len(path) == 2 and path[0].tool_calls[0].name in ("calculator", "convert")
        assert path[-1].terminated and tree.task["question"] in tree.initial_observation.text
        ids, mask, _ = trajectory_tokens(tree, leaf)[0]
        assert ids == tree.context_ids(leaf) + path[-1].action_ids
        assert sum(mask) == sum(len(n.action_ids) for n in path)


class RecordingPolicy:
    """Wraps a policy and records every batch and generation it served."""

    def __init__(self, inner):
        self.inner, self.tokenizer, self.version = inner, inner.tokenizer, 0
        self.batches, self.generations = [], []

    def generate(self, requests):
        self.batches.append(len(requests))
        gens = self.inner.generate(requests)
        self.generations += [(r.prompt_ids, g) for r, g in zip(requests, gens)]
        return gens

    async def agenerate(self, requests):
        return await asyncio.to_thread(self.generate, requests)

    def close(self):
        pass


def test_tiny_model_rollout_is_token_exact_and_batched(tiny_policy):
    policy = RecordingPolicy(tiny_policy)
    engine = RolloutEngine(policy, lambda: agentgym.make(CALC, limits=EnvLimits(max_turns=3, max_tokens_per_turn=24)),
                           env_id=CALC, config=RolloutConfig(group_size=2, temperature=1.0))
    trees = engine.run(range(6))
    assert max(policy.batches) > 1, "generation must be batched across episodes"
    sampled = {tuple(prompt) + tuple(g.token_ids): g for prompt, g in policy.generations}
    drift_seen = False
    for tree in trees:
        assert len(tree.roots()) == 2
        for node in tree.nodes:
            key = tuple(tree.context_ids(node.id)) + tuple(node.action_ids)
            gen = sampled[key]  # the stored context + action is exactly one sampled generation
            assert node.logprobs == gen.logprobs and node.entropies == gen.entropies
            text = tiny_policy.tokenizer.decode(node.action_ids)
            drift_seen |= tiny_policy.tokenizer.encode(text, add_special_tokens=False) != node.action_ids
    assert drift_seen, "random sampling should produce ids that re-tokenising would change"
    assert engine.stats["generated_tokens"] > 0


class DriftingPolicy(ScriptedPolicy):
    def _one(self, req):
        g = super()._one(req)
        g.token_exact = False
        return g


def test_text_only_backend_is_refused(tokenizer):
    with pytest.raises(RolloutError) as err:
        calc_engine(DriftingPolicy(calculator_expert, tokenizer)).run([0])
    assert isinstance(err.value.__cause__, TokenDriftError)


class FailingPolicy(ScriptedPolicy):
    def generate(self, requests):
        raise ConnectionError("model server down")


def test_policy_failure_is_surfaced(tokenizer):
    with pytest.raises(RolloutError, match="model server down"):
        calc_engine(FailingPolicy(calculator_expert, tokenizer)).run([0, 1])


import threading

RELEASE = threading.Event()


class SlowEnv(TextEnv):
    """Hangs in step for seed 0 (until the test releases it); raises for seed 1; answers at once otherwise."""

    def _reset(self, options):
        return "go", {}

    def reset(self, *, seed=None, options=None):
        self.which = seed
        return super().reset(seed=seed, options=options)

    def _step(self, action):
        if self.which == 0:
            RELEASE.wait(60)
        if self.which == 1:
            raise RuntimeError("env bug")
        return "done", 1.0, True, {}


def test_hung_and_crashing_env_steps_do_not_stall_the_batch(tokenizer):
    engine = RolloutEngine(ScriptedPolicy(lambda ctx: "hello", tokenizer), SlowEnv, env_id="slow",
                           config=RolloutConfig(step_timeout_s=0.5))
    try:
        trees = engine.run(range(6))  # returns although one env step never does
    finally:
        RELEASE.set()
    hung, crashed = trees[0].nodes[0], trees[1].nodes[0]
    assert hung.truncated_reason == "env_step_timeout" and hung.tool_calls[-1].error_type == "timeout"
    assert crashed.truncated_reason == "env_error" and "env bug" in crashed.tool_calls[-1].error
    assert all(t.leaf_reward(t.leaves()[0]) == 1.0 for t in trees[2:])


def test_episode_token_budget_truncates(tokenizer):
    policy = ScriptedPolicy(lambda ctx: "<calculator>1+1</calculator>", tokenizer)
    limits = EnvLimits(max_turns=50, max_tokens_per_turn=64, max_tokens_per_episode=40)
    engine = RolloutEngine(policy, lambda: agentgym.make(CALC, limits=limits), env_id=CALC)
    (tree,) = engine.run([0])
    leaf = tree.nodes[tree.leaves()[0]]
    assert leaf.truncated and leaf.truncated_reason == "max_tokens_per_episode"
    assert sum(len(n.action_ids) for n in tree.nodes) <= 40


def test_turn_limit_truncates(tokenizer):
    policy = ScriptedPolicy(lambda ctx: "<calculator>1+1</calculator>", tokenizer)
    (tree,) = calc_engine(policy).run([0])
    leaf = tree.nodes[tree.leaves()[0]]
    assert leaf.truncated_reason == "max_turns" and len(tree.nodes) == 4


async def test_blocking_env_runs_off_the_event_loop(tokenizer):
    class Blocking(TextEnv):
        def _reset(self, options):
            return "go", {}

        def _step(self, action):
            time.sleep(0.5)  # blocking work: must not freeze the loop
            return "ok", 0.0, True, {}

    ticks = 0

    async def heartbeat():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    hb = asyncio.create_task(heartbeat())
    engine = RolloutEngine(ScriptedPolicy(lambda c: "x", tokenizer), Blocking, env_id="blocking")
    await engine.arun(range(4))
    hb.cancel()
    assert ticks >= 20  # the loop kept running during ~0.5 s of blocking steps


class BranchEveryToolResult:
    """Test strategy: one branch of every turn that follows a tool result."""

    def branches(self, turn):
        return Branching(1, signal=0.42) if turn.previous == "tool" else Branching()


@pytest.mark.parametrize("forkable", [True, False])
def test_branching_shares_prefix_and_forks_env(tokenizer, forkable):
    def factory():
        env = agentgym.make(CALC)
        if not forkable:
            env.fork = lambda: None  # forces the replay path
        return env

    engine = RolloutEngine(ScriptedPolicy(calculator_expert, tokenizer), factory, env_id=CALC,
                           config=RolloutConfig(group_size=2, max_trajectories=3), strategy=BranchEveryToolResult())
    (tree,) = engine.run([Task(seed=5)])
    assert len(tree.leaves()) == 3  # 2 episodes + 1 branch, capped by max_trajectories
    (branch,) = [n for n in tree.nodes if n.branch_entropy is not None]
    source = tree.nodes[branch.branched_from]
    assert branch.branch_entropy == 0.42 and branch.parent == source.parent
    assert tree.context_ids(branch.id) == tree.context_ids(source.id)  # shared prefix, stored once
    assert all(tree.leaf_reward(leaf) == 1.0 for leaf in tree.leaves())  # the forked env answered correctly


def test_max_concurrent_tasks_bounds_the_envs_alive_at_once(tokenizer):
    """A heavy env (a browser context each) must not be opened once per task all at once."""
    alive, peak = [0], [0]

    class Counted:
        def __init__(self):
            self.env = agentgym.make(CALC)
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])

        def __getattr__(self, name):
            return getattr(self.env, name)

        def close(self):
            alive[0] -= 1
            self.env.close()

    def run(bound):
        alive[0] = peak[0] = 0
        engine = RolloutEngine(ScriptedPolicy(calculator_expert, tokenizer), Counted, env_id=CALC,
                               config=RolloutConfig(group_size=2, max_concurrent_tasks=bound))
        trees = engine.run(range(9))
        assert [t.seed for t in trees] == list(range(9))  # results stay in task order
        assert all(t.leaf_reward(leaf) == 1.0 for t in trees for leaf in t.leaves())
        return peak[0]

    assert run(2) <= 2 * 2  # 2 tasks x group of 2 episodes
    assert run(None) > 4  # unbounded: more than that were open together


def test_max_concurrent_tasks_must_be_positive():
    with pytest.raises(ValueError, match="max_concurrent_tasks"):
        RolloutConfig(max_concurrent_tasks=0)
