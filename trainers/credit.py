"""Credit pieces: where rewards go on a tree's turns (`Turn.credit_reward`), before advantages.

`outcome_credit` is GRPO's and ARPO's: the episode return the engine recorded for each leaf
(`TrajectoryTree.final_rewards`, the sum of the env's step rewards) is placed on the leaf's last turn.
Turn-level credit (IGPO's information gain, EAPO's discounted round rewards, a judge's rubric reward)
writes other turns too, using the policy's scorer, the tokenizer, the config and the step from the
`CreditContext`.
"""

from __future__ import annotations

from agentgym.trainers.pieces import CreditContext
from agentgym.trajectory import TrajectoryTree


def outcome_credit(trees: list[TrajectoryTree], ctx: CreditContext) -> None:
    for tree in trees:
        for node in tree.nodes:
            node.credit_reward = None
        for leaf in tree.leaves():
            tree.nodes[leaf].credit_reward = tree.leaf_reward(leaf)


def trajectory_return(tree: TrajectoryTree, leaf: int) -> float:
    """The credited return of the path to `leaf`: the sum of the credit placed on its turns."""
    return sum(n.credit_reward or 0.0 for n in tree.path(leaf))
