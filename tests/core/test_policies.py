"""Policy backends: exact log-probs/entropies, stop strings, and the OpenAI-compatible client against real
servers — a working one, one that is down, one that is too slow, one that answers garbage."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from agentgym.launch import free_port, serving_in_thread
from agentgym.policies.base import GenerationRequest, SamplingParams
from agentgym.policies.models import ModelNotFoundError, load_model
from agentgym.policies.openai_compat import OpenAICompatPolicy, PolicyServerError


def test_logprobs_and_entropies_match_a_forward_pass(tiny_policy, tokenizer):
    prompts = [tokenizer.encode("hello there"), tokenizer.encode("one two three four five six")]
    params = SamplingParams(max_new_tokens=12, temperature=0.7, top_p=0.95)
    gens = tiny_policy.generate([GenerationRequest(p, params) for p in prompts])  # left-padded batch
    for prompt, g in zip(prompts, gens):
        ids = torch.tensor([prompt + g.token_ids])
        with torch.no_grad():
            logits = tiny_policy.model(ids).logits[0, len(prompt) - 1 : -1].float() / 0.7
        logp = torch.log_softmax(logits, -1)
        ref = logp.gather(1, torch.tensor(g.token_ids)[:, None]).squeeze(1)
        assert torch.allclose(ref, torch.tensor(g.logprobs), atol=1e-4)
        assert torch.allclose(-(logp.exp() * logp).sum(-1), torch.tensor(g.entropies), atol=1e-3)


def test_greedy_batch_equals_single(tiny_policy, tokenizer):
    params = SamplingParams(max_new_tokens=10, temperature=0.0)
    a, b = tokenizer.encode("short"), tokenizer.encode("a much longer prompt than the other one")
    batched = tiny_policy.generate([GenerationRequest(a, params), GenerationRequest(b, params)])
    single = [tiny_policy.generate([GenerationRequest(p, params)])[0] for p in (a, b)]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]


def test_stop_string_ends_generation_inclusively(tokenizer):
    from agentgym.policies.base import cut_at_stop

    ids = tokenizer.encode("print(1)</python> and more text", add_special_tokens=False)
    n, finish, stop = cut_at_stop(tokenizer, ids, ("</python>",), tokenizer.eos_token_id)
    assert (finish, stop) == ("stop", "</python>")
    assert tokenizer.decode(ids[:n]).endswith("</python>")
    n, finish, _ = cut_at_stop(tokenizer, ids + [tokenizer.eos_token_id], (), tokenizer.eos_token_id)
    assert finish == "eos" and n == len(ids) + 1


def test_missing_model_path_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model("/no/such/model/dir")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model("./missing.gguf")


@pytest.fixture
def policy_server(tiny_policy):
    """A real agentgym OpenAI-compatible server (uvicorn) over the tiny model, on loopback."""
    pytest.importorskip("uvicorn")
    from agentgym.policies.server import create_app

    with serving_in_thread(create_app(tiny_policy)) as url:
        yield url


def test_openai_client_is_token_exact_against_real_server(policy_server, tiny_policy, tokenizer):
    client = OpenAICompatPolicy(policy_server, tokenizer=tokenizer)
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    prompts = [tokenizer.encode("hello"), tokenizer.encode("two words")]
    remote = client.generate([GenerationRequest(p, params) for p in prompts])
    local = tiny_policy.generate([GenerationRequest(p, params) for p in prompts])
    for r, loc in zip(remote, local):
        assert r.token_exact and r.token_ids == loc.token_ids
        assert r.logprobs == pytest.approx(loc.logprobs, abs=1e-5)
        assert r.entropies == pytest.approx(loc.entropies, abs=1e-4)
    client.close()


def test_server_down_is_reported_after_retries(tokenizer):
    client = OpenAICompatPolicy(f"http://127.0.0.1:{free_port()}", tokenizer=tokenizer, max_attempts=2)
    with pytest.raises(PolicyServerError, match="unreachable"):
        client.generate([GenerationRequest([1, 2, 3])])


class _Handler(BaseHTTPRequestHandler):
    mode = "garbage"
    hits = 0

    def do_POST(self):  # noqa: N802 (http.server naming)
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "slow":
            time.sleep(3)
        if self.mode == "flaky" and type(self).hits == 1:
            self.send_response(503)
            self.end_headers()
            return
        body = {
            "garbage": b"<html>definitely not json",
            "slow": b'{"choices": []}',
            "wrong-shape": b'{"choices": [{"index": 0}]}',
            "raw": b'{"choices": [{"index": 0, "text": "hi", "finish_reason": "length", "logprobs": '
                   b'{"tokens": ["token_id:5"], "token_logprobs": [-0.1], '
                   b'"top_logprobs": [{"token_id:5": -0.1, "token_id:6": -2.5}]}}]}',
            "flaky": b'{"choices": [{"index": 0, "text": "hi", "finish_reason": "length", "logprobs": '
                     b'{"tokens": ["token_id:5", "token_id:6"], "token_logprobs": [-0.1, -0.2]}}]}',
        }[self.mode]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def misbehaving_server():
    servers = []

    def start(mode):
        handler = type("H", (_Handler,), {"mode": mode, "hits": 0})
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}", handler

    yield start
    for s in servers:
        s.shutdown()


@pytest.mark.parametrize("mode, message", [("garbage", "invalid completion"), ("wrong-shape", "invalid completion")])
def test_garbage_answers_are_reported(misbehaving_server, tokenizer, mode, message):
    url, _ = misbehaving_server(mode)
    with pytest.raises(PolicyServerError, match=message):
        OpenAICompatPolicy(url, model="m", tokenizer=tokenizer).generate([GenerationRequest([1, 2])])


def test_slow_server_times_out(misbehaving_server, tokenizer):
    url, _ = misbehaving_server("slow")
    client = OpenAICompatPolicy(url, model="m", tokenizer=tokenizer, timeout_s=0.5, max_attempts=1)
    with pytest.raises(PolicyServerError, match="did not answer within 0.5 s"):
        client.generate([GenerationRequest([1, 2])])


def test_transient_503_is_retried(misbehaving_server, tokenizer):
    url, handler = misbehaving_server("flaky")
    (gen,) = OpenAICompatPolicy(url, model="m", tokenizer=tokenizer).generate([GenerationRequest([1, 2])])
    assert handler.hits == 2 and gen.token_ids == [5, 6] and gen.token_exact


def test_raw_logprobs_at_another_temperature_are_refused(misbehaving_server, tokenizer):
    """A server whose log-probs ignore temperature (vLLM's default) is probed and refused at T=0.7; at T=1
    raw and scaled log-probs agree, and its top-k entropies are labelled as an estimate."""
    url, _ = misbehaving_server("raw")
    policy = OpenAICompatPolicy(url + "/v1", model="m", tokenizer=tokenizer)
    with pytest.raises(PolicyServerError, match="returns raw log-probs .*--logprobs-mode processed_logprobs"):
        policy.generate([GenerationRequest([1, 2], SamplingParams(max_new_tokens=1, temperature=0.7))])
    (gen,) = policy.generate([GenerationRequest([1, 2], SamplingParams(max_new_tokens=1, temperature=1.0))])
    assert gen.meta["entropy_estimate"] == "top-10" and gen.entropies[0] > 0
