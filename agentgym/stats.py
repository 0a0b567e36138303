"""Summary statistics of rollouts, shared by `agentgym run`, evaluation and training logs."""

from __future__ import annotations

from agentgym.trajectory import TrajectoryTree


def rollout_metrics(trees: list[TrajectoryTree]) -> dict[str, float]:
    """Reward, accuracy, entropy, tool use and shape of one step's rollouts."""
    leaves = [(t, leaf) for t in trees for leaf in t.leaves()]
    n = max(len(leaves), 1)
    rewards = [t.leaf_reward(leaf) for t, leaf in leaves]
    paths = [t.path(leaf) for t, leaf in leaves]
    tool_calls = [sum(1 for node in p for c in node.tool_calls if not c.name.startswith("(")) for p in paths]
    correct = [r > 0 for r in rewards]
    tokens = [x for t in trees for node in t.nodes for x in node.entropies]
    return {
        "reward": sum(rewards) / n,
        "accuracy": sum(correct) / n,
        "entropy": sum(tokens) / max(len(tokens), 1),
        "tool_calls": sum(tool_calls) / n,
        "tool_calls_per_correct": sum(tc for tc, c in zip(tool_calls, correct) if c) / max(sum(correct), 1),
        "turns": sum(len(p) for p in paths) / n,
        "n_trajectories": float(len(leaves)),
        "branches": float(sum(len(t.branch_points()) for t in trees)),
        "tokens_per_trajectory": sum(len(node.action_ids) for t in trees for node in t.nodes) / n,
        "errors": float(sum(1 for t in trees for node in t.nodes for c in node.tool_calls if c.error_type)),
    }
