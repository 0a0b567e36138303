"""Turn-level credit vs GRPO on the same questions: what each algorithm's credit does to the trajectories
it is meant to discourage, measured on scripted groups run side by side in one run.

- EAPO (deep-research workspace): each question's group holds the scripted expert and a "dawdler" that
  wastes k rounds (opening a missing page) before doing the same; both solve it. Printed: rounds per solved
  question of each, and the mean advantage per round-sample of the dawdler's rounds under EAPO vs GRPO
  (GRPO sees an all-correct group: zero signal for efficiency).
- C-GRPO (web search, held-out test split): each group holds the expert (cites its chain) and a shortcut
  taker (the same answer, citations dropped). Printed: the shortcut rate (correct answers without a
  supporting citation chain, R_rubric < 1) and the advantage the shortcut answers get under C-GRPO vs GRPO.

One function per algorithm (`bench_eapo`, `bench_cgrpo`) so others (IGPO) can be added beside them.
Usage: python bench/bench_credit.py [--quick]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile

from agentgym.algorithms import algorithm_spec
from agentgym.config import load_config
from agentgym.envs.deep_research import DeepResearchEnv
from agentgym.envs.deep_research.expert import deep_research_expert
from agentgym.envs.deep_research.workspace import split_workspace
from agentgym.envs.web_search.env import WebSearchEnv
from agentgym.envs.web_search.expert import web_search_expert
from agentgym.envs.web_search.index import IndexCache
from agentgym.policies import ScriptedPolicy
from agentgym.policies.models import load_tokenizer
from agentgym.rollout import RolloutEngine
from agentgym.trainers.pieces import AdvantageStats, CreditContext
from agentgym.trajectory import TrajectoryTree

CACHE = IndexCache(tempfile.mkdtemp(prefix="bench-credit-"))


def grouped(policies: list, make_env, env_id: str, questions: int) -> list[TrajectoryTree]:
    """One tree per question holding one trajectory of each policy (the same task seeds)."""
    tok, trees = load_tokenizer("embedded"), []
    runs = [RolloutEngine(ScriptedPolicy(p, tok), make_env, env_id=env_id).run(list(range(questions))) for p in policies]
    for per_question in zip(*runs):
        tree = TrajectoryTree(task=per_question[0].task, env_id=env_id)
        for src in per_question:  # copy each single-trajectory tree in as one more root
            offset = len(tree.nodes)
            for n in src.nodes:
                tree.nodes.append(n.model_copy(update={"id": n.id + offset,
                                                       "parent": None if n.parent is None else n.parent + offset}))
            tree.final_rewards.update({k + offset: v for k, v in src.final_rewards.items()})
        trees.append(tree)
    return trees


def per_policy_advantage(algo: str, trees: list[TrajectoryTree], which: int, **cfg) -> float:
    a = algorithm_spec(algo).build(load_config(algorithm={"name": algo, **cfg}), None)
    a.credit(trees, CreditContext(config=None, step=0))
    adv = a.advantage(trees, AdvantageStats())
    values = [v for t, per in zip(trees, adv) for leaf, nodes in per.items()
              if sorted(t.leaves()).index(leaf) == which for v in nodes.values()]
    return statistics.fmean(values) if values else 0.0


def dawdler(k: int):
    def act(context: str) -> str:
        ws = split_workspace(context)
        wasted = int(m.group(1)) if ws and (m := re.search(r"^wasted: (\d+)$", ws["report"], re.M)) else 0
        if ws and wasted < k and "facts:" not in ws["report"]:
            return f"<report>wasted: {wasted + 1}</report>\n<open>https://kb.agentgym.local/wiki/none-{wasted}</open>"
        return deep_research_expert(context)
    return act


def bench_eapo(questions: int) -> None:
    trees = grouped([deep_research_expert, dawdler(3)], lambda: DeepResearchEnv(split="test", python=False,
                    index_cache=CACHE), "agentgym/DeepResearch-v0", questions)
    for i, name in enumerate(("expert", "dawdler")):
        solved = [len(t.path(sorted(t.leaves())[i])) for t in trees if t.leaf_reward(sorted(t.leaves())[i]) > 0]
        print(f"eapo  {name:8s} solved {len(solved)}/{questions}  rounds per solved question "
              f"{statistics.fmean(solved) if solved else float('nan'):.2f}")
    e, g = per_policy_advantage("eapo", trees, 1), per_policy_advantage("grpo", trees, 1)
    print(f"eapo  dawdler's mean round advantage: EAPO {e:+.4f}  GRPO {g:+.4f}")


def bench_cgrpo(questions: int) -> None:
    def shortcut(context: str) -> str:
        return re.sub(r" ?\[\[\d+\]\([^)]*\)\]", "", web_search_expert(context))
    trees = grouped([web_search_expert, shortcut], lambda: WebSearchEnv(split="test", index_cache=CACHE),
                    "agentgym/WebSearch-v0", questions)
    algorithm_spec("cgrpo").build(load_config(algorithm={"name": "cgrpo"}), None).credit(trees, CreditContext(None, 0))
    for i, name in enumerate(("expert", "shortcut")):
        recs = [t.meta["carr"][str(sorted(t.leaves())[i])] for t in trees]
        correct = [r for r in recs if r["outcome"] > 0]
        rate = sum(r["rubric"] is not None and r["rubric"] < 1 for r in correct) / max(len(correct), 1)
        print(f"cgrpo {name:8s} correct {len(correct)}/{questions}  shortcut rate {rate:.2f}")
    c, g = per_policy_advantage("cgrpo", trees, 1), per_policy_advantage("grpo", trees, 1)
    print(f"cgrpo shortcut answers' mean advantage: C-GRPO {c:+.4f}  GRPO {g:+.4f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    n = 5 if p.parse_args().quick else 40
    bench_eapo(n)
    bench_cgrpo(n)


if __name__ == "__main__":
    main()
