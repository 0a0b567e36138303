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


def _backend_missing(env_id: str) -> str | None:
    """Why `env_id`'s backend cannot run on this machine (None when it can)."""
    import shutil

    if "ScienceWorld" in env_id:
        try:
            import scienceworld  # noqa: F401
        except ImportError:
            return "the scienceworld package is not installed (pip install 'agentgym[scienceworld]')"
        return None if shutil.which("java") else "no Java runtime (apt-get install openjdk-17-jre-headless)"
    if "MiniWoB" in env_id:
        from agentgym.envs.browser.session import missing_requirements

        return missing_requirements()
    return None


# Examples on the embodied and GUI envs: one training step each, with the tiny model and a small budget,
# through the same RLRun a user's `agentgym train` runs.
ENV_EXAMPLES = ["arpo_scienceworld.yaml", "epo_scienceworld.yaml", "arpo_android.yaml", "epo_android.yaml",
                "curriculum_android.yaml"]


@pytest.mark.parametrize("name", ENV_EXAMPLES)
def test_env_example_trains_one_step_on_the_tiny_model(tmp_path, name):
    from agentgym.trainers.rl import RLRun

    path = Path(__file__).parents[2] / "examples" / name
    branches = load_config(path).algorithm.name == "arpo"
    cfg = load_config(path, [f"run_dir={tmp_path / 'run'}", "policy.model=tiny", "trainer.steps=1",
                             "trainer.tasks_per_step=2", "trainer.checkpoint_every=1", "rollout.group_size=2",
                             "logging.tensorboard=false", "logging.progress=false",
                             "env.limits.max_turns=2", "env.limits.max_tokens_per_turn=16"]
                      + (["rollout.max_trajectories=3"] if branches else []))
    why = _backend_missing(cfg.env.id)
    if why:
        pytest.skip(why)
    run = RLRun(cfg, quiet=True)
    history = run.train()
    assert len(history) == 1
    trees = run.store.read_all()
    assert trees and all(t.env_id == cfg.env.id for t in trees)
    assert all(len(t.nodes) >= 2 for t in trees)  # at least one env observation came back per task
    if cfg.algorithm.name == "arpo":
        assert all(len(t.leaves()) <= 3 for t in trees)


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
