"""C-GRPO with CaRR's citation-aware rubric rewards (arXiv 2601.06021; code THUDM/CaRR; reference/
algorithms.md §5). GRPO whose outcome reward is refined by how well the answer's cited evidence covers the
question's gold chain:

    R_i = R_o,i * (1 - lam + lam * R_r,i / max_j R_r,j)      lam = 0.3 (paper; `normalize: group_max`)
    R_i = R_o,i * (1 - lam + lam * R_r,i)                    the released code's flags (`normalize: raw`)

R_o: the env's outcome reward; R_r: the fraction of rubrics identified, supported by a cited page the
trajectory retrieved, and connected to E0 (trainers/judges.py). Then GRPO's group z-score. Choices:
- Only trajectories with R_o > 0 are judged (the paper's finding: rubric reward for wrong answers hurts;
  the code's only-positive branch). The group max is taken over the judged trajectories.
- A task without rubrics has no rubric term: R = R_o.
- A judge failure (timeout, backend error, unparsable answer) is kept out of the reward: that trajectory's
  rubric term is the mean of the group's judged terms (1 if none), so it neither gains nor loses against its
  group; the failure is counted by kind (`ctx.state["judge_failures"]`) and stored on the leaf.
- Rubric components are stored per leaf in `tree.meta["carr"][leaf]` and the leaf's `info["carr"]` (viewer)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field, model_validator

from agentgym.config import AlgorithmConfig, Config
from agentgym.envs.web_search.rewards import parse_citations, retrieved_pages
from agentgym.trainers.advantages import TrajectoryZScore
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.judges import Judge, JudgeFailure, LLMJudge, RuleJudge, rubric_components
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import CreditContext, NoBranching
from agentgym.trainers.samples import build_samples
from agentgym.trajectory import TrajectoryTree


class CGRPOConfig(AlgorithmConfig):
    name: Literal["cgrpo"] = "cgrpo"
    rubric_weight: float = Field(default=0.3, ge=0, le=1, description="lambda: the rubric share of a correct answer.")
    normalize: Literal["group_max", "raw"] = Field(default="group_max", description="group_max: the paper; raw: "
                                                   "the released code (normalisation computed but unused).")
    judge: Literal["rule", "llm"] = Field(default="rule", description="rule: the generated world; llm: real corpora.")
    judge_policy: str | None = Field(default=None, description="LLM judge backend spec (embedded, openai:<url>, ...).")
    judge_timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _judge_has_backend(self) -> CGRPOConfig:
        if self.judge == "llm" and not self.judge_policy:
            raise ValueError("judge_policy is required with judge: llm (e.g. openai:http://127.0.0.1:8000/v1)")
        return self


def leaf_evidence(tree: TrajectoryTree, leaf: int) -> tuple[str, dict[str, str]]:
    """The final response, and {cited url: what the trajectory's tools returned about it} for the cited
    urls the trajectory actually retrieved (a fabricated citation is not evidence)."""
    path = tree.path(leaf)
    calls = [c for n in path for c in n.tool_calls]
    response = path[-1].action_text
    seen = {u.rstrip("/") for urls in retrieved_pages(calls).values() for u in urls}
    evidence: dict[str, str] = {}
    for cite in parse_citations(response):
        url = (cite["url"] or "").rstrip("/")
        if url in seen and url not in evidence:
            evidence[url] = "\n".join(c.output for c in calls if c.data and url in str(c.data))
    return response, evidence


class CGRPOCredit:
    def __init__(self, cfg: CGRPOConfig, judge: Judge | None = None):
        self.cfg, self._judge = cfg, judge

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            from agentgym.policies import make_policy
            self._judge = RuleJudge() if self.cfg.judge == "rule" else \
                LLMJudge(make_policy(self.cfg.judge_policy), self.cfg.judge_timeout_s)  # type: ignore[arg-type]
        return self._judge

    def __call__(self, trees: list[TrajectoryTree], ctx: CreditContext) -> None:
        failures: Counter = ctx.state.setdefault("judge_failures", Counter())
        for tree in trees:
            rubrics = list(tree.task.get("rubrics") or [])
            recs: dict[int, dict[str, Any]] = {}
            for leaf in tree.leaves():
                rec = recs[leaf] = {"outcome": tree.leaf_reward(leaf), "rubric": None, "components": []}
                if rubrics and rec["outcome"] > 0:  # only correct answers are judged
                    try:
                        verdict = self.judge(tree.task, *leaf_evidence(tree, leaf))
                    except JudgeFailure as e:
                        failures[e.kind], rec["judge_failure"] = failures[e.kind] + 1, e.kind
                        continue
                    rec["components"] = rubric_components(rubrics, verdict)
                    rec["rubric"] = sum(c["connected"] for c in rec["components"]) / len(rubrics)
            self._combine(recs, bool(rubrics))
            for node in tree.nodes:  # only leaves are credited
                node.credit_reward = None
            for leaf, rec in recs.items():
                tree.nodes[leaf].credit_reward = rec["reward"]
                tree.nodes[leaf].info["carr"] = rec
            tree.meta["carr"] = {str(leaf): rec for leaf, rec in recs.items()}

    def _combine(self, recs: dict[int, dict[str, Any]], has_rubrics: bool) -> None:
        lam, judged = self.cfg.rubric_weight, [r["rubric"] for r in recs.values() if r["rubric"] is not None]
        top = max(judged, default=0.0)
        scale = (lambda x: x / top if top > 0 else x) if self.cfg.normalize == "group_max" else (lambda x: x)
        neutral = sum(map(scale, judged)) / len(judged) if judged else 1.0
        for rec in recs.values():
            term = scale(rec["rubric"]) if rec["rubric"] is not None else neutral
            rec["reward"] = rec["outcome"] * (1 - lam + lam * term) if has_rubrics else rec["outcome"]


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    t = cfg.trainer
    return Algorithm(
        name="cgrpo", rollout=flat_rollout(cfg, "cgrpo"), make_strategy=lambda step: NoBranching(),
        credit=CGRPOCredit(cfg.algorithm),  # type: ignore[arg-type]
        advantage=TrajectoryZScore("soft", norm_by_std=t.norm_adv_by_std, drop_tied_groups=t.dynamic_sampling),
        build_samples=build_samples, loss_terms=rl_terms(t))


CGRPO = AlgorithmPlugin(name="cgrpo", config=CGRPOConfig, build=build)
