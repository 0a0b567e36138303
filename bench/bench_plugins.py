"""Seed plugins side by side: GRPO, ARPO, OTC-GRPO and ASPO from the same SFT warm start, seeds and
rollout budget on the Python env with the embedded model (SmolLM2-135M-Instruct).

The warm start is a *short* SFT: one epoch over a few scripted-expert trajectories of mixed tasks (all ten
kinds, three difficulty levels), the same distribution RL trains and the held-out evaluation tests on. It
teaches the tool-call format and a rough idea of each kind, so SFT alone does not saturate the evaluation
and RL's groups are mixed (some trajectories right, some wrong), which is what its advantage needs. Two
warm starts that were measured and rejected: SFT on easy tasks only (two epochs) left sampled-token entropy
at 0.04-0.30 and every group all-correct or all-wrong, so GRPO had zero advantage and no gradient at every
step (RL gained exactly 0); one epoch of it at lr 2e-5 left every group all-wrong.

RL samples at T=1.0 with lr 1e-5, and the headline figure is avg@k at that temperature. The policy's sampled
accuracy is then far below its greedy accuracy (10 % against 50 % on 30 held-out tasks), so RL has room to
move it: at T=0.5 per-task success was all-or-nothing by task kind (about 0 for linear, system, combinations
and quadratic; about 1 for product, power, modular and sum) and only 12 of 64 training groups were mixed; a
16-step GRPO run at lr 1e-5 there moved avg@4 by +2.5 % +/- 3.2 %, indistinguishable from zero. At T=1.0, 40 % of
training tasks are mixed. Learning rates measured and rejected: 2e-5 broke the warm start in a single update
(the next step's 32 samples all wrong, every later step zero advantage); 3e-6 and 1e-6 left the next step's
reward unchanged; 5e-6 at T=0.5 for 6 steps moved greedy accuracy by -5 to +1.7 points, inside the noise.
Rollouts are `deterministic` (batches formed in a fixed order), so every algorithm's first step samples the
very same tokens and the rows differ only by what each algorithm does with them.

Printed per algorithm, on the same held-out tasks (greedy): accuracy before RL (after SFT) and after,
the held-out tasks RL fixed and broke (paired: the same tasks, before and after),
tool calls per correct answer, the position of the first tool call (model tokens sampled before it ran),
the mean training reward, and the step time (rollout + update) relative to GRPO. Every algorithm gets M
trajectories per task (ARPO: M/2 from scratch + entropy branches, topped up to M).

Also printed: avg@k (default k=4) at the training temperature before and after RL, seeded so the same
weights sample the same episodes, with the paired per-task gain and its standard error: sampled accuracy
moves before greedy accuracy does, and pairing by task removes the spread of task difficulty.

Usage: python bench/bench_plugins.py [--quick] [--lr X] [--temperature T] [--samples K] [--only ALG ...]
       [--steps N] [--tasks N] [--group M] [--eval-tasks N] [--sft-tasks N] [--sft-epochs N]
(quick: a few minutes; full: ~70 min alone on one CPU core, evaluations included)
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import dataclass

from bench_args import positive_int

from agentgym.config import load_config
from agentgym.registry import make
from agentgym.trainers.evaluate import evaluate
from agentgym.trainers.rl import RLRun
from agentgym.trainers.session import open_session
from agentgym.trainers.sft import expert_trees, samples_from_trees, sft_train
from agentgym.trainers.tool_use import first_tool_call_position, tool_call_turns

ENV = "agentgym/Python-v0"
EXPERT = "agentgym.envs.python.expert:python_expert"
ALGORITHMS = ("grpo", "arpo", "otc_grpo", "aspo")
# at T=1 the warm-started policy samples far below its greedy accuracy and 40 % of tasks are mixed; at T=0.5 its
# success was all-or-nothing per task kind, so few groups carried a signal (module docstring)
TEMPERATURE = 1.0
LR = 1e-5  # 2e-5 collapsed the policy after one update; 5e-6 moved nothing measurable in 6 steps
LIMITS = {"max_turns": 3, "max_tokens_per_turn": 48, "max_tokens_per_episode": 144}


@dataclass
class Budget:
    steps: int  # RL steps per algorithm
    tasks: int  # tasks per step
    group: int  # trajectories per task (M)
    eval_tasks: int
    sft_tasks: int
    sft_epochs: int


QUICK, FULL = Budget(2, 2, 4, 12, 16, 1), Budget(4, 4, 8, 30, 32, 1)


def run_config(root: str, algorithm: str, steps: int, tasks: int, m: int, eval_tasks: int, lr: float = LR,
               temperature: float = TEMPERATURE) -> dict:
    branching = algorithm == "arpo"
    return {"run_dir": f"{root}/{algorithm}", "seed": 7,
            "env": {"id": ENV, "kwargs": {"difficulty": "mixed"}, "limits": LIMITS},
            "policy": {"model": "embedded", "max_batch_size": 16},
            "rollout": {"group_size": m // 2 if branching else m, "temperature": temperature, "deterministic": True,
                        **({"max_trajectories": m, "supplement": True} if branching else {})},
            "algorithm": {"name": algorithm},
            "trainer": {"steps": steps, "tasks_per_step": tasks, "lr": lr, "checkpoint_every": 0,
                        "micro_batch_tokens": 1024},  # bounds the logits' memory (vocabulary 49k) to ~1 GB
            "eval": {"tasks": eval_tasks, "split": "test", "temperature": 0.0},
            "logging": {"tensorboard": False, "progress": False}}


def warm_start(session, tasks: int, epochs: int = 1) -> int:
    """SFT (one epoch by default) on the expert's solved trajectories of `tasks` mixed training tasks (their own
    seed range, apart from RL's random draws); returns the number of samples."""
    mixed = lambda: make(ENV, difficulty="mixed", split="train", limits=LIMITS)  # noqa: E731
    trees = expert_trees(EXPERT, mixed, ENV, session.tokenizer, [3_000_000 + i for i in range(tasks)])
    samples = samples_from_trees(trees, 1.0)
    sft_train(session.model, session.tokenizer.pad_token_id, samples,
              load_config(sft={"epochs": epochs, "lr": 5e-5, "batch_size": 8}).sft)
    session.policy.bump_version()
    return len(samples)


