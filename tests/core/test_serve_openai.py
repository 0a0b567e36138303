"""`agentgym serve tiny` as a real process on loopback, driven by the official `openai` client (and httpx
for edge cases), and agentgym's own `openai:` policy against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the official openai client is in the dev extra")

from agentgym.launch import serving_agentgym  # noqa: E402
from agentgym.policies.base import GenerationRequest, SamplingParams  # noqa: E402
from agentgym.policies.openai_compat import OpenAICompatPolicy, PolicyServerError  # noqa: E402

AGENTGYM = str(Path(sys.executable).with_name("agentgym"))


@pytest.fixture(scope="module")
def served():
    """`agentgym serve tiny` in its own process; yields its root URL (no /v1)."""
    with serving_agentgym("serve", "tiny", timeout_s=120) as url:
        yield url


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=f"{served}/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_the_model_with_its_limits(client):
    (m,) = client.models.list().data
    assert m.id == "tiny" and m.model_extra["max_model_len"] == 4096 and m.model_extra["vocab_size"] == 49152


def test_completion_usage_n_and_seed(client, tokenizer):
    prompt = tokenizer.encode("The weather today is", add_special_tokens=False)
    r = client.completions.create(model="tiny", prompt=prompt, max_tokens=5, temperature=1.0, n=3, seed=7)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.prompt_tokens == len(prompt) and r.usage.completion_tokens == 15 and r.usage.total_tokens == len(prompt) + 15
    again = client.completions.create(model="tiny", prompt=prompt, max_tokens=5, temperature=1.0, n=3, seed=7)
    assert [c.text for c in again.choices] == [c.text for c in r.choices]
    other = client.completions.create(model="tiny", prompt=prompt, max_tokens=5, temperature=1.0, n=3, seed=8)
    assert [c.text for c in other.choices] != [c.text for c in r.choices]


def test_top_logprobs_are_the_most_likely_alternatives(client, tokenizer):
    r = client.completions.create(model="tiny", prompt="Hello", max_tokens=4, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.top_logprobs) == len(lp.tokens) == 4
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and list(top.values()) == sorted(top.values(), reverse=True)
        assert top[token] == pytest.approx(value, abs=1e-5)  # greedy: the sampled token is the top one


def test_stop_string_is_cut_from_text_but_not_from_tokens(client, tokenizer):
    greedy = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=12, temperature=1.0, seed=11, logprobs=0)
    text = greedy.choices[0].text
    ids = [int(t.split(":")[1]) for t in greedy.choices[0].logprobs.tokens]
    special = set(tokenizer.all_special_ids)
    k = next(k for k in range(2, 10) if not {ids[k], ids[k + 1]} & special
             and tokenizer.decode(ids[k:k + 2]).strip() and tokenizer.decode(ids[k:k + 2]) not in tokenizer.decode(ids[:k + 1]))
    stop = tokenizer.decode(ids[k:k + 2])
    r = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=12, temperature=1.0, seed=11, logprobs=0,
                                  stop=[stop])
    choice = r.choices[0]
    assert choice.finish_reason == "stop" and stop not in choice.text and text.startswith(choice.text)
    ids = [int(t.split(":")[1]) for t in choice.logprobs.tokens]
    assert stop in tokenizer.decode(ids)  # the sampled tokens, stop string included (token-exact)
    kept = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=12, temperature=1.0, seed=11,
                                     stop=[stop], extra_body={"include_stop_str_in_output": True})
    assert kept.choices[0].text.endswith(stop)


def test_special_tokens_are_not_in_text_unless_asked(served, tokenizer):
    eos = tokenizer.eos_token
    # a random model rarely samples EOS, so the rule is checked on echo (the prompt's text comes back too)
    body = {"prompt": tokenizer.encode(f"hi{eos}", add_special_tokens=False), "max_tokens": 1, "echo": True,
            "temperature": 0, "logprobs": 0}
    kept = httpx.post(f"{served}/v1/completions", json={**body, "skip_special_tokens": False}, timeout=60).json()
    assert eos in kept["choices"][0]["text"]
    dropped = httpx.post(f"{served}/v1/completions", json=body, timeout=60).json()
    assert eos not in dropped["choices"][0]["text"]
    r = httpx.post(f"{served}/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "temperature": 0,
        "stop": [], "logprobs": True})
    content = r.json()["choices"][0]["message"]["content"]
    assert "<|im_end|>" not in content and "<|im_start|>" not in content


def test_chat_completion_renders_the_chat_template(client, served, tokenizer):
    messages = [{"role": "user", "content": "What is 2+2?"}]
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=2)
    choice = r.choices[0]
    assert choice.message.role == "assistant" and len(choice.logprobs.content) == r.usage.completion_tokens
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected_prompt = tokenizer.encode(rendered, add_special_tokens=False)
    assert r.usage.prompt_tokens == len(expected_prompt)
    # the same tokens as a raw completion of the rendered prompt
    raw = client.completions.create(model="tiny", prompt=list(expected_prompt), max_tokens=6, temperature=0)
    assert raw.choices[0].text == choice.message.content
    assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)


@pytest.mark.parametrize("chat", [False, True])
def test_streamed_chunks_assemble_to_the_greedy_text(client, chat):
    kwargs = dict(model="tiny", max_tokens=10, temperature=0)
    if chat:
        messages = [{"role": "user", "content": "Tell me a story"}]
        whole = client.chat.completions.create(messages=messages, **kwargs).choices[0].message.content
        stream = client.chat.completions.create(messages=messages, stream=True,
                                                stream_options={"include_usage": True}, **kwargs)
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        whole = client.completions.create(prompt="Tell me a story", **kwargs).choices[0].text
        chunks = list(client.completions.create(prompt="Tell me a story", stream=True,
                                                stream_options={"include_usage": True}, **kwargs))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert len(chunks) > 3 and text == whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_stream_ends_with_done(served):
    with httpx.stream("POST", f"{served}/v1/completions", timeout=60,
                      json={"prompt": "hi", "max_tokens": 3, "stream": True}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    assert json.loads(lines[0][6:])["object"] == "text_completion"


@pytest.mark.parametrize("path, extra, field", [
    ("completions", {"best_of": 2}, "best_of"),
    ("completions", {"suffix": "x"}, "suffix"),
    ("completions", {"presence_penalty": 0.5}, "presence_penalty"),
    ("completions", {"logit_bias": {"5": 1.0}}, "logit_bias"),
    ("completions", {"echo": True, "stream": True}, "echo"),
    ("chat/completions", {"tools": [{"type": "function"}]}, "tools"),
    ("chat/completions", {"response_format": {"type": "json_object"}}, "response_format"),
    ("chat/completions", {"frequency_penalty": 1.0}, "frequency_penalty"),
])
def test_unsupported_fields_get_400_naming_them(served, path, extra, field):
    body = {"prompt": "hi"} if path == "completions" else {"messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(f"{served}/v1/{path}", json={**body, "max_tokens": 2, **extra}, timeout=60)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]["message"]


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_openai_policy_accepts_either_url_form_and_reads_the_model(served, tokenizer, suffix):
    policy = OpenAICompatPolicy(served + suffix, tokenizer=tokenizer)
    (gen,) = policy.generate([GenerationRequest(tokenizer.encode("hi", add_special_tokens=False),
                                                SamplingParams(max_new_tokens=3, temperature=0))])
    assert policy.model == "tiny" and len(gen.token_ids) == 3 and gen.token_exact
    policy.close()


@pytest.mark.parametrize("size", [151_665, 32_000])
def test_tokenizer_that_does_not_fit_the_served_vocabulary_is_refused(served, size):
    class Other:  # a tokenizer of another model: more, or far fewer, tokens than the served vocabulary
        eos_token_id = 0

        def __len__(self):
            return size

    policy = OpenAICompatPolicy(served + "/v1", tokenizer=Other())
    with pytest.raises(PolicyServerError, match=f"tokenizer mismatch: the tokenizer has {size} tokens"):
        policy.generate([GenerationRequest([1, 2], SamplingParams(max_new_tokens=2))])


def _run(policy: str, out: Path) -> list:
    from agentgym.store import read_trees

    r = subprocess.run([AGENTGYM, "run", "agentgym/Calculator-v0", "--policy", policy, "--episodes", "2",
                        "--temperature", "0", "--out", str(out), "--env-kwarg", "limits={max_turns: 2}"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-800:]
    return read_trees(out / "trajectories.jsonl")


@pytest.mark.slow
def test_run_through_openai_policy_against_serve_is_token_exact(served, tmp_path):
    """The engine asserts token-exactness on every turn; greedy actions equal the in-process model's."""
    remote = _run(f"openai:{served}/v1", tmp_path / "remote")
    local = _run("tiny", tmp_path / "local")
    assert remote and len(remote) == len(local)
    for a, b in zip(remote, local):
        assert [n.action_ids for n in a.nodes] == [n.action_ids for n in b.nodes]
        for x, y in zip(a.nodes, b.nodes):
            assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


