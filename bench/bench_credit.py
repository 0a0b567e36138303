"""Turn-level credit vs GRPO in one run: IGPO, C-GRPO and EAPO, each trained against GRPO on the same
questions, seeds, warm start and rollout budget, with the embedded model (SmolLM2-135M-Instruct).

Warm start: SFT on scripted-expert trajectories of training questions (the env's own experts; only the
solved ones), one warm start per environment, so accuracy after it is not zero and RL has groups to work on.
Every run trains LoRA adapters (r=16 on every linear projection, attention and MLP: adapters on the attention
projections alone left held-out accuracy at 0 % after the full warm start).

Questions have 1-2 hops (`hops=[1, 2]`; the envs' default is 2-4). With 2-4 hops the full warm start (28 solved
expert trajectories x 3 epochs) left the 135M model at 0 % on held-out questions and every RL group at reward
0, so no figure below could show anything; 1-2 hop questions take the expert 3-4 turns and the same-size warm
start solves about 40 % of held-out ones. Rollouts sample at T=0.7: at T=1 the warm-started model's turns were
mostly unparseable text. Every algorithm then trains from that same warm start with the same task seeds (`task_seeds(seed, step)`),
group size and step count, and is evaluated greedily on the same held-out (test split) questions.

- Web search (agentgym/WebSearch-v0, trained on token-F1 reward, evaluated on exact match):
  GRPO, IGPO and C-GRPO. Printed: held-out accuracy; the fraction of training groups whose trained
  advantages are all zero (advantage collapse: the step learns nothing from them); the shortcut rate on
  held-out questions (correct answers without a supporting citation chain: CaRR rubric score < 1 under
  the rule judge, i.e. some hop of the gold chain is not identified, cited from a retrieved page and
  connected to the answer); and IGPO's cost: its information-gain scoring time as a fraction of the step
  (rollout + credit + update), batched (a tree's path rows in one forward pass, tree_pass.py) vs naive (two scorer
  calls per turn per trajectory, the reference code's default path), both timed on the very same trees.
- Deep research (agentgym/DeepResearch-v0, Markovian rounds): GRPO and EAPO. Printed: held-out accuracy
  and rounds per solved question (EAPO's discount rewards solving in fewer rounds), and the same two over
  the run's own training rollouts (sampled at T=0.7 across all steps: many more episodes than the held-out
  set, so rounds per solved question has solved episodes to average even where greedy held-out accuracy is low).

Usage: python bench/bench_credit.py [--quick] [--only web|deep] [--model tiny] [--steps N] [--tasks N] [--group N]
       [--eval-tasks N] [--sft-tasks N] [--sft-epochs N]
(quick: 1 RL step x 2 questions x 4 rollouts per algorithm, 4 held-out questions; full: 3 x 4 x 4, 20 held out.
On the shared 2-core machine at load average 20-40 even the quick run takes far longer than on an idle one.)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from dataclasses import dataclass, field

from bench_args import positive_int

from agentgym.config import Config, load_config
from agentgym.registry import make
from agentgym.store import read_trees
from agentgym.trainers.cgrpo import CGRPOCredit
from agentgym.trainers.evaluate import evaluate
from agentgym.trainers.pieces import CreditContext
from agentgym.trainers.rl import RLRun, build_algorithm
from agentgym.trainers.session import open_session
from agentgym.trainers.sft import expert_trees, samples_from_trees, sft_train
from agentgym.trajectory import TrajectoryTree

WEB, DEEP = "agentgym/WebSearch-v0", "agentgym/DeepResearch-v0"
ENVS = {  # env kwargs for training; evaluation uses the test split and exact match
    WEB: {"reward": "f1", "page_chars": 600, "hops": [1, 2],
          "limits": {"max_turns": 5, "max_tokens_per_turn": 160, "max_tokens_per_episode": 1536}},
    DEEP: {"python": False, "page_chars": 600, "max_rounds": 6, "round_tokens": 640, "hops": [1, 2]},
}
EXPERTS = {WEB: "agentgym.envs.web_search.expert:web_search_expert",
           DEEP: "agentgym.envs.deep_research.expert:deep_research_expert"}


@dataclass
class Budget:
    steps: int
    tasks: int  # questions per step
    group: int  # rollouts per question
    eval_tasks: int
    sft_tasks: int
    sft_epochs: int


QUICK, FULL = Budget(1, 2, 4, 4, 12, 1), Budget(3, 4, 4, 20, 48, 3)
TEMPERATURE = 0.7
LORA = {"r": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
MICRO_BATCH_TOKENS = 2048  # logits of 2k tokens x 49k vocab: keeps the update within ~2 GB on a shared machine


MODEL = "embedded"  # --model tiny: a smoke run of the script itself (figures meaningless)


def run_config(root: str, env_id: str, algorithm: str, b: Budget) -> Config:
    kwargs = {k: v for k, v in ENVS[env_id].items() if k != "limits"}
    return load_config(run_dir=f"{root}/{env_id.split('/')[1]}-{algorithm}", seed=3,
                       env={"id": env_id, "kwargs": kwargs, "limits": ENVS[env_id].get("limits")},
                       policy={"model": MODEL, "max_batch_size": 16, "lora": LORA},
                       rollout={"group_size": b.group, "temperature": TEMPERATURE, "batch_wait_s": 0.25},
                       algorithm={"name": algorithm},
                       trainer={"steps": b.steps, "tasks_per_step": b.tasks, "lr": 5e-5, "checkpoint_every": 0,
                                "micro_batch_tokens": MICRO_BATCH_TOKENS},
                       eval={"tasks": b.eval_tasks, "split": "test", "temperature": 0.0},
                       logging={"tensorboard": False, "progress": False})


def warm_start(session, env_id: str, b: Budget) -> int:
    """SFT on the solved scripted-expert trajectories of training questions; returns the sample count."""
    factory = lambda: make(env_id, split="train", **ENVS[env_id])  # noqa: E731
    trees = expert_trees(EXPERTS[env_id], factory, env_id, session.tokenizer, [3_000_000 + i for i in range(b.sft_tasks)])
    samples = samples_from_trees(trees, 1.0)
    sft_train(session.model, session.tokenizer.pad_token_id, samples,
              load_config(sft={"epochs": b.sft_epochs, "lr": 2e-4, "batch_size": 4}).sft,
              load_config(trainer={"micro_batch_tokens": MICRO_BATCH_TOKENS}).trainer)
    session.policy.bump_version()
    return len(samples)


@dataclass
class Probe:
    """Wraps a run's credit piece: records credit times, and (for IGPO) times the naive per-turn scoring on
    the same trees before the batched one credits them."""

    credit_s: list[float] = field(default_factory=list)
    naive_s: list[float] = field(default_factory=list)

    def attach(self, run: RLRun, naive=None) -> RLRun:
        alg = run.algorithm
        credit = alg.credit

        def timed_credit(trees: list[TrajectoryTree], ctx: CreditContext) -> None:
            if naive is not None:
                t0 = time.perf_counter()
                naive.credit(trees, ctx)
                self.naive_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            credit(trees, ctx)
            self.credit_s.append(time.perf_counter() - t0)

        alg.credit = timed_credit
        return run


def zero_adv(history: list[dict]) -> float:
    """The share of training groups whose trained advantages were all 0 (every step has as many groups)."""
    return statistics.fmean(h["zero_adv_groups"] for h in history)


def held_out(session, cfg: Config, tag: str) -> list[TrajectoryTree]:
    kwargs = {**ENVS[cfg.env.id], "split": "test", **({"reward": "em"} if cfg.env.id == WEB else {})}
    trees, _ = evaluate(session.policy, lambda: make(cfg.env.id, **kwargs), cfg, tag, progress=False)
    return trees


def accuracy(trees: list[TrajectoryTree]) -> float:
    leaves = [(t, leaf) for t in trees for leaf in t.leaves()]
    return sum(t.leaf_reward(leaf) > 0 for t, leaf in leaves) / max(len(leaves), 1)


def shortcut_rate(trees: list[TrajectoryTree]) -> tuple[float, int]:
    """Among correct held-out answers, the fraction whose citations do not support the whole gold chain."""
    CGRPOCredit(load_config(algorithm={"name": "cgrpo"}).algorithm)(trees, CreditContext(config=None, step=0))
    recs = [r for t in trees for r in t.meta["carr"].values() if r["outcome"] > 0]
    return sum(r["rubric"] is None or r["rubric"] < 1 for r in recs) / max(len(recs), 1), len(recs)


def rounds_per_solved(trees: list[TrajectoryTree]) -> float:
    rounds = [len(t.path(leaf)) for t in trees for leaf in t.leaves() if t.leaf_reward(leaf) > 0]
    return statistics.fmean(rounds) if rounds else float("nan")


def train(session, cfg: Config, warm: dict, probe: Probe, naive: bool = False) -> list[dict]:
    session.model.load_state_dict(warm)
    run = RLRun(cfg, session=session, quiet=True)
    naive_alg = None
    if naive:
        off = cfg.algorithm.model_copy(update={"batched": False})
        naive_alg = build_algorithm(cfg.model_copy(update={"algorithm": off}), session.tokenizer)
    return probe.attach(run, naive_alg).train()


def fmt(x: float, spec: str = ".1%") -> str:
    return "n/a" if x != x else format(x, spec)


def warm_and_evaluate(session, env_id: str, b: Budget, base: dict | None, cfg, tag: str):
    """From the base weights: the SFT warm start on `env_id`, its weights, its held-out trees, its start time."""
    if base is not None:
        session.model.load_state_dict(base)
    t0 = time.perf_counter()
    n = warm_start(session, env_id, b)
    return n, copy.deepcopy(session.model.state_dict()), held_out(session, cfg, tag), t0


WEB_ALGORITHMS, DEEP_ALGORITHMS = ("grpo", "igpo", "cgrpo"), ("grpo", "eapo")


def bench_web(session, root: str, b: Budget, base: dict | None, only: list[str] | None = None) -> None:
    cfgs = {a: run_config(root, WEB, a, b) for a in only or WEB_ALGORITHMS if a in WEB_ALGORITHMS}
    if not cfgs:  # --algorithms named none of this part's
        return
    n, warm, sft, t0 = warm_and_evaluate(session, WEB, b, base, next(iter(cfgs.values())), "web-sft")
    print(f"\n[web search] {WEB}: SFT warm start on {n} solved expert trajectories ({time.perf_counter() - t0:.0f} s); "
          f"RL {b.steps} steps x {b.tasks} questions x {b.group} rollouts (F1 reward), same seeds; "
          f"held-out: {b.eval_tasks} test questions, greedy, exact match", flush=True)
    head = f"{'algorithm':<9} {'accuracy':>9} {'zero-adv groups':>16} {'shortcut rate':>14} {'correct':>8} {'step s':>7}"
    print(f"{head}\n{'-' * len(head)}")
    rate, correct = shortcut_rate(sft)
    print(f"{'SFT only':<9} {accuracy(sft):>9.1%} {'':>16} {fmt(rate):>14} {correct:>8}", flush=True)
    cost = None
    for name, cfg in cfgs.items():
        probe = Probe()
        history = train(session, cfg, warm, probe, naive=name == "igpo")
        trees = held_out(session, cfg, f"web-{name}")
        rate, correct = shortcut_rate(trees)
        steps = [h["time_rollout_s"] + c + h["time_update_s"] for h, c in zip(history, probe.credit_s)]
        print(f"{name:<9} {accuracy(trees):>9.1%} {zero_adv(history):>16.1%} "
              f"{fmt(rate):>14} {correct:>8} {statistics.fmean(steps):>7.1f}", flush=True)
        if name == "igpo":
            batched, naive = sum(probe.credit_s), sum(probe.naive_s)
            rest = sum(h["time_rollout_s"] + h["time_update_s"] for h in history)
            cost = (batched, naive, batched / (rest + batched), naive / (rest + naive))
    if cost is None:
        return
    batched, naive, fb, fn = cost
    print(f"IGPO scoring cost: batched (path rows) {batched:.1f} s = {fb:.1%} of the step; naive (per turn) "
          f"{naive:.1f} s = {fn:.1%} of the step; naive/batched = {naive / max(batched, 1e-9):.1f}x", flush=True)


def bench_deep(session, root: str, b: Budget, base: dict | None, only: list[str] | None = None) -> None:
    cfgs = {a: run_config(root, DEEP, a, b) for a in only or DEEP_ALGORITHMS if a in DEEP_ALGORITHMS}
    if not cfgs:  # --algorithms named none of this part's
        return
    n, warm, sft, t0 = warm_and_evaluate(session, DEEP, b, base, next(iter(cfgs.values())), "deep-sft")
    print(f"\n[deep research] {DEEP}: SFT warm start on {n} round samples of solved expert trajectories "
          f"({time.perf_counter() - t0:.0f} s); RL {b.steps} steps x {b.tasks} questions x {b.group} rollouts, same "
          f"seeds; held-out: {b.eval_tasks} test questions, greedy", flush=True)
    head = (f"{'algorithm':<9} {'accuracy':>9} {'rounds/solved':>14} {'zero-adv groups':>16} {'train solved':>13} "
            f"{'train rounds/solved':>20} {'step s':>7}")
    print(f"{head}\n{'-' * len(head)}")
    print(f"{'SFT only':<9} {accuracy(sft):>9.1%} {fmt(rounds_per_solved(sft), '.2f'):>14}", flush=True)
    for name, cfg in cfgs.items():
        probe = Probe()
        history = train(session, cfg, warm, probe)
        trees = held_out(session, cfg, f"deep-{name}")
        step_s = statistics.fmean(h["time_rollout_s"] + h["time_update_s"] for h in history)
        rollouts = read_trees(f"{cfg.run_dir}/trajectories.jsonl")  # every training rollout of the run
        print(f"{name:<9} {accuracy(trees):>9.1%} {fmt(rounds_per_solved(trees), '.2f'):>14} "
              f"{zero_adv(history):>16.1%} {fmt(accuracy(rollouts)):>13} {fmt(rounds_per_solved(rollouts), '.2f'):>20} "
              f"{step_s:>7.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny budget (minutes)")
    ap.add_argument("--only", choices=("web", "deep"), help="run one environment's part only")
    ap.add_argument("--model", default="embedded", help="policy model (tiny: a smoke run of this script)")
    ap.add_argument("--algorithms", nargs="+", choices=sorted({*WEB_ALGORITHMS, *DEEP_ALGORITHMS}),
                    help="run only these (each part keeps its own; default all). Rows of separate runs are comparable: "
                    "the warm start and every run are deterministic for a given budget (same seeds, same rows)")
    for name in Budget.__dataclass_fields__:  # each budget figure can be set on its own (default: quick or full)
        ap.add_argument(f"--{name.replace('_', '-')}", type=positive_int, help=f"override the budget's {name}")
    args = ap.parse_args()
    global MODEL
    MODEL = args.model
    b = QUICK if args.quick else FULL
    b = Budget(**{k: v if getattr(args, k) is None else getattr(args, k) for k, v in vars(b).items()})
    root = tempfile.mkdtemp(prefix="bench-credit-")
    session = open_session(run_config(root, WEB, "grpo", b))
    base = copy.deepcopy(session.model.state_dict()) if args.only is None else None
    t0 = time.perf_counter()
    if args.only in (None, "web"):
        bench_web(session, root, b, base, args.algorithms)
    if args.only in (None, "deep"):
        bench_deep(session, root, b, base, args.algorithms)
    print(f"\n(zero-adv groups: training groups whose trained advantages are all 0; shortcut rate: correct held-out "
          f"answers whose cited, retrieved pages do not support the whole gold chain; total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
