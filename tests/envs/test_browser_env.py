"""MiniWoB++ in headless Chromium: every task used here is solved by the scripted expert; observations,
actions and their errors, screenshots, seeding, concurrent envs from threads, and the faults: a hung
page, a page that never loads and a killed browser are typed errors, and the next reset works."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentgym.envs.browser.session import missing_requirements

if why := missing_requirements():
    pytest.skip(f"browser env tests need Chromium, playwright and miniwob: {why}", allow_module_level=True)

from agentgym.envs.browser import DEFAULT_TASKS, BrowserCrashed, BrowserError, BrowserTimeout, MiniWoBEnv  # noqa: E402
from agentgym.envs.browser.expert import miniwob_expert, parse_page  # noqa: E402
from agentgym.envs.browser.session import MANAGER, BrowserManager  # noqa: E402

pytestmark = pytest.mark.browser


def run(env: MiniWoBEnv, seed: int, act=miniwob_expert, task: str | None = None, max_steps: int = 12):
    """One episode of `act(context) -> action`; returns (reward, last info, actions)."""
    obs, _ = env.reset(seed=seed, options={"task": task} if task else None)
    context, actions = f"{env.system_prompt()}\n{obs}", []
    for _ in range(max_steps):
        action = act(context)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        context += action + obs
        if terminated or truncated:
            return reward, info, actions
    raise AssertionError("episode did not end")


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    children.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def chromium_pids() -> list[int]:
    """This process's Chromium processes (any kind), found through the process tree, not by name alone."""
    out = []
    for pid in descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"chromium" in f.read().split(b"\0")[0]:
                    out.append(pid)
        except OSError:
            continue
    return out


