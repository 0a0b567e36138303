"""A plain-text game: guess the secret number; the env says "Higher." or "Lower."."""

from __future__ import annotations

import copy
import re
from typing import Any

from agentgym import EnvLimits, TextEnv

LOW, HIGH = 1, 100


class GuessNumberEnv(TextEnv):
    expert = "agentgym_example_envs.guess:bisect"
    can_fork = True  # the state is two integers: copying is cheap and exact

    def __init__(self, limits: EnvLimits | dict | None = None, render_mode: str | None = None):
        super().__init__(limits=limits or EnvLimits(max_turns=8, max_tokens_per_turn=16), render_mode=render_mode)
        self.secret = 0

    def system_prompt(self) -> str:
        return f"Guess my number between {LOW} and {HIGH}. Answer with the number only."

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if options and "task" in options:
            self.secret = int(options["task"]["secret"])
        else:
            self.secret = int(self.np_random.integers(LOW, HIGH + 1))
        return f"I am thinking of a number between {LOW} and {HIGH}.", {"task": {"secret": self.secret}}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        match = re.search(r"-?\d+", action)
        if match is None:
            return f"Say a number between {LOW} and {HIGH}.", 0.0, False, {}
        guess = int(match.group())
        if guess == self.secret:
            return "Correct!", 1.0, True, {}
        return ("Higher." if guess < self.secret else "Lower."), 0.0, False, {}

    def fork(self) -> GuessNumberEnv:
        return copy.deepcopy(self)


_EXCHANGE = re.compile(r"<\|im_start\|>assistant\n(-?\d+)(?:<\|im_end\|>)?\n<\|im_start\|>user\n(Higher|Lower)\.")


def bisect(context: str) -> str:
    """The expert: bisect using the hints in the conversation so far (as the engine renders it)."""
    low, high = LOW, HIGH
    for guess, hint in _EXCHANGE.findall(context):
        if hint == "Higher":
            low = max(low, int(guess) + 1)
        else:
            high = min(high, int(guess) - 1)
    return str((low + high) // 2)
