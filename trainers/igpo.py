"""IGPO: Information Gain-based Policy Optimization (arXiv 2510.14967, ICLR-2026 camera-ready; reference
code at 745078b; reference/algorithms.md §3). Dense turn rewards from how much each turn raises the
policy's own belief in the gold answer, so a group whose outcomes all tie still has a signal.

    v(ctx)      = mean over gold tokens a_j of log pi(a_j | ctx, answer_prefix, a_<j)   (teacher forcing, no grad)
    r_t         = v(ctx after turn t) - v(ctx before turn t)          turns t < T   (log_prob_diff, default)
                  exp(v(after)) - exp(v(before))                                    (prob_diff: arXiv v1)
    r_T         = the outcome: the env's reward if the trajectory answered, else format_penalty
    r~          = z-score of the turn rewards and of the outcomes, separately, within the group (population std)
    A_t         = sum_{k>=t} gamma^(k-t) r~_k, given to every sampled token of turn t (tool tokens masked)

Choices (paper, then code, where the issue is silent):
- The gold answer is the task's first ``golden_answers`` alias (else ``answer``). A run is refused before
  any model loads (`require_gold_answers`, the plugin's preflight): the env is reset with the run's own
  training task seeds and every question it hands out must carry one, else a ConfigError names env.id, the
  step and the seed. Past PREFLIGHT_TASKS questions it checks an even sample over the run; a question it
  missed still raises `MissingGoldAnswer` at its credit computation, before any scoring or update.
- The context is exactly the stored token context (`TrajectoryTree.context_ids`, observations and chat
  template included) followed by ``answer_prefix`` (default ``<answer>``, the web-search env's answer tag),
  tokenised apart from the gold answer, whose tokens alone are averaged (the code finds the same span via
  offsets; no closing tag is scored). Scored at temperature 1: the policy's own distribution.
- Values come from the current weights (the ones that sampled the rollout, as the code's old_log_probs).
- Batched (default): with a Hugging Face policy, the paper's "T copies with a custom attention mask", one
  row per path (tree_pass.py): the tree's common prefix (the group's prompt, or the turns before an ARPO
  tree's first branch) is computed once and cached, each path's row carries a gold-answer copy per turn,
  a node shared by branches is scored once, and rows are batched. Rows, not the whole tree as one masked
  sequence: masked attention is dense, quadratic in the packed length (bench/bench_igpo_scoring.py).
  Other backends get every distinct context of the step in one scorer call (info_gain.py). ``batched: false`` is the reference code's per-turn path, kept
  for the benchmark. Non-finite gains are skipped (no reward on that turn).
- The answer turn gets no gain, only the outcome; a single-turn episode is outcome-only (no scoring).
- Outcome: the env's reward (set ``env.kwargs.reward: f1`` on WebSearch-v0 for the paper's F1); a
  trajectory that never answered (turn/token limit) gets ``format_penalty`` (-2.0, the code's lambda_fmt).
- Normalisation ``separate`` (camera-ready, train.sh) or ``joint`` (code default, v1); population std as
  in the code; a node shared by several branches counts once. gamma = 1 by default (paper).
- No branching: IGPO samples flat groups; branched trees (from stored runs or tests) are credited the same.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentgym.config import AlgorithmConfig, Config, ConfigError
from agentgym.trainers.advantages import TurnZScore
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.info_gain import (MissingGoldAnswer, batched_values, gold_answer, information_gain,
                                         naive_information_gain)
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import CreditContext, NoBranching
from agentgym.trainers.samples import build_samples
from agentgym.trajectory import TrajectoryTree, ended_on_infra_error


class IGPOConfig(AlgorithmConfig):
    name: Literal["igpo"] = "igpo"
    gain: Literal["log_prob_diff", "prob_diff"] = Field(
        default="log_prob_diff", description="Turn reward: increase of the gold answer's mean log-prob "
        "(camera-ready) or of its probability exp(mean log-prob) (arXiv v1).")
    gamma: float = Field(default=1.0, ge=0, le=1, description="Discount of the turn-level return.")
    normalize: Literal["separate", "joint"] = Field(
        default="separate", description="z-score gains and outcomes apart (paper) or together (code default).")
    answer_prefix: str = Field(default="<answer>", description="Text that starts an answer, put between the "
                               "context and the teacher-forced gold answer.")
    format_penalty: float = Field(default=-2.0, le=0, description="Outcome of a trajectory that never answered.")
    batched: bool = Field(default=True, description="Score all contexts of a step in one call (shared "
                          "prefixes once) rather than turn by turn.")


class IGPOCredit:
    def __init__(self, cfg: IGPOConfig):
        self.cfg = cfg

    def __call__(self, trees: list[TrajectoryTree], ctx: CreditContext) -> None:
        c = self.cfg
        for tree in trees:  # every question has a gold answer, or nothing is scored or trained
            gold_answer(tree.task)
        if ctx.scorer is None or ctx.tokenizer is None:
            raise RuntimeError("IGPO needs a policy that can score tokens (Hugging Face or OpenAI-compatible)")
        leaves = [[leaf for leaf in t.leaves() if not ended_on_infra_error(t, leaf)] for t in trees]
        if c.batched:
            values = batched_values(trees, leaves, ctx.scorer, ctx.tokenizer, c.answer_prefix)
            gains = [information_gain(t, v, c.gain) for t, v in zip(trees, values)]
        else:
            gains = [naive_information_gain(t, ls, ctx.scorer, ctx.tokenizer, c.answer_prefix, c.gain)
                     for t, ls in zip(trees, leaves)]
        for tree, tree_gains in zip(trees, gains):
            for node in tree.nodes:
                node.credit_reward = tree_gains.get(node.id)
            for leaf in tree.leaves():
                node = tree.nodes[leaf]
                node.credit_reward = tree.leaf_reward(leaf) if node.terminated else c.format_penalty


PREFLIGHT_TASKS = 256  # questions checked before training; beyond it an even sample over the run


def require_gold_answers(cfg: Config) -> None:
    """Reset the training env with the run's task seeds (as the rollout engine will) and refuse the run if a
    question comes without a gold answer: a ConfigError naming env.id, before any model loads."""
    from agentgym.registry import make
    from agentgym.trainers.session import env_kwargs, task_seeds, validate

    validate(cfg)  # unknown env id or kwargs: their own clear errors first
    t = cfg.trainer
    seeds = [(step, s) for step in range(t.steps) for s in task_seeds(cfg.seed, step, t.tasks_per_step)]
    if len(seeds) > PREFLIGHT_TASKS:
        seeds = [seeds[i * len(seeds) // PREFLIGHT_TASKS] for i in range(PREFLIGHT_TASKS)]
    env = make(cfg.env.id, **env_kwargs(cfg))
    try:
        for step, seed in seeds:
            _, info = env.reset(seed=seed)
            task = info.get("task") if isinstance(info, dict) else None
            try:
                if not isinstance(task, dict):
                    raise MissingGoldAnswer("the env reports no task (info['task']) to take a gold answer from")
                gold_answer(task)
            except MissingGoldAnswer as e:
                raise ConfigError(f"env.id: algorithm igpo teacher-forces each question's gold answer "
                                  f"('golden_answers' or 'answer' in the task), but {cfg.env.id} gave a question "
                                  f"without one (training step {step}, task seed {seed}): {e}") from None
    finally:
        env.close()


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    a, t = cfg.algorithm, cfg.trainer
    return Algorithm(
        name="igpo", rollout=flat_rollout(cfg, "igpo"), make_strategy=lambda step: NoBranching(),
        credit=IGPOCredit(a),  # type: ignore[arg-type]
        advantage=TurnZScore(a.normalize, discount=a.gamma, norm_by_std=t.norm_adv_by_std,  # type: ignore[attr-defined]
                             unbiased=False, drop_tied_groups=t.dynamic_sampling),
        build_samples=build_samples, loss_terms=rl_terms(t))


IGPO = AlgorithmPlugin(name="igpo", config=IGPOConfig, build=build, preflight=require_gold_answers)
