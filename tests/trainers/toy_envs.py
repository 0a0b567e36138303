"""A trivially learnable env for end-to-end trainer tests: reward = share of the letter 'e' in the action.

A random model starts near the letter's base rate; shifting probability towards e-rich tokens raises the
reward smoothly, so a few GRPO steps on a tiny model show learning.
"""

from agentgym.env import EnvLimits, TextEnv


class LetterE(TextEnv):
    def __init__(self, limits=None, split: str = "train"):
        super().__init__(limits=limits or EnvLimits(max_turns=1, max_tokens_per_turn=8, max_tokens_per_episode=8))

    def _reset(self, options):
        return f"Write text full of the letter e. ({int(self.np_random.integers(1000))})", {}

    def _step(self, action):
        letters = [c for c in action.lower() if c.isalpha()]
        reward = sum(c == "e" for c in letters) / max(len(letters), 1)
        return "", reward, True, {}


class SometimesUnanswered(TextEnv):
    """A question env whose tasks carry a gold answer, except about one in eight (the seed decides): what a
    hand-made question set with a few blank answers looks like to a trainer."""

    def __init__(self, limits=None, split: str = "train"):
        super().__init__(limits=limits or EnvLimits(max_turns=1, max_tokens_per_turn=8, max_tokens_per_episode=8))

    def _reset(self, options):
        k = int(self.np_random.integers(8))
        self.task = {"question": f"What is {k} + 1?", "answer": None if k == 0 else str(k + 1)}
        return self.task["question"], {"task": dict(self.task)}

    def _step(self, action):
        return "", float(action.strip() == self.task["answer"]), True, {}
