"""Trainer benchmarks, side by side in one run:

(a) tokens generated per trajectory, ARPO vs flat GRPO at the same group size (M trajectories per task);
(b) update throughput (trained tokens/s), our update vs TRL's GRPOTrainer loss + backward + step, same
    model and batch;
(c) reward per step for ARPO vs GRPO at equal rollout budget and seeds, and tool calls per correct answer.

Both algorithms start from the same SFT-warmed SmolLM2-135M-Instruct (so the model calls the tool and
ARPO has tool results to branch after). Usage: python bench/bench_trainer.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch

from agentgym.config import load_config
from agentgym.trainers.rl import RLRun
from agentgym.trainers.sft import expert_trees, samples_from_trees, sft_train
from agentgym.trainers.session import open_session

ENV = "agentgym/Python-v0"


def base_config(run_dir: str, algorithm: str, steps: int, tasks: int, m: int) -> dict:
    n = m // 2 if algorithm == "arpo" else m
    return {"run_dir": run_dir, "seed": 11, "env": {"id": ENV, "kwargs": {"difficulty": "mixed"},
                                                     "limits": {"max_turns": 3, "max_tokens_per_turn": 48}},
            "policy": {"model": "embedded"},
            "rollout": {"group_size": n, "max_trajectories": m, "temperature": 1.0},
            "algorithm": {"name": algorithm},
            "trainer": {"steps": steps, "tasks_per_step": tasks, "lr": 1e-5}, "logging": {"tensorboard": False}}


def warm_start(session, tasks: int) -> None:
    trees = expert_trees("agentgym.envs.python.expert:python_expert", session.env_factory(split="train"), ENV,
                         session.tokenizer, [2_000_000 + i for i in range(tasks)])
    cfg = load_config(sft={"epochs": 1, "lr": 5e-5, "batch_size": 8}).sft
    sft_train(session.model, session.tokenizer.pad_token_id, samples_from_trees(trees, 1.0), cfg)


def trl_update_tokens_per_s(model, tokenizer, samples) -> float:
    import datasets
    import trl

    args = trl.GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=len(samples), num_generations=2,
                          beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="bnpo", report_to=[], use_cpu=True,
                          bf16=False, fp16=False, max_completion_length=256)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args,
                              train_dataset=datasets.Dataset.from_list([{"prompt": "x"}] * 2), processing_class=tokenizer)
    trainer.current_gradient_accumulation_steps = 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    # TRL's layout: left-padded prompt (everything before the first trained token), right-padded completion
    firsts = [s.loss_mask.index(1) for s in samples]
    pw = max(firsts)
    cw = max(len(s.input_ids) - f for s, f in zip(samples, firsts))
    pad = tokenizer.pad_token_id
    prompt_ids = torch.full((len(samples), pw), pad)
    prompt_mask = torch.zeros(len(samples), pw, dtype=torch.long)
    comp_ids = torch.full((len(samples), cw), pad)
    comp_mask = torch.zeros(len(samples), cw, dtype=torch.long)
    tool_mask = torch.zeros(len(samples), cw, dtype=torch.long)
    adv = torch.zeros(len(samples))
    for r, (s, f) in enumerate(zip(samples, firsts)):
        prompt_ids[r, pw - f:] = torch.tensor(s.input_ids[:f])
        prompt_mask[r, pw - f:] = 1
        comp = s.input_ids[f:]
        comp_ids[r, : len(comp)] = torch.tensor(comp)
        comp_mask[r, : len(comp)] = 1
        tool_mask[r, : len(comp)] = torch.tensor(s.loss_mask[f:])
        adv[r] = s.advantages[f]
    inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": comp_ids,
              "completion_mask": comp_mask, "tool_mask": tool_mask, "advantages": adv,
              "num_items_in_batch": (comp_mask * tool_mask).sum()}
    model.train()
    start = time.perf_counter()
    loss = trainer._compute_loss(model, inputs)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return sum(s.trained_tokens for s in samples) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    steps, tasks, m = (2, 2, 8) if args.quick else (4, 4, 8)
    root = tempfile.mkdtemp(prefix="bench-trainer-")
    session = open_session(load_config(**base_config(f"{root}/warm", "grpo", steps, tasks, m)))
    t0 = time.perf_counter()
    warm_start(session, 32 if args.quick else 64)
    print(f"SFT warm start: {time.perf_counter() - t0:.0f} s")
    warm_state = copy.deepcopy(session.model.state_dict())
    results = {}
    for algorithm in ("grpo", "arpo"):
        session.model.load_state_dict(warm_state)
        cfg = load_config(**base_config(f"{root}/{algorithm}", algorithm, steps, tasks, m))
        run = RLRun(cfg, session=session, quiet=True)
        history = run.train()
        results[algorithm] = history
    print(f"\nsetup: {ENV} (mixed difficulty), {steps} steps x {tasks} tasks, M={m} trajectories per task "
          f"(ARPO: N={m // 2} from scratch + branches), same seeds and warm start")
    g, a = results["grpo"], results["arpo"]
    tok = {k: sum(h["tokens_per_trajectory"] for h in v) / len(v) for k, v in results.items()}
    print(f"(a) tokens generated per trajectory: GRPO {tok['grpo']:.1f}, ARPO {tok['arpo']:.1f}, "
          f"ratio ARPO/GRPO {tok['arpo'] / tok['grpo']:.2f}  (branches per step: "
          + ", ".join(f"{h['branches']:.0f}" for h in a) + ")")
    print("(c) reward per step:  GRPO " + " ".join(f"{h['reward']:.3f}" for h in g)
          + "\n                      ARPO " + " ".join(f"{h['reward']:.3f}" for h in a))
    for name, hist in results.items():
        scored = [h for h in hist if h["accuracy"] > 0]  # steps with no correct answer have no ratio
        per_correct = sum(h["tool_calls_per_correct"] for h in scored) / max(len(scored), 1)
        print(f"    {name.upper()}: mean reward {sum(h['reward'] for h in hist) / len(hist):.3f}, "
              f"tool calls per correct answer {per_correct:.2f}")
    # (b) the same batch through our update and TRL's
    from agentgym.store import TrajectoryStore
    from agentgym.trainers.core import PolicyTrainer
    from agentgym.trainers.advantages import TrajectoryZScore
    from agentgym.trainers.credit import outcome_credit
    from agentgym.trainers.pieces import AdvantageStats
    from agentgym.trainers.samples import build_samples

    trees = TrajectoryStore(f"{root}/grpo/trajectories.jsonl").read_all()[:tasks]
    outcome_credit(trees, None)
    samples = [s for s in build_samples(trees, TrajectoryZScore()(trees, AdvantageStats())) if s.trained_tokens]
    session.model.load_state_dict(warm_state)
    ours = PolicyTrainer(session.model, session.tokenizer.pad_token_id, load_config().trainer)
    start = time.perf_counter()
    stats = ours.update(samples)
    our_tps = stats.trained_tokens / (time.perf_counter() - start)
    session.model.load_state_dict(warm_state)
    trl_tps = trl_update_tokens_per_s(session.model, session.tokenizer, samples)
    print(f"(b) update throughput on the same {len(samples)}-sample batch ({stats.trained_tokens} trained tokens): "
          f"agentgym {our_tps:.0f} tokens/s, TRL GRPOTrainer {trl_tps:.0f} tokens/s, ratio {our_tps / trl_tps:.2f}x")


if __name__ == "__main__":
    main()
