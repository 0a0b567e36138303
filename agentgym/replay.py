"""Replaying stored trajectory trees: re-score, re-execute, and export to SFT data.

- **Re-score** applies a reward function to every leaf again. The default asks the env itself: a fresh
  env from ``tree.env_id`` is reset with the tree's seed and task and the leaf's actions are replayed;
  the leaf's new reward is the sum of the step rewards, which is how the rollout engine defines
  ``final_rewards``. Any ``module:function(tree, leaf_id) -> float`` can be used instead (a judge, a
  stricter checker), with no env at all.
- **Re-execute** replays every path against a fresh env and compares what the env answers with what was
  stored, node by node (observation text, then memory, images, role, reward, termination). Each path
  stops at its first divergence, which is reported with the expected and the actual value: the tool for
  finding non-determinism in an env, or a file that was edited.
- **Export to SFT** writes, for each successful trajectory, its chat messages (JSONL, for SFT trainers
  that take conversations) and its exact token ids and loss mask (`trajectory_tokens`: what the policy
  saw and sampled, nothing re-tokenised).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.env import observation_from
from agentgym.images import image_hashes
from agentgym.policies.scripted import load_function
from agentgym.trajectory import Observation, TrajectoryTree, trajectory_tokens

Scorer = Callable[[TrajectoryTree, int], float]
EnvFactory = Callable[[str], Any]


def make_env(env_id: str) -> Any:
    from agentgym.registry import make

    return make(env_id)


def load_scorer(spec: str) -> Scorer:
    """``"package.module:function"`` -> the function, with a one-line error for each way it can be wrong."""
    return load_function(spec, "scorer")


def _replay_steps(tree: TrajectoryTree, leaf_id: int, env: Any) -> Iterable[tuple[Any, tuple]]:
    """Reset `env` like the rollout did, then step it with each stored action of the path to `leaf_id`.
    Yields (node, step result). Nodes the rollout never stepped (observation None: a token budget ran
    out or the env failed) end the replay."""
    env.reset(seed=tree.seed, options={"task": tree.task} if tree.task else None)
    for node in tree.path(leaf_id):
        if node.observation is None:
            return
        yield node, env.step(node.action_text)


class EnvScorer:
    """The env's own scoring, by replay. Envs are made once per env id and reused (reset between leaves)."""

    def __init__(self, env_factory: EnvFactory = make_env):
        self.env_factory = env_factory
        self._envs: dict[str, Any] = {}

    def __call__(self, tree: TrajectoryTree, leaf_id: int) -> float:
        if tree.env_id not in self._envs:
            self._envs[tree.env_id] = self.env_factory(tree.env_id)
        return sum(float(result[1]) for _, result in _replay_steps(tree, leaf_id, self._envs[tree.env_id]))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


@dataclass
class LeafScore:
    tree_id: str
    leaf_id: int
    stored: float
    rescored: float | None  # None when scoring failed (see error)
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.rescored is not None and abs(self.rescored - self.stored) > 1e-9


def rescore(trees: Iterable[TrajectoryTree], scorer: Scorer | None = None,
            env_factory: EnvFactory = make_env) -> list[LeafScore]:
    """Every leaf of every tree scored again. A scorer that raises on one leaf is reported for that leaf
    and does not stop the others."""
    own = scorer is None
    fn = EnvScorer(env_factory) if own else scorer
    out = []
    try:
        for tree in trees:
            for leaf in tree.leaves():
                try:
                    out.append(LeafScore(tree.id, leaf, tree.leaf_reward(leaf), float(fn(tree, leaf))))
                except Exception as e:  # reported per leaf; one bad leaf must not hide the rest
                    out.append(LeafScore(tree.id, leaf, tree.leaf_reward(leaf), None, f"{type(e).__name__}: {e}"))
    finally:
        if own:
            fn.close()
    return out


