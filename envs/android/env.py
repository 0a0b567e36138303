"""`AndroidEnv`: an AndroidWorld-style phone environment over the simulated phone or a real device.

Each step the agent writes one JSON action (see `actions`); the observation is a compact numbered list of
the screen's UI elements (what M3A/T3A agents read) and, with ``screenshots=True``, a PNG screenshot in
``info["observation"]["images"]`` (base64). The episode ends when the agent sends
``{"action_type": "status", "goal_status": "complete"}`` (or "infeasible"), or at the turn limit. The
reward is 1 if the agent declared the task complete and the task's check passes on the phone's final
state, else 0 (``info["success"]``; ``info["state_check"]`` is the check alone, also at the turn limit). Malformed or impossible actions get an error observation and the episode goes on.

Simulated tasks come from the seeded templates in `tasks` (``task`` picks one by name, ``difficulty``
restricts the sample to a level); ``info["task"]`` reports name, app, difficulty, goal and parameters for
curriculum sampling. The adb backend drives a real device with the same actions and observation format;
it takes the goal as given (``goal=``) and cannot check success (reward 0, ``success`` None).
"""

from __future__ import annotations

import base64
import copy
import difflib
import time
from typing import Any

import numpy as np

from agentgym.env import EnvLimits, TextEnv
from agentgym.envs.android.actions import ACTION_TYPES, Action, ActionError, Device, execute, parse_action
from agentgym.envs.android.apps import make_apps
from agentgym.envs.android.phone import SimPhone
from agentgym.envs.android.state import PhoneState, seed_world
from agentgym.envs.android.tasks import DIFFICULTIES, TEMPLATES, Template
from agentgym.envs.android.ui import SCREEN_HEADER, describe, elements
from agentgym.trajectory import Observation, ToolCallRecord

INSTRUCTIONS = """You operate an Android phone to accomplish the user's goal. Each turn you see the current screen as a numbered list of UI elements. Reply with exactly one action as a JSON object (you may write your reasoning first; the last JSON object in your message is the action):
{"action_type": "click", "index": <element>}  or  {"action_type": "click", "x": <px>, "y": <px>}
{"action_type": "long_press", "index": <element>}   {"action_type": "double_tap", "index": <element>}
{"action_type": "input_text", "text": "<text>", "index": <text field>}  (taps the field, then types; without index, types into the focused field)
{"action_type": "keyboard_enter"}   {"action_type": "navigate_back"}   {"action_type": "navigate_home"}
{"action_type": "scroll", "direction": "up|down|left|right", "index": <optional scrollable element>}  ("down" reveals what is below)
{"action_type": "swipe", "direction": "up|down|left|right"}  (the direction the finger moves)
{"action_type": "open_app", "app_name": "<name>"}   {"action_type": "wait"}
{"action_type": "answer", "text": "<answer>"}  (for questions; then finish with status)
{"action_type": "status", "goal_status": "complete"}  or  "infeasible"  (ends the task)"""


