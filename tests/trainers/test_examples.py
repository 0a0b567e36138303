"""Every example config validates: its keys, its env, its model path."""

from pathlib import Path

import pytest

from agentgym.config import load_config
from agentgym.trainers.session import validate

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_is_valid(path):
    validate(load_config(path))


def test_demo_defaults_validate():
    from agentgym.trainers.demo import demo_config

    cfg = demo_config()
    validate(cfg)
    assert cfg.algorithm.name == "arpo" and cfg.env.id == "agentgym/Python-v0"


CREDIT_EXAMPLES = {  # the turn-level credit examples, shrunk to two steps of the tiny model (the README's commands
    # use the embedded model with the same overrides)
    "igpo_web_search.yaml": ["env.limits.max_turns=3", "env.limits.max_tokens_per_turn=16"],
    "eapo_deep_research.yaml": ["env.kwargs.max_rounds=3", "env.kwargs.round_tokens=24"],
    "cgrpo_web_search.yaml": ["env.limits.max_turns=3", "env.limits.max_tokens_per_turn=16"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CREDIT_EXAMPLES))
def test_credit_example_trains_from_the_cli(tmp_path, name):
    """`agentgym train examples/<name>` runs end to end (tiny model, two steps) and checkpoints."""
    from typer.testing import CliRunner

    from agentgym.cli import app

    sets = ["policy.model=tiny", f"run_dir={tmp_path}", "trainer.steps=2", "trainer.tasks_per_step=1",
            "rollout.group_size=2", "trainer.checkpoint_every=0", "logging.tensorboard=false",
            "logging.progress=false", *CREDIT_EXAMPLES[name]]
    args = ["train", str(EXAMPLES[0].parent / name)] + [x for s in sets for x in ("--set", s)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "done:" in result.output and (tmp_path / "checkpoints" / "step-000002").exists()
    assert len((tmp_path / "trajectories.jsonl").read_text().splitlines()) == 2
