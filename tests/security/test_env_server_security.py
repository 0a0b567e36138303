"""The env server (`agentgym serve-env`) as a stranger meets it: Host/Origin check, bearer token, body cap,
atomic capacity, bounded work per request, client errors as 4xx, sessions that end."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from agentgym.env_server import RemoteEnv, RemoteEnvError, create_env_app, serve_env
from agentgym.env_sessions import AtCapacity, NoSession, SessionTable
from agentgym.envs.calculator.expert import calculator_expert
from agentgym.http_guard import InsecureBindError
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutConfig, RolloutEngine
from security_helpers import serving

pytest.importorskip("fastapi")
TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CALC = "agentgym/Calculator-v0"


@pytest.fixture
def calc_url():
    app = create_env_app(CALC, max_sessions=4, token=TOKEN, max_body_bytes=256 * 1024,
                         env_kwargs={"limits": {"max_turns": 50, "max_action_chars": 200_000}})
    with serving(app) as url:
        yield url


def open_session(url: str, **body) -> str:
    r = httpx.post(f"{url}/sessions", json=body or {"seed": 1}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


# ---- item 1: Host/Origin check and token ------------------------------------------------------------------
def test_foreign_host_or_origin_is_refused(calc_url):
    port = calc_url.rsplit(":", 1)[1]
    for headers in ({"Host": f"evil.example:{port}"}, {"Host": "attacker.test"},
                    {"Origin": "http://evil.example"}, {"Origin": "null"}):
        r = httpx.post(f"{calc_url}/sessions", json={"seed": 1}, headers={**AUTH, **headers})
        assert r.status_code == 403, (headers, r.text)
        assert "forbidden" in r.json()["detail"]
    r = httpx.get(f"{calc_url}/health", headers={"Host": "rebound.example"})
    assert r.status_code == 403  # even the open health route is not served to a rebound name
    ok = httpx.post(f"{calc_url}/sessions", json={"seed": 1},
                    headers={**AUTH, "Host": f"localhost:{port}", "Origin": f"http://127.0.0.1:{port}"})
    assert ok.status_code == 200


def test_missing_or_wrong_token_is_refused_on_every_route_but_health(calc_url):
    sid = open_session(calc_url)
    routes = [("POST", "/sessions", {"seed": 1}), ("POST", f"/sessions/{sid}/step", {"action": "hi"}),
              ("POST", f"/sessions/{sid}/fork", None), ("DELETE", f"/sessions/{sid}", None)]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        for method, path, body in routes:
            r = httpx.request(method, calc_url + path, json=body, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{calc_url}/health").json()["sessions"] == 1  # the session survived every refusal


def test_remote_env_with_the_token_runs_a_rollout(calc_url, tokenizer):
    engine = RolloutEngine(ScriptedPolicy(calculator_expert, tokenizer), lambda: RemoteEnv(calc_url, token=TOKEN),
                           env_id="remote", config=RolloutConfig(group_size=2))
    trees = engine.run(range(3))
    assert len(trees) == 3 and all(tree.leaf_reward(leaf) == 1.0 for tree in trees for leaf in tree.leaves())


def test_remote_env_token_from_the_environment_and_without_one(calc_url, monkeypatch):
    monkeypatch.delenv("AGENTGYM_ENV_TOKEN", raising=False)
    with pytest.raises(RemoteEnvError, match="401.*no token given"):
        RemoteEnv(calc_url, capacity_wait_s=0).reset(seed=0)
    monkeypatch.setenv("AGENTGYM_ENV_TOKEN", TOKEN)
    env = RemoteEnv(calc_url, capacity_wait_s=0)
    obs, _ = env.reset(seed=0)
    assert obs
    env.close()


def test_binding_beyond_loopback_needs_a_token(monkeypatch):
    monkeypatch.delenv("AGENTGYM_ENV_TOKEN", raising=False)
    for host in ("0.0.0.0", "::", "192.168.1.10"):
        with pytest.raises(InsecureBindError, match="without --token"):
            serve_env(CALC, host=host, announce=lambda *_: None)


def test_cli_refuses_a_public_bind_without_token_with_an_error_not_a_traceback(monkeypatch):
    from typer.testing import CliRunner

    from agentgym.cli import app

    monkeypatch.delenv("AGENTGYM_ENV_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve-env", CALC, "--host", "0.0.0.0"])
    assert result.exit_code == 2 and result.exception is not None and "Traceback" not in result.output
    assert result.output.startswith("error:") and "without --token" in result.output


# ---- item 2: capacity is reserved before the work -----------------------------------------------------------
def test_eight_concurrent_forks_never_exceed_the_cap():
    """A Python-env fork forks a live sandbox (slow): the probe's case, where all 8 passed the check."""
    app = create_env_app("agentgym/Python-v0", max_sessions=4, token=TOKEN)
    with serving(app) as url:
        sid = open_session(url, seed=0)
        r = httpx.post(f"{url}/sessions/{sid}/step", headers=AUTH, timeout=60,
                       json={"action": "<python>x = 41\nprint(x + 1)</python>"})
        assert r.status_code == 200 and "42" in r.json()["observation"]
        seen, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                h = httpx.get(f"{url}/health").json()
                seen.append(h["sessions"] + h["reserved"])
                time.sleep(0.01)

        statuses: list[int] = []
        start = threading.Barrier(8)

        def fork():
            start.wait()
            statuses.append(httpx.post(f"{url}/sessions/{sid}/fork", headers=AUTH, timeout=120).status_code)

        watcher = threading.Thread(target=watch)
        watcher.start()
        forks = [threading.Thread(target=fork) for _ in range(8)]
        for t in forks:
            t.start()
        for t in forks:
            t.join()
        stop.set()
        watcher.join()
        assert sorted(statuses) == [200] * 3 + [429] * 5
        assert max(seen) <= 4
        table = app.app.state.sessions
        assert len(table.sessions) == 4 and table.reserved == 0


