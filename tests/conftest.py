"""Shared fixtures and the slow-test budget.

Slow end-to-end tests are marked ``@pytest.mark.slow``. By default (``--run-slow=budget``, what CI runs)
only those marked ``@pytest.mark.slow(ci=True)`` run, keeping the suite within ~15 minutes on 2 cores;
``--run-slow=all`` runs every one, ``--run-slow=none`` none.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", default="budget", choices=["none", "budget", "all"],
                     help="which @pytest.mark.slow tests to run (default: those marked slow(ci=True))")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mode = config.getoption("--run-slow")
    for item in items:
        marker = item.get_closest_marker("slow")
        if marker is None or mode == "all":
            continue
        if mode == "budget" and marker.kwargs.get("ci"):
            continue
        item.add_marker(pytest.mark.skip(reason=f"slow test (run with --run-slow=all); mode={mode}"))


@pytest.fixture(scope="session")
def tokenizer():
    from agentgym.policies.models import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture(scope="session")
def tiny_model():
    from agentgym.policies.models import tiny_random_model

    model = tiny_random_model(seed=0)
    model.eval()
    return model


@pytest.fixture
def tiny_policy(tiny_model, tokenizer):
    from agentgym.policies.hf import HFPolicy

    return HFPolicy(tiny_model, tokenizer)


@pytest.fixture
def interruptible():
    """A `preexec_fn` for a child the test will Ctrl-C: SIGINT back to its default action before exec, so
    Python in the child installs its KeyboardInterrupt handler. A child inherits its parent's SIGINT
    disposition, and a child that inherits "ignored" never sees Ctrl-C. In two full-suite runs launched in
    the background, the aborted children's stacks showed exactly that: the viewer's main thread still in
    select(), and `run` finishing its episodes, then waiting at exit on a hung env step. Neither happened
    when the tests ran alone, and which earlier code left SIGINT ignored was not found (Python's
    `signal.getsignal` in the test process stayed the default handler throughout). These tests check the
    command's Ctrl-C handling, not the parent's."""
    import signal

    return lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def communicate_or_dump():
    """communicate(), but a child still running after `timeout` is aborted so that faulthandler (enabled by
    PYTHONFAULTHANDLER=1 in its environment) prints every thread's stack into the failure message."""
    import signal
    import subprocess

    def wait(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
        try:
            return proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=30)
            raise AssertionError(f"still running {timeout:.0f} s after Ctrl-C; its threads:\n{(err or out)[-6000:]}") from None

    return wait
