"""The trajectory tree: the one data structure where environments and trainers meet.

A tree holds every episode sampled for one task (a *group* in GRPO terms). Each node is one model turn:
the tokens the environment or chat template inserted before the model spoke (``prefix_ids``, never
trained on), the tokens the model sampled (``action_ids`` with their log-probs and entropies), and what
the environment answered (observation, tool calls, reward). A path from a root to a leaf is one complete
trajectory. A flat GRPO group is a tree whose roots are the G episodes; an ARPO branch is a sibling that
re-samples a turn from the same context, so the shared prefix is stored once.

Token-exactness: the context the policy saw when it sampled ``node.action_ids`` is exactly
``context_ids(node)``: the concatenation of ``prefix_ids + action_ids`` over the path, restarting at any
node with ``rebuild_context=True`` (Markovian envs such as the deep-research workspace, which rebuild the
prompt every round). The trainer trains on those stored ids; nothing is re-tokenised.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentgym.images import ImageRef, image_bytes, sniff_mime

SCHEMA_VERSION = 1

ErrorType = Literal[
    "parse_error",  # the action could not be parsed into a tool call
    "unknown_tool",
    "bad_arguments",
    "tool_error",  # the tool raised: its message is shown to the model
    "timeout",
    "oom",
    "crash",
    "output_limit",
    "denied",
    "infra_error",  # the sandbox/server failed: not the model's fault, kept out of the reward signal
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolCallRecord(_Model):
    """One tool call the model made and what came of it."""

    name: str = Field(description="Tool name as the model wrote it (may be unknown).")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Parsed arguments.")
    output: str = Field(default="", description="What the model was shown for this call.")
    latency_s: float = Field(default=0.0, description="Wall-clock time the tool took.")
    error_type: ErrorType | None = Field(default=None, description="None when the call succeeded.")
    error: str | None = Field(default=None, description="Human-readable error, as shown to the model.")
    data: dict[str, Any] | None = Field(
        default=None, description="Structured result beside the text (e.g. doc ids/urls a search returned or opened)."
    )


class Observation(_Model):
    """What the environment shows the agent after a step (or at reset). Rendered generically by the
    viewer: text always, plus an optional memory/report field and images."""

    text: str = Field(default="", description="The new message text.")
    role: str = Field(default="user", description="Chat role of the message: user, tool or system.")
    memory: str | None = Field(default=None, description="Evolving report/memory the env carries, if any.")
    images: list[ImageRef | str] = Field(default_factory=list, description="Images: base64 strings as an env "
                                         "returns them; in a stored tree, references to files beside the store "
                                         "(`agentgym.images`).")

    @field_validator("images")
    @classmethod
    def _images_are_images(cls, images: list[ImageRef | str]) -> list[ImageRef | str]:
        # An env's bad image fails here, at the env boundary (a typed env error naming the key), not later
        # in the store or the model backend.
        for image in images:
            if isinstance(image, str):
                sniff_mime(image_bytes(image))
        return images


class Turn(_Model):
    """One model turn: inserted context, sampled action, and the environment's answer."""

    id: int = Field(description="Index of this node in `TrajectoryTree.nodes`.")
    parent: int | None = Field(default=None, description="Parent node id; None for a root (episode start).")
    depth: int = Field(default=0, description="Turn index within its trajectory (root = 0).")
    rebuild_context: bool = Field(
        default=False, description="Context restarts here: prefix_ids is the whole prompt (non-append envs)."
    )
    prefix_ids: list[int] = Field(default_factory=list, description="Tokens inserted before generation (loss mask 0).")
    action_ids: list[int] = Field(default_factory=list, description="Tokens the policy sampled (loss mask 1).")
    logprobs: list[float] = Field(default_factory=list, description="Sampling-time log-prob of each action token.")
    entropies: list[float] = Field(default_factory=list, description="Entropy of the sampling distribution per token.")
    action_text: str = Field(default="", description="Decoded action, for people; training uses action_ids.")
    finish_reason: str = Field(default="", description="eos | stop | length | budget: why generation ended.")
    observation: Observation | None = Field(default=None, description="Env answer to this action (None if none).")
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    reward: float = Field(default=0.0, description="Reward the env gave for this step (turn reward).")
    credit_reward: float | None = Field(
        default=None, description="Turn-level reward placed here by the training algorithm's credit piece (e.g. "
        "the outcome on the last turn, an information gain, a discounted round reward); None where it placed "
        "none. Kept apart from the env's own step `reward`.")
    advantage: float | None = Field(default=None, description="Turn advantage set by the trainer, for inspection.")
    terminated: bool = False
    truncated: bool = False
    truncated_reason: str | None = None
    branch_entropy: float | None = Field(
        default=None, description="If this node was spawned as a branch: the signal that triggered it (the "
        "rollout strategy's, e.g. ARPO's entropy rise)."
    )
    branched_from: int | None = Field(default=None, description="Sibling whose entropy spike spawned this branch.")
    policy_version: int = Field(default=0, description="Weights version that sampled this turn.")
    gen_time_s: float = 0.0
    env_time_s: float = 0.0
    info: dict[str, Any] = Field(default_factory=dict, description="Extra env info (JSON-serialisable).")

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class TrajectoryTree(_Model):
    """All episodes and branches sampled for one task. Stored one tree per JSONL line."""

    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Rollout id (idempotency key in the store).")
    env_id: str = ""
    seed: int | None = None
    task: dict[str, Any] = Field(default_factory=dict, description="The task row (question, answer, ...).")
    initial_observation: Observation | None = None
    nodes: list[Turn] = Field(default_factory=list)
    final_rewards: dict[int, float] = Field(default_factory=dict, description="Outcome reward per leaf node id.")
    policy_version: int = 0
    step: int | None = Field(default=None, description="Training step that produced this tree, if any.")
    created_at: float = Field(default_factory=time.time)
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds spent in generation/env/total.")
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_structure(self) -> TrajectoryTree:
        # A stored tree is untrusted input: a cycle would hang every walk up the parents (path, context_ids).
        problem = structure_problem([n.id for n in self.nodes], [n.parent for n in self.nodes])
        if problem:
            raise ValueError(f"bad tree structure: {problem}")
        return self

    # ---- building ---------------------------------------------------------------------------------
    def add(self, turn: Turn) -> Turn:
        turn.id = len(self.nodes)
        turn.depth = 0 if turn.parent is None else self.nodes[turn.parent].depth + 1
        self.nodes.append(turn)
        return turn

    # ---- reading ----------------------------------------------------------------------------------
    def children(self, node_id: int) -> list[int]:
        return [n.id for n in self.nodes if n.parent == node_id]

    def roots(self) -> list[int]:
        return [n.id for n in self.nodes if n.parent is None]

    def leaves(self) -> list[int]:
        parents = {n.parent for n in self.nodes if n.parent is not None}
        return [n.id for n in self.nodes if n.id not in parents]

    def path(self, node_id: int) -> list[Turn]:
        """Nodes from the root down to `node_id`, inclusive."""
        out: list[Turn] = []
        cur: int | None = node_id
        while cur is not None:
            out.append(self.nodes[cur])
            cur = self.nodes[cur].parent
        return out[::-1]

    def context_ids(self, node_id: int) -> list[int]:
        """The exact token context the policy saw before sampling `node_id`'s action."""
        ids: list[int] = []
        for turn in self.path(node_id):
            if turn.rebuild_context:
                ids = []
            ids.extend(turn.prefix_ids)
            if turn.id != node_id:
                ids.extend(turn.action_ids)
        return ids

    def branch_points(self) -> list[int]:
        """Nodes whose context was re-sampled by a branch (they have a sibling with branch_entropy)."""
        return [n.id for n in self.nodes if n.branch_entropy is not None]

    def leaf_reward(self, leaf_id: int) -> float:
        return self.final_rewards.get(leaf_id, 0.0)

    def n_trajectories(self) -> int:
        return len(self.leaves())

    def summary(self) -> dict[str, Any]:
        leaves = self.leaves()
        rewards = [self.leaf_reward(i) for i in leaves]
        return {
            "id": self.id,
            "env_id": self.env_id,
            "trajectories": len(leaves),
            "turns": len(self.nodes),
            "branches": len(self.branch_points()),
            "mean_reward": sum(rewards) / len(rewards) if rewards else 0.0,
            "tool_calls": sum(len(n.tool_calls) for n in self.nodes),
            "errors": sum(1 for n in self.nodes for c in n.tool_calls if c.error_type),
        }


