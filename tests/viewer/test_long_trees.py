"""Long episodes stay readable: 60+ turns in the terminal replay at 80 columns and in the viewer's tree panel.
Indentation grows at branch points only, never per turn."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console

from agentgym.store import TrajectoryStore
from agentgym.trajectory import Observation, TrajectoryTree, Turn
from agentgym.viewer.terminal import tree_renderable

TURNS = 64
BRANCH_AT = 30


def long_tree() -> TrajectoryTree:
    """One 64-turn episode with a branch at turn 30 that runs 10 turns of its own."""
    tree = TrajectoryTree(env_id="example/GuessNumber-v0", seed=0, initial_observation=Observation(text="Start."))

    def turn(parent, i, text):
        return tree.add(Turn(id=0, parent=parent, prefix_ids=[1, 2], action_ids=[3, 4, 5], logprobs=[0.0] * 3,
                             entropies=[0.2, 0.9, 0.4], action_text=text, observation=Observation(text=f"room {i}")))

    parent = None
    for i in range(TURNS):
        parent = turn(parent, i, f"go north {i}").id
    tree.final_rewards[parent] = 1.0
    node = tree.nodes[BRANCH_AT]
    for i in range(10):
        node = turn(node.parent if i == 0 else node.id, i, f"go south {i}")
        if i == 0:
            node.branch_entropy, node.branched_from = 1.5, BRANCH_AT - 1
    tree.final_rewards[node.id] = 0.0
    return tree


def test_terminal_replay_keeps_turns_at_one_indentation_at_80_columns():
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(tree_renderable(long_tree()))
    lines = console.export_text().splitlines()
    labels = [line for line in lines if re.search(r"#\d+ turn \d+", line)]
    assert len(labels) == TURNS + 10
    indents = {len(line) - len(line.lstrip("│├└─ ")) for line in labels}
    assert max(indents) <= 16, sorted(indents)  # the root level and two branch levels, whatever the length
    assert any(f"#{TURNS - 1} turn {TURNS - 1}" in line for line in lines)  # the last turn is not cut off
    assert all(len(line) <= 80 for line in lines)


@pytest.mark.browser
def test_viewer_tree_panel_stays_readable_at_64_turns(tmp_path):
    from agentgym.viewer.browser import browser_missing, chromium
    from agentgym.viewer.server import ViewerServer

    if (why := browser_missing()) is not None:
        pytest.skip(f"needs Chromium and playwright: {why}")
    from PIL import Image

    TrajectoryStore(tmp_path / "trajectories.jsonl").append(long_tree())
    with ViewerServer(tmp_path) as server, chromium(width=1280, height=900) as browser:
        page = browser.new_page()
        page.goto(server.url + "#/tree/0")
        page.wait_for_selector("#main[data-ready=tree]")
        panel = page.locator("#tree-panel")
        assert page.locator("#tree-panel button.node").count() == TURNS + 10
        box = panel.bounding_box()
        # every turn's button starts inside the panel, at most two branch levels in from the first one
        lefts = page.eval_on_selector_all("#tree-panel button.node", "bs => bs.map(b => b.getBoundingClientRect().left)")
        rights = page.eval_on_selector_all("#tree-panel button.node", "bs => bs.map(b => b.getBoundingClientRect().right)")
        assert max(lefts) - min(lefts) <= 2 * 16 + 2
        assert max(rights) <= box["x"] + box["width"]
        # the panel does not scroll sideways
        assert page.eval_on_selector("#tree-panel", "p => p.scrollWidth <= p.clientWidth + 1")
        page.screenshot(path=str(tmp_path / "long-tree.png"))
        shot = np.asarray(Image.open(tmp_path / "long-tree.png").convert("L"), dtype=float)
        assert shot.std() > 15
        page.close()
