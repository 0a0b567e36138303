"""Fixtures for the viewer, replay and report tests (helpers live in viewer_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentgym.store import TrajectoryStore
from agentgym.trajectory import TrajectoryTree
from agentgym.viewer.synthetic import write_synthetic_run
from viewer_helpers import drive_calculator


@pytest.fixture(scope="session")
def run_1k(tmp_path_factory) -> Path:
    """A run of 1,000 realistic trees (branches, errors, memory, images) plus metrics.jsonl."""
    return write_synthetic_run(tmp_path_factory.mktemp("run1k"), 1000, seed=0)


@pytest.fixture(scope="session")
def trees_1k(run_1k) -> list[TrajectoryTree]:
    return TrajectoryStore(run_1k / "trajectories.jsonl").read_all()


@pytest.fixture
def calc_tree() -> TrajectoryTree:
    """One episode that calls the calculator and answers correctly, a branch that answers wrongly, and a
    second episode that answers without the tool."""
    return drive_calculator([["<calculator>17*23</calculator>", "<answer>391</answer>"],
                             ["<calculator>17*23</calculator>", "<answer>390</answer>"],
                             ["<answer>391</answer>"]])
