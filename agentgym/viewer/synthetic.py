"""Realistic synthetic trajectory trees, for the viewer's demo mode, its tests and its benchmark.

The trees look like what the rollout engine stores for the built-in envs: GRPO groups of several
episodes per task, ARPO branches that re-sample a turn after a tool result (with the entropy that
triggered them), per-token log-probs and entropies, tool calls with latency and some errors, turn
rewards and advantages, a deep-research env whose observations carry a memory/report, and a GUI env
whose observations carry screenshots. Token ids come from a real tokenizer when one is given
(``encode``), otherwise from a stand-in that splits text into word pieces and hashes them.
"""

from __future__ import annotations

import json
import math
import random
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from agentgym.store import TrajectoryStore
from agentgym.trajectory import Observation, ToolCallRecord, TrajectoryTree, Turn

Encode = Callable[[str], list[int]]
_PIECE = re.compile(r"\s?\w+|\s?[^\w\s]+|\s+")

CALCULATOR = "agentgym/Calculator-v0"
PYTHON = "agentgym/Python-v0"
RESEARCH = "agentgym/DeepResearch-v0"
PHONE = "agentgym/Phone-v0"


def stand_in_encode(text: str) -> list[int]:
    """Word-piece ids that need no tokenizer (stable across runs)."""
    return [100 + zlib.crc32(p.encode()) % 49_000 for p in _PIECE.findall(text)]


def tiny_png(width: int = 48, height: int = 32, hue: int = 0) -> str:
    """A small gradient PNG as base64: a stand-in screenshot, made without an imaging library."""
    import base64

    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in ((x * 5 + hue) % 256, (y * 7) % 256,
                                                                      (x * y + hue) % 256)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


_THOUGHTS = [
    "First I should check what the question asks for.", "The numbers are too large to multiply reliably in my head.",
    "I will rely on the tool rather than guess.", "The previous result looks plausible, but let me double-check it.",
    "Rounding matters here, so I keep two decimals.", "If the tool fails I can rewrite the expression.",
    "That matches the order of magnitude I expected.", "Let me think about which unit the answer should use.",
    "Wait, the result above does not look right.", "I can now write the final answer in the required format.",
]


def thought(rng: random.Random, lo: int = 1, hi: int = 5) -> str:
    """A few sentences of reasoning, so actions have realistic lengths (tens to a few hundred tokens)."""
    return "<think>" + " ".join(rng.choice(_THOUGHTS) for _ in range(rng.randint(lo, hi))) + "</think>\n"


def _sampled(rng: random.Random, text: str, encode: Encode, spike: bool) -> dict:
    """Token ids, entropies and log-probs for an action; a tool result makes the first tokens uncertain."""
    ids = encode(text)
    entropies = []
    for i in range(len(ids)):
        base = rng.expovariate(3.0)
        if spike and i < 6:
            base += rng.uniform(1.0, 2.5) * (1 - i / 6)
        entropies.append(round(min(base, 6.0), 4))
    logprobs = [round(-e * rng.uniform(0.2, 0.9), 4) for e in entropies]
    return {"action_ids": ids, "entropies": entropies, "logprobs": logprobs, "action_text": text}


def _calculator_episode(rng: random.Random, task: dict, wrong: bool, error: bool) -> list[dict]:
    """The turns of one calculator episode: tool call(s) then an answer."""
    expr = task["expression"]
    turns = []
    if error:
        turns.append({"text": thought(rng) + f"I will compute it.<calculator>{expr}/0</calculator>",
                      "call": ToolCallRecord(name="calculator", arguments={"expression": f"{expr}/0"},
                                             output="Error: Division by zero.", latency_s=rng.uniform(0.001, 0.01),
                                             error_type="tool_error", error="Division by zero."),
                      "obs": "<result>\nError: Division by zero.\n</result>"})
    answer = task["answer"] + (rng.choice([-10, 1, 100]) if wrong else 0)
    turns.append({"text": thought(rng) + f"Let me use the calculator.<calculator>{expr}</calculator>",
                  "call": ToolCallRecord(name="calculator", arguments={"expression": expr}, output=str(task["answer"]),
                                         latency_s=rng.uniform(0.001, 0.02)),
                  "obs": f"<result>\n{task['answer']}\n</result>"})
    turns.append({"text": thought(rng, 0, 3) + f"The result is {answer}.<answer>{answer}</answer>", "answer": str(answer),
                  "reward": 0.0 if wrong else 1.0, "obs": ""})
    return turns


