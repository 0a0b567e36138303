"""`Policy.score`: teacher-forced log-probs of given targets, batched, on the HF backend and over HTTP
(a real `agentgym serve` process and an in-process loopback server), compared with a direct forward pass."""

from __future__ import annotations


import httpx
import pytest
import torch

from agentgym.launch import serving_agentgym, serving_in_thread
from agentgym.policies.base import GenerationRequest, SamplingParams
from agentgym.policies.openai_compat import OpenAICompatPolicy, PolicyServerError
from agentgym.policies.scripted import ScriptedPolicy


def direct_logprobs(model, context: list[int], target: list[int], temperature: float = 1.0) -> list[float]:
    """One unpadded forward pass over context + target: the reference `score` must match."""
    ids = torch.tensor([context + target])
    with torch.no_grad():
        logits = model(ids).logits[0, len(context) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(target)[:, None]).squeeze(1).tolist()


@pytest.fixture
def pairs(tokenizer):
    """Contexts and targets of different lengths, one empty target, in no particular order."""
    enc = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    return ([enc("What is 2 + 2?"), enc("hi"), enc("A much longer context, with several clauses, and more words"), enc("x y")],
            [enc(" The answer is 4."), enc(" there"), enc(" ok"), []])


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_hf_score_equals_a_direct_forward_pass(tiny_policy, tiny_model, pairs, temperature):
    contexts, targets = pairs
    scored = tiny_policy.score(contexts, targets, temperature=temperature)
    assert [len(s) for s in scored] == [len(t) for t in targets]
    for c, t, s in zip(contexts, targets, scored):
        if t:
            assert s == pytest.approx(direct_logprobs(tiny_model, c, t, temperature), abs=1e-5)


def test_hf_score_splits_batches_without_changing_results(tiny_policy, pairs):
    contexts, targets = pairs
    whole = tiny_policy.score(contexts, targets)
    tiny_policy.max_score_logits = tiny_policy.model.config.vocab_size * 20  # at most 20 padded tokens a batch
    split = tiny_policy.score(contexts, targets)
    assert [len(s) for s in split] == [len(s) for s in whole]
    for a, b in zip(split, whole):
        assert a == pytest.approx(b, abs=1e-5)


def test_score_reproduces_sampling_logprobs(tiny_policy, tokenizer):
    """The sampler's log-probs at temperature T are the scorer's at T: the convention the trainer relies on."""
    prompt = tokenizer.encode("Count: one two", add_special_tokens=False)
    params = SamplingParams(max_new_tokens=10, temperature=0.8)
    gen = tiny_policy.generate([GenerationRequest(prompt, params)])[0]
    assert tiny_policy.score([prompt], [gen.token_ids], temperature=0.8)[0] == pytest.approx(gen.logprobs, abs=1e-4)


@pytest.mark.parametrize("contexts, targets, message", [
    ([[1, 2]], [[3], [4]], "1 contexts for 2 targets"),
    ([[]], [[3]], "context 0 is empty"),
    ([[1]], [[10**9]], "target 0 holds 1000000000"),
    ([[1, -4]], [[3]], "context 0 holds -4"),
    ([[1]], [["a"]], "target 0 holds 'a'"),
])
def test_hf_score_rejects_bad_input(tiny_policy, contexts, targets, message):
    with pytest.raises(ValueError, match=message):
        tiny_policy.score(contexts, targets)


def test_bad_temperature_and_unscorable_backend(tiny_policy, tokenizer):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        tiny_policy.score([[1]], [[2]], temperature=0)
    with pytest.raises(NotImplementedError, match="ScriptedPolicy cannot score"):
        ScriptedPolicy(lambda text: "x", tokenizer=tokenizer).score([[1]], [[2]])


@pytest.fixture
def loopback_server(tiny_policy):
    """The agentgym server app (uvicorn, in-process) over the tiny model on loopback."""
    pytest.importorskip("uvicorn")
    from agentgym.policies.server import create_app

    with serving_in_thread(create_app(tiny_policy)) as url:
        yield url


