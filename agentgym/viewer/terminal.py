"""Trajectory trees in the terminal, with rich: `agentgym replay FILE`.

Model-written text is wrapped in `rich.text.Text`, never parsed as console markup, so an action that
happens to contain ``[bold]`` or ``[/]`` prints as written; and every control character in it (escape
sequences, C1 controls, CR, BEL...) is shown as a visible escape (see `agentgym.printable`).
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from agentgym.printable import printable
from agentgym.trajectory import Observation, TrajectoryTree, Turn


def _clip(text: str, limit: int | None) -> str:
    text = printable(text)
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f"… (+{len(text) - limit} chars)"


def _reward_style(r: float) -> str:
    return "green" if r > 0 else "red"


def _observation(branch: Tree, obs: Observation, label: str, limit: int | None) -> None:
    if obs.text:
        branch.add(Text.assemble((f"{label} ({printable(obs.role)}): ", "cyan"), _clip(obs.text, limit)))
    if obs.memory:
        branch.add(Text.assemble(("memory: ", "yellow"), _clip(obs.memory, limit)))
    if obs.images:
        branch.add(Text(f"images: {len(obs.images)} (open `agentgym view` to see them)", style="magenta"))


def _node_label(tree: TrajectoryTree, node: Turn, is_leaf: bool) -> Text:
    label = Text.assemble((f"#{node.id} ", "bold"), (f"turn {node.depth}", "dim"))
    if node.branch_entropy is not None:
        label.append(f"  ⋔ branch from #{node.branched_from} (entropy {node.branch_entropy:.3f})", style="bold magenta")
    if node.entropies:
        mean = sum(node.entropies) / len(node.entropies)
        label.append(f"  H̄ {mean:.2f} max {max(node.entropies):.2f}", style="dim")
    label.append(f"  {len(node.action_ids)} tok", style="dim")
    if node.reward:
        label.append(f"  r={node.reward:g}", style=_reward_style(node.reward))
    if node.advantage is not None:
        label.append(f"  adv={node.advantage:+.3f}", style="dim")
    if node.truncated:
        label.append(f"  truncated ({printable(node.truncated_reason or '?')})", style="yellow")
    if is_leaf:
        r = tree.leaf_reward(node.id)
        label.append(f"  final reward {r:g}", style=f"bold {_reward_style(r)}")
    return label


def tree_renderable(tree: TrajectoryTree, limit: int | None = 300) -> Tree:
    """A rich Tree: the task, then every episode and branch with actions, tool calls and observations.
    `limit` clips long texts (None: show everything)."""
    leaves = tree.leaves()
    rewards = [tree.leaf_reward(i) for i in leaves]
    head = Text.assemble((f"tree {printable(tree.id)}", "bold"), f"  {printable(tree.env_id)}  seed={tree.seed}  step={tree.step}  ",
                         f"{len(tree.roots())} episodes, {len(leaves)} trajectories, "
                         f"{len(tree.branch_points())} branches, mean reward "
                         f"{(sum(rewards) / len(rewards)) if rewards else 0:.3f}")
    root = Tree(head)
    if tree.initial_observation is not None:
        _observation(root, tree.initial_observation, "reset", limit)
    children: dict[int | None, list[Turn]] = {}
    for node in tree.nodes:
        children.setdefault(node.parent, []).append(node)

    def add(branch: Tree, node: Turn) -> None:
        """The turns of one path as siblings under `branch`: indentation grows only where the path
        branches, so a 60-turn episode stays readable at 80 columns."""
        while True:
            kids = children.get(node.id, [])
            sub = turn(branch, node, not kids)
            if len(kids) != 1:
                break
            node = kids[0]
        for kid in kids:
            add(sub.add(Text(f"branch → #{kid.id}", style="magenta")), kid)

    def turn(branch: Tree, node: Turn, is_leaf: bool) -> Tree:
        sub = branch.add(_node_label(tree, node, is_leaf))
        sub.add(Text.assemble(("action: ", "bold blue"), _clip(node.action_text, limit)))
        for call in node.tool_calls:
            line = Text.assemble(("tool ", "green"), (_clip(call.name, limit), "bold green"), f"({_clip(str(call.arguments), limit)})",
                                 f" [{call.latency_s * 1000:.1f} ms]")
            if call.error_type:
                line.append(f"  {call.error_type}: {_clip(call.error or '', limit)}", style="bold red")
            else:
                line.append(" → " + _clip(call.output, limit))
            sub.add(line)
        if node.observation is not None:
            _observation(sub, node.observation, "observation", limit)
        return sub

    for failure in tree.meta.get("failed_paths", []):  # paths an env call ended (agentgym.env_calls)
        where = f" at #{failure['node']}" if failure.get("node") is not None else ""
        root.add(Text(f"failed path {failure.get('path')}{where}: {failure['stage']} {failure['error_type']}: "
                      f"{_clip(failure['error'], limit)}", style="bold red"))
    roots = children.get(None, [])
    for node in roots:
        add(root.add(Text(f"episode → #{node.id}", style="bold")) if len(roots) > 1 else root, node)
    return root


def trees_table(trees: list[TrajectoryTree], title: str = "") -> Table:
    table = Table("#", "id", "env", "step", "question", "trajs", "branches", "errors", "mean reward", title=title)
    for i, tree in enumerate(trees):
        s: dict[str, Any] = tree.summary()
        question = str(tree.task.get("question") or (tree.initial_observation.text if tree.initial_observation else ""))
        table.add_row(str(i), Text(printable(tree.id[:16])), Text(printable(tree.env_id)),
                      str(tree.step if tree.step is not None else "–"),
                      Text(_clip(question, 60)), str(s["trajectories"]), str(s["branches"]), str(s["errors"] or ""),
                      Text(f"{s['mean_reward']:.3f}", style=_reward_style(s["mean_reward"])))
    return table
