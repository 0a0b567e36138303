"""ScienceWorld env: gold paths solve every task, the fast step equals the package's own step, shared JVMs
keep episodes independent, a killed JVM is a typed error and reset recovers, nothing is left running."""

from __future__ import annotations

import os
import shutil

import pytest

scienceworld = pytest.importorskip("scienceworld", reason="the scienceworld package is not installed "
                                   "(pip install 'agentgym[scienceworld]')")
if shutil.which("java") is None:
    pytest.skip("no Java runtime (apt-get install openjdk-17-jre-headless)", allow_module_level=True)

from agentgym.envs.scienceworld import JVMConfig, JVMDiedError, SciWorldEnv, Simulator, task_names  # noqa: E402
from agentgym.envs.scienceworld.jvm import POOL  # noqa: E402
from agentgym.registry import make  # noqa: E402

LONG = {"max_turns": 1000}  # gold paths of some tasks are longer than the default 100 turns


def _java_children() -> list[int]:
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z" and comm == "java":
            found.append(int(pid))
    return found


def play_gold(env: SciWorldEnv, name: str, variation: int = 0) -> tuple[float, dict, int]:
    env.reset(seed=0, options={"task": {"name": name, "variation": variation}})
    total, info, steps = 0.0, {}, 0
    for steps, command in enumerate(env.gold_actions(), 1):
        _, reward, terminated, truncated, info = env.step(command)
        total += reward
        if terminated or truncated:
            break
    return total, info, steps


@pytest.fixture(scope="module")
def env():
    e = SciWorldEnv(limits=LONG)
    yield e
    e.close()


@pytest.mark.parametrize("name", ["find-living-thing", "use-thermometer", "power-component"])
def test_gold_path_scores_100(env, name):
    total, info, _ = play_gold(env, name)
    assert info["score"] == 100 and info["won"]
    assert total == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", task_names())
def test_every_task_gold_path_scores_100(env, name):
    total, info, _ = play_gold(env, name)
    assert info["score"] == 100 and info["won"], info
    assert total == pytest.approx(1.0)


def package_env(config: JVMConfig | None = None):
    """The package's own env, its JVM started with the same options as ours (JAVA_TOOL_OPTIONS reaches it)."""
    saved = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = " ".join((config or JVMConfig()).java_options())
    try:
        return scienceworld.ScienceWorldEnv("", envStepLimit=10**6)
    finally:
        if saved is None:
            del os.environ["JAVA_TOOL_OPTIONS"]
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = saved


def _package_trace(name: str, variation: int) -> tuple[list[str], list[tuple]]:
    pkg = package_env()
    try:
        pkg.load(name, variation, "", generateGoldPath=True)
        gold = pkg.get_gold_action_sequence()
        obs, info = pkg.reset()
        trace = [(obs, info["score"], False, info["moves"])]
        for command in gold:
            obs, reward, done, info = pkg.step(command)
            trace.append((obs, info["score"], done, info["moves"]))
            if done:
                break
        return gold, trace
    finally:
        pkg.close()


def _our_trace(name: str, variation: int, gold: list[str]) -> list[tuple]:
    sim = Simulator(JVMConfig(envs_per_jvm=1))  # a JVM of its own, loaded as the package does (load, reset)
    try:
        sim.load(name, variation, "", gold=True)
        sim.load(name, variation, "", gold=True)  # the package's reset() reloads with the gold flag
        first = sim.step("look around")
        trace = [(first.observation, first.score, False, first.moves)]
        for command in gold:
            r = sim.step(command)
            trace.append((r.observation, r.score, r.completed, r.moves))
            if r.completed:
                break
        return trace
    finally:
        sim.close()


@pytest.mark.parametrize("name", ["find-living-thing"])
def test_fast_step_identical_to_package_step(name):
    gold, expected = _package_trace(name, 0)
    assert _our_trace(name, 0, gold) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", task_names())
def test_fast_step_identical_to_package_step_every_task(name):
    gold, expected = _package_trace(name, 0)
    assert _our_trace(name, 0, gold) == expected