def browser_main_pid() -> int:
    pids = set(chromium_pids())
    parents = {}
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            parents[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
    roots = [pid for pid in pids if parents[pid] not in pids]
    assert len(roots) == 1, roots
    return roots[0]


@pytest.fixture(scope="module")
def env():
    env = MiniWoBEnv()
    yield env
    env.close()


@pytest.mark.parametrize("task", DEFAULT_TASKS)
def test_every_task_used_is_solved_by_the_scripted_expert(env, task):
    for seed in range(3):
        reward, info, actions = run(env, seed, task=task)
        assert reward == 1.0 and info["success"] and info["raw_reward"] == 1.0, (task, seed, actions)
        assert info["task"]["name"] == task


def test_a_wrong_click_ends_the_episode_with_raw_reward_minus_one(env):
    obs, _ = env.reset(seed=0, options={"task": "click-button"})
    task, shown = parse_page(obs)
    wanted = task.split('"')[1]
    wrong = next(e for e in shown if e.tag == "button" and e.text != wanted)
    obs, reward, terminated, truncated, info = env.step(json.dumps({"action_type": "click", "ref": wrong.ref}))
    assert terminated and reward == -1.0 and info["success"] is False and "failed" in obs


def test_observation_shows_values_focus_and_checkbox_state(env):
    obs, info = env.reset(seed=3, options={"task": "enter-text"})
    assert obs.startswith('Task: Enter "') and info["observation"]["images"] == []
    field = next(e for e in parse_page(obs)[1] if e.tag == "input:text")
    obs, reward, terminated, _, info = env.step(f'type({field.ref}, "abc")')
    assert not terminated and reward == 0.0 and not info["errors"]
    assert f'[{field.ref}] input:text id=tt value="abc" (focused)' in obs  # same ref on the next page
    obs, *_ = env.step(f'type({field.ref}, "de")')
    assert 'value="abcde"' in obs  # typing goes at the end of what the field holds
    action = miniwob_expert(obs)  # the expert replaces the wrong text, then submits
    assert json.loads(action) == {"action_type": "type", "ref": field.ref, "text": info["task"]["utterance"].split('"')[1],
                                  "clear": True}
    obs, *_ = env.step(action)
    _, reward, terminated, _, _ = env.step(miniwob_expert(obs))
    assert terminated and reward == 1.0
    obs, _ = env.reset(seed=0, options={"task": "click-checkboxes"})
    box = next(e for e in parse_page(obs)[1] if e.tag == "input:checkbox")
    assert "unchecked" in box.flags
    obs, *_ = env.step(json.dumps({"action_type": "click", "ref": box.ref}))
    assert "checked" in next(e for e in parse_page(obs)[1] if e.ref == box.ref).flags


def test_actions_as_json_calls_or_tool_calls_are_the_same(env):
    obs, _ = env.reset(seed=5, options={"task": "click-tab"})
    results = []
    for style in ('{{"action_type": "click", "ref": {ref}}}', "I will click it.\nclick({ref})",
                  '<tool_call>{{"name": "click", "arguments": {{"ref": {ref}}}}}</tool_call>'):
        obs, _ = env.reset(seed=5, options={"task": "click-tab"})
        task, shown = parse_page(obs)
        target = next(e for e in shown if e.text == task.removeprefix("Click on ").rstrip("."))
        results.append(env.step(style.format(ref=target.ref))[1])
    assert results == [1.0, 1.0, 1.0]


def test_malformed_actions_are_error_observations_and_the_episode_goes_on(env):
    env.reset(seed=0, options={"task": "choose-list"})
    cases = [("nothing to do here", "No action found"),
             ('{"ref": 2}', 'no "action_type"'),
             ('{"action_type": "fly"}', "Unknown action 'fly'"),
             ('{"action_type": "click"}', 'click needs "ref"'),
             ('{"action_type": "click", "ref": "two"}', "ref"),
             ('{"action_type": "click", "ref": 999}', "There is no element [999]"),
             ('{"action_type": "click", "x": 900, "y": 10}', "outside the page"),
             ('{"action_type": "scroll", "direction": "sideways"}', "direction"),
             ('{"action_type": "key", "key": "NoSuchKey"}', "Unknown key"),
             ('{"action_type": "select", "ref": 2, "option": "x"}', "not a select"),
             ('{"action_type": "select", "ref": 1, "option": "Atlantis"}', "has no option 'Atlantis'"),
             ('{"action_type": "type"}', 'type needs "text"'),
             ('{"action_type": "click", "ref": 1, "extra": true}', "extra"),
             ("click(1, 2, 3)", "takes"),
             ("type(4, open('x'))", "plain numbers or quoted strings")]
    for action, message in cases:
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs.startswith("Error: ") and message in obs, (action, obs)
        assert "Elements:\n[1] select" in obs and not terminated and reward == 0.0 and info["errors"] == 1
        if truncated:
            env.reset(seed=0, options={"task": "choose-list"})


def test_turn_limit_truncates_with_a_verdict():
    env = MiniWoBEnv(task="focus-text", limits={"max_turns": 2})
    try:
        env.reset(seed=0)
        env.step('key("Escape")')
        obs, reward, terminated, truncated, info = env.step("scroll('down')")
        assert truncated and not terminated and info["truncated_reason"] == "max_turns"
        assert reward == 0.0 and info["success"] is False
    finally:
        env.close()


def test_same_seed_same_task_instance_different_seeds_differ(env):
    first = [env.reset(seed=s, options={"task": "login-user"})[0] for s in (1, 2, 1)]
    assert first[0] == first[2] and first[0] != first[1]
    tasks = {env.reset(seed=s)[1]["task"]["name"] for s in range(40)}
    assert tasks == set(DEFAULT_TASKS)


def test_a_reused_page_starts_the_same_episode_as_a_fresh_one(env):
    """Resets reuse the loaded page; replays (branching, --reexecute) start from a fresh env: same episode."""
    fresh = MiniWoBEnv(reload=True)  # every reset loads the page, as a fresh env's first reset does
    try:
        for task in DEFAULT_TASKS:
            run(env, 1, task=task)  # an episode played to its end on the page first
            reused_obs, _ = env.reset(seed=2, options={"task": task})
            fresh_obs, _ = fresh.reset(seed=2, options={"task": task})
            assert reused_obs == fresh_obs, task
    finally:
        fresh.close()


def test_screenshots_only_when_asked_and_they_show_the_task_area():
    from PIL import Image

    env = MiniWoBEnv(task="enter-text", screenshots=True)
    try:
        obs, info = env.reset(seed=0)
        before = Image.open(io.BytesIO(base64.b64decode(info["observation"]["images"][0])))
        assert before.format == "PNG" and before.size == (160, 210)
        field = next(e for e in parse_page(obs)[1] if e.tag == "input:text")
        _, _, _, _, info = env.step(json.dumps({"action_type": "type", "ref": field.ref, "text": "WWWWWWWW"}))
        after = Image.open(io.BytesIO(base64.b64decode(info["observation"]["images"][0])))
        assert before.tobytes() != after.tobytes()  # the typed text is in the picture
    finally:
        env.close()


def test_envs_in_worker_threads_share_one_browser():
    envs = [MiniWoBEnv(task=t) for t in ("click-button", "enter-text", "login-user", "click-checkboxes")]
    try:
        with ThreadPoolExecutor(4) as pool:
            rewards = list(pool.map(lambda e: [run(e, s)[0] for s in range(3)], envs))
        assert rewards == [[1.0] * 3] * 4
        assert len({e._context.browser for e in envs}) == 1 and MiniWoBEnv.thread_safe
    finally:
        for e in envs:
            e.close()


def test_a_hung_page_is_a_typed_timeout_that_spares_other_envs_and_reset_recovers():
    stuck, other = MiniWoBEnv(task="click-button", timeout_s=2), MiniWoBEnv(task="click-link")
    try:
        obs, _ = stuck.reset(seed=0)
        MANAGER.run(stuck._page.evaluate("() => { setTimeout(() => { for (;;) {} }, 0); }"), 5, "hang the page")
        with pytest.raises(BrowserTimeout, match="did not respond within 2 s"):
            stuck.step(miniwob_expert(obs))
        with pytest.raises(BrowserError, match="call reset"):  # the page is not trusted until reset, and it says so
            stuck.step(miniwob_expert(obs))
        assert run(other, 0)[0] == 1.0  # the browser's thread is not blocked by the hung page
        assert run(stuck, 1)[0] == 1.0
    finally:
        stuck.close()
        other.close()


def test_a_page_that_never_loads_is_a_typed_timeout():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)  # accepts connections (the kernel does) and never answers
    env = MiniWoBEnv(task="click-button", timeout_s=2, base_url=f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        with pytest.raises(BrowserTimeout, match="load task click-button"):
            env.reset(seed=0)
    finally:
        env.close()
        server.close()


def test_a_killed_browser_is_a_typed_error_and_the_next_reset_relaunches():
    env = MiniWoBEnv(task="login-user")
    try:
        obs, _ = env.reset(seed=0)
        old = browser_main_pid()
        os.kill(old, signal.SIGKILL)
        with pytest.raises(BrowserCrashed, match="browser process is gone"):
            env.step(miniwob_expert(f"{obs}"))
        assert run(env, 0)[0] == 1.0 and browser_main_pid() != old
    finally:
        env.close()


def test_the_last_close_leaves_no_browser_process_or_thread():
    manager = BrowserManager()  # its own browser: other tests' envs may hold the process-wide one
    before = set(descendants(os.getpid()))
    envs = [MiniWoBEnv(task="click-button", manager=manager) for _ in range(2)]
    for e in envs:
        e.reset(seed=0)
    ours = set(descendants(os.getpid())) - before
    thread = manager._thread
    assert ours and thread is not None and thread.is_alive()
    envs[0].close()
    assert run(envs[1], 1)[0] == 1.0  # still running for the other env
    envs[1].close()
    envs[1].close()
    assert not ours & set(descendants(os.getpid())) and not thread.is_alive() and manager.browser is None


def test_registered_ids_and_bad_kwargs():
    import agentgym

    env = agentgym.make("agentgym/MiniWoBScreenshots-v0", task="focus-text")
    try:
        _, info = env.reset(seed=0)
        assert env.screenshots and len(info["observation"]["images"]) == 1
    finally:
        env.close()
    with pytest.raises(ValueError, match="unknown MiniWoB task 'click-buton'. Did you mean click-button"):
        MiniWoBEnv(task="click-buton")
    with pytest.raises(agentgym.registry.EnvKwargsError, match="timeout_s"):
        agentgym.registry.check_env_kwargs("agentgym/MiniWoB-v0", {"timeout_s": -1})


# `agentgym check-env` on agentgym/MiniWoB-v0 and agentgym/MiniWoBScreenshots-v0: tests/core/test_conformance.py
