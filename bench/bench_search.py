"""Search backends and the deep-research workspace, measured side by side in one run.

Prints: index build time and query latency p50/p99 for BM25 (bm25s) and the hybrid ranker (BM25 + MiniLM,
reciprocal-rank fusion) at 10k and 100k pages of the generated world (--quick: 2k and 5k); env step latency
for search and open; and the prompt tokens the policy is fed at rounds 1, 8 and 32 in the Markovian
workspace (DeepResearch-v0) vs the mono-context ReAct twin on the same questions, with their ratio.

Embedding 100k pages with MiniLM takes ~15 min on 2 cores; the matrix is cached on disk (IndexCache), so
later full runs only load it ("cached" is printed then). Usage: python bench/bench_search.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from agentgym.env import EnvLimits
from agentgym.envs.deep_research import DeepResearchEnv, DeepResearchReActEnv
from agentgym.envs.deep_research.workspace import split_workspace
from agentgym.envs.web_search import WebSearchEnv
from agentgym.envs.web_search.corpus import Corpus, cache_dir
from agentgym.envs.web_search.index import BM25Index, HybridIndex, IndexCache
from agentgym.envs.web_search.questions import make_question
from agentgym.envs.web_search.world import World
from agentgym.policies import ScriptedPolicy
from agentgym.policies.models import load_tokenizer
from agentgym.rollout import RolloutConfig, RolloutEngine, Task

ROUNDS = (1, 8, 32)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def queries(world: World, n: int) -> list[str]:
    out = []
    for i in range(n):
        q = make_question(world, i, "train")
        out.append(q["question"])
    return out


def bench_index(n_pages: int, n_queries: int, bm25: bool, hybrid: bool, cache: IndexCache) -> None:
    world = World(n_pages, seed=0)
    corpus = Corpus(world.documents(), "world")
    qs = queries(world, n_queries)
    t = time.perf_counter()
    lexical = BM25Index.build(corpus)
    build = time.perf_counter() - t
    lat = []
    for q in qs:
        t = time.perf_counter()
        lexical.search(q, 10)
        lat.append(time.perf_counter() - t)
    if bm25:
        print(f"  {n_pages:>7} pages  bm25s : build {build:7.2f} s                query p50 {pct(lat, .5):7.2f} ms  "
              f"p99 {pct(lat, .99):7.2f} ms")
    bm25_p50 = pct(lat, .5)
    if not hybrid:
        return
    path = cache.root / corpus.content_hash() / "minilm.npy"
    cached = path.exists()
    t = time.perf_counter()
    dense = cache.get(corpus, "dense")
    embed = time.perf_counter() - t
    index = HybridIndex(lexical, dense)  # type: ignore[arg-type]
    lat = []
    for q in qs:
        t = time.perf_counter()
        index.search(q, 10)
        lat.append(time.perf_counter() - t)
    how = "cached" if cached else "built "
    print(f"  {n_pages:>7} pages  hybrid: build {build + embed:7.2f} s ({how} embeddings) query p50 {pct(lat, .5):7.2f} ms  "
          f"p99 {pct(lat, .99):7.2f} ms  ({pct(lat, .5) / max(bm25_p50, 1e-9):.0f}x bm25 p50 {bm25_p50:.2f} ms)")


def bench_steps(cache: IndexCache, n: int) -> None:
    env = WebSearchEnv(index_cache=cache, limits=EnvLimits(max_turns=10_000))
    env.reset(seed=0)
    timings: dict[str, list[float]] = {"search": [], "open": []}
    for i in range(n):
        for kind, action in (("search", f"<search>painter born {1850 + i % 150}</search>"),
                             ("open", f"<open>person-{i % 1000:06d}</open>")):
            t = time.perf_counter()
            env.step(action)
            timings[kind].append(time.perf_counter() - t)
    for kind, lat in timings.items():
        print(f"  WebSearch-v0 step ({kind:6}): p50 {pct(lat, .5):6.2f} ms  p99 {pct(lat, .99):6.2f} ms")
    dr = DeepResearchEnv(index_cache=cache, python=False, limits=EnvLimits(max_turns=10_000))
    dr.reset(seed=0)
    lat = []
    for i in range(n):
        t = time.perf_counter()
        dr.step(f"<think>t</think><report>report {i}</report><search>painter born {1850 + i % 150}</search>")
        lat.append(time.perf_counter() - t)
    print(f"  DeepResearch-v0 round (search, workspace rebuilt): p50 {pct(lat, .5):6.2f} ms  p99 {pct(lat, .99):6.2f} ms")


# ---- context growth: the same exploring agent in both envs ----------------------------------------------
def _query(question: str, round_: int) -> str:
    words = [w.strip("(),?") for w in question.split() if w[:1].isupper()]
    return f"{' '.join(words[:3])} {['painter', 'city', 'bank', 'festival', 'mayor', 'founder'][round_ % 6]} {1850 + 7 * round_}"


def markovian_explorer(context: str) -> str:
    """Searches every round, keeps a bounded report (the last 8 findings), never answers."""
    ws = split_workspace(context)
    assert ws is not None
    round_ = int(context.rsplit("Round ", 1)[1].split(" ")[0])
    lines = [line for line in ws["report"].splitlines() if line.startswith("- ")]
    first = ws["observation"].split("[1] ", 1)
    if len(first) == 2:
        lines.append(f"- round {round_ - 1}: found {first[1].splitlines()[0]}")
    report = "Findings:\n" + "\n".join(lines[-8:])
    return f"<think>keep looking</think><report>{report}</report><search>{_query(ws['question'], round_)}</search>"


def react_explorer(context: str) -> str:
    question = context.split("What is", 1)[1].split("?", 1)[0]
    round_ = context.count("<result>") + 1
    return f"<search>{_query(question, round_)}</search>"


def bench_context(cache: IndexCache, n_questions: int) -> None:
    tokenizer = load_tokenizer("tiny")
    rounds = max(ROUNDS)
    limits = EnvLimits(max_turns=rounds, max_tokens_per_turn=512, max_tokens_per_episode=512 * rounds)
    probe = DeepResearchEnv(index_cache=cache, python=False)
    tasks = [Task(seed=s, task=probe.reset(seed=s)[1]["task"]) for s in range(n_questions)]  # the same questions
    probe.close()
    results = {}
    for name, factory, policy_fn in (
        ("Markovian workspace (DeepResearch-v0)", lambda: DeepResearchEnv(index_cache=cache, limits=limits, python=False),
         markovian_explorer),
        ("mono-context ReAct (DeepResearchReAct-v0)", lambda: DeepResearchReActEnv(index_cache=cache, limits=limits,
                                                                                   python=False), react_explorer),
    ):
        engine = RolloutEngine(ScriptedPolicy(policy_fn, tokenizer), factory, config=RolloutConfig(deterministic=True))
        trees = engine.run(tasks)
        per_round = {r: [] for r in ROUNDS}
        for tree in trees:
            path = tree.path(tree.leaves()[0])
            for r in ROUNDS:
                if len(path) >= r:
                    per_round[r].append(len(tree.context_ids(path[r - 1].id)))
        results[name] = {r: statistics.mean(v) for r, v in per_round.items() if v}
        cells = "  ".join(f"round {r:>2}: {results[name].get(r, float('nan')):7.0f}" for r in ROUNDS)
        print(f"  {name:<42} context tokens  {cells}")
    (mark, react) = results.values()
    print(f"  ReAct / Markovian context at round 32: {react[32] / mark[32]:.1f}x   "
          f"(Markovian round 32 / round 1: {mark[32] / mark[1]:.2f}x; ReAct: {react[32] / react[1]:.1f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-hybrid", action="store_true", help="skip the MiniLM embedding (BM25 only)")
    ap.add_argument("--hybrid-sizes", default="", help="comma-separated page counts for the hybrid ranker "
                    "(default 10000,100000; --quick 300,1000)")
    args = ap.parse_args()
    sizes = (2_000, 10_000) if args.quick else (10_000, 100_000)
    hybrid_sizes = (300, 1_000) if args.quick else sizes
    if args.hybrid_sizes:
        hybrid_sizes = tuple(int(x) for x in args.hybrid_sizes.split(","))
    # Full runs keep the MiniLM matrices in the user cache so the 100k embedding is paid once.
    root = Path(tempfile.mkdtemp(prefix="bench-search-")) if args.quick else cache_dir() / "index"
    cache = IndexCache(root)
    print(f"prompt tokens fed to the policy per round, same {4 if args.quick else 8} questions, same exploring agent")
    bench_context(cache, 4 if args.quick else 8)
    print("env step latency (3,000-page world, bm25s)")
    bench_steps(cache, 50 if args.quick else 200)
    print("index build and query latency (generated world, k=10, questions as queries)")
    for n in sorted(set(sizes) | (set() if args.no_hybrid else set(hybrid_sizes))):
        bench_index(n, 50 if args.quick else 300, bm25=n in sizes, hybrid=n in hybrid_sizes and not args.no_hybrid,
                    cache=cache)


if __name__ == "__main__":
    main()