def test_hints_leave_the_world_as_it_was_and_draws_can_be_skipped():
    """Listing valid actions consumes none of the world's random numbers (the JVM-wide state is the same
    before and after); with package_random=False a step makes only the outcome's draws."""
    sim = Simulator(JVMConfig(envs_per_jvm=1))
    try:
        state = sim.jvm.state
        for replay in (True, False):
            sim.load("find-living-thing", 0, "", package_random=replay)
            sim.step("look around")
            before = sim.call("getNumMoves"), sim._call(state.save)
            actions = sim.valid_actions()
            assert "look around" in actions and len(actions) == len(set(actions)) > 10
            assert (sim.call("getNumMoves"), sim._call(state.save)) == before
        sim.load("find-living-thing", 0, "", package_random=True)
        sim.step("look around")
        replayed = sim._call(state.save).seed
        sim.load("find-living-thing", 0, "", package_random=False)
        sim.step("look around")
        assert sim._call(state.save).seed != replayed
        with pytest.raises(ValueError, match="package_random must be"):
            sim.load("boil", 0, "", package_random="sometimes")
    finally:
        sim.close()


@pytest.mark.slow
def test_hint_requests_do_not_change_a_random_world():
    """grow-fruit (bees): asking for valid actions before every command gives the same game as not asking,
    and both equal the package's own trace."""
    gold, expected = _package_trace("grow-fruit", 0)

    def play(ask: bool) -> list:
        env = SciWorldEnv(task="grow-fruit", variation=0, jvm={"envs_per_jvm": 1}, limits=LONG)
        try:
            env.reset(seed=0)
            trace = []
            for command in gold:
                if ask:
                    env.step("valid actions")
                obs, _, terminated, _, info = env.step(command)
                trace.append((obs, info["score"], terminated))
                if terminated:
                    break
            return trace
        finally:
            env.close()

    asked = play(True)
    assert asked == play(False)
    assert asked == [(obs.strip(), score, done) for obs, score, done, _ in expected[1:]]


def test_shared_jvm_episodes_do_not_disturb_each_other():
    """An episode interleaved with another simulator's loads (other task, 'easy' simplifications) and steps
    in the same JVM gives the same trace as alone: JVM-wide state is switched per simulator."""
    config = JVMConfig(envs_per_jvm=2)
    a, b = Simulator(config), Simulator(config)
    try:
        assert a.jvm is b.jvm
        a.load("use-thermometer", 1, "", gold=True)
        gold = a.gold_actions()

        def run(interleave: bool) -> list:
            a.load("use-thermometer", 1, "")
            trace = [a.step("look around")]
            for i, command in enumerate(gold):
                if interleave:
                    b.load("power-component", i % 3, "easy") if i % 4 == 0 else b.step("look around")
                trace.append(a.step(command))
            return trace

        alone, shared = run(False), run(True)
        assert alone == shared
        assert shared[-1].score == 100
    finally:
        a.close()
        b.close()
    assert not a.jvm.alive() and a.jvm.pid not in _java_children()


def test_hints_only_on_request_and_formats():
    env = make("agentgym/ScienceWorld-v0", task="find-living-thing", variation=3)
    try:
        obs, info = env.reset(seed=0)
        assert obs.startswith("ScienceWorld task find-living-thing, variation 3 (simplifications: none)\nTask Description:")
        assert "is called the" in obs
        assert info["task"] == {"name": "find-living-thing", "variation": 3, "simplifications": ""}
        obs, reward, terminated, truncated, info = env.step("valid actions")
        assert obs.startswith("Valid actions: ") and "look around" in obs and reward == 0 and not terminated
        assert "moves" not in info  # not a game move
        obs, *_ = env.step("look around")
        assert "Valid actions" not in obs
    finally:
        env.close()
    env = SciWorldEnv(task="find-living-thing", variation=3, tool_format="xml", show=("inventory",), hints=True)
    try:
        env.reset(seed=0)
        obs, _, _, _, info = env.step("<act>look around</act>")
        assert obs.startswith("<result>") and "In your inventory" in obs and "Valid actions: " in obs
        assert info["tool_calls"][0]["arguments"] == {"command": "look around"}
        obs, *_ = env.step("<act>look around")
        assert "never closed" in obs
        obs, *_ = env.step("<answer>done</answer>")
        assert "no final answer" in obs
    finally:
        env.close()


def test_hermes_tool_calls():
    env = make("agentgym/ScienceWorldHermes-v0", task="find-living-thing", variation=0)
    try:
        env.reset(seed=0)
        obs, *_ = env.step('<tool_call>{"name": "act", "arguments": {"command": "inventory"}}</tool_call>')
        assert obs.startswith("<tool_response>") and "In your inventory" in obs
        obs, *_ = env.step('<tool_call>{"name": "jump", "arguments": {}}</tool_call>')
        assert "unknown tool 'jump'" in obs
        obs, *_ = env.step('<tool_call>{"name": "act", "arguments": {"command": ""}}</tool_call>')
        assert "non-empty" in obs
        obs, *_ = env.step('<tool_call>{"name": "act", "arguments": {bad}}</tool_call>')
        assert "not valid JSON" in obs
    finally:
        env.close()


