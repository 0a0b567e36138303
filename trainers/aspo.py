"""ASPO: Advantage Shaping Policy Optimization (arXiv 2508.19201 eq. 2; reference/seed-plugins.md §2). An
advantage piece: after the GRPO z-score, a correct trajectory that called a tool is nudged toward calling
it earlier than the group does, by at most a fraction k of its own advantage:

    A_i += clip(delta * (p_i - mean p) / mean L, -k*|A_i|, +k*|A_i|)    for i in E = {correct, called a tool}

p_i = the position of the first tool call, L_i = the response length, both means over E only. delta < 0
rewards calling earlier; dividing by mean L (not std p) keeps the nudge bounded when positions cluster.
The shaping lives in the advantage, not the reward, because a reward bonus is renormalised away (and
turned into noise) in an all-correct group (paper §3.3). An all-correct group has A = 0, so a clip range
of 0: no shaping, as in the paper.

Multi-turn choices (the paper is single-turn): p_i counts the model tokens sampled before the first tool
call ran, i.e. through the end of the first turn that invoked a tool (the action ends with the call), and
L_i all model tokens of the trajectory; observation tokens are not counted in either
(agentgym.trainers.tool_use). The clip bound uses |A_i| so a correct answer with a negative advantage
(possible with non-binary rewards) gets a valid range. Defaults: the paper's conservative setting
delta = -2.0, k = 0.7 (body text; its figure legends print other values).
"""

from __future__ import annotations


def aspo_shape(advantages: list[float], rewards: list[float], positions: list[int | None], lengths: list[int],
               delta: float, k: float) -> list[float]:
    """Shaped advantages of one group (same order); positions[i] is None when trajectory i called no tool."""
    shaped = list(advantages)
    early = [i for i, (r, p) in enumerate(zip(rewards, positions)) if r > 0 and p is not None]
    if not early:
        return shaped
    mean_p = sum(positions[i] for i in early) / len(early)  # type: ignore[misc]
    mean_len = sum(lengths[i] for i in early) / len(early)
    if mean_len <= 0:
        return shaped
    for i in early:
        bound = k * abs(advantages[i])
        shaped[i] += min(max(delta * (positions[i] - mean_p) / mean_len, -bound), bound)  # type: ignore[operator]
    return shaped
