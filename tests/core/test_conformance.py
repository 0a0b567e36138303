"""Every registered env passes Gymnasium's check_env and agentgym's conformance checks."""

import gymnasium
import pytest

import agentgym
from agentgym.check import check_env_id


def _case(env_id: str):
    """Browser envs need Chromium and take minutes to check (a browser launch per env made): slow, skipped
    with the reason where Chromium or playwright is missing."""
    if not str(gymnasium.registry[env_id].entry_point).startswith("agentgym.envs.browser"):
        return env_id
    from agentgym.envs.browser.session import missing_requirements

    marks = [pytest.mark.slow, pytest.mark.browser]
    if why := missing_requirements():
        marks.append(pytest.mark.skip(reason=f"browser env needs Chromium, playwright and miniwob: {why}"))
    return pytest.param(env_id, marks=marks)


@pytest.mark.parametrize("env_id", [_case(i) for i in agentgym.list_envs()])
def test_registered_env_conforms(env_id):
    failures = [f"{r.name}: {r.detail}" for r in check_env_id(env_id) if not r.ok]
    assert not failures, failures
