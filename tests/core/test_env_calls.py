"""What an env author can rely on from the rollout engine: clean actions, bounded calls, serialised calls
for envs that are not thread safe."""

from __future__ import annotations

import threading
import time

import pytest

from agentgym.env import EnvLimits, TextEnv
from agentgym.policies import ScriptedPolicy
from agentgym.policies.models import load_tokenizer
from agentgym.replay import export_sft
from agentgym.rollout import Branching, RolloutConfig, RolloutEngine

RELEASE = threading.Event()  # set at the end of the module: lets hung env calls' threads finish


@pytest.fixture(scope="module", autouse=True)
def _release_hung_threads():
    RELEASE.clear()
    yield
    RELEASE.set()


class Cave(TextEnv):
    """A plain-text game: "go north" twice wins. Records every action it receives."""

    received: list[str] = []

    def __init__(self, limits=None):
        super().__init__(limits=limits or EnvLimits(max_turns=3))

    def _reset(self, options):
        self.pos = 0
        return "You are in a cave. Exits: north.", {}

    def _step(self, action):
        Cave.received.append(action)
        if action == "go north":
            self.pos += 1
            return ("You reach daylight." if self.pos == 2 else "A tunnel. Exits: north."), float(self.pos == 2), \
                self.pos == 2, {}
        return "You can't see any such thing.", 0.0, False, {}


@pytest.mark.parametrize("name", ["embedded", "tiny"])
def test_env_receives_action_without_end_of_turn(name, tmp_path):
    tok = load_tokenizer(name)
    Cave.received = []
    policy = ScriptedPolicy(lambda context: "go north", tok)  # appends the eos token, as a model samples it
    trees = RolloutEngine(policy, Cave, env_id="test/Cave-v0").run([0, 1])
    assert Cave.received == ["go north"] * 4
    for tree in trees:
        (leaf,) = tree.leaves()
        assert tree.leaf_reward(leaf) == 1.0
        for node in tree.path(leaf):
            assert node.action_text == "go north"
            assert node.action_ids[-1] == tok.eos_token_id  # the stored ids stay what was sampled
            assert tok.decode(node.action_ids) == "go north" + tok.eos_token
    result = export_sft(trees, tmp_path, system_prompts=False)
    exported = result.messages_path.read_text()
    assert result.exported == 2 and tok.eos_token not in exported  # no doubled end-of-turn under a template
    assert '"content": "go north"' in exported


def _eos_prone_tiny_policy(tokenizer):
    """The tiny random model with a bias towards its end-of-turn token, so it ends turns by sampling it."""
    import torch

    from agentgym.policies.hf import HFPolicy
    from agentgym.policies.models import tiny_random_model

    model = tiny_random_model(seed=1)
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = 11.0  # about a third of the probability mass at each token
    model.lm_head = head
    model.eval()
    return HFPolicy(model, tokenizer)


def test_tiny_model_actions_reach_env_without_end_of_turn(tokenizer):
    import torch

    torch.manual_seed(0)
    Cave.received = []
    policy = _eos_prone_tiny_policy(tokenizer)
    engine = RolloutEngine(policy, lambda: Cave(EnvLimits(max_turns=3, max_tokens_per_turn=16)),
                           config=RolloutConfig(group_size=4, temperature=1.0))
    trees = engine.run([0, 1])
    nodes = [n for t in trees for n in t.nodes]
    ended = [n for n in nodes if n.finish_reason == "eos"]
    assert ended, "the biased tiny model should end some turns with its eos token"
    for node in nodes:
        assert tokenizer.eos_token not in node.action_text
        suffix = tokenizer.eos_token if node.finish_reason == "eos" else ""
        assert tokenizer.decode(node.action_ids) == node.action_text + suffix
    assert not any(tokenizer.eos_token in a for a in Cave.received)
    stepped = [n.action_text for n in nodes if n.observation is not None and n.action_text.strip()]
    assert sorted(Cave.received) == sorted(stepped)  # (an empty action gets an error observation instead)


# ---- thread safety ---------------------------------------------------------------------------------
class Counting(TextEnv):
    """Measures how many of its calls run at the same moment, across all instances."""

    thread_safe = True
    lock = threading.Lock()
    active = 0
    peak = 0

    def __init__(self):
        super().__init__(limits=EnvLimits(max_turns=3))

    @classmethod
    def _enter(cls):
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        time.sleep(0.02)  # a shared parser would be corrupted by an overlapping call here
        with cls.lock:
            cls.active -= 1

    def _reset(self, options):
        self._enter()
        return "start", {}

    def _step(self, action):
        self._enter()
        return "ok", 0.0, False, {}


class Unsafe(Counting):
    thread_safe = False


@pytest.mark.parametrize("cls,serialised", [(Unsafe, True), (Counting, False)])
def test_env_declaring_not_thread_safe_never_sees_two_calls_at_once(cls, serialised):
    cls.peak = 0
    policy = ScriptedPolicy(lambda context: "wait", load_tokenizer("tiny"))
    RolloutEngine(policy, cls, config=RolloutConfig(group_size=8)).run([0])
    if serialised:
        assert cls.peak == 1
    else:  # the control: the same episodes do overlap when the env allows it
        assert cls.peak > 1


