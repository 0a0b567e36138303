"""vLLM backends: the in-process `VLLMPolicy` and a real vLLM OpenAI server used through `openai:`.

Both run the tiny random model (2 heads of 32: vLLM's CPU attention needs head sizes >= 32) and are checked
against the HF backend on the same weights. Skipped with the reason where vllm is not importable (CI).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from agentgym.policies import make_policy
from agentgym.policies.base import GenerationRequest, SamplingParams

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (scripts/setup-vllm.sh installs it)")
T = 0.7
TEXT = ("The agent reads the task, calls the Python tool, reads the observation and answers. " * 8).strip()


def test_vllm_spec_errors_without_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError, as where it is absent
    with pytest.raises(ValueError, match="vllm is not importable.*setup-vllm.sh"):
        make_policy("vllm:tiny")
    with pytest.raises(ValueError, match="--model is for openai: policies"):
        make_policy("vllm:tiny", model="x")


@pytest.fixture(scope="module")
def engine():
    from agentgym.policies.vllm_engine import VLLMPolicy, vllm_missing_reason

    reason = vllm_missing_reason()
    if reason:
        pytest.skip(reason)
    policy = make_policy("vllm:tiny", kv_cache_memory_bytes=256 << 20)
    assert isinstance(policy, VLLMPolicy) and policy.prefix_caching
    yield policy
    policy.close()


@pytest.fixture(scope="module")
def hf_twin():
    """The HF backend on the very weights the vLLM engine loaded."""
    from transformers import AutoModelForCausalLM

    from agentgym.policies.hf import HFPolicy
    from agentgym.policies.models import load_tokenizer, tiny_model_dir

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir()))
    model.eval()
    return HFPolicy(model, load_tokenizer("tiny"))


def exact_entropies(hf, context: list[int], target: list[int], temperature: float) -> list[float]:
    import torch

    ids = torch.tensor([context + target])
    with torch.no_grad():
        logits = hf.model(input_ids=ids).logits[0, len(context) - 1: len(context) + len(target) - 1]
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return (-(logp.exp() * logp).sum(-1)).tolist()


def close(a: list[float], b: list[float], tol: float = 1e-3) -> bool:
    return len(a) == len(b) and max((abs(x - y) for x, y in zip(a, b)), default=0.0) <= tol


@needs_vllm
@pytest.mark.slow
def test_sampled_logprobs_and_entropies_match_hf_at_t07_with_prefix_caching(engine, hf_twin, tokenizer):
    prompt = tokenizer.encode(TEXT)
    request = GenerationRequest(prompt, SamplingParams(max_new_tokens=12, temperature=T))
    first = engine.generate([request] * 3)
    again = engine.generate([request])[0]
    assert again.meta["cached_tokens"] > 0  # the shared prompt came from the prefix cache
    for gen in first + [again]:
        assert gen.token_exact and len(gen.token_ids) == len(gen.logprobs) == len(gen.entropies) > 0
        assert "entropy_estimate" not in gen.meta  # exact entropies, not a top-k estimate
        hf_logprobs = hf_twin.score([prompt], [gen.token_ids], temperature=T)[0]
        assert close(gen.logprobs, hf_logprobs), (gen.logprobs, hf_logprobs)
        assert close(gen.entropies, exact_entropies(hf_twin, prompt, gen.token_ids, T))
    # teacher forcing through vLLM's prompt log-probs, at T and at 1: the same numbers as HF's
    for temperature in (T, 1.0):
        ours = engine.score([prompt, prompt[:5]], [first[0].token_ids, [7, 8, 9]], temperature=temperature)
        theirs = hf_twin.score([prompt, prompt[:5]], [first[0].token_ids, [7, 8, 9]], temperature=temperature)
        assert all(close(a, b) for a, b in zip(ours, theirs))
    with pytest.raises(ValueError, match="not a token id"):
        engine.score([prompt], [[10**9]])


@needs_vllm
@pytest.mark.slow
def test_weight_sync_changes_the_next_generation(engine, hf_twin, tokenizer):
    from agentgym.policies.hf import HFPolicy
    from agentgym.policies.models import tiny_random_model

    prompt = tokenizer.encode(TEXT)
    greedy = GenerationRequest(prompt, SamplingParams(max_new_tokens=10, temperature=0.0))
    before = engine.generate([greedy])[0]
    other = tiny_random_model(seed=1, num_heads=2).eval()
    engine.load_weights(other.named_parameters(), version=1)
    after = engine.generate([greedy])[0]
    assert engine.version == 1
    assert after.meta["cached_tokens"] == 0  # the prefix cache was dropped with the old weights
    # the random models' greedy tokens may coincide (a repeated '.'), their probabilities do not
    assert not close(after.logprobs, before.logprobs, tol=1e-2)
    # every weight arrived: the engine now scores as the HF model with the new weights does
    assert close(after.logprobs, HFPolicy(other, tokenizer).score([prompt], [after.token_ids])[0])
    engine.load_weights(dict(hf_twin.model.named_parameters()), version=2)
    restored = engine.generate([greedy])[0]
    assert close(restored.logprobs, hf_twin.score([prompt], [restored.token_ids])[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_vllm
@pytest.mark.slow
def test_vllm_openai_server_through_openai_policy_with_v1_and_no_model_name(hf_twin, tokenizer):
    """A real vLLM OpenAI server on loopback (`python -m vllm.entrypoints.openai.api_server`, what `vllm serve`
    runs), reached with the conventional `/v1` base URL and no model name."""
    from agentgym.policies.models import tiny_model_dir

    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir()),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--seed", "0",
           "--logprobs-mode", "processed_logprobs", "--kv-cache-memory-bytes", str(256 << 20)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"})
    try:
        deadline = time.monotonic() + 900  # engine start-up on a loaded 2-core machine takes minutes
        while True:
            assert server.poll() is None, f"vllm server exited: {server.stderr.read()[-2000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "vllm server did not start within 900 s"
            time.sleep(2)
        policy = make_policy(f"openai:http://127.0.0.1:{port}/v1")
        assert policy.model == str(tiny_model_dir())  # read from /v1/models
        prompt = tokenizer.encode(TEXT)
        gens = policy.generate([GenerationRequest(prompt, SamplingParams(max_new_tokens=8, temperature=T))] * 2)
        for gen in gens:
            assert gen.token_exact and len(gen.token_ids) == len(gen.logprobs) > 0
            assert gen.meta["entropy_estimate"] == "top-10"  # a server gives top-k only: labelled
            assert close(gen.logprobs, hf_twin.score([prompt], [gen.token_ids], temperature=T)[0])
        assert close(policy.score([prompt], [gens[0].token_ids])[0],
                     hf_twin.score([prompt], [gens[0].token_ids])[0])
        policy.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
