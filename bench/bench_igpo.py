"""IGPO vs GRPO on the same rollouts of agentgym/WebSearch-v0 (F1 reward): the fraction of groups whose
advantages are all zero (advantage collapse: the step learns nothing from them), and IGPO's scoring cost as a
fraction of a training step (rollout + credit + update), batched (one pass per tree) vs distinct contexts
in one call vs naive (per turn per trajectory). Both algorithms credit the very same trees, so the
comparison is on the same questions, seeds, weights and rollout budget. `bench_igpo(quick)` is the entry
point (bench/bench_credit.py may call it).
Usage: python bench/bench_igpo.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from agentgym.config import load_config
from agentgym.rollout import RolloutEngine
from agentgym.trainers.algorithm import Algorithm
from agentgym.trainers.pieces import AdvantageStats, CreditContext
from agentgym.trainers.rl import RLRun, build_algorithm
from agentgym.trainers.session import task_seeds


def collapsed(advantages: list[dict[int, dict[int, float]]]) -> float:
    """Fraction of groups whose every trained advantage is 0."""
    flat = [all(abs(a) < 1e-9 for adv in per_leaf.values() for a in adv.values()) for per_leaf in advantages]
    return sum(flat) / len(flat)


def credit_time(alg: Algorithm, trees, ctx: CreditContext) -> float:
    t0 = time.perf_counter()
    alg.credit(trees, ctx)
    return time.perf_counter() - t0


def bench_igpo(quick: bool = False) -> dict[str, float]:
    tasks, group = (4, 4) if quick else (16, 8)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(run_dir=tmp, seed=0, policy={"model": "tiny"},
                          env={"id": "agentgym/WebSearch-v0", "kwargs": {"reward": "f1", "world_pages": 300},
                               "limits": {"max_turns": 4, "max_tokens_per_turn": 24, "max_tokens_per_episode": 128}},
                          rollout={"group_size": group}, algorithm={"name": "igpo"},
                          logging={"tensorboard": False, "progress": False},
                          trainer={"steps": 1, "tasks_per_step": tasks})
        run = RLRun(cfg, quiet=True)
        s = run.session
        engine = RolloutEngine(s.policy, s.env_factory(), env_id=cfg.env.id, config=run.algorithm.rollout,
                               strategy=run.algorithm.make_strategy(0))
        t0 = time.perf_counter()
        trees = engine.run(task_seeds(cfg.seed, 0, tasks))
        t_rollout = time.perf_counter() - t0
        ctx = CreditContext(config=cfg, step=0, tokenizer=s.tokenizer, scorer=s.policy.score)
        grpo = build_algorithm(cfg.model_copy(update={"algorithm": load_config(algorithm={"name": "grpo"}).algorithm}),
                               s.tokenizer)
        grpo.credit(trees, ctx)
        grpo_collapse = collapsed(grpo.advantage(trees, AdvantageStats()))
        naive = build_algorithm(cfg.model_copy(update={"algorithm": cfg.algorithm.model_copy(update={"batched": False})}),
                                s.tokenizer)
        t_naive = credit_time(naive, trees, ctx)
        unbound = CreditContext(config=cfg, step=0, tokenizer=s.tokenizer,
                                scorer=lambda c, t: s.policy.score(c, t))  # not a bound method: no tree pass
        t_contexts = credit_time(run.algorithm, trees, unbound)
        t_batched = credit_time(run.algorithm, trees, ctx)
        advantages = run.algorithm.advantage(trees, AdvantageStats())
        igpo_collapse = collapsed(advantages)
        t1 = time.perf_counter()
        run.trainer.update(run.algorithm.build_samples(trees, advantages), step=0)
        t_update = time.perf_counter() - t1
        turns = sum(len(t.nodes) for t in trees)
    step = lambda credit: t_rollout + credit + t_update  # noqa: E731
    out = {"grpo_zero_adv_groups": grpo_collapse, "igpo_zero_adv_groups": igpo_collapse,
           "batched_s": t_batched, "contexts_s": t_contexts, "naive_s": t_naive,
           "batched_frac": t_batched / step(t_batched), "naive_frac": t_naive / step(t_naive)}
    print(f"igpo bench: {tasks} questions x {group} rollouts, {turns} turns, tiny model, WebSearch-v0 (F1)")
    print(f"zero-advantage groups: GRPO {grpo_collapse:.2f}  IGPO {igpo_collapse:.2f}")
    print(f"IGPO scoring: batched (one pass per tree) {t_batched:.3f}s = {out['batched_frac']:.1%} of the step; "
          f"distinct contexts in one call {t_contexts:.3f}s; naive per turn {t_naive:.3f}s = "
          f"{out['naive_frac']:.1%} of the step; naive/batched = {t_naive / max(t_batched, 1e-9):.1f}x")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    bench_igpo(parser.parse_args().quick)
