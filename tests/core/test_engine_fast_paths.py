"""Envs that declare ``nonblocking = True`` are called on the engine's event loop (no thread hop per step),
with the same results, the same step bounds (checked once the call returns) and a way back to threads."""

from __future__ import annotations

import gc
import threading
import time

from agentgym.env import EnvLimits, TextEnv
from agentgym.env_calls import INLINE_BUDGET_S, INLINE_STRIKES
from agentgym.policies import ScriptedPolicy
from agentgym.policies.models import load_tokenizer
from agentgym.rendering import ChatRenderer
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.trajectory import Observation


class Counter(TextEnv):
    """Counts the actions; records which thread made each call."""

    threads: list[int] = []

    def __init__(self, limits=None):
        super().__init__(limits=limits or EnvLimits(max_turns=4))
        Counter.threads.append(threading.get_ident())

    def _reset(self, options):
        self.n = 0
        Counter.threads.append(threading.get_ident())
        return f"Start at {int(self.np_random.integers(0, 9))}.", {}

    def _step(self, action):
        self.n += 1
        Counter.threads.append(threading.get_ident())
        return f"Count {self.n}.", float(self.n), self.n == 3, {}


class InlineCounter(Counter):
    nonblocking = True


def run(env_cls, seeds, **cfg):
    policy = ScriptedPolicy(lambda context: "next", load_tokenizer("tiny"))
    Counter.threads = []
    return RolloutEngine(policy, env_cls, env_id="test/Counter", config=RolloutConfig(**cfg)).run(seeds)


def test_nonblocking_env_runs_on_the_loop_with_the_same_trees():
    threaded = run(Counter, range(5))
    worker_threads = set(Counter.threads)
    inline = run(InlineCounter, range(5))
    inline_threads = set(Counter.threads)
    # the first factory call probes the class in a worker thread; everything after runs on one thread, the loop's
    assert len(inline_threads) == 2 and Counter.threads.count(Counter.threads[0]) == 1
    assert threading.get_ident() not in worker_threads
    for a, b in zip(threaded, inline):
        assert [n.model_dump(exclude={"gen_time_s", "env_time_s"}) for n in a.nodes] == \
               [n.model_dump(exclude={"gen_time_s", "env_time_s"}) for n in b.nodes]
        assert a.leaf_reward(a.leaves()[0]) == 6.0


class SlowInline(Counter):
    nonblocking = True  # wrongly declared: every step sleeps

    def _step(self, action):
        time.sleep(INLINE_BUDGET_S * 2)
        return super()._step(action)


def test_inline_step_over_its_limit_fails_the_path_and_slow_classes_go_back_to_threads():
    (tree,) = run(SlowInline, [0], step_timeout_s=INLINE_BUDGET_S)
    (node,) = tree.nodes  # the first step overran its limit: the path ended there, typed as a timeout
    assert node.truncated_reason == "env_step_timeout"
    assert tree.meta["failed_paths"][0]["error_type"] == "timeout" and "inline" in tree.meta["failed_paths"][0]["error"]
    trees = run(SlowInline, range(INLINE_STRIKES + 2))
    steps_on_loop = [t for t in Counter.threads[1:]]
    assert all(t.leaf_reward(t.leaves()[0]) == 6.0 for t in trees)  # within the default limit: all complete
    assert len(set(steps_on_loop)) > 1, f"after {INLINE_STRIKES} slow calls the class must use worker threads"


def test_rollout_leaves_the_garbage_collector_as_it_found_it():
    assert gc.get_freeze_count() == 0
    run(InlineCounter, range(2))
    assert gc.get_freeze_count() == 0
    gc.freeze()  # someone else's freeze is left alone
    try:
        frozen = gc.get_freeze_count()
        run(InlineCounter, range(2))
        assert gc.get_freeze_count() > frozen * 0.9  # not unfrozen (a few frozen objects were freed meanwhile)
    finally:
        gc.unfreeze()


def test_memoised_observation_ids_equal_fresh_ones():
    tok = load_tokenizer("tiny")
    memo = ChatRenderer(tok)
    for role in ("user", "tool", "inline"):
        for after_eos in (False, True):
            for text in ("ok", "Count 1.", "  spaced\n\nlines ", "x" * 3000):
                obs = Observation(text=text, role=role)
                first = memo.observation_ids(obs, after_eos)
                first.append(-1)  # callers may mutate what they get: the memo must not change
                assert memo.observation_ids(obs, after_eos) == ChatRenderer(tok).observation_ids(obs, after_eos)
    assert memo.initial_prompt_ids("sys", "hi") == ChatRenderer(tok).initial_prompt_ids("sys", "hi")
    assert memo.initial_prompt_ids(None, "hi") == ChatRenderer(tok).initial_prompt_ids(None, "hi")


def test_incremental_token_check_still_catches_drift():
    import pytest

    from agentgym.policies.base import Generation
    from agentgym.rollout import TokenDriftError, _assert_token_exact
    from agentgym.trajectory import TrajectoryTree, Turn

    tree = TrajectoryTree(env_id="t", seed=0)
    first = tree.add(Turn(id=0, parent=None, rebuild_context=True, prefix_ids=[1, 2], action_ids=[3], logprobs=[0.0]))
    second = tree.add(Turn(id=0, parent=first.id, prefix_ids=[4, 5], action_ids=[6], logprobs=[0.0]))
    gen = Generation([6], [0.0], [0.0], "x", "length")
    _assert_token_exact(tree, second, [1, 2, 3, 4, 5], gen, stored=3)  # only [4, 5] compared
    _assert_token_exact(tree, second, [1, 2, 3, 4, 5], gen)  # the full walk agrees
    for bad in ([1, 2, 3, 4, 9], [1, 2, 3, 4], [1, 2, 3, 4, 5, 5]):
        with pytest.raises(TokenDriftError, match="stored context differs"):
            _assert_token_exact(tree, second, bad, gen, stored=3)
    with pytest.raises(TokenDriftError, match="stored context differs"):
        _assert_token_exact(tree, second, [0, 2, 3, 4, 5], gen)  # an old token: the walk (branch start) sees it