def apply_scores(tree: TrajectoryTree, scores: Iterable[LeafScore], label: str) -> TrajectoryTree:
    """A copy of `tree` with the new leaf rewards; the old ones are kept in ``meta["rescored"]``."""
    new = tree.model_copy(deep=True)
    old = dict(new.final_rewards)
    for s in scores:
        if s.tree_id == tree.id and s.rescored is not None:
            new.final_rewards[s.leaf_id] = s.rescored
    new.meta["rescored"] = {"by": label, "previous_final_rewards": {str(k): v for k, v in old.items()}}
    return new


# ---- re-execution ---------------------------------------------------------------------------------
@dataclass
class Divergence:
    tree_id: str
    leaf_id: int
    node_id: int | None  # None: the reset observation differs
    field: str  # observation.text | observation.memory | observation.images | observation.role | reward | ...
    expected: Any
    got: Any

    def describe(self) -> str:
        where = "reset observation" if self.node_id is None else f"node {self.node_id}"
        return f"tree {self.tree_id}, {where} (path to leaf {self.leaf_id}): {self.field} differs\n" \
               f"  expected: {self.expected!r}\n  got:      {self.got!r}"


@dataclass
class ReexecuteReport:
    tree_id: str
    paths: int = 0
    nodes_checked: int = 0
    divergences: list[Divergence] = field(default_factory=list)  # the first one on each diverging path
    errors: list[str] = field(default_factory=list)  # could not re-execute at all (unknown env, ...)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.divergences and not self.errors

    @property
    def first(self) -> Divergence | None:
        return self.divergences[0] if self.divergences else None


def _compare(expected: Observation, got: Observation) -> tuple[str, Any, Any] | None:
    for name in ("text", "memory", "images", "role"):
        want, have = getattr(expected, name), getattr(got, name)
        if name == "images":  # a stored tree holds references, a fresh env base64: compare the contents' hashes
            want, have = image_hashes(want), image_hashes(have)
        if want != have:
            return f"observation.{name}", want, have
    return None


def reexecute(tree: TrajectoryTree, env_factory: EnvFactory = make_env) -> ReexecuteReport:
    """Replay each root-to-leaf path of `tree` in a fresh env and compare every observation."""
    report = ReexecuteReport(tree.id)
    if tree.seed is None:
        report.notes.append("the tree has no seed: only envs that ignore the seed can reproduce it")
    checked: set[int] = set()
    diverged: set[int] = set()  # nodes already reported: branches below them would repeat the report
    for leaf in tree.leaves():
        try:
            env = env_factory(tree.env_id)
        except Exception as e:
            report.errors.append(f"cannot make env {tree.env_id!r}: {type(e).__name__}: {e}")
            return report
        report.paths += 1
        try:
            _reexecute_path(tree, leaf, env, report, checked, diverged)
        finally:
            env.close()
    return report


def _reexecute_path(tree: TrajectoryTree, leaf: int, env: Any, report: ReexecuteReport,
                    checked: set[int], diverged: set[int]) -> None:
    path_ids = [n.id for n in tree.path(leaf)]
    if diverged.intersection(path_ids):
        return
    obs, info = env.reset(seed=tree.seed, options={"task": tree.task} if tree.task else None)
    if tree.initial_observation is not None:
        got = observation_from(obs, info)
        if (diff := _compare(tree.initial_observation, got)) is not None:
            report.divergences.append(Divergence(tree.id, leaf, None, *diff))
            diverged.update(tree.roots())
            return
    for node in tree.path(leaf):
        if node.observation is None:
            return  # the rollout never stepped this action (token budget or env failure)
        try:
            obs, reward, terminated, truncated, info = env.step(node.action_text)
        except Exception as e:
            report.divergences.append(Divergence(tree.id, leaf, node.id, "step", "a step result",
                                                 f"{type(e).__name__}: {e}"))
            diverged.add(node.id)
            return
        got = observation_from(obs, info)
        diff = _compare(node.observation, got)
        if diff is None and abs(float(reward) - node.reward) > 1e-9:
            diff = ("reward", node.reward, float(reward))
        if diff is None and (bool(terminated), bool(truncated)) != (node.terminated, node.truncated):
            diff = ("terminated/truncated", (node.terminated, node.truncated), (bool(terminated), bool(truncated)))
        if diff is not None:
            report.divergences.append(Divergence(tree.id, leaf, node.id, *diff))
            diverged.add(node.id)
            return
        if node.id not in checked:
            checked.add(node.id)
            report.nodes_checked += 1


