import os
import shutil

import pytest

from agentgym.sandboxes import LocalSandbox, SandboxLimits


def pytest_collection_modifyitems(config, items):
    if shutil.which("bwrap") is None or os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the adversarial suite needs bubblewrap and root (to drop to uid nobody)")
        for item in items:
            if "tests/sandboxes" in str(item.fspath) and "needs_isolation" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def limits():
    return SandboxLimits(wall_timeout_s=5, cpu_s=3, memory_bytes=512 << 20, max_processes=32,
                         max_output_bytes=16_000, kill_output_bytes=4 << 20, max_file_bytes=8 << 20,
                         tmpfs_bytes=32 << 20)


@pytest.fixture
def sandbox(limits):
    sb = LocalSandbox(limits)
    sb.start()
    yield sb
    sb.close()


@pytest.fixture
def control(limits):
    """A benign sandbox running beside the adversarial one: its answers must not change."""
    sb = LocalSandbox(limits)
    sb.start()
    sb.run("counter = 0")
    yield sb
    sb.close()