def held_out(session, cfg, tag: str) -> dict:
    trees, metrics = evaluate(session.policy, session.env_factory(split="test"), cfg, tag, progress=False)
    leaves = [(t, leaf) for t in trees for leaf in t.leaves()]
    correct = [(t, leaf) for t, leaf in leaves if t.leaf_reward(leaf) > 0]
    positions = [p for t, leaf in leaves if (p := first_tool_call_position(t, leaf)) is not None]
    return {"accuracy": metrics["accuracy"], "tasks": metrics["tasks"],
            "calls_per_correct": sum(tool_call_turns(t, leaf) for t, leaf in correct) / max(len(correct), 1),
            "first_call": sum(positions) / len(positions) if positions else float("nan"),
            "called_tool": len(positions) / max(len(leaves), 1), "solved": {t.seed for t, _ in correct}}


def sampled(session, cfg, k: int, tag: str) -> dict[int, float]:
    """Held-out task seed -> share of `k` episodes sampled at the training temperature that solve it (avg@k)."""
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"samples": k, "temperature": cfg.rollout.temperature})})
    trees, _ = evaluate(session.policy, session.env_factory(split="test"), cfg, tag, progress=False)
    return {t.seed: sum(t.leaf_reward(leaf) > 0 for leaf in t.leaves()) / len(t.leaves()) for t in trees}


def paired_gain(before: dict[int, float], after: dict[int, float]) -> tuple[float, float, float, float]:
    """(avg@k before, after, mean per-task gain, its standard error): tasks paired, so the task-to-task spread
    of difficulty cancels out of the gain's error."""
    diffs = [after[s] - before[s] for s in before]
    mean = sum(diffs) / len(diffs)
    se = (sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1) / len(diffs)) ** 0.5
    return sum(before.values()) / len(before), sum(after.values()) / len(after), mean, se


