"""`MiniWoBEnv`: MiniWoB++ web tasks in headless Chromium, one browser context and page per env.

Each episode loads a task page from the `miniwob` wheel (``file://``; ``base_url`` serves them from
elsewhere), seeds the page's random generator from the env's seed (``Math.seedrandom``) and starts an
episode through MiniWoB's own JavaScript, so the same seed gives the same task instance. As in MiniWoB's
own env, a page already holding the task is reused (its ``genProblem`` rebuilds the task area), which
makes a reset several times cheaper than a page load; ``reload=True`` loads the page at every reset.
The observation is the task's instruction (the utterance) and a numbered list of the page's visible
elements (`dom.describe`); with ``screenshots=True`` a PNG of the 160x210 task area is added in
``info["observation"]["images"]`` (base64). Actions are in `actions`. The episode ends when MiniWoB
ends it (a right or wrong final click, a submitted form) or at the turn limit.

Reward: MiniWoB's *raw* reward (1 success, -1 failure, in between for partial credit) when the page ends
the episode, else 0. Not the time-discounted reward MiniWoB reports for humans: how long a model takes
to generate must not change the score, and the reward must be deterministic for replay. For the same
reason MiniWoB's 10-second wall-clock limit is lifted; the turn limit bounds episodes instead.
``info`` carries ``raw_reward``, ``reason`` (MiniWoB's), ``success`` and ``elapsed_s``.

Failures of the browser are not the agent's: a page that does not answer within ``timeout_s`` raises
`BrowserTimeout`, a dead browser `BrowserCrashed` (the rollout engine records either as a failed path);
the next ``reset`` opens a fresh context, relaunching Chromium if needed.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from agentgym.env import EnvLimits, TextEnv
from agentgym.envs.browser.actions import ACTION_TYPES, Action, ActionError, execute, parse_action
from agentgym.envs.browser.dom import RESET_REFS_JS, SNAPSHOT_JS, REF_ATTR, Element, describe, parse_elements
from agentgym.envs.browser.session import MANAGER, BrowserError, BrowserManager
from agentgym.envs.browser.tasks import DEFAULT_TASKS, check_task, task_url
from agentgym.trajectory import Observation, ToolCallRecord

VIEWPORT = (500, 320)  # MiniWoB's own browser window size: jQuery UI widgets position themselves in it
TASK_AREA = {"x": 0, "y": 0, "width": 160, "height": 210}  # MiniWoB's task area (#wrap), what screenshots show
NO_TIME_LIMIT_MS = 10**9

INSTRUCTIONS = """You operate a web page to accomplish the task it states. Each turn you see the task and the page's visible elements, one per line: [ref] tag "text" attributes (state) @(left,top widthxheight). Reply with exactly one action (you may reason first; the last action in your message counts), as JSON or as a call:
{"action_type": "click", "ref": 3}  or  click(3)      click an element
{"action_type": "click", "x": 80, "y": 120}  or  click(x=80, y=120)      click a point of the page
{"action_type": "type", "ref": 4, "text": "hello"}  or  type(4, "hello")      click a field, then type at its end
{"action_type": "type", "ref": 4, "text": "hello", "clear": true}  or  type(4, "hello", clear=True)      replace its text
{"action_type": "key", "key": "Enter"}  or  key("Enter")      press a key ("Tab", "Backspace", "Control+a")
{"action_type": "scroll", "direction": "down", "ref": 5}  or  scroll("down", 5)      ref optional
{"action_type": "select", "ref": 6, "option": "Blue"}  or  select(6, "Blue")      choose an option of a select"""

STATE_JS = """() => ({done: WOB_DONE_GLOBAL, reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL,
                    reason: WOB_REWARD_REASON === null ? null : String(WOB_REWARD_REASON)})"""
START_JS = """([seed, maxTime, attr]) => {
  if (document.activeElement && document.activeElement.blur) document.activeElement.blur();  // as on a fresh page
  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = maxTime;
  core.startEpisodeReal();
  document.querySelectorAll('[' + attr + ']').forEach(el => el.removeAttribute(attr));
  return core.getUtterance();
}"""


def _page_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ValueError(f"task row's page_seed must be an integer in [0, 2**31), got {value!r}")
    return value


class MiniWoBEnv(TextEnv):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    thread_safe = True  # every Playwright call goes through the browser manager's own thread
    can_fork = False  # a live page cannot be copied: branching replays the prefix (episodes are seeded)
    expert = "agentgym.envs.browser.expert:miniwob_expert"

    def __init__(self, task: str | None = None, screenshots: bool = False, timeout_s: float = 10.0,
                 base_url: str | None = None, reload: bool = False, limits: EnvLimits | dict | None = None,
                 render_mode: str | None = None, manager: BrowserManager | None = None):
        if task is not None:
            check_task(task)
        if not 0 < timeout_s <= 300:
            raise ValueError(f"timeout_s must be in (0, 300] seconds, got {timeout_s!r}")
        super().__init__(limits=limits or EnvLimits(max_turns=10, max_tokens_per_turn=128), render_mode=render_mode)
        self.task_name, self.screenshots, self.timeout_s, self.base_url = task, screenshots, timeout_s, base_url
        self.observes_images = screenshots
        self.reload = reload  # load the page afresh at every reset, not only when the task changes
        self._loaded_url: str | None = None  # the task page the current page holds
        self.manager = manager or MANAGER
        self._holding = False  # whether this env holds a reference on the manager
        self._generation = -1  # the browser generation our context belongs to
        self._context: Any = None
        self._page: Any = None
        self._broken = False  # a call timed out or failed: the page is not trusted until the next reset
        self._shown: list[Element] = []
        self._utterance = ""
        self._started = 0.0
        self._last_png: bytes | None = None
        self.task: dict[str, Any] = {}

    def system_prompt(self) -> str:
        return INSTRUCTIONS

    # ---- browser plumbing ---------------------------------------------------------------------------
    def _run(self, coro: Any, what: str, timeout_s: float | None = None) -> Any:
        try:
            return self.manager.run(coro, timeout_s or self.timeout_s, what)
        except BrowserError:
            self._broken = True
            raise

    def _fresh_page(self) -> None:
        """A new context and page on a live browser; the old context (if any) is closed first."""
        if not self._holding:
            self._generation = self.manager.acquire()
            self._holding = True
        else:
            self._generation = self.manager.ensure()
        self._close_context()
        browser = self.manager.browser

        async def open_page() -> tuple[Any, Any]:
            context = await browser.new_context(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
            page = await context.new_page()

            async def dismiss(dialog: Any) -> None:  # a JS alert would block the page forever
                await dialog.dismiss()

            page.on("dialog", dismiss)
            return context, page

        self._context, self._page = self._run(open_page(), "open a browser context")
        self._loaded_url = None
        self._broken = False

    def _close_context(self) -> None:
        context, self._context, self._page = self._context, None, None
        if context is None or not self.manager.alive():
            return
        try:
            self.manager.run(context.close(), 10.0, "close the browser context")
        except BrowserError:
            pass  # a hung renderer: the browser reaps it when the manager shuts down

    async def _observe(self) -> tuple[list[Element], dict[str, Any], bytes | None]:
        page = self._page
        shown = parse_elements(await page.evaluate(SNAPSHOT_JS))
        state = await page.evaluate(STATE_JS)
        png = None
        if self.screenshots or self.render_mode == "rgb_array":
            png = await page.screenshot(type="png", clip=TASK_AREA)
        return shown, state, png

    # ---- episodes -----------------------------------------------------------------------------------
    def _pick_task(self, options: dict[str, Any]) -> str:
        name = options.get("task", self.task_name)
        if isinstance(name, dict):  # a task row, as in info["task"]
            name = name.get("name")
        if name is not None:
            return check_task(str(name))
        return DEFAULT_TASKS[int(self.np_random.integers(len(DEFAULT_TASKS)))]

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        # The page seed is drawn before the task is picked, so a reset handed back the task row it reported
        # (replay --reexecute, prefix-replay branching) starts the same instance; a row's own page_seed wins.
        page_seed = int(self.np_random.integers(2**31))
        row = options.get("task")
        if isinstance(row, dict) and row.get("page_seed") is not None:
            page_seed = _page_seed(row["page_seed"])
        name = self._pick_task(options)
        if self._page is None or self._broken or self._generation != self.manager.generation or not self.manager.alive():
            self._fresh_page()
        url = task_url(name, self.base_url)
        load = self.reload or url != self._loaded_url
        self._loaded_url = None  # until the episode has started

        async def start() -> tuple[str, list[Element], dict[str, Any], bytes | None]:
            page = self._page
            if load:
                await page.goto(url, wait_until="load", timeout=self.timeout_s * 1000 + 5000)
            utterance = await page.evaluate(START_JS, [page_seed, NO_TIME_LIMIT_MS, REF_ATTR])
            await page.wait_for_function("() => WOB_TASK_READY", timeout=self.timeout_s * 1000 + 5000)
            await page.evaluate(RESET_REFS_JS)
            return (utterance, *await self._observe())

        self._utterance, self._shown, _, self._last_png = self._run(start(), f"load task {name}")
        self._loaded_url = url
        self._started = time.monotonic()
        self.task = {"name": name, "utterance": self._utterance, "page_seed": page_seed}
        text = self._page_text()
        return text, {"task": dict(self.task), "observation": self._observation(text)}

    def _page_text(self) -> str:
        return f"Task: {self._utterance}\nElements:\n{describe(self._shown)}\n"

    def _observation(self, text: str) -> dict[str, Any]:
        images = [base64.b64encode(self._last_png).decode("ascii")] if self.screenshots and self._last_png else []
        return Observation(text=text, role="user", images=images).model_dump()

    def _step(self, text: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self._page is None or self._broken:
            raise BrowserError("the page is gone after a browser failure; call reset()")
        started = time.perf_counter()
        try:
            action = parse_action(text)
        except ActionError as e:
            record = ToolCallRecord(name="(action)", error_type="parse_error", error=str(e), output=str(e))
            return self._reply(f"Error: {e}\n\n{self._page_text()}", record, None)
        arguments = action.model_dump(exclude_none=True, exclude={"action_type"})

        async def act() -> tuple[list[Element], dict[str, Any], bytes | None]:
            await execute(self._page, action, self._shown, VIEWPORT, self.timeout_s * 1000)
            return await self._observe()

        try:
            self._shown, state, self._last_png = self._run(act(), f"{action.action_type} action")
        except ActionError as e:
            record = ToolCallRecord(name=action.action_type, arguments=arguments, error_type="bad_arguments",
                                    error=str(e), output=str(e), latency_s=time.perf_counter() - started)
            return self._reply(f"Error: {e}\n\n{self._page_text()}", record, None)
        record = ToolCallRecord(name=action.action_type, arguments=arguments, output="",
                                latency_s=time.perf_counter() - started)
        if state["done"]:
            verdict = "solved" if state["raw"] > 0 else "failed"
            obs = f"The task is over: {verdict} (reward {state['raw']:g})."
        else:
            obs = self._page_text()
        return self._reply(obs, record, state)

    def _reply(self, obs: str, record: ToolCallRecord, state: dict[str, Any] | None) -> tuple[str, float, bool, dict[str, Any]]:
        done = bool(state and state["done"])
        info: dict[str, Any] = {"tool_calls": [record.model_dump()], "observation": self._observation(obs),
                                "task": dict(self.task), "elapsed_s": round(time.monotonic() - self._started, 3)}
        reward = float(state["raw"]) if done and state else 0.0
        if done or self.turn >= self.limits.max_turns:
            info["raw_reward"] = reward
            info["reason"] = state.get("reason") if state else None
            info["success"] = reward > 0
        return obs, reward, done, info

    def render(self):  # type: ignore[override]
        """``rgb_array``: the task area as a 210x160x3 uint8 array; ``ansi``: the transcript."""
        if self.render_mode != "rgb_array":
            return super().render()
        if self._last_png is None:
            return None
        import io

        import numpy as np
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(self._last_png)).convert("RGB"))

    def close(self) -> None:
        self._close_context()
        if self._holding:
            self._holding = False
            self.manager.release()
        super().close()


__all__ = ["ACTION_TYPES", "Action", "MiniWoBEnv"]