# ---- SFT export -----------------------------------------------------------------------------------
def sft_messages(tree: TrajectoryTree, leaf_id: int, system: str | None = None) -> list[dict[str, str]]:
    """The trajectory as chat messages. An observation with role ``inline`` (XML tool results) continues
    the assistant's message, exactly as the model saw it; other roles are messages of their own. An
    observation's memory/report is part of what the agent reads, so it is included in that message."""
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    if tree.initial_observation is not None:
        messages.append({"role": tree.initial_observation.role or "user", "content": _obs_text(tree.initial_observation)})
    for node in tree.path(leaf_id):
        if messages and messages[-1]["role"] == "assistant" and messages[-1].get("open"):
            messages[-1]["content"] += node.action_text
        else:
            messages.append({"role": "assistant", "content": node.action_text, "open": "1"})
        obs = node.observation
        if obs is None:
            continue
        if obs.role == "inline":
            messages[-1]["content"] += obs.text
        elif obs.text or obs.memory:
            messages[-1].pop("open", None)
            messages.append({"role": obs.role, "content": _obs_text(obs)})
    for m in messages:
        m.pop("open", None)
    return messages


def _obs_text(obs: Observation) -> str:
    return obs.text if not obs.memory else f"{obs.memory}\n\n{obs.text}".strip()


@dataclass
class ExportResult:
    messages_path: Path
    tokens_path: Path
    exported: int
    skipped: int


def _system_prompt(env_id: str, env_factory: EnvFactory, cache: dict[str, str | None]) -> str | None:
    if env_id not in cache:
        try:
            env = env_factory(env_id)
            cache[env_id] = env.system_prompt() if hasattr(env, "system_prompt") else None
            env.close()
        except Exception:
            cache[env_id] = None  # env not installed here: export without a system message
    return cache[env_id]


def export_sft(trees: Iterable[TrajectoryTree], out_dir: str | Path, success_above: float = 0.0,
               system_prompts: bool = True, env_factory: EnvFactory = make_env) -> ExportResult:
    """Write ``sft_messages.jsonl`` and ``sft_tokens.jsonl`` under `out_dir` for every trajectory whose
    final reward is above `success_above`. Token rows hold one segment per context (see
    `trajectory_tokens`): ``input_ids`` and ``loss_mask`` (1 on sampled tokens) of equal length."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out_dir / "sft_messages.jsonl", out_dir / "sft_tokens.jsonl", 0, 0)
    prompts: dict[str, str | None] = {}
    with open(result.messages_path, "w") as fm, open(result.tokens_path, "w") as ft:
        for tree in trees:
            for leaf in tree.leaves():
                reward = tree.leaf_reward(leaf)
                if not reward > success_above:
                    result.skipped += 1
                    continue
                system = _system_prompt(tree.env_id, env_factory, prompts) if system_prompts else None
                key = {"tree_id": tree.id, "leaf_id": leaf, "env_id": tree.env_id, "reward": reward}
                fm.write(json.dumps({**key, "messages": sft_messages(tree, leaf, system)}) + "\n")
                segments = [{"input_ids": ids, "loss_mask": mask} for ids, mask, _ in trajectory_tokens(tree, leaf)]
                ft.write(json.dumps({**key, "segments": segments}) + "\n")
                result.exported += 1
    return result