def temperature(text: str) -> float:
    value = float(text)
    if not 0 < value <= 2:
        raise argparse.ArgumentTypeError(f"must be in (0, 2], got {text!r}")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny budget (minutes)")
    ap.add_argument("--lr", type=float, default=LR, help=f"RL learning rate (default {LR})")
    ap.add_argument("--temperature", type=temperature, default=TEMPERATURE,
                    help=f"rollout temperature, also avg@k's (default {TEMPERATURE})")
    ap.add_argument("--samples", type=int, default=4, help="episodes per held-out task sampled at the training "
                    "temperature for avg@k, before and after RL (0: greedy only)")
    ap.add_argument("--only", nargs="+", choices=ALGORITHMS, help="run only these algorithms (the first is the "
                    "step-time reference)")
    for name in Budget.__dataclass_fields__:  # each budget figure can be set on its own (default: quick or full)
        ap.add_argument(f"--{name.replace('_', '-')}", type=positive_int, help=f"override the budget's {name}")
    args = ap.parse_args()
    b = QUICK if args.quick else FULL
    b = Budget(**{k: v if getattr(args, k) is None else getattr(args, k) for k, v in vars(b).items()})
    steps, tasks, m, eval_tasks, t = b.steps, b.tasks, b.group, b.eval_tasks, args.temperature
    algorithms = args.only or ALGORITHMS
    root = tempfile.mkdtemp(prefix="bench-plugins-")
    cfgs = {a: load_config(**run_config(root, a, steps, tasks, m, eval_tasks, args.lr, t)) for a in algorithms}
    session = open_session(cfgs[algorithms[0]])
    t0 = time.perf_counter()
    n_samples = warm_start(session, b.sft_tasks, b.sft_epochs)
    print(f"SFT warm start ({b.sft_epochs} epoch(s)) on {n_samples} expert trajectories of {b.sft_tasks} mixed tasks: "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    warm = copy.deepcopy(session.model.state_dict())
    before = held_out(session, cfgs[algorithms[0]], "after_sft")
    print(f"\nsetup: {ENV}; short SFT, RL (T={t}, lr {args.lr:g}) and held-out eval on mixed tasks ({eval_tasks} test tasks, greedy); "
          f"{steps} RL steps x {tasks} tasks x M={m} trajectories (ARPO: N={m // 2} + branches); same seeds")
    head = f"{'algorithm':<10} {'acc SFT':>8} {'acc RL':>8} {'gain':>7} {'calls/correct':>14} {'first call':>11} " \
           f"{'used tool':>10} {'fixed/broke':>12} {'train reward':>13} {'signal':>7} {'H':>6} {'grad norm':>10} {'step s':>8} {'vs ' + algorithms[0]:>11}"
    print(f"{head}\n{'-' * len(head)}")
    print(f"{'SFT only':<10} {before['accuracy']:>8.1%} {'':>8} {'':>7} {before['calls_per_correct']:>14.2f} "
          f"{before['first_call']:>11.1f} {before['called_tool']:>10.0%}", flush=True)
    k = args.samples
    before_k = sampled(session, cfgs[algorithms[0]], k, "after_sft_sampled") if k else {}
    if k:
        print(f"{'':<10} avg@{k} at T={t}: {sum(before_k.values()) / len(before_k):.1%}", flush=True)
    se = (before["accuracy"] * (1 - before["accuracy"]) / max(before["tasks"], 1)) ** 0.5
    base = None
    for name in algorithms:  # each row is printed as soon as its run is evaluated
        session.model.load_state_dict(warm)
        session.policy.bump_version()  # weights changed in place: no keys/values of the last run's weights reused
        history = RLRun(cfgs[name], session=session, quiet=True).train()
        step_s = sum(h["time_rollout_s"] + h["time_update_s"] for h in history) / len(history)
        mean = lambda key: sum(h[key] for h in history) / len(history)  # noqa: E731
        base = base or step_s  # the first algorithm (GRPO by default) is the reference
        r = held_out(session, cfgs[name], f"after_{name}")
        fixed_broke = f"+{len(r['solved'] - before['solved'])}/-{len(before['solved'] - r['solved'])}"
        print(f"{name:<10} {before['accuracy']:>8.1%} {r['accuracy']:>8.1%} {r['accuracy'] - before['accuracy']:>+7.1%} "
              f"{r['calls_per_correct']:>14.2f} {r['first_call']:>11.1f} {r['called_tool']:>10.0%} "
              f"{fixed_broke:>12} "
              f"{mean('reward'):>13.3f} {1 - mean('zero_adv_groups'):>7.0%} {mean('entropy'):>6.3f} {mean('grad_norm'):>10.4f} {step_s:>8.1f} "
              f"{step_s / base:>10.2f}x", flush=True)
        if k:
            b, a, gain, gain_se = paired_gain(before_k, sampled(session, cfgs[name], k, f"after_{name}_sampled"))
            print(f"{'':<10} avg@{k} at T={t}: SFT {b:.1%} -> RL {a:.1%}, paired gain {gain:+.1%} "
                  f"(standard error {gain_se:.1%} over {len(before_k)} tasks)", flush=True)
        if not any(h["grad_norm"] for h in history):
            print(f"{'':<10} every group of {name} was all-correct or all-wrong: zero advantage, no update "
                  "(the warm start leaves too little entropy, or too little skill)", flush=True)
    print(f"(acc: greedy, one episode per task; accuracy after SFT: binomial standard error {se:.1%} on "
          f"{before['tasks']:.0f} tasks; avg@k: the mean share of k sampled episodes solving a task; fixed/broke: held-out "
          "tasks solved after RL and not before / before and not after; "
          "first call: model tokens sampled before the first tool call ran; calls/correct: tool-call turns per "
          "correct answer; signal: share of training groups with a non-zero advantage (the rest were all-correct or "
          "all-wrong and taught nothing); H: mean sampled-token entropy; grad norm: mean over steps, 0 when every group's rewards "
          "were equal; step s: rollout + update per step)")


if __name__ == "__main__":
    main()