def _research_episode(rng: random.Random, task: dict, wrong: bool, error: bool) -> list[dict]:
    """Deep-research rounds: each observation rebuilds the context around an evolving report (memory)."""
    topic = task["question"]
    report = f"# Report on: {topic}\n"
    turns = []
    for r in range(rng.randint(2, 3)):
        query = f"{topic} evidence {r + 1}"
        fact = f"- Source {r + 1} says the effect size is {rng.uniform(0.1, 0.9):.2f}."
        report += fact + "\n"
        bad = error and r == 0
        call = ToolCallRecord(name="search", arguments={"query": query, "k": 3},
                              output="" if bad else f"[1] {query}: {fact[2:]}",
                              latency_s=rng.uniform(0.2, 1.5), error_type="timeout" if bad else None,
                              error="search took longer than 10 s" if bad else None)
        turns.append({"text": thought(rng) + f"<search>{query}</search>", "call": call, "memory": report, "rebuild": r > 0,
                      "obs": "Search timed out." if bad else f"Round {r + 2}. Your report so far is below."})
    verdict = "no" if wrong else "yes"
    turns.append({"text": thought(rng, 1, 8) + f"<answer>{verdict}</answer>", "answer": verdict,
                  "reward": 0.0 if wrong else 1.0,
                  "obs": "", "memory": report, "rebuild": True})
    return turns


def _phone_episode(rng: random.Random, task: dict, wrong: bool, error: bool) -> list[dict]:
    """A GUI agent: every observation is a screenshot plus the accessibility text."""
    turns = []
    for k, (x, y) in enumerate([(120, 340), (60, 80)]):
        call = ToolCallRecord(name="tap", arguments={"x": x, "y": y}, output="ok", latency_s=rng.uniform(0.05, 0.3))
        turns.append({"text": f'<tool_call>{{"name": "tap", "arguments": {{"x": {x}, "y": {y}}}}}</tool_call>',
                      "call": call, "obs": f"Screen {k + 2}: Settings > Wi-Fi", "images": [tiny_png(hue=40 * k)],
                      "role": "tool"})
    turns.append({"text": "<answer>done</answer>", "answer": "done", "reward": 0.0 if wrong else 1.0, "obs": ""})
    return turns


EPISODES = {CALCULATOR: _calculator_episode, PYTHON: _calculator_episode, RESEARCH: _research_episode,
            PHONE: _phone_episode}


def synthetic_task(rng: random.Random, env_id: str) -> dict:
    if env_id == RESEARCH:
        subject = rng.choice(["caffeine", "sleep", "exercise", "sunlight"])
        return {"question": f"Does {subject} improve memory in adults?", "answer": "yes"}
    if env_id == PHONE:
        return {"question": "Turn on Wi-Fi in the settings app.", "answer": "done"}
    a, b = rng.randint(11, 98), rng.randint(11, 98)
    return {"kind": "multiply", "question": f"What is {a}*{b}?", "answer": a * b, "expression": f"{a}*{b}"}


def synthetic_tree(index: int, rng: random.Random | None = None, encode: Encode = stand_in_encode,
                   env_id: str | None = None, trees_per_step: int = 16) -> TrajectoryTree:
    """One task's group: 2-4 episodes, ARPO branches after some tool results, rewards and advantages."""
    rng = rng or random.Random(index)
    env_id = env_id or rng.choices([CALCULATOR, PYTHON, RESEARCH, PHONE], weights=[70, 15, 10, 5])[0]
    task = synthetic_task(rng, env_id)
    step = index // trees_per_step
    tree = TrajectoryTree(id=f"t{index:06d}-{rng.getrandbits(32):08x}", env_id=env_id, seed=index, task=task,
                          initial_observation=Observation(text=task["question"]), step=step,
                          policy_version=step, created_at=1_750_000_000.0 + index,
                          meta={"synthetic": True})
    episode = EPISODES[env_id]
    for _ in range(rng.randint(2, 4)):
        turns = episode(rng, task, wrong=rng.random() < 0.35, error=rng.random() < 0.2)
        _add_path(tree, rng, encode, turns, parent=None)
    _add_branches(tree, rng, encode, episode, task)
    _set_advantages(tree)
    tree.timings = {"generation_s": sum(n.gen_time_s for n in tree.nodes),
                    "env_s": sum(n.env_time_s for n in tree.nodes)}
    return tree


