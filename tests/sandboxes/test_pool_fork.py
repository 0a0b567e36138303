"""Warm pool and fork of live interpreter state."""

import pytest

from agentgym.sandboxes import LocalSandbox
from agentgym.sandboxes.pool import SandboxPool

pytestmark = pytest.mark.needs_isolation


def test_fork_copies_state_and_the_copies_are_independent():
    with LocalSandbox() as sb:
        sb.run("import random\nrandom.seed(1)\nxs = [random.random() for _ in range(3)]\nopen('/tmp/f', 'w').write('a')")
        copy = sb.fork()
        try:
            assert copy.run("xs").value == sb.run("xs").value  # same interpreter state
            sb.run("xs.append(99)\nopen('/tmp/f', 'w').write('b')")
            assert copy.run("len(xs)").value == "3" and sb.run("len(xs)").value == "4"
            assert copy.run("open('/tmp/f').read()").value == "'a'"  # not even /tmp is shared
        finally:
            copy.close()


def test_pool_hands_out_warm_sandboxes_and_never_reuses_state():
    with SandboxPool(size=2) as pool:
        first = pool.acquire()
        first.run("secret = 42")
        pool.release(first)
        for _ in range(3):
            sb = pool.acquire()
            assert sb.run("'secret' in dir()").value == "False"
            pool.release(sb)
