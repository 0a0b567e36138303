"""OTC-GRPO: Optimal Tool Calls (arXiv 2504.14870; reference/seed-plugins.md §1). A credit piece: a correct
answer earns more when it used the fewest tool calls seen for its question, then plain GRPO.

    R_i = alpha * r_tool(m_i, n) * r_i        (r_i > 0: the answer is correct; else R_i = r_i)
    r_tool = 1                      if m = n = 0
             cos(m*pi / (2m + c))   if n = 0          (OTC-PPO's form)
             sin(f*pi / (2n))       otherwise, f = 2nm / (m + n)   (peaks at m = n)

m_i = the turns of trajectory i that invoked a tool (agentgym.trainers.tool_use); n = the fewest tool calls
of a correct trajectory seen so far for this question (the paper's "global approximation", which it found
more stable than the per-group minimum): kept across steps in the credit state, lowered whenever a
correct trajectory uses fewer calls.

Choices where the paper is silent: a question is keyed by its task's ``id``, else its ``question`` text,
else the tree (per-group estimate only); while no correct trajectory has been seen, n is undefined and the
n = 0 cosine form is used; a wrong answer with a negative reward (a format penalty) keeps that reward
unchanged (the paper's product would scale a penalty by the tool term, rewarding a wrong answer for
calling tools); the final answer turn is not a tool call.
"""

from __future__ import annotations

import math


def otc_tool_reward(m: int, n: int | None, c: float) -> float:
    """r_tool(m, n) of eq. 6 (the n = 0 branch is OTC-PPO's eq. 5); n=None means no correct call seen yet."""
    if not n:
        return 1.0 if m == 0 else math.cos(m * math.pi / (2 * m + c))
    f = 2 * n * m / (m + n)
    return math.sin(f * math.pi / (2 * n))


def lowest_correct_calls(n_best: int | None, rewards: list[float], calls: list[int]) -> int | None:
    """The question's n after seeing this group: the minimum over the previous n and the correct trajectories."""
    correct = [m for r, m in zip(rewards, calls) if r > 0]
    candidates = ([] if n_best is None else [n_best]) + correct
    return min(candidates) if candidates else None


def otc_rewards(rewards: list[float], calls: list[int], n: int | None, alpha: float, c: float) -> list[float]:
    """R_i for one group, given the question's n."""
    return [alpha * otc_tool_reward(m, n, c) * r if r > 0 else r for r, m in zip(rewards, calls)]
