"""Envs and policies for the Ray worker tests, importable by worker processes (the tests put this folder on
the workers' PYTHONPATH)."""

import time
from pathlib import Path

from agentgym.env import EnvLimits, TextEnv


class SlowCounter(TextEnv):
    """Four turns; each step sleeps `step_s` and, if `marker` is set, touches it (so a test knows an episode
    is mid-way). Reward 1 at the end."""

    def __init__(self, step_s: float = 0.3, marker: str = "", limits=None):
        super().__init__(limits=limits or EnvLimits(max_turns=4, max_tokens_per_turn=8, max_tokens_per_episode=64))
        self.step_s, self.marker, self.turn = step_s, marker, 0

    def _reset(self, options):
        self.turn = 0
        return "Count.", {}

    def _step(self, action):
        time.sleep(self.step_s)
        if self.marker:
            Path(self.marker).touch()
        self.turn += 1
        return f"turn {self.turn}", float(self.turn == 4), self.turn == 4, {}


def scripted_policy():
    from agentgym.policies.models import load_tokenizer
    from agentgym.policies.scripted import ScriptedPolicy

    return ScriptedPolicy(lambda context: "ok", tokenizer=load_tokenizer("tiny"))
