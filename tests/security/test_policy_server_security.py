"""`agentgym serve` (the OpenAI-compatible model server) as a stranger meets it: Host check, optional token,
requests refused before they hold the model, OpenAI's error format, cancellation, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agentgym.http_guard import InsecureBindError
from agentgym.policies.base import GenerationRequest, SamplingParams
from agentgym.policies.openai_compat import OpenAICompatPolicy, PolicyServerError
from agentgym.policies.server import create_app, serve
from security_helpers import free_port, serving

pytest.importorskip("fastapi")
TOKEN = "model-server-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def model_url(tiny_policy):
    with serving(create_app(tiny_policy, token=TOKEN, request_timeout_s=2.0, max_body_bytes=2**20)) as url:
        yield url


def complete(url: str, body: dict, headers: dict | None = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json=body, headers=AUTH if headers is None else headers, timeout=timeout)


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def test_foreign_host_and_missing_token_are_refused(model_url):
    port = model_url.rsplit(":", 1)[1]
    assert_openai_error(complete(model_url, {"prompt": [1]}, {**AUTH, "Host": f"evil.example:{port}"}), 403, "forbidden_host")
    assert_openai_error(complete(model_url, {"prompt": [1]}, {}), 401, "invalid_token")
    assert_openai_error(complete(model_url, {"prompt": [1]}, {"Authorization": "Bearer nope"}), 401)
    assert_openai_error(httpx.get(f"{model_url}/v1/models"), 401)
    assert httpx.get(f"{model_url}/health").status_code == 200  # health needs no token


def test_openai_client_with_the_token_is_token_exact(model_url, tiny_policy, tokenizer):
    client = OpenAICompatPolicy(model_url, tokenizer=tokenizer, api_key=TOKEN)
    params = SamplingParams(max_new_tokens=6, temperature=0.0)
    prompt = tokenizer.encode("hello")
    remote = client.generate([GenerationRequest(prompt, params)])[0]
    local = tiny_policy.generate([GenerationRequest(prompt, params)])[0]
    assert remote.token_ids == local.token_ids
    client.close()
    anonymous = OpenAICompatPolicy(model_url, tokenizer=tokenizer, max_attempts=1)
    with pytest.raises(PolicyServerError, match="401"):
        anonymous.generate([GenerationRequest(prompt, params)])
    anonymous.close()


@pytest.mark.parametrize("body, param, code", [
    ({"prompt": ""}, "prompt", "invalid_value"),
    ({"prompt": []}, "prompt", "invalid_value"),
    ({"prompt": [[1, 2], []]}, "prompt", "invalid_value"),
    ({"prompt": [-1, 5]}, "prompt", "invalid_value"),
    ({"prompt": [999999]}, "prompt", "invalid_value"),
    ({"prompt": [[5], [49152]]}, "prompt", "invalid_value"),
    ({"prompt": [1.5]}, "prompt", "invalid_value"),
    ({"prompt": [1], "max_tokens": 0}, "max_tokens", "invalid_value"),
    ({"prompt": [1], "max_tokens": "many"}, "max_tokens", "invalid_value"),
    ({"prompt": [1], "temperature": -1}, "temperature", "invalid_value"),
    ({"max_tokens": 3}, "prompt", "invalid_value"),
])
def test_bad_requests_get_400_in_openai_format(model_url, body, param, code):
    error = assert_openai_error(complete(model_url, body), 400, code)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_malformed_json_and_unknown_routes_answer_in_openai_format(model_url):
    r = httpx.post(f"{model_url}/v1/completions", content=b"{nope", headers={**AUTH, "content-type": "application/json"})
    assert_openai_error(r, 400, "invalid_json")
    assert_openai_error(httpx.get(f"{model_url}/v1/nothing", headers=AUTH), 404)


def test_over_length_prompt_gets_400_and_the_next_request_is_answered(model_url, tokenizer):
    long_text = "The quick brown fox jumps over the lazy dog. " * 4_500  # ~200k characters, far over 4,096 tokens
    error = assert_openai_error(complete(model_url, {"prompt": long_text, "max_tokens": 16}), 400, "context_length_exceeded")
    assert "maximum context length is 4096 tokens" in error["message"]
    ids = tokenizer.encode("hello there")
    assert_openai_error(complete(model_url, {"prompt": ids, "max_tokens": 4096}), 400, "context_length_exceeded")
    r = complete(model_url, {"prompt": ids, "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200 and len(r.json()["choices"][0]["logprobs"]["tokens"]) == 4


def test_body_over_the_cap_gets_413(model_url):
    r = complete(model_url, {"prompt": [12345] * 400_000})  # ~2.4 MB against a 1 MiB cap
    assert_openai_error(r, 413, "body_too_large")


def test_the_deadline_stops_the_generation_itself(model_url):
    error = assert_openai_error(complete(model_url, {"prompt": [1, 2, 3], "max_tokens": 4000}), 504, "deadline_exceeded")
    steps = int(error["message"].split("stopped after ")[1].split()[0])
    assert steps < 4000  # it stopped computing, it did not merely stop waiting
    assert complete(model_url, {"prompt": [1, 2, 3], "max_tokens": 2}).status_code == 200


def test_a_client_that_disconnects_cancels_its_generation(tiny_policy):
    with serving(create_app(tiny_policy, request_timeout_s=600)) as url:
        with pytest.raises(httpx.TimeoutException):
            complete(url, {"prompt": [1, 2, 3], "max_tokens": 4000}, {}, timeout=1.0)
        for _ in range(600):  # the server notices the closed connection within its poll interval
            health = httpx.get(f"{url}/health").json()
            if health["cancelled"] == 1 and not health["generating"]:
                break
            time.sleep(0.05)
        assert health["cancelled"] == 1 and not health["generating"] and health["waiting"] == 0
        assert complete(url, {"prompt": [1, 2, 3], "max_tokens": 2}, {}).status_code == 200


def test_queued_requests_leave_when_their_client_gives_up(tiny_policy):
    with serving(create_app(tiny_policy, request_timeout_s=600)) as url:
        holder = threading.Thread(target=_quietly, args=(complete, url, {"prompt": [1], "max_tokens": 4000}, {}, 2.0))
        holder.start()
        time.sleep(0.3)
        _quietly(complete, url, {"prompt": [2], "max_tokens": 4000}, {}, 1.0)
        holder.join()
        for _ in range(600):
            health = httpx.get(f"{url}/health").json()
            if health["waiting"] == 0 and not health["generating"]:
                break
            time.sleep(0.05)
        assert health["waiting"] == 0 and not health["generating"]


def _quietly(fn, *args):
    try:
        fn(*args)
    except httpx.TimeoutException:
        pass


def test_binding_beyond_loopback_needs_a_token():
    with pytest.raises(InsecureBindError, match="without --token"):
        serve("tiny", host="0.0.0.0", announce=lambda *_: None)


@pytest.mark.slow(ci=True)
def test_sigterm_stops_the_server_mid_generation_within_5_s():
    port = free_port()
    cli = Path(sys.executable).with_name("agentgym")
    proc = subprocess.Popen([str(cli), "serve", "tiny", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "AGENTGYM_SERVE_TOKEN": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):  # loading the model
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        answers: list[httpx.Response] = []
        client = threading.Thread(target=lambda: answers.append(complete(url, {"prompt": [1, 2, 3], "max_tokens": 4000},
                                                                         {}, timeout=120)))
        client.start()
        while not httpx.get(f"{url}/health").json()["generating"]:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)  # raises TimeoutExpired if the generation kept the server alive
        client.join(10)
        if answers:  # the in-flight request was answered before the exit, in OpenAI's format
            assert_openai_error(answers[0], 503, "shutting_down")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