# ---- every env call is bounded -----------------------------------------------------------------------
TIMEOUT = 2.0


class Faulty(TextEnv):
    """Fails in one chosen call: ``mode`` is "factory", "reset-hang", "fork-hang", "fork-raise" or
    "replay-hang" (the env made for a prefix replay hangs in reset)."""

    made = 0
    can_fork = True  # fork() is tried; returning None still means "replay the prefix"

    def __init__(self, mode: str):
        Faulty.made += 1
        if mode == "factory":
            raise RuntimeError("missing game file")
        super().__init__(limits=EnvLimits(max_turns=2))
        self.mode, self.serial = mode, Faulty.made

    def _reset(self, options):
        if self.mode == "reset-hang" or (self.mode == "replay-hang" and self.serial > 1):
            RELEASE.wait(60)
        return "start", {}

    def _step(self, action):
        return "ok", 1.0, self.turn >= 2, {}

    def fork(self):
        if self.mode == "fork-hang":
            RELEASE.wait(60)
        if self.mode == "fork-raise":
            raise OSError("cannot copy the game process")
        return None  # replay the prefix


class BranchFirstTurn:
    """One branch, at the first root turn sampled."""

    def __init__(self):
        self.branched = False

    def branches(self, turn):
        if turn.node.parent is None and not self.branched:
            self.branched = True
            return Branching(1)
        return Branching()


@pytest.mark.parametrize("mode,stage,error_type", [
    ("factory", "factory", "infra_error"),
    ("reset-hang", "reset", "timeout"),
    ("fork-hang", "fork", "timeout"),
    ("fork-raise", "fork", "infra_error"),
    ("replay-hang", "replay", "timeout"),
])
def test_failing_env_call_ends_only_its_path_within_the_timeout(mode, stage, error_type):
    Faulty.made = 0
    policy = ScriptedPolicy(lambda context: "act", load_tokenizer("tiny"))
    config = RolloutConfig(group_size=1, max_trajectories=2, env_timeout_s=TIMEOUT, step_timeout_s=TIMEOUT)
    engine = RolloutEngine(policy, lambda: Faulty(mode), config=config, strategy=BranchFirstTurn())
    start = time.monotonic()
    (tree,) = engine.run([0])
    assert time.monotonic() - start < TIMEOUT + 1.0
    (failure,) = tree.meta["failed_paths"]
    assert (failure["stage"], failure["error_type"]) == (stage, error_type)
    if mode == "factory":
        assert "missing game file" in failure["error"] and not tree.nodes
    if stage in ("fork", "replay"):  # the parent path went on to finish its episode
        (leaf,) = tree.leaves()
        assert tree.leaf_reward(leaf) == 2.0 and failure["path"] == 1 and failure["node"] == 0


def test_step_that_raises_is_recorded_as_typed_failure():
    class Crashing(Cave):
        def _step(self, action):
            raise ValueError("parser state corrupted")

    policy = ScriptedPolicy(lambda context: "go north", load_tokenizer("tiny"))
    (tree,) = RolloutEngine(policy, Crashing, config=RolloutConfig(group_size=2)).run([0])
    failures = tree.meta["failed_paths"]
    assert [(f["stage"], f["error_type"]) for f in failures] == [("step", "infra_error")] * 2
    assert all("parser state corrupted" in f["error"] for f in failures)
    assert all(n.tool_calls[0].error_type == "infra_error" for n in tree.nodes)


def test_bad_info_key_ends_the_path_naming_env_and_key():
    class BadInfo(Cave):
        def _step(self, action):
            return "ok", 0.0, False, {"tool_calls": [{"name": "look", "error_type": "exploded"}]}

    policy = ScriptedPolicy(lambda context: "look", load_tokenizer("tiny"))
    (tree,) = RolloutEngine(policy, BadInfo, env_id="test/BadInfo-v0").run([0])
    (failure,) = tree.meta["failed_paths"]
    assert failure["stage"] == "step" and failure["error_type"] == "infra_error"
    assert "env test/BadInfo-v0: step() returned a bad info['tool_calls'][0]['error_type']" in failure["error"]


def test_textenv_fork_defaults_to_replaying_the_prefix():
    class Counter(TextEnv):
        def _reset(self, options):
            self.n = 0
            return "0", {}

        def _step(self, action):
            self.n += 1
            return str(self.n), 0.0, self.n >= 3, {}

    env = Counter()
    env.reset(seed=0)
    assert env.fork() is None and not env.can_fork
    policy = ScriptedPolicy(lambda context: "inc", load_tokenizer("tiny"))
    (tree,) = RolloutEngine(policy, Counter, config=RolloutConfig(max_trajectories=2),
                            strategy=BranchFirstTurn()).run([0])
    assert len(tree.leaves()) == 2 and "failed_paths" not in tree.meta
    for leaf in tree.leaves():  # the replayed branch continues from the same state as its sibling
        assert [n.observation.text for n in tree.path(leaf)] == ["1", "2", "3"]