def test_splits_and_seeded_variations():
    env = SciWorldEnv(task="boil", split="test")
    try:
        test = env.variations("boil", "test")
        train, dev = env.variations("boil", "train"), env.variations("boil", "dev")
        assert not set(test) & set(train) and not set(dev) & set(train) and len(train + dev + test) == 30
        _, info = env.reset(seed=5)
        assert info["task"]["variation"] in test
        _, again = env.reset(seed=5)
        assert again["task"] == info["task"]
    finally:
        env.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"task": "boill"}, "Did you mean boil"),
    ({"split": "validation"}, "split must be one of"),
    ({"variation": -1}, "variation must be"),
    ({"simplifications": "easy,flying"}, "unknown simplification 'flying'"),
    ({"task": "power-component", "simplifications": "noElectricalAction"}, "needs electrical actions"),
    ({"tool_format": "json"}, "tool_format must be"),
    ({"show": ("valid",)}, "show: unknown item"),
    ({"jvm": {"heap": "lots"}}, "heap"),
    ({"jvm": {"threads": 4}}, "threads"),
    ({"package_random": "auto"}, "package_random must be"),
])
def test_bad_config_fails_before_any_jvm(kwargs, message):
    before = _java_children()
    with pytest.raises(ValueError, match=message):
        SciWorldEnv(**kwargs)
    assert _java_children() == before


def test_bad_variation_and_options_name_the_problem():
    env = SciWorldEnv(task="boil")
    try:
        with pytest.raises(ValueError, match=r"out of range for task 'boil' \(0..29\)"):
            env.reset(options={"task": {"variation": 30}})
        with pytest.raises(ValueError, match="unknown key"):
            env.reset(options={"task": {"nam": "boil"}})
    finally:
        env.close()


def test_missing_java_is_a_clear_error():
    from agentgym.envs.scienceworld import JavaNotFoundError

    env = SciWorldEnv(task="boil", jvm={"java": "/nonexistent/java"})
    with pytest.raises(JavaNotFoundError, match="openjdk-17-jre-headless"):
        env.reset(seed=0)
    env.close()


def test_killed_jvm_is_a_typed_error_and_reset_recovers():
    env = SciWorldEnv(task="find-living-thing", variation=0, jvm={"envs_per_jvm": 1})
    try:
        env.reset(seed=0)
        env.step("look around")
        killed = env._sim.jvm
        killed.kill()
        with pytest.raises(JVMDiedError, match="reset"):
            env.step("open door to kitchen")
        obs, _ = env.reset(seed=0)
        assert "is called the" in obs
        total, info, _ = play_gold(env, "find-living-thing")
        assert info["won"]
        replacement = env._sim.jvm
    finally:
        env.close()
    assert killed not in POOL.running() and not replacement.alive()
    assert replacement.pid not in _java_children() and killed.pid not in _java_children()


def test_close_leaves_no_jvm_and_fork_replays():
    before = _java_children()
    config = {"envs_per_jvm": 2, "heap": "384m"}  # a config of its own: no other test's JVM is shared
    envs = [SciWorldEnv(task="find-living-thing", jvm=config) for _ in range(3)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    started = [pid for pid in _java_children() if pid not in before]
    assert len(started) == 2  # 3 envs, 2 per JVM
    assert envs[0].fork() is None  # no state copy in ScienceWorld: the engine replays the prefix
    for e in envs:
        e.close()
        e.close()
    assert not set(_java_children()) & set(started)


def test_envs_sharing_a_jvm_step_from_threads():
    """The rollout engine steps envs in worker threads: two envs in one JVM, stepped concurrently, each
    get the same trace as when run one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    config = {"envs_per_jvm": 2, "heap": "448m"}  # its own JVM
    envs = [SciWorldEnv(task="find-living-thing", variation=v, jvm=config) for v in (0, 7)]

    def play(env: SciWorldEnv) -> list:
        obs, _ = env.reset(seed=0)
        trace = [obs]
        for command in env.gold_actions():
            obs, reward, terminated, truncated, info = env.step(command)
            trace.append((obs, reward, terminated, info["score"]))
            if terminated:
                break
        return trace

    try:
        sequential = [play(e) for e in envs]
        assert envs[0]._sim.jvm is envs[1]._sim.jvm
        with ThreadPoolExecutor(2) as pool:
            concurrent = list(pool.map(play, envs))
        assert concurrent == sequential
        assert all(trace[-1][3] == 100 for trace in concurrent)
    finally:
        for e in envs:
            e.close()
