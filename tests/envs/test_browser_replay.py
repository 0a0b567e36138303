"""`agentgym run` then `agentgym replay --reexecute` on MiniWoB++: the task the env reported, handed back as
``options["task"]`` (what replay and prefix-replay branching do), starts the same task instance."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agentgym.envs.browser.session import missing_requirements

if why := missing_requirements():
    pytest.skip(f"browser env tests need Chromium, playwright and miniwob: {why}", allow_module_level=True)

import agentgym  # noqa: E402
from agentgym.cli import app  # noqa: E402
from agentgym.images import image_hashes  # noqa: E402

pytestmark = pytest.mark.browser
runner = CliRunner()
EXPERT = "scripted:agentgym.envs.browser.expert:miniwob_expert"


@pytest.mark.parametrize("env_id", ["agentgym/MiniWoB-v0", "agentgym/MiniWoBScreenshots-v0"])
def test_the_reported_task_given_back_starts_the_same_instance(env_id):
    sampled, given = agentgym.make(env_id), agentgym.make(env_id)
    try:
        for seed in range(4):
            obs, info = sampled.reset(seed=seed)
            obs2, info2 = given.reset(seed=seed, options={"task": info["task"]})
            assert (obs2, info2["task"]) == (obs, info["task"]), seed
            assert image_hashes(info2["observation"]["images"]) == image_hashes(info["observation"]["images"])
        row = {**info["task"], "page_seed": info["task"]["page_seed"] + 1}  # a row's own page seed poses it
        assert given.reset(seed=seed, options={"task": row})[1]["task"]["page_seed"] == row["page_seed"]
        with pytest.raises(ValueError, match="page_seed must be an integer"):
            given.reset(seed=0, options={"task": {**row, "page_seed": "7"}})
    finally:
        sampled.close()
        given.close()


@pytest.mark.slow
def test_run_then_replay_reexecute_reproduces_every_episode(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "agentgym/MiniWoBScreenshots-v0", "--policy", EXPERT, "--episodes", "6",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["replay", str(out), "--reexecute"])
    assert "DIVERGED" not in result.output, result.output
    assert result.exit_code == 0 and result.output.count("reproduced tree") == 6, result.output
