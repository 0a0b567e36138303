"""Every registered env passes Gymnasium's check_env and agentgym's conformance checks."""

import importlib.util
import shutil

import gymnasium
import pytest

import agentgym
from agentgym.check import check_env_id


def _case(env_id: str):
    """Envs on an optional backend skip without it, with the reason. ScienceWorld's checks take minutes (a
    JVM, task loads), so CI runs them for one id; browser envs take minutes too (a browser launch per env
    made): slow, outside CI's budget."""
    if env_id.startswith("agentgym/ScienceWorld"):
        missing = importlib.util.find_spec("scienceworld") is None or shutil.which("java") is None
        marks = [pytest.mark.skipif(missing, reason="needs the scienceworld package and a Java runtime"),
                 pytest.mark.slow(ci=env_id == "agentgym/ScienceWorld-v0")]
        return pytest.param(env_id, marks=marks)
    if str(gymnasium.registry[env_id].entry_point).startswith("agentgym.envs.browser"):
        from agentgym.envs.browser.session import missing_requirements

        marks = [pytest.mark.slow, pytest.mark.browser]
        if why := missing_requirements():
            marks.append(pytest.mark.skip(reason=f"browser env needs Chromium, playwright and miniwob: {why}"))
        return pytest.param(env_id, marks=marks)
    return env_id


@pytest.mark.parametrize("env_id", [_case(i) for i in agentgym.list_envs()])
def test_registered_env_conforms(env_id):
    failures = [f"{r.name}: {r.detail}" for r in check_env_id(env_id) if not r.ok]
    assert not failures, failures
