"""The environment contract: a `gymnasium.Env` whose actions and observations are text.

``reset(seed, options) -> (obs, info)`` and ``step(action) -> (obs, reward, terminated, truncated, info)``
as in Gymnasium; the action is the assistant's text and the observation is the new message it gets back.
Subclasses implement `_reset` and `_step`; this base class owns what every text env must get right:
seeding, input hygiene (bytes, invalid UTF-8, empty or oversized actions become error observations),
turn limits (``truncated=True`` with the reason in ``info``), async twins that keep blocking work off the
event loop, and an optional `fork()` for branching rollouts.

The full contract (every method, hook, declaration, the ``info`` keys the engine reads, and the
concurrency rule) is written down in `agentgym.contract`.

Extra observation content (role, an evolving memory/report, images) travels in ``info["observation"]``
as an `agentgym.trajectory.Observation` dict, so text-only tooling sees a plain string.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import gymnasium
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentgym.trajectory import Observation, ToolCallRecord


class ChatText(gymnasium.spaces.Space[str]):
    """Any Unicode string up to `max_length` characters (Gymnasium's `Text` space only admits a fixed
    charset, too narrow for chat)."""

    _ALPHABET = list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<>/{}:\",.\n")

    def __init__(self, max_length: int = 1_000_000, seed: int | np.random.Generator | None = None):
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        n = int(self.np_random.integers(0, 64))
        return "".join(self.np_random.choice(self._ALPHABET, size=n))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"ChatText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatText) and other.max_length == self.max_length


class EnvLimits(BaseModel):
    """Episode limits. The env enforces turns and action size; the rollout engine enforces token budgets
    (it is the one that knows tokens) and reports them the same way."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(default=8, ge=1, description="Actions per episode before truncation.")
    max_tokens_per_turn: int = Field(default=256, ge=1, description="Generation budget for one action.")
    max_tokens_per_episode: int = Field(default=2048, ge=1, description="Sampled tokens in one episode (in one "
                                        "round for envs that rebuild their context every round).")
    max_action_chars: int = Field(default=100_000, ge=1, description="Longer actions get an error observation.")


class TextEnv(gymnasium.Env[str, str]):
    """Base class for multi-turn text environments. Subclass and implement `_reset` and `_step`."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    thread_safe: ClassVar[bool] = True  # False: instances share unsafe state; the engine serialises calls
    can_fork: ClassVar[bool] = False  # True: fork() may return a copy; else branching replays the prefix
    nonblocking: ClassVar[bool] = False  # True: calls are fast and never block; the engine makes them inline
    expert: str | None = None  # "module:function" of a scripted expert (context text -> action), or None
    # True: observations carry images (screenshots). Training checks before any work that the policy takes
    # them (a text-only model is a config error naming policy.model); an env that says nothing is not probed.
    observes_images: bool = False

    def __init__(self, limits: EnvLimits | dict | None = None, render_mode: str | None = None):
        self.limits = limits if isinstance(limits, EnvLimits) else EnvLimits(**(limits or {}))
        self.observation_space = ChatText()
        self.action_space = ChatText(max_length=10**9)  # oversized actions are handled, not rejected
        self.render_mode = render_mode
        self.turn = 0
        self._done = True
        self._transcript: list[tuple[str, str]] = []

    # ---- to implement -----------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        """Start an episode; `self.np_random` is already seeded. Return the first observation."""
        raise NotImplementedError

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Apply a clean action (valid UTF-8, non-empty, within limits). Return (obs, reward, terminated, info)."""
        raise NotImplementedError

    def system_prompt(self) -> str | None:
        """Instructions shown before the first observation (tool descriptions, answer format)."""
        return None

    def stop_strings(self) -> list[str]:
        """Strings that end a generation early (kept in the action); none by default."""
        return []

    # ---- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self.turn = 0
        self._done = False
        obs, info = self._reset(options)
        info.setdefault("observation", Observation(text=obs, role="user").model_dump())
        self._transcript = [("observation", obs)]
        return obs, info

    def step(self, action: str | bytes) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self.turn += 1
        problem, text = self._check_action(action)
        if problem is not None:
            record = ToolCallRecord(name="(action)", error_type="parse_error", error=problem, output=problem)
            obs, reward, terminated = problem, 0.0, False
            info: dict[str, Any] = {"tool_calls": [record.model_dump()], "action_error": problem}
            info["observation"] = Observation(text=obs, role="user").model_dump()
        else:
            obs, reward, terminated, info = self._step(text)
            info.setdefault("tool_calls", [])
            info.setdefault("observation", Observation(text=obs, role="user").model_dump())
        info["errors"] = sum(1 for c in info["tool_calls"] if c.get("error_type"))
        truncated = False
        if not terminated and self.turn >= self.limits.max_turns:
            truncated = True
            info["truncated_reason"] = "max_turns"
        self._done = terminated or truncated
        self._transcript += [("action", text if problem is None else repr(action)[:200]), ("observation", obs)]
        return obs, float(reward), bool(terminated), truncated, info

    def _check_action(self, action: str | bytes) -> tuple[str | None, str]:
        if isinstance(action, (bytes, bytearray)):
            try:
                action = bytes(action).decode("utf-8")
            except UnicodeDecodeError as e:
                return (f"Your message is not valid UTF-8 (byte 0x{action[e.start]:02x} at position {e.start}). "
                        "Write plain text."), ""
        if not isinstance(action, str):
            return f"The action must be text, got {type(action).__name__}.", ""
        try:
            action.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"Your message contains an invalid character at position {e.start}. Write plain text.", ""
        if not action.strip():
            return "Your message was empty. Call a tool or give your answer.", ""
        if len(action) > self.limits.max_action_chars:
            return (f"Your message is {len(action)} characters long; the limit is {self.limits.max_action_chars}. "
                    "Write a shorter message."), ""
        return None, action

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"[{kind}] {text}" for kind, text in self._transcript)

    # ---- async twins: blocking envs run in a worker thread, never on the event loop ---------------
    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return await asyncio.to_thread(self.reset, seed=seed, options=options)

    async def astep(self, action: str | bytes):
        return await asyncio.to_thread(self.step, action)

    # ---- branching --------------------------------------------------------------------------------
    def fork(self) -> TextEnv | None:
        """An independent copy of this env in its current state, or None: "replay the prefix" (the
        rollout engine then makes a fresh env, resets it with the same seed and task, and replays the
        actions so far). The default is None, never a deep copy: copying an env that holds a process, a
        JVM, a browser or an index is a trap. Envs whose state is cheap to copy override this."""
        return None


def observation_from(obs: Any, info: dict[str, Any]) -> Observation:
    """The full observation of a reset/step: ``info["observation"]`` if the env gave one, else the text."""
    if "observation" in info:
        return Observation.model_validate(info["observation"])
    if isinstance(obs, dict):
        return Observation.model_validate({k: v for k, v in obs.items() if k in Observation.model_fields})
    return Observation(text=str(obs))
