"""IGPO's information-gain scoring, three ways on the very same trees, side by side with their ratios.

- batched rows (the default with a Hugging Face policy, trainers/tree_pass.py): the tree's common prefix
  once, then one row per path carrying a gold-answer copy per turn, rows batched;
- distinct contexts (the default with other backends, e.g. a vLLM server): every distinct turn context
  of the step in one `Policy.score` call, batched by the policy;
- naive per turn (the reference code's default path, ``algorithm.batched: false``): two `score` calls per
  turn of every trajectory.

Trees: the shapes bench_credit.py trains on (WebSearch-v0: a shared prompt, then turns of a sampled action
and a tool observation, up to 1,536 tokens a path): flat IGPO groups of G rollouts with 2-5 turns each, and
an ARPO-style tree (one root, branches re-sampling turns 2 and 3). Token ids are random: the cost of a
forward pass does not depend on which tokens they are. Model: the embedded SmolLM2-135M-Instruct with LoRA
r=16 (as in bench_credit.py), CPU. Also printed: the largest difference between the batched and the naive
gains (float32 sums over a 1,500-token context differ in the 5th decimal).

Usage: python bench/bench_igpo_scoring.py [--quick] [--model tiny]   (full: about 15 min on 2 idle cores)
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

from agentgym.config import load_config
from agentgym.trainers.info_gain import batched_values, information_gain, naive_information_gain
from agentgym.trainers.session import open_session
from agentgym.trajectory import TrajectoryTree, Turn

PROMPT, ACTION, OBSERVATION = 350, 90, 220  # tokens: system prompt + question; a turn's action; a page excerpt
TASK = {"question": "q", "golden_answers": ["Ada Lovelace"]}


def _ids(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(100, 40000) for _ in range(n)]


def _extend(tree: TrajectoryTree, rng: random.Random, parent: int | None, turns: int, first: list[int]) -> int:
    """`turns` new turns below `parent`, the first one's prefix `first` (the prompt, or the observation a branch
    re-samples after), the others' a fresh observation each."""
    for k in range(turns):
        prefix = list(first) if k == 0 else _ids(rng, OBSERVATION)
        parent = tree.add(Turn(id=0, parent=parent, prefix_ids=prefix, action_ids=_ids(rng, ACTION),
                               logprobs=[-1.0] * ACTION)).id
    tree.nodes[parent].terminated = True
    tree.final_rewards[parent] = rng.random()
    return parent


def flat_group(rng: random.Random, group: int) -> TrajectoryTree:
    tree, prompt = TrajectoryTree(task=TASK), _ids(rng, PROMPT)
    for _ in range(group):
        _extend(tree, rng, None, rng.randint(2, 5), prompt)
    return tree


def branched(rng: random.Random) -> TrajectoryTree:
    """A 5-turn path, plus branches re-sampling its 2nd turn (twice) and its 3rd (once) from the same context
    (ARPO: same observation, a new action), each to 5 turns."""
    tree = TrajectoryTree(task=TASK)
    leaf = _extend(tree, rng, None, 5, _ids(rng, PROMPT))
    path = [n.id for n in tree.path(leaf)]
    for at, copies in ((1, 2), (2, 1)):
        for _ in range(copies):
            _extend(tree, rng, path[at - 1], 5 - at, tree.nodes[path[at]].prefix_ids)
    return tree


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def compare(session, label: str, trees: list[TrajectoryTree]) -> None:
    score, tok = session.policy.score, session.tokenizer
    leaves = [t.leaves() for t in trees]
    tokens = sum(len(t.context_ids(leaf)) for t, ls in zip(trees, leaves) for leaf in ls)
    turns = sum(len(t.path(leaf)) - 1 for t, ls in zip(trees, leaves) for leaf in ls)
    values, rows_s = timed(lambda: batched_values(trees, leaves, score, tok, "<answer>"))
    distinct, distinct_s = timed(lambda: batched_values(trees, leaves, score, tok, "<answer>", tree_pass=False))
    naive, naive_s = timed(lambda: [naive_information_gain(t, ls, score, tok, "<answer>", "log_prob_diff")
                                    for t, ls in zip(trees, leaves)])
    gains = [information_gain(t, v, "log_prob_diff") for t, v in zip(trees, values)]
    diff = max(abs(g[k] - n[k]) for g, n in zip(gains, naive) for k in n)
    same = max(abs(a[k] - b[k]) for a, b in zip(values, distinct) for k in a)
    print(f"{label}: {len(trees)} trees, {sum(map(len, leaves))} paths, {turns} scored turns, {tokens} path tokens")
    print(f"  batched rows {rows_s:7.1f} s | distinct contexts {distinct_s:7.1f} s | naive per turn {naive_s:7.1f} s"
          f" | naive/batched {naive_s / rows_s:.2f}x | distinct/batched {distinct_s / rows_s:.2f}x", flush=True)
    print(f"  max |gain batched - gain naive| {diff:.1e}; max |value rows - value distinct| {same:.1e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one flat group of 4 only")
    ap.add_argument("--model", default="embedded", help="policy model (tiny: a smoke run; figures meaningless)")
    args = ap.parse_args()
    cfg = load_config(run_dir=tempfile.mkdtemp(prefix="bench-igpo-"), seed=0,
                      policy={"model": args.model, "max_batch_size": 16, "lora": {"r": 16}}, algorithm={"name": "igpo"})
    session = open_session(cfg)
    rng = random.Random(0)
    compare(session, "flat groups of 4 (IGPO, bench_credit's shape)", [flat_group(rng, 4) for _ in range(1 if args.quick else 2)])
    if not args.quick:
        compare(session, "flat group of 8", [flat_group(rng, 8)])
        compare(session, "ARPO-style branched tree (1 root, 3 branches)", [branched(rng)])


if __name__ == "__main__":
    main()
