"""TAPO: Tool-Augmented Policy Optimization (arXiv 2510.07038; reference code Goer17/TAPO; reference/
seed-plugins.md §4). DAPO adapted to interleaved tool calls: a strict-format reward, an overlong penalty
on model tokens only, dynamic sampling on accuracy, and the DAPO loss (clip-higher 0.2/0.28, dual-clip
c = 10, token-mean, no KL: the trainer section of examples/tapo_python.yaml).

    R_i = -1 on a format error (the actions are not a strict sequence of allowed tags ending in <answer>),
    else  score_i + min(-(L_i - (L_max - L_buf)) / L_buf * factor, 0)
    keep a group iff std over it of [score_i > 0.9] > 0

score_i: the env's outcome reward (the answer's grade in [0, 1]); L_i: tokens the model sampled, never tool
outputs (TAPO's change to DAPO's penalty). The format rule is `tool_use.strict_format`.

Paper vs code: the paper's reward equations were not readable; we follow the code: no -1 floor on the
penalty (DAPO's paper has one), no tool-count term (computed, commented out of the reward). The code checks
format on the whole response, tool outputs included; we check the model's actions (the env writes outputs).
The code regenerates up to 10 batches to fill a batch with kept groups, then pads with unfiltered ones;
here a dropped group is left out of the update and counted, as the trainer's dynamic sampling does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agentgym.config import AlgorithmConfig, Config
from agentgym.trainers.advantages import TrajectoryZScore, show_on_tree
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.credit import outcome_credit
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import Advantages, AdvantageStats, CreditContext, NoBranching
from agentgym.trainers.samples import build_samples
from agentgym.trainers.tool_use import model_tokens, strict_format
from agentgym.trajectory import TrajectoryTree, ended_on_infra_error


class TAPOConfig(AlgorithmConfig):
    name: Literal["tapo"] = "tapo"
    max_length: int = Field(default=2048, ge=1, description="L_max: model tokens at which the penalty is -factor.")
    overlong_buffer: int = Field(default=1024, ge=1, description="L_buf: the penalty starts at L_max - L_buf.")
    overlong_factor: float = Field(default=1.0, ge=0, description="Penalty at L_max (0 turns it off).")
    allowed_tags: list[str] = Field(default_factory=lambda: ["think", "python", "search", "answer"],
                                    description="Tags a well-formed action may consist of.")
    acc_threshold: float = Field(default=0.9, description="A trajectory is accurate when its score exceeds this "
                                 "(dynamic sampling keeps groups that are neither all accurate nor all not).")

    @model_validator(mode="after")
    def _consistent(self) -> TAPOConfig:
        if self.overlong_buffer > self.max_length:
            raise ValueError(f"overlong_buffer ({self.overlong_buffer}) must not exceed max_length ({self.max_length})")
        if "answer" not in self.allowed_tags:
            raise ValueError("allowed_tags must include 'answer' (a well-formed trajectory ends with it)")
        return self

def overlong_penalty(model_tokens: int, max_length: int, buffer: int, factor: float) -> float:
    """DAPO's soft overlong penalty on the model's tokens: 0 up to max_length - buffer, then linear."""
    return min(-(model_tokens - (max_length - buffer)) / buffer * factor, 0.0)


def tapo_reward(format_ok: bool, score: float, model_tokens: int, max_length: int, buffer: int,
                factor: float) -> float:
    return -1.0 if not format_ok else score + overlong_penalty(model_tokens, max_length, buffer, factor)


def keep_group(scores: list[float], threshold: float = 0.9) -> bool:
    """Dynamic sampling: keep a group whose accuracies (score > threshold) are not all equal."""
    return len(scores) > 1 and len({s > threshold for s in scores}) > 1


class TAPOCredit:
    def __init__(self, cfg: TAPOConfig):
        self.cfg = cfg

    def __call__(self, trees: list[TrajectoryTree], ctx: CreditContext) -> None:
        outcome_credit(trees, ctx)
        c = self.cfg
        for tree in trees:
            tree.meta["tapo_score"] = {}  # leaf -> the answer's score, 0 on a format error (dynamic sampling's)
            for leaf in tree.leaves():  # the model's actions; an end-of-turn EOS is not part of the format
                texts = [ctx.tokenizer.decode(n.action_ids, skip_special_tokens=True) if ctx.tokenizer
                         else n.action_text for n in tree.path(leaf)]
                ok = strict_format(texts, c.allowed_tags)
                tree.meta["tapo_score"][leaf] = tree.leaf_reward(leaf) if ok else 0.0
                tree.nodes[leaf].credit_reward = tapo_reward(ok, tree.leaf_reward(leaf), model_tokens(tree, leaf),
                                                             c.max_length, c.overlong_buffer, c.overlong_factor)


class TAPOAdvantage:
    """GRPO's z-score; with ``trainer.dynamic_sampling``, groups are dropped by TAPO's accuracy criterion."""

    def __init__(self, cfg: TAPOConfig, norm_by_std: bool, dynamic_sampling: bool):
        self.cfg, self.dynamic_sampling = cfg, dynamic_sampling
        self.zscore = TrajectoryZScore("soft", norm_by_std=norm_by_std)

    def __call__(self, trees: list[TrajectoryTree], stats: AdvantageStats) -> list[Advantages]:
        out: list[Advantages] = []
        for tree in trees:
            leaves = [leaf for leaf in tree.leaves() if not ended_on_infra_error(tree, leaf)]
            scores = [tree.meta["tapo_score"][leaf] for leaf in leaves]
            if self.dynamic_sampling and not keep_group(scores, self.cfg.acc_threshold):
                stats.dropped_groups += 1
                stats.infra_error_leaves += len(tree.leaves()) - len(leaves)
                show_on_tree(tree, {})
                out.append({})
            else:
                out += self.zscore([tree], stats)
        return out


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    t = cfg.trainer
    return Algorithm(
        name="tapo", rollout=flat_rollout(cfg, "tapo"), make_strategy=lambda step: NoBranching(),
        credit=TAPOCredit(cfg.algorithm),  # type: ignore[arg-type]
        advantage=TAPOAdvantage(cfg.algorithm, t.norm_adv_by_std, t.dynamic_sampling),  # type: ignore[arg-type]
        build_samples=build_samples, loss_terms=rl_terms(t))


TAPO = AlgorithmPlugin(name="tapo", config=TAPOConfig, build=build)