def structure_problem(ids: list[int], parents: list[int | None]) -> str | None:
    """Why nodes with these ids and parents do not form a forest (ids are positions, parents in range,
    no cycles), or None. Linear: each node's chain upwards is walked once."""
    n = len(ids)
    for i, (node_id, parent) in enumerate(zip(ids, parents)):
        if node_id != i:
            return f"node at position {i} has id {node_id}"
        if parent is not None and not 0 <= parent < n:
            return f"node {i} has parent {parent}, outside 0..{n - 1}"
    state = [0] * n  # 0 unvisited, 1 on the chain being walked, 2 known to reach a root
    for i in range(n):
        chain: list[int] = []
        cur: int | None = i
        while cur is not None and state[cur] == 0:
            state[cur] = 1
            chain.append(cur)
            cur = parents[cur]
        if cur is not None and state[cur] == 1:
            return f"the parents of node {cur} form a cycle"
        for node in chain:
            state[node] = 2
    return None


@dataclass
class Segment:
    """One training sequence of a path: the exact token ids, which of them the policy sampled (loss mask 1),
    their sampling log-probs (0 elsewhere), and the span of every turn in it."""

    input_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[tuple[int, int, int]] = field(default_factory=list)  # (node id, action start, action end)


def path_segments(tree: TrajectoryTree, leaf_id: int) -> list[Segment]:
    """The segmentation of the path to `leaf_id` into training sequences, used by every consumer (training
    samples, SFT, export, the viewer). A path with no `rebuild_context` node is one segment; each rebuild
    starts a new one (one sample per round, as in IterResearch/EAPO). The last segment is exactly the
    context the policy saw before the leaf's action, plus that action."""
    segments: list[Segment] = []
    seg = Segment()
    for turn in tree.path(leaf_id):
        if turn.rebuild_context and seg.input_ids:
            segments.append(seg)
            seg = Segment()
        if len(turn.logprobs) != len(turn.action_ids):
            raise ValueError(f"tree {tree.id} node {turn.id}: {len(turn.logprobs)} log-probs for "
                             f"{len(turn.action_ids)} action tokens")
        seg.input_ids += turn.prefix_ids
        seg.loss_mask += [0] * len(turn.prefix_ids)
        seg.logprobs += [0.0] * len(turn.prefix_ids)
        start = len(seg.input_ids)
        seg.input_ids += turn.action_ids
        seg.loss_mask += [1] * len(turn.action_ids)
        seg.logprobs += list(turn.logprobs)
        seg.turns.append((turn.id, start, len(seg.input_ids)))
    if seg.input_ids:
        segments.append(seg)
    return segments


def trajectory_tokens(tree: TrajectoryTree, leaf_id: int) -> list[tuple[list[int], list[int], list[float]]]:
    """`path_segments` as (token ids, loss mask, sampling log-probs) tuples."""
    return [(s.input_ids, s.loss_mask, s.logprobs) for s in path_segments(tree, leaf_id)]


def ended_on_infra_error(tree: TrajectoryTree, leaf_id: int) -> bool:
    """The path ended because the infrastructure (sandbox, env server, env process) failed, not because of
    anything the model did: such a leaf carries no signal about the policy."""
    return any(call.error_type == "infra_error" for call in tree.nodes[leaf_id].tool_calls)