class AndroidEnv(TextEnv):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, task: str | None = None, difficulty: int | None = None, screenshots: bool = False,
                 screenshot_scale: float = 0.5, backend: str = "sim", goal: str | None = None,
                 adb: dict[str, Any] | None = None, limits: EnvLimits | dict | None = None, render_mode: str | None = None):
        if task is not None and task not in TEMPLATES:
            close = difflib.get_close_matches(str(task), TEMPLATES, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else f" Known tasks: {', '.join(TEMPLATES)}."
            raise ValueError(f"unknown Android task {task!r}.{hint}")
        if difficulty is not None and difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES} or None, got {difficulty!r}")
        if backend not in ("sim", "adb"):
            raise ValueError(f"backend must be 'sim' or 'adb', got {backend!r}")
        if backend == "adb" and not goal:
            raise ValueError("backend='adb' needs goal=...: a real device's tasks are given in words")
        if not 0.1 <= screenshot_scale <= 1.0:
            raise ValueError(f"screenshot_scale must be within [0.1, 1.0], got {screenshot_scale}")
        super().__init__(limits=limits or EnvLimits(max_turns=30, max_tokens_per_turn=256), render_mode=render_mode)
        self.task_name, self.difficulty, self.backend, self.goal = task, difficulty, backend, goal
        self.screenshots, self.screenshot_scale = screenshots, screenshot_scale
        self.observes_images = screenshots
        self.adb_options = dict(adb or {})
        self.device: Device | None = None
        self.template: Template | None = None
        self.params: dict[str, Any] = {}
        self.initial: PhoneState | None = None
        self.task: dict[str, Any] = {}

    def system_prompt(self) -> str:
        return INSTRUCTIONS

    @property
    def expert(self) -> str | None:
        return "agentgym.envs.android.expert:android_expert" if self.backend == "sim" else None

    # ---- episodes -----------------------------------------------------------------------------------
    def _pick_template(self, options: dict[str, Any]) -> Template:
        name = options.get("task", self.task_name)
        if isinstance(name, dict):  # a task row (as in info["task"]) rather than a template name
            name = name.get("name")
        if name is not None:
            if name not in TEMPLATES:
                raise ValueError(f"unknown Android task {name!r}; known: {', '.join(TEMPLATES)}")
            return TEMPLATES[name]
        level = options.get("difficulty", self.difficulty)
        pool = [t for t in TEMPLATES.values() if level is None or t.difficulty == level]
        if not pool:
            raise ValueError(f"no Android task has difficulty {level!r}; levels: {DIFFICULTIES}")
        return pool[int(self.np_random.integers(len(pool)))]

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        if self.backend == "adb":
            from agentgym.envs.android.adb import AdbDevice

            if self.device is None:
                self.device = AdbDevice(**self.adb_options)
            self.device.key("home")
            goal = str(options.get("goal", self.goal))
            self.task = {"name": "adb", "app": None, "difficulty": None, "goal": goal, "params": {}}
        else:
            # The world's own generator is drawn first, whether or not the task is then sampled: a reset given
            # the task it reported (replay, prefix-replay branching, dataset rows) builds the same phone.
            world_rng = np.random.default_rng(int(self.np_random.integers(2**63)))
            self.template = self._pick_template(options)
            state = seed_world(world_rng)
            self.params = self.template.prepare(world_rng, state)
            self.initial = copy.deepcopy(state)
            self.device = SimPhone(state, make_apps())
            goal = self.template.goal_text(self.params)
            self.task = {"name": self.template.name, "app": self.template.app, "difficulty": self.template.difficulty,
                         "goal": goal, "params": dict(self.params)}
        text = f"Goal: {goal}\n\n{self._screen_text()}"
        return text, {"task": copy.deepcopy(self.task), "difficulty": self.task["difficulty"],
                      "observation": self._observation(text)}

    def _screen_text(self) -> str:
        assert self.device is not None
        return f"{SCREEN_HEADER}\n{describe(elements(self.device.tree()))}\n"

    def _observation(self, text: str) -> dict[str, Any]:
        images = []
        if self.screenshots and self.device is not None:
            images.append(base64.b64encode(self._screenshot_png()).decode("ascii"))
        return Observation(text=text, role="user", images=images).model_dump()

    def success(self) -> bool | None:
        """Whether the task's check passes on the phone's current state (None on a real device)."""
        if not isinstance(self.device, SimPhone) or self.template is None or self.initial is None:
            return None
        return self.template.check(self.initial, self.device.state, self.params)

    def step(self, action: str | bytes) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        if truncated and "success" not in info:  # the last turn was rejected before reaching the phone
            info["state_check"] = self.success()
            info["success"] = None if info["state_check"] is None else False
        return obs, reward, terminated, truncated, info

    def _step(self, text: str) -> tuple[str, float, bool, dict[str, Any]]:
        from agentgym.envs.android.uiautomator import DumpError

        try:
            return self._act(text)
        except (DumpError, OSError, RuntimeError) as e:  # the device failed (adb, a bad dump): not the agent's fault
            if self.backend != "adb":
                raise
            record = ToolCallRecord(name="(device)", error_type="infra_error", error=str(e), output=str(e))
            return self._reply(f"Error: the device failed: {e}", record, False)

    def _act(self, text: str) -> tuple[str, float, bool, dict[str, Any]]:
        assert self.device is not None
        started = time.perf_counter()
        terminated, note = False, ""
        try:
            action = parse_action(text)
        except ActionError as e:
            record = ToolCallRecord(name="(action)", error_type="parse_error", error=str(e), output=str(e))
            return self._reply(f"Error: {e}\n\n{self._screen_text()}", record, False)
        arguments = action.model_dump(exclude_none=True, exclude={"action_type"})
        try:
            if action.action_type == "status":
                terminated = True
                note = f"Task marked {action.goal_status}."
            elif action.action_type == "answer":
                if isinstance(self.device, SimPhone):
                    self.device.state.answer = action.text
                note = "Answer recorded."
            else:
                execute(self.device, action, elements(self.device.tree()))
        except ActionError as e:
            record = ToolCallRecord(name=action.action_type, arguments=arguments, error_type="bad_arguments",
                                    error=str(e), output=str(e), latency_s=time.perf_counter() - started)
            return self._reply(f"Error: {e}\n\n{self._screen_text()}", record, False)
        obs = (f"{note}\n\n" if note else "") + ("" if terminated else self._screen_text())
        record = ToolCallRecord(name=action.action_type, arguments=arguments, output=note,
                                latency_s=time.perf_counter() - started)
        return self._reply(obs, record, terminated, action)

    def _reply(self, obs: str, record: ToolCallRecord, terminated: bool,
               action: Action | None = None) -> tuple[str, float, bool, dict[str, Any]]:
        info: dict[str, Any] = {"tool_calls": [record.model_dump()], "observation": self._observation(obs),
                                "task": copy.deepcopy(self.task), "difficulty": self.task.get("difficulty")}
        reward = 0.0
        ending = terminated or self.turn >= self.limits.max_turns
        if ending:  # success needs the agent to declare completion, on a state that passes the check
            state_ok = self.success()
            declared = action is not None and action.goal_status == "complete"
            info["state_check"] = state_ok
            info["success"] = None if state_ok is None else bool(state_ok and declared)
            reward = 1.0 if info["success"] else 0.0
        return obs, reward, terminated, info

    def render(self):  # type: ignore[override]
        """``rgb_array``: the current screen as an HxWx3 uint8 array; ``ansi``: the transcript."""
        if self.render_mode != "rgb_array":
            return super().render()
        if self.device is None:
            return None
        import io

        import numpy as np
        from PIL import Image

        png = self._screenshot_png()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def _screenshot_png(self) -> bytes:
        assert self.device is not None
        if isinstance(self.device, SimPhone):
            return self.device.screenshot_png(self.screenshot_scale)
        return self.device.screenshot_png()

    can_fork = True  # the simulated phone is plain Python state: a deep copy is exact and cheap

    def fork(self) -> AndroidEnv | None:
        """A copy of the simulated phone in its current state; a real device cannot be copied (None: the
        rollout engine replays the action prefix instead)."""
        return None if self.backend == "adb" else copy.deepcopy(self)

    def close(self) -> None:
        self.device = None
        super().close()


__all__ = ["ACTION_TYPES", "AndroidEnv"]
