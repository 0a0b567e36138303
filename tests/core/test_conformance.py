"""Every registered env passes Gymnasium's check_env and agentgym's conformance checks."""

import pytest

import agentgym
from agentgym.check import check_env_id


@pytest.mark.parametrize("env_id", agentgym.list_envs())
def test_registered_env_conforms(env_id):
    failures = [f"{r.name}: {r.detail}" for r in check_env_id(env_id) if not r.ok]
    assert not failures, failures