def _add_path(tree: TrajectoryTree, rng: random.Random, encode: Encode, turns: list[dict], parent: int | None,
              branch: tuple[float, int] | None = None) -> None:
    for k, spec in enumerate(turns):
        after_tool = parent is not None and bool(tree.nodes[parent].tool_calls)
        done = "answer" in spec
        obs = Observation(text=spec["obs"], role=spec.get("role", "inline"), memory=spec.get("memory"),
                          images=spec.get("images", []))
        prefix = encode("<|im_start|>system\nSolve the task.<|im_end|>\n<|im_start|>user\n"
                        + (tree.task.get("question", "") if parent is None or spec.get("rebuild") else "")
                        + "<|im_end|>\n<|im_start|>assistant\n") if parent is None or spec.get("rebuild") else \
            encode(tree.nodes[parent].observation.text if tree.nodes[parent].observation else "")
        node = tree.add(Turn(id=0, parent=parent, rebuild_context=parent is None or bool(spec.get("rebuild")),
                             prefix_ids=prefix, **_sampled(rng, spec["text"], encode, after_tool),
                             finish_reason="stop" if not done else "eos", observation=obs,
                             tool_calls=[spec["call"]] if "call" in spec else [], reward=spec.get("reward", 0.0),
                             terminated=done, gen_time_s=round(rng.uniform(0.05, 0.6), 4),
                             env_time_s=round(spec["call"].latency_s if "call" in spec else 0.0, 4),
                             info={"answer": spec["answer"], "correct": spec["reward"] > 0} if done else {}))
        if k == 0 and branch is not None:
            node.branch_entropy, node.branched_from = branch
        parent = node.id
    tree.final_rewards[parent] = sum(n.reward for n in tree.path(parent))


def _add_branches(tree: TrajectoryTree, rng: random.Random, encode: Encode, episode, task: dict) -> None:
    """ARPO: where a node follows a tool result, re-sample it (and the rest of its episode) as a sibling."""
    candidates = [n for n in tree.nodes if n.parent is not None and tree.nodes[n.parent].tool_calls]
    for node in rng.sample(candidates, k=min(len(candidates), rng.choice([0, 1, 1, 2, 3]))):
        rest = episode(rng, task, wrong=rng.random() < 0.4, error=False)[-1:]
        delta_h = round(statistics_mean(node.entropies[:6]) + rng.uniform(0.3, 1.2), 4)
        _add_path(tree, rng, encode, rest, parent=node.parent, branch=(delta_h, node.id))


def statistics_mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _set_advantages(tree: TrajectoryTree) -> None:
    """Group z-score of leaf rewards, spread over each leaf's path (what a GRPO trainer would record)."""
    leaves = tree.leaves()
    rewards = [tree.leaf_reward(i) for i in leaves]
    mean = statistics_mean(rewards)
    std = math.sqrt(statistics_mean([(r - mean) ** 2 for r in rewards])) or 1.0
    for leaf, r in zip(leaves, rewards):
        for node in tree.path(leaf):
            node.advantage = round((r - mean) / std, 4)


def synthetic_metrics(steps: int, seed: int = 0) -> list[dict]:
    """Training curves shaped like a real run: reward and accuracy rise, entropy falls, timings jitter."""
    rng = random.Random(seed)
    rows = []
    for s in range(steps):
        progress = 1 - math.exp(-s / max(steps / 3, 1))
        rows.append({"step": s, "reward": round(0.3 + 0.55 * progress + rng.gauss(0, 0.04), 4),
                     "accuracy": round(min(1.0, 0.25 + 0.6 * progress + rng.gauss(0, 0.03)), 4),
                     "entropy": round(1.2 - 0.6 * progress + rng.gauss(0, 0.03), 4),
                     "tool_calls": round(1.1 + 0.5 * progress + rng.gauss(0, 0.1), 3),
                     "tokens_per_s": round(900 + rng.gauss(0, 40), 1),
                     "time_generation_s": round(12 + rng.gauss(0, 1), 3), "time_env_s": round(3 + rng.gauss(0, 0.4), 3),
                     "time_update_s": round(6 + rng.gauss(0, 0.5), 3), "note": "strings are ignored"})
    return rows


def write_synthetic_run(run_dir: str | Path, n_trees: int, seed: int = 0, encode: Encode = stand_in_encode,
                        metrics_steps: int | None = None, run_meta: dict | None = None) -> Path:
    """A run directory: trajectories.jsonl (n_trees trees), metrics.jsonl, and run.json if given."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    trees = [synthetic_tree(i, random.Random(rng.getrandbits(64)), encode) for i in range(n_trees)]
    # guarantee the rare observation kinds appear even in small runs
    if n_trees >= 3:
        trees[1] = synthetic_tree(1, random.Random(seed + 1), encode, env_id=RESEARCH)
        trees[2] = synthetic_tree(2, random.Random(seed + 2), encode, env_id=PHONE)
    TrajectoryStore(run_dir / "trajectories.jsonl", fsync=False).append_many(trees)
    steps = metrics_steps if metrics_steps is not None else max(1, n_trees // 16)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for row in synthetic_metrics(steps, seed):
            f.write(json.dumps(row) + "\n")
    if run_meta is not None:
        (run_dir / "run.json").write_text(json.dumps(run_meta))
    return run_dir
