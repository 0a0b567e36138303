"""A training run's run.json records every kwarg its envs are made with (``env.limits`` too), so
`agentgym replay --reexecute` of its trajectories makes the same env and reproduces them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agentgym.cli import app
from agentgym.config import load_config
from agentgym.envs.calculator.expert import calculator_expert
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutEngine
from agentgym.store import TrajectoryStore
from agentgym.trainers.session import Session, write_run_json


def test_training_run_json_holds_env_limits_and_replay_reproduces_its_trees(tmp_path, tokenizer):
    run_dir = tmp_path / "run"
    cfg = load_config(run_dir=str(run_dir), env={"id": "agentgym/Calculator-v0", "kwargs": {"split": "test"},
                                                 "limits": {"max_turns": 1}}, policy={"model": "tiny"})
    write_run_json(run_dir, cfg)
    recorded = json.loads((run_dir / "run.json").read_text())["env_kwargs"]
    assert recorded["split"] == "test" and recorded["limits"]["max_turns"] == 1

    # the trees as training stores them: rolled out on the session's own env factory
    factory = Session(cfg, None, tokenizer, None).env_factory()
    engine = RolloutEngine(ScriptedPolicy(calculator_expert, tokenizer), factory, env_id=cfg.env.id)
    trees = engine.run([0, 1])
    assert all(t.nodes[-1].truncated for t in trees)  # the limit shaped the episodes: replay must know it
    TrajectoryStore(run_dir / "trajectories.jsonl").append_many(trees)
    result = CliRunner().invoke(app, ["replay", str(run_dir), "--reexecute"])
    assert result.exit_code == 0 and result.output.count("reproduced tree") == 2, result.output