def test_a_failed_reset_releases_its_slot(calc_url):
    for _ in range(6):  # more failures than slots: a leaked reservation would turn these into 429s
        r = httpx.post(f"{calc_url}/sessions", json={"seed": 1, "options": {"task": 5}}, headers=AUTH)
        assert r.status_code == 400
    assert httpx.get(f"{calc_url}/health").json()["reserved"] == 0
    open_session(calc_url)


# ---- item 3: bounded work, 4xx for client errors, caps ----------------------------------------------------
def test_huge_answers_are_graded_with_a_result(calc_url):
    for answer in ("7" * 100_000, "7" * 5_000 + "/" + "3" * 5_000, "1e99999999999999999999999"):
        sid = open_session(calc_url)
        r = httpx.post(f"{calc_url}/sessions/{sid}/step", json={"action": f"<answer>{answer}</answer>"},
                       headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["terminated"] and r.json()["reward"] == 0.0


def test_health_answers_while_a_long_action_runs():
    app = create_env_app("agentgym/Python-v0", max_sessions=4, token=TOKEN)
    with serving(app) as url:
        sid = open_session(url, seed=0)
        done: dict = {}

        def long_step():
            code = "import time\ntime.sleep(4)\nprint('slept')"
            done["r"] = httpx.post(f"{url}/sessions/{sid}/step", json={"action": f"<python>{code}</python>"},
                                   headers=AUTH, timeout=120)

        worker = threading.Thread(target=long_step)
        worker.start()
        busy_seen = False
        while worker.is_alive() and not busy_seen:
            health = httpx.get(f"{url}/health", timeout=10).json()  # answered while the step holds its session
            busy_seen = health["busy"] == 1
            time.sleep(0.05)
        worker.join()
        assert busy_seen, "the step ended before /health ever saw it running"
        assert done["r"].status_code == 200 and "slept" in done["r"].json()["observation"]


def test_a_body_over_the_cap_gets_413(calc_url):
    sid = open_session(calc_url)
    big = {"action": "x" * 300_000}
    r = httpx.post(f"{calc_url}/sessions/{sid}/step", json=big, headers=AUTH)
    assert r.status_code == 413 and "cap" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 10_000

    r = httpx.post(f"{calc_url}/sessions/{sid}/step", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413
    ok = httpx.post(f"{calc_url}/sessions/{sid}/step", json={"action": "<answer>1</answer>"}, headers=AUTH)
    assert ok.status_code == 200


@pytest.mark.parametrize("body, content, status, says", [
    ({"action_b64": "%%%not base64%%%"}, None, 400, "base64"),
    ({"action": "hi", "action_b64": "aGk="}, None, 400, "exactly one"),
    ({}, None, 400, "exactly one"),
    ({"action": 5}, None, 422, "string"),
    ({"action": "hi", "extra": 1}, None, 422, "xtra"),
    (None, b"{not json", 422, "JSON"),
    (None, b"[1, 2]", 422, "dict"),
])
def test_bad_step_requests_get_4xx_with_a_message(calc_url, body, content, status, says):
    sid = open_session(calc_url)
    r = httpx.post(f"{calc_url}/sessions/{sid}/step", json=body, content=content,
                   headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert says in r.text


@pytest.mark.parametrize("body, status, says", [
    ({"seed": -1}, 422, "greater than or equal"),
    ({"seed": "7"}, 422, "integer"),
    ({"seed": 1.5}, 422, "integer"),
    ({"seed": 2**70}, 422, "less than"),
    ({"seed": 1, "options": {"task": 5}}, 400, "reset rejected"),
    ({"seed": 1, "options": {"task": {"no": "question"}}}, 400, "question"),
    ({"seed": 1, "options": []}, 422, "dict"),
])
def test_bad_session_requests_get_4xx_with_a_message(calc_url, body, status, says):
    r = httpx.post(f"{calc_url}/sessions", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert says in r.text


def test_session_misuse_gets_4xx(calc_url):
    assert httpx.post(f"{calc_url}/sessions/nope/step", json={"action": "x"}, headers=AUTH).status_code == 404
    sid = open_session(calc_url)
    assert httpx.post(f"{calc_url}/sessions/{sid}/step", json={"action": "<answer>1</answer>"}, headers=AUTH).status_code == 200
    after = httpx.post(f"{calc_url}/sessions/{sid}/step", json={"action": "<answer>1</answer>"}, headers=AUTH)
    assert after.status_code == 409 and "ended" in after.text


# ---- item 4: sessions end --------------------------------------------------------------------------------
class _Env:
    closed = 0

    def close(self):
        _Env.closed += 1


def test_idle_and_lifetime_limits_on_the_session_table():
    now = [0.0]
    table = SessionTable(max_sessions=2, idle_timeout_s=10, max_lifetime_s=30, clock=lambda: now[0])
    with table.reserve() as slot:
        a = slot.fill(_Env())
    with table.reserve() as slot:
        b = slot.fill(_Env())
    with pytest.raises(AtCapacity), table.reserve():
        pass
    for t in range(0, 35, 5):  # `a` is touched every 5 s: never idle, but it cannot outlive 30 s
        now[0] = float(t)
        with table.use(a):
            pass
        if t == 15:
            assert table.stats()["reclaimable"] == 1  # `b` has been idle for 15 s
    with pytest.raises(NoSession, match="maximum lifetime"):
        now[0] = 31.0
        with table.use(a):
            pass
    assert table.stats()["reclaimable"] == 1 and table.reap() == 1 and table.stats()["sessions"] == 0


def test_server_reaps_idle_sessions_and_reports_reclaimable():
    app = create_env_app(CALC, max_sessions=4, token=TOKEN, idle_timeout_s=0.3, max_lifetime_s=3600)
    with serving(app) as url:
        sid = open_session(url)
        health = httpx.get(f"{url}/health").json()
        assert {"reclaimable", "idle_timeout_s", "max_lifetime_s"} <= set(health)
        for _ in range(200):  # the background reaper closes it within a few intervals
            if httpx.get(f"{url}/health").json()["sessions"] == 0:
                break
            time.sleep(0.05)
        assert httpx.get(f"{url}/health").json()["sessions"] == 0
        r = httpx.post(f"{url}/sessions/{sid}/step", json={"action": "x"}, headers=AUTH)
        assert r.status_code == 404


def test_touching_a_session_does_not_keep_it_past_its_lifetime():
    app = create_env_app(CALC, max_sessions=4, token=TOKEN, idle_timeout_s=60, max_lifetime_s=1.0,
                         env_kwargs={"limits": {"max_turns": 10_000}})
    with serving(app) as url:
        sid = open_session(url)
        for _ in range(400):
            r = httpx.post(f"{url}/sessions/{sid}/step", json={"action": "<calculator>1+1</calculator>"}, headers=AUTH)
            if r.status_code != 200:
                break
            time.sleep(0.02)
        assert r.status_code == 404 and "lifetime" in r.text


@pytest.mark.parametrize("content", [b'{"seed": ' + b"1" * 5_000 + b"}",
                                     b'{"seed": 1, "options": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                     b'{"seed": 1, "options": {"task": "\xff"}}'])
def test_bodies_json_cannot_represent_get_4xx(calc_url, content):
    r = httpx.post(f"{calc_url}/sessions", content=content, headers={**AUTH, "content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"]
