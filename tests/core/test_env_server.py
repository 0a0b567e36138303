"""Envs living in another process: the HTTP env server and RemoteEnv, driven by the rollout engine."""

import socket
import threading
import time

import pytest

from agentgym.envs.calculator.expert import calculator_expert
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutConfig, RolloutEngine

uvicorn = pytest.importorskip("uvicorn")
from agentgym.env_server import RemoteEnv, RemoteEnvError, create_env_app  # noqa: E402

TOKEN = "test-token-for-the-env-server"


@pytest.fixture
def server_url(monkeypatch):
    monkeypatch.setenv("AGENTGYM_ENV_TOKEN", TOKEN)  # how RemoteEnv finds the token when not given one
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_env_app("agentgym/Calculator-v0", max_sessions=4, token=TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_remote_env_behaves_like_the_local_one(server_url):
    env = RemoteEnv(server_url)
    obs, info = env.reset(seed=3)
    assert "Round to 2 decimals" in obs or "?" in obs or "Compute" in obs
    assert "<calculator>" in env.system_prompt() and "</calculator>" in env.stop_strings()
    obs, reward, terminated, truncated, info = env.step(b"\xff invalid utf-8")
    assert "not valid UTF-8" in obs and info["errors"] == 1
    env.close()


def test_engine_rolls_out_against_the_server_with_forks(server_url, tokenizer):
    class Branch:
        def branches(self, path, node, gen):
            return 1 if path.after_tool else 0

    engine = RolloutEngine(ScriptedPolicy(calculator_expert, tokenizer), lambda: RemoteEnv(server_url),
                           env_id="remote", config=RolloutConfig(group_size=1, max_trajectories=2), strategy=Branch())
    trees = engine.run(range(6))  # up to 12 live paths on a 4-session server: they queue, none fails
    assert len(trees) == 6
    for tree in trees:
        assert len(tree.leaves()) == 2 and all(tree.leaf_reward(leaf) == 1.0 for leaf in tree.leaves())


def test_full_server_answers_429_not_a_hang(server_url):
    envs = [RemoteEnv(server_url, capacity_wait_s=0) for _ in range(5)]
    for env in envs[:4]:
        env.reset(seed=0)
    with pytest.raises(RemoteEnvError, match="429"):
        envs[4].reset(seed=0)
    for env in envs:
        env.close()
    envs[4] = RemoteEnv(server_url, capacity_wait_s=0)
    envs[4].reset(seed=0)  # capacity is back after the others closed
    envs[4].close()


def test_a_full_server_is_waited_out_until_a_session_frees(server_url):
    holders = [RemoteEnv(server_url) for _ in range(4)]
    for env in holders:
        env.reset(seed=0)
    waiter = RemoteEnv(server_url, capacity_wait_s=30)
    freed = threading.Event()

    def free_one_later():
        time.sleep(0.3)
        freed.set()
        holders[0].close()

    threading.Thread(target=free_one_later).start()
    obs, info = waiter.reset(seed=1)  # blocks on 429s, then takes the freed slot
    assert freed.is_set() and obs
    for env in [waiter, *holders[1:]]:
        env.close()


def test_fork_on_a_full_server_returns_none_at_once(server_url):
    envs = [RemoteEnv(server_url) for _ in range(4)]
    for env in envs:
        env.reset(seed=0)
    assert envs[0].fork() is None  # the engine replays instead; waiting here could deadlock the holders
    for env in envs:
        env.close()


def test_server_that_is_down_is_reported():
    env = RemoteEnv("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(RemoteEnvError, match="unreachable"):
        env.reset(seed=0)
