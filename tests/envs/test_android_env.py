"""The simulated Android phone env: every task template is solved by its scripted UI expert and by none
of a no-op policy or a random policy (50 seeds); actions, errors, screens, screenshots, forks."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

import agentgym
from agentgym.envs.android import TEMPLATES, AndroidEnv
from agentgym.envs.android.expert import android_expert
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutEngine, Task

APPS = ["Contacts", "Messages", "Calendar", "Clock", "Settings", "Files", "Notes"]
WORDS = ["a", "Bob", "555-0100", "hello", "7", "30", "Gym", "x y"]


def run(env: AndroidEnv, seed: int, act, max_steps: int = 40):
    """One episode with `act(context) -> action`; returns (reward, last info, actions)."""
    obs, _ = env.reset(seed=seed)
    context, actions = f"<|im_start|>user\n{env.system_prompt()}\n{obs}", []
    for _ in range(max_steps):
        action = act(context)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        context += action + obs
        if terminated or truncated:
            return reward, info, actions
    raise AssertionError("episode did not end")


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_template_is_solved_by_its_scripted_expert(name):
    env = AndroidEnv(task=name)
    for seed in range(4):
        reward, info, actions = run(env, seed, android_expert)
        assert reward == 1.0 and info["success"], (name, seed, actions)
        assert info["task"]["name"] == name and info["task"]["difficulty"] in (1, 2, 3)
        assert json.loads(actions[-1].removeprefix("Action: ")) == {"action_type": "status", "goal_status": "complete"}


def test_templates_cover_every_app_and_level():
    assert len(TEMPLATES) >= 20
    assert {t.app for t in TEMPLATES.values()} == set(APPS)
    assert {t.difficulty for t in TEMPLATES.values()} == {1, 2, 3}


def test_the_expert_works_through_the_ui_including_scrolling():
    """Targets below the fold are reached by scrolling, not by any shortcut into the state."""
    scrolled = 0
    for seed in range(12):
        _, _, actions = run(AndroidEnv(task="delete_contact"), seed, android_expert)
        scrolled += any('"scroll"' in a for a in actions)
        assert all(json.loads(a.removeprefix("Action: "))["action_type"] in
                   ("open_app", "click", "scroll", "status") for a in actions)
    assert scrolled > 0


@pytest.mark.parametrize("noop", ['{"action_type": "wait"}', '{"action_type": "status", "goal_status": "complete"}',
                                  '{"action_type": "navigate_back"}', "I am not sure what to do."])
def test_noop_policies_solve_nothing(noop):
    for name in TEMPLATES:
        env = AndroidEnv(task=name, limits={"max_turns": 5})
        reward, info, _ = run(env, 0, lambda ctx: noop)
        assert reward == 0.0 and not info["success"] and not info["state_check"], name


def random_action(rng: np.random.Generator, context: str) -> str:
    screen = context.rsplit("Screen elements:\n", 1)[-1]
    n = max(1, len(re.findall(r"^\[\d+\]", screen, re.M)))
    kind = str(rng.choice(["click"] * 6 + ["long_press", "input_text", "scroll", "swipe", "navigate_back", "navigate_home",
                                          "open_app", "keyboard_enter", "wait", "answer", "status"]))
    action: dict = {"action_type": kind}
    if kind in ("click", "long_press"):
        action["index"] = int(rng.integers(n))
    elif kind == "input_text":
        action["text"] = str(rng.choice(WORDS))
        if rng.random() < 0.7:
            action["index"] = int(rng.integers(n))
    elif kind in ("scroll", "swipe"):
        action["direction"] = str(rng.choice(["up", "down", "left", "right"]))
    elif kind == "open_app":
        action["app_name"] = str(rng.choice(APPS))
    elif kind == "answer":
        action["text"] = str(rng.choice(WORDS))
    elif kind == "status":
        action = {"action_type": "status", "goal_status": "complete"} if rng.random() < 0.3 else {"action_type": "wait"}
    return json.dumps(action)


@pytest.mark.slow(ci=True)
def test_a_random_policy_solves_no_template_over_50_seeds():
    solved, reached = [], []
    for name in TEMPLATES:
        for seed in range(50):
            rng = np.random.default_rng(seed)
            reward, info, _ = run(AndroidEnv(task=name), seed, lambda ctx: random_action(rng, ctx))
            if reward:
                solved.append((name, seed))
            if info["state_check"]:
                reached.append((name, seed))
    assert not solved and not reached


def test_checks_are_strict_about_side_effects():
    env = AndroidEnv(task="airplane_mode_on")
    env.reset(seed=1)
    steps = ['{"action_type": "open_app", "app_name": "Settings"}']
    obs, *_ = env.step(steps[0])

    def click(text: str) -> str:
        nonlocal obs
        index = next(int(m.group(1)) for m in re.finditer(r'^\[(\d+)\] \S+ "([^"]*)"', obs, re.M) if m.group(2) == text)
        obs, reward, terminated, truncated, info = env.step(json.dumps({"action_type": "click", "index": index}))
        return info

    click("Network & internet")
    click("Airplane mode")
    assert env.success()
    click("Internet")
    click("Mobile data")  # an extra change the goal did not ask for
    assert not env.success()
    click("Mobile data")
    assert env.success()


def test_errors_are_observations_and_the_episode_goes_on():
    env = AndroidEnv(task="add_contact")
    obs, info = env.reset(seed=0)
    assert obs.startswith("Goal: Add a new contact named ") and "Screen elements:\n[0]" in obs
    assert info["task"]["difficulty"] == 2 and info["difficulty"] == 2 and info["observation"]["images"] == []
    cases = [("no json here", "No JSON action found"),
             ('{"index": 2}', 'no "action_type"'),
             ('{"action_type": "fly"}', "Unknown action_type 'fly'"),
             ('{"action_type": "click"}', 'click needs "index"'),
             ('{"action_type": "click", "index": "two"}', "index"),
             ('{"action_type": "click", "index": 400}', "There is no element 400"),
             ('{"action_type": "click", "x": 5000, "y": 1}', "off the screen"),
             ('{"action_type": "scroll", "direction": "sideways"}', "direction"),
             ('{"action_type": "open_app", "app_name": "Camera"}', "There is no app called 'Camera'"),
             ('{"action_type": "input_text", "text": "hi"}', "No text field is focused"),
             ('{"action_type": "status", "goal_status": "done"}', "goal_status"),
             ('{"action_type": "click", "index": 1, "extra": true}', "extra")]
    for action, message in cases:
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs.startswith("Error: ") and message in obs, (action, obs)
        assert "Screen elements:" in obs and not terminated and reward == 0.0 and info["errors"] == 1
    obs, _, _, _, info = env.step('Reason: open it. Action: {"action_type": "open_app", "app_name": "contacts"}')
    assert not info["errors"] and '"Contacts"' in obs


def test_the_last_turn_always_reports_success():
    env = AndroidEnv(task="wifi_off", limits={"max_turns": 2})
    env.reset(seed=0)
    env.step('{"action_type": "wait"}')
    _, reward, terminated, truncated, info = env.step(b"\xff not utf-8")
    assert truncated and not terminated and reward == 0.0
    assert info["success"] is False and info["state_check"] is False and info["action_error"]


def test_keyboard_back_and_text_fields_behave_like_a_phone():
    env = AndroidEnv(task="create_note")
    env.reset(seed=0)
    env.step('{"action_type": "open_app", "app_name": "Notes"}')
    phone = env.device
    env.step(json.dumps({"action_type": "click", "index": _index(env, desc="New note")}))
    obs, *_ = env.step(json.dumps({"action_type": "input_text", "text": "Trip", "index": _index(env, id="title")}))
    assert '"Trip" id=title (clickable, long-clickable, editable, focused)' in obs and phone.keyboard_shown
    obs, *_ = env.step('{"action_type": "navigate_back"}')  # back hides the keyboard first
    assert not phone.keyboard_shown and "New note" in obs
    n = len(phone.state.notes)
    env.step('{"action_type": "navigate_back"}')  # then leaves the editor, which saves (as Keep does)
    assert len(phone.state.notes) == n + 1 and phone.state.notes[-1].title == "Trip"


def _index(env: AndroidEnv, desc: str = "", id: str = "") -> int:
    from agentgym.envs.android.ui import elements

    shown = elements(env.device.tree())
    return next(i for i, n in enumerate(shown) if (desc and n.content_desc == desc) or (id and n.resource_id.endswith("/" + id)))


def test_screenshots_only_when_asked_and_they_show_the_screen():
    env = AndroidEnv(task="add_contact", screenshots=True)
    _, info = env.reset(seed=0)
    home = Image.open(io.BytesIO(base64.b64decode(info["observation"]["images"][0])))
    assert home.format == "PNG" and home.size == (540, 1200)
    env.step('{"action_type": "open_app", "app_name": "Contacts"}')
    _, _, _, _, info = env.step(json.dumps({"action_type": "click", "index": _index(env, desc="Create contact")}))
    form = np.asarray(Image.open(io.BytesIO(base64.b64decode(info["observation"]["images"][0]))).convert("L"))
    _, _, _, _, info = env.step(json.dumps({"action_type": "click", "index": _index(env, id="name")}))
    typing = np.asarray(Image.open(io.BytesIO(base64.b64decode(info["observation"]["images"][0]))).convert("L"))
    # the keyboard covers the bottom of the screen once a field is focused
    assert abs(float(typing[900:1100].mean()) - float(form[900:1100].mean())) > 5
    full = AndroidEnv(task="add_contact", screenshots=True, screenshot_scale=1.0)
    _, info = full.reset(seed=0)
    assert Image.open(io.BytesIO(base64.b64decode(info["observation"]["images"][0]))).size == (1080, 2400)


def test_same_seed_same_episode_and_fork_is_independent():
    a, b = AndroidEnv(), AndroidEnv()
    assert a.reset(seed=7)[0] == b.reset(seed=7)[0]
    assert a.reset(seed=7)[1]["task"] == b.reset(seed=7)[1]["task"]
    assert len({AndroidEnv().reset(seed=s)[1]["task"]["name"] for s in range(60)}) > 15
    env = AndroidEnv(task="set_alarm")
    env.reset(seed=0)
    env.step('{"action_type": "open_app", "app_name": "Clock"}')
    twin = env.fork()
    obs_a, *_ = env.step('{"action_type": "navigate_home"}')
    obs_b, *_ = twin.step('{"action_type": "wait"}')
    assert '"Alarm"' in obs_b and '"Alarm"' not in obs_a
    twin.step(json.dumps({"action_type": "click", "index": _index(twin, desc="Add alarm")}))
    assert env.device.screen.app == "Home" and twin.device.screen.kind == "edit"


def test_difficulty_and_task_selection():
    levels = {AndroidEnv(difficulty=1).reset(seed=s)[1]["task"]["difficulty"] for s in range(20)}
    assert levels == {1}
    env = AndroidEnv()
    _, info = env.reset(seed=0, options={"task": "wifi_off"})
    assert info["task"]["name"] == "wifi_off"
    with pytest.raises(ValueError, match="unknown Android task 'wifi_of'. Did you mean wifi_off"):
        AndroidEnv(task="wifi_of")
    with pytest.raises(ValueError, match="difficulty must be one of"):
        AndroidEnv(difficulty=7)
    with pytest.raises(ValueError, match="needs goal"):
        AndroidEnv(backend="adb")


def test_registered_and_rolled_out_with_the_expert(tokenizer):
    env = agentgym.make("agentgym/Android-v0", task="send_message")
    assert isinstance(env, AndroidEnv)
    engine = RolloutEngine(ScriptedPolicy(android_expert, tokenizer),
                           lambda: agentgym.make("agentgym/Android-v0", difficulty=2), env_id="agentgym/Android-v0")
    trees = engine.run([Task(seed=s) for s in range(4)])
    assert all(t.leaf_reward(t.leaves()[0]) == 1.0 for t in trees)


def test_rgb_array_render_is_the_screenshot():
    env = AndroidEnv(task="wifi_off", render_mode="rgb_array")
    assert env.render() is None
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (1200, 540, 3) and frame.dtype == np.uint8
    env.step('{"action_type": "open_app", "app_name": "Settings"}')
    assert (env.render() != frame).any()


def _step(env: AndroidEnv, **action) -> str:
    obs, *_ = env.step(json.dumps(action))
    return obs


def test_forms_validate_and_dialogs_dismiss_like_android():
    env = AndroidEnv(task="add_event")
    env.reset(seed=0)
    _step(env, action_type="open_app", app_name="Calendar")
    n = len(env.device.state.events)
    _step(env, action_type="click", index=_index(env, desc="Create new event"))
    _step(env, action_type="input_text", text="Dentist", index=_index(env, id="title"))
    _step(env, action_type="input_text", text="14 March", index=_index(env, id="date"))
    obs = _step(env, action_type="click", index=_index(env, id="save"))
    assert '"Can\'t save"' in obs and "YYYY-MM-DD" in obs and len(env.device.state.events) == n
    assert '"New event"' not in obs  # the dialog's window hides the form from the accessibility tree
    obs = _step(env, action_type="click", x=540, y=300)  # a tap outside the dialog dismisses it
    assert '"New event"' in obs and "Can't save" not in obs
    _step(env, action_type="click", index=_index(env, id="save"))
    obs = _step(env, action_type="navigate_back")  # so does back
    assert '"New event"' in obs and len(env.device.state.events) == n


def test_contact_page_opens_the_conversation_and_back_returns():
    env = AndroidEnv(task="send_message")
    env.reset(seed=2)
    _step(env, action_type="open_app", app_name="Contacts")
    name = sorted(c.name for c in env.device.state.contacts)[0]
    _step(env, action_type="click", index=_index_text(env, name))
    obs = _step(env, action_type="click", index=_index_text(env, "Message"))
    assert f'TextView "{name}" id=toolbar_title' in obs and 'desc="Send SMS"' in obs
    _step(env, action_type="input_text", text="hi there", index=_index(env, id="message"))
    obs = _step(env, action_type="click", index=_index(env, desc="Send SMS"))
    assert '"hi there" desc="You said hi there' in obs
    assert env.device.state.conversation(name).messages[-1].text == "hi there"
    obs = _step(env, action_type="navigate_back")  # the keyboard stays up after sending: back hides it first
    assert 'desc="Send SMS"' in obs and not env.device.keyboard_shown
    obs = _step(env, action_type="navigate_back")
    assert f'TextView "{name}" id=toolbar_title' in obs and '"Edit"' in obs  # back on the contact's page


def _index_text(env: AndroidEnv, text: str) -> int:
    from agentgym.envs.android.ui import elements

    return next(i for i, n in enumerate(elements(env.device.tree())) if n.text == text and "clock" not in n.resource_id)