@pytest.mark.slow(ci=True)
def test_score_through_agentgym_serve_subprocess(tiny_model, tokenizer, pairs):
    """`agentgym serve tiny` in its own process (the same seeded tiny model) scores like a local forward pass."""
    pytest.importorskip("uvicorn")
    with serving_agentgym("serve", "tiny", timeout_s=120) as url:
        client = OpenAICompatPolicy(url, tokenizer=tokenizer)
        contexts, targets = pairs
        for temperature in (1.0, 0.7):
            remote = client.score(contexts, targets, temperature=temperature)
            for c, t, r in zip(contexts, targets, remote):
                assert r == (pytest.approx(direct_logprobs(tiny_model, c, t, temperature), abs=1e-3) if t else [])
        client.close()


def test_loopback_server_speaks_vllm_echo_and_prompt_logprobs(loopback_server, tiny_model, tokenizer):
    """The raw answer shapes vLLM gives: echoed tokens with None first, and the prompt_logprobs list."""
    prompt = tokenizer.encode("one two three", add_special_tokens=False)
    body = {"prompt": [prompt], "echo": True, "max_tokens": 0, "logprobs": 1, "prompt_logprobs": 0}
    choice = httpx.post(f"{loopback_server}/v1/completions", json=body, timeout=60).json()["choices"][0]
    expected = direct_logprobs(tiny_model, prompt[:1], prompt[1:])
    assert choice["logprobs"]["tokens"] == [f"token_id:{t}" for t in prompt]
    assert choice["logprobs"]["token_logprobs"][0] is None
    assert choice["logprobs"]["token_logprobs"][1:] == pytest.approx(expected, abs=1e-4)
    assert choice["prompt_logprobs"][0] is None
    assert [e[str(t)]["logprob"] for e, t in zip(choice["prompt_logprobs"][1:], prompt[1:])] == pytest.approx(expected, abs=1e-4)
    assert choice["text"] == tokenizer.decode(prompt)

    # echo with generation: the prompt, then the sampled tokens
    body.update(max_tokens=3, temperature=0.0)
    choice = httpx.post(f"{loopback_server}/v1/completions", json=body, timeout=60).json()["choices"][0]
    assert len(choice["logprobs"]["tokens"]) == len(prompt) + 3
    assert choice["logprobs"]["tokens"][: len(prompt)] == [f"token_id:{t}" for t in prompt]

    bad = httpx.post(f"{loopback_server}/v1/completions", json={"prompt": [prompt], "max_tokens": 0}, timeout=60)
    assert bad.status_code == 400 and "max_tokens=0 needs echo=true" in bad.text  # OpenAI-format client error


def test_client_refuses_a_temperature_the_server_does_not_confirm(loopback_server, tokenizer, monkeypatch):
    """vLLM computes prompt log-probs from raw logits; a score at T != 1 must not silently come back at 1."""
    client = OpenAICompatPolicy(loopback_server, tokenizer=tokenizer)
    real_post = client._post

    def like_vllm(body):  # strip the agentgym field, as vLLM's answer lacks it
        response = real_post(body)
        data = response.json()
        for c in data["choices"]:
            c.pop("prompt_logprobs_temperature")
        return httpx.Response(200, json=data, request=response.request)

    monkeypatch.setattr(client, "_post", like_vllm)
    assert len(client.score([[1, 2]], [[3, 4]])[0]) == 2  # temperature 1.0 needs no confirmation
    with pytest.raises(PolicyServerError, match="does not report scoring at temperature 0.5"):
        client.score([[1, 2]], [[3, 4]], temperature=0.5)
    client.close()


def test_server_rejects_unscorable_tokens_with_a_clear_error(loopback_server, tokenizer):
    client = OpenAICompatPolicy(loopback_server, tokenizer=tokenizer, max_attempts=1)
    response = httpx.post(f"{loopback_server}/v1/completions", timeout=60,
                          json={"prompt": [[1, 10**8]], "echo": True, "max_tokens": 0, "logprobs": 1})
    assert response.status_code == 400 and "outside the vocabulary" in response.text
    with pytest.raises(ValueError, match="context 0 is empty"):
        client.score([[]], [[5]])
    client.close()
