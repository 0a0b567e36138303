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