def test_agenerate_sends_each_request_concurrently_and_matches_generate(served, tokenizer):
    import asyncio

    policy = OpenAICompatPolicy(served, tokenizer=tokenizer, max_concurrency=2)
    assert policy.prefers_batching is False
    requests = [GenerationRequest(tokenizer.encode(t, add_special_tokens=False),
                                  SamplingParams(max_new_tokens=4, temperature=0)) for t in ("a b", "c d e", "f")]
    together = asyncio.run(policy.agenerate(requests))
    assert [g.token_ids for g in together] == [g.token_ids for g in policy.generate(requests)]
    assert all("entropy_estimate" not in g.meta for g in together)  # agentgym serve reports exact entropies
    # at T=0.7 the server says its log-probs are temperature-scaled: accepted without a probe
    (gen,) = policy.generate([GenerationRequest(requests[0].prompt_ids, SamplingParams(max_new_tokens=2, temperature=0.7))])
    assert policy.server_logprobs == "processed" and len(gen.token_ids) == 2
    policy.close()


def test_run_with_a_tokenizer_of_another_vocabulary_fails_before_work(served, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from agentgym.cli import app
    from agentgym.policies import models

    class Bigger:
        eos_token_id = 0

        def __len__(self):
            return 151_665

    monkeypatch.setattr(models, "load_tokenizer", lambda name: Bigger())
    result = CliRunner().invoke(app, ["run", "agentgym/Calculator-v0", "--policy", f"openai:{served}/v1",
                                      "--tokenizer", "Qwen/Qwen2.5-0.5B", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "tokenizer mismatch" in result.output
    assert not (tmp_path / "r" / "trajectories.jsonl").exists()
