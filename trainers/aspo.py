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

from typing import Literal

from pydantic import Field

from agentgym.config import AlgorithmConfig, Config
from agentgym.trainers.advantages import TrajectoryZScore, show_on_tree
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.credit import outcome_credit, trajectory_return
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import Advantages, AdvantageStats, NoBranching
from agentgym.trainers.samples import build_samples
from agentgym.trainers.tool_use import first_tool_call_position, model_tokens
from agentgym.trajectory import TrajectoryTree


class ASPOConfig(AlgorithmConfig):
    name: Literal["aspo"] = "aspo"
    delta: float = Field(default=-2.0, lt=0, description="Shaping strength; negative rewards an earlier first "
                         "tool call (the paper: -2.0 conservative, -2.5 aggressive).")
    k: float = Field(default=0.7, gt=0, lt=1, description="The nudge is at most k times the trajectory's own "
                     "advantage, so correctness dominates (the paper: 0.7 conservative, 0.9 aggressive).")


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


class ASPOAdvantage:
    """GRPO's trajectory z-score (soft attribution: one advantage per trajectory), then ASPO's shaping."""

    def __init__(self, cfg: ASPOConfig, norm_by_std: bool, drop_tied_groups: bool):
        self.cfg = cfg
        self.zscore = TrajectoryZScore("soft", norm_by_std=norm_by_std, drop_tied_groups=drop_tied_groups)

    def __call__(self, trees: list[TrajectoryTree], stats: AdvantageStats) -> list[Advantages]:
        out = self.zscore(trees, stats)
        for tree, per_leaf in zip(trees, out):
            leaves = list(per_leaf)
            shaped = aspo_shape([per_leaf[leaf][leaf] for leaf in leaves],
                                [trajectory_return(tree, leaf) for leaf in leaves],
                                [first_tool_call_position(tree, leaf) for leaf in leaves],
                                [model_tokens(tree, leaf) for leaf in leaves], self.cfg.delta, self.cfg.k)
            for leaf, a in zip(leaves, shaped):
                per_leaf[leaf] = {node: a for node in per_leaf[leaf]}
            show_on_tree(tree, per_leaf)
        return out


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    t = cfg.trainer
    return Algorithm(
        name="aspo",
        rollout=flat_rollout(cfg, "aspo"),
        make_strategy=lambda step: NoBranching(),
        credit=outcome_credit,
        advantage=ASPOAdvantage(cfg.algorithm, t.norm_adv_by_std, t.dynamic_sampling),  # type: ignore[arg-type]
        build_samples=build_samples,
        loss_terms=rl_terms(t),
    )


ASPO = AlgorithmPlugin(name="aspo", config=ASPOConfig, build=build)
