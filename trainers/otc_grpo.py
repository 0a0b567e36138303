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
from typing import Literal

from pydantic import Field

from agentgym.config import AlgorithmConfig, Config
from agentgym.trainers.advantages import TrajectoryZScore
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.credit import outcome_credit
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import CreditContext, NoBranching
from agentgym.trainers.samples import build_samples
from agentgym.trainers.tool_use import tool_call_turns
from agentgym.trajectory import TrajectoryTree, ended_on_infra_error


class OTCGRPOConfig(AlgorithmConfig):
    name: Literal["otc_grpo"] = "otc_grpo"
    alpha: float = Field(default=1.0, gt=0, description="Scale of the reward (the paper's best: 1; 2 and 3 worse).")
    c: float = Field(default=3.0, gt=0, description="Smoothing constant of the n = 0 cosine: the maximum number "
                     "of tool calls (the paper: 3 in the code setting, 4 in search); smaller penalises calls faster.")
    n_estimate: Literal["global", "group"] = Field(
        default="global", description="n = the fewest calls of a correct answer to the question over all steps "
        "so far (the paper's choice) or within this group only.")


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


def question_key(tree: TrajectoryTree) -> str:
    task = tree.task
    return str(task.get("id", task.get("question", tree.id)))


class OTCCredit:
    """Outcome credit times the tool-efficiency term, on each leaf's last turn; n per question in the credit
    state (checkpointed with the run)."""

    def __init__(self, cfg: OTCGRPOConfig):
        self.cfg = cfg

    def __call__(self, trees: list[TrajectoryTree], ctx: CreditContext) -> None:
        outcome_credit(trees, ctx)
        n_best: dict[str, int] = ctx.state.setdefault("otc_n_best", {})
        for tree in trees:  # infra-error leaves say nothing about the policy: they neither set n nor are shaped
            leaves = [leaf for leaf in tree.leaves() if not ended_on_infra_error(tree, leaf)]
            rewards = [tree.leaf_reward(leaf) for leaf in leaves]
            calls = [tool_call_turns(tree, leaf) for leaf in leaves]
            key = question_key(tree)
            n = lowest_correct_calls(n_best.get(key) if self.cfg.n_estimate == "global" else None, rewards, calls)
            if n is not None and self.cfg.n_estimate == "global":
                n_best[key] = n
            for leaf, reward in zip(leaves, otc_rewards(rewards, calls, n, self.cfg.alpha, self.cfg.c)):
                tree.nodes[leaf].credit_reward = reward


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    t = cfg.trainer
    return Algorithm(
        name="otc_grpo",
        rollout=flat_rollout(cfg, "otc_grpo"),
        make_strategy=lambda step: NoBranching(),
        credit=OTCCredit(cfg.algorithm),  # type: ignore[arg-type]
        advantage=TrajectoryZScore("soft", norm_by_std=t.norm_adv_by_std, drop_tied_groups=t.dynamic_sampling),
        build_samples=build_samples,
        loss_terms=rl_terms(t),
    )


OTC_GRPO = AlgorithmPlugin(name="otc_grpo", config=OTCGRPOConfig, build=build)
