"""Training through a sampler server with weight sync: a real `agentgym serve tiny --token` process on
loopback takes the trainer's weights after each step, so the sampler-trainer mismatch stays near zero (and
does not without sync); bad samplers and bad weight payloads fail clearly and change nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
import torch

import agentgym
from agentgym.launch import free_port, serving_agentgym, serving_in_thread
from agentgym.config import ConfigError, load_config
from agentgym.policies.openai_compat import OpenAICompatPolicy
from agentgym.policies.weights import encode
from agentgym.trainers.rl import RLRun
from agentgym.trainers.weight_sync import named_weights

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")
TOKEN = "sync-test-token"


@pytest.fixture(scope="module")
def server():
    """`agentgym serve tiny --token` in its own process; yields its /v1 URL."""
    with serving_agentgym("serve", "tiny", token=TOKEN, timeout_s=300) as url:  # 300 s: a loaded 2-core machine
        yield f"{url}/v1"


def cfg(run_dir, sampler, steps=2, **policy):
    return load_config(**{
        "run_dir": str(run_dir), "seed": 3, "env": {"id": "agentgym/TestLetterE-v0"},
        "policy": {"model": "tiny", "sampler": sampler, **policy},
        "rollout": {"group_size": 4, "temperature": 1.0},
        "trainer": {"steps": steps, "tasks_per_step": 2, "lr": 1e-2},
        "logging": {"tensorboard": False, "progress": False}})


def served_version(url: str) -> int:
    return httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {TOKEN}"}).json()["data"][0]["policy_version"]


@pytest.mark.slow(ci=True)
def test_two_steps_through_server_sync_weights_and_control_drifts(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_SERVE_TOKEN", TOKEN)
    # Control first: the server starts on the trainer's initial weights (pushed once by hand), then never
    # hears from the trainer again: after the first update the sampler and the trainer differ.
    control = RLRun(cfg(tmp_path / "control", f"openai:{server}", weight_sync=False), quiet=True)
    client = OpenAICompatPolicy(server, tokenizer=control.session.tokenizer)
    client.load_weights(named_weights(control.session.model), 0)
    drift = control.train()
    assert served_version(server) == 0  # nothing pushed during the run

    synced_run = RLRun(cfg(tmp_path / "synced", f"openai:{server}"), quiet=True)
    synced = synced_run.train()
    assert served_version(server) == 2  # initial push as version 0, then one push after each of the 2 steps
    near_zero = 1e-3
    for m in synced:
        assert m["trained_tokens"] > 0
        assert m["mismatch_abs_logp"] < near_zero, m
        assert abs(m["tis_weight"] - 1) < 1e-2
    assert drift[0]["mismatch_abs_logp"] < near_zero  # same weights before any update
    assert drift[1]["mismatch_abs_logp"] > 20 * near_zero, drift[1]  # the sampler lags one update behind
    trees = synced_run.store.read_all()
    assert {(t.step, n.policy_version) for t in trees for n in t.nodes if n.action_ids} == {(0, 0), (1, 1)}


def test_unreachable_sampler_fails_before_training(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ConfigError, match=r"policy.sampler=openai:.*unreachable"):
        RLRun(cfg(tmp_path, f"openai:{url}"), quiet=True)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_wrong_token_fails_before_training(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_SERVE_TOKEN", "not-the-token")
    with pytest.raises(ConfigError, match="refused the bearer token"):
        RLRun(cfg(tmp_path, f"openai:{server}"), quiet=True)


def test_sampler_without_weight_endpoint_needs_opt_in(tiny_policy, tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTGYM_SERVE_TOKEN", raising=False)
    from agentgym.policies.server import create_app

    with serving_in_thread(create_app(tiny_policy, "other", token=None)) as root:  # no token: pushes are off
        url = f"{root}/v1"
        with pytest.raises(ConfigError, match="cannot take weights.*policy.weight_sync=false"):
            RLRun(cfg(tmp_path / "a", f"openai:{url}"), quiet=True)
        run = RLRun(cfg(tmp_path / "b", f"openai:{url}", steps=0, weight_sync=False), quiet=True)  # opted in
        assert run.sampler is not None and run.sampler.version == 0
        run.close()


def test_sampler_with_another_vocabulary_is_refused(tokenizer, tmp_path, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentgym.policies.hf import HFPolicy

    other = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer) + 64, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                         tie_word_embeddings=True)).eval()
    monkeypatch.setenv("AGENTGYM_SERVE_TOKEN", TOKEN)
    from agentgym.policies.server import create_app

    with serving_in_thread(create_app(HFPolicy(other, tokenizer), "other", token=TOKEN)) as root:
        url = f"{root}/v1"
        with pytest.raises(ConfigError, match=f"vocabulary of {len(tokenizer) + 64} tokens, the trained model"):
            RLRun(cfg(tmp_path, f"openai:{url}"), quiet=True)
        assert not (tmp_path / "metrics.jsonl").exists()


def test_bad_weight_payloads_get_400_and_the_old_weights_keep_serving(server, tokenizer):
    from agentgym.policies.models import tiny_random_model

    auth = {"Authorization": f"Bearer {TOKEN}"}
    probe = {"model": "tiny", "prompt": [[1, 2, 3, 4]], "max_tokens": 6, "temperature": 0, "logprobs": 1}
    before = httpx.post(f"{server}/completions", json=probe, headers=auth, timeout=60).json()["choices"][0]
    version = served_version(server)
    good = dict(named_weights(tiny_random_model(seed=1)))
    wrong_shape = {**good, "model.norm.weight": torch.ones(7)}
    missing = {k: v for k, v in good.items() if k != "model.norm.weight"}
    extra = {**good, "model.extra.weight": torch.ones(2)}
    nan = {**good, "model.norm.weight": torch.full_like(good["model.norm.weight"], float("nan"))}
    cases = {"wrong shape": (encode(wrong_shape.items()), "shape [7]"),
             "missing": (encode(missing.items()), "missing"),
             "extra": (encode(extra.items()), "does not have"),
             "nan": (encode(nan.items()), "NaN"),
             "not safetensors": (b"\x00" * 64, "not a safetensors file")}
    for name, (body, says) in cases.items():
        r = httpx.post(f"{server}/weights", params={"version": 99}, content=body, headers=auth, timeout=60)
        assert r.status_code == 400, name
        assert says in r.json()["error"]["message"], (name, r.text)
    r = httpx.post(f"{server}/weights", params={"version": "-1"}, content=encode(good.items()), headers=auth)
    assert r.status_code == 400 and "version" in r.text
    r = httpx.post(f"{server}/weights", params={"version": 99}, content=encode(good.items()))
    assert r.status_code == 401  # the server's token guards pushes like every other route
    assert served_version(server) == version
    after = httpx.post(f"{server}/completions", json=probe, headers=auth, timeout=60).json()["choices"][0]
    assert after["logprobs"] == before["logprobs"]  # the old weights still serve


def test_lora_weights_are_merged_before_the_push(tiny_model):
    import copy

    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # a trained adapter (B starts at zero)
    pushed = dict(named_weights(model))
    expected = dict(copy.deepcopy(model).merge_and_unload().named_parameters())
    assert set(pushed) == set(expected) == set(dict(tiny_model.named_parameters()))
    for k in expected:
        torch.testing.assert_close(pushed[k], expected[k].detach())
    base = dict(tiny_model.named_parameters())
    assert not torch.equal(pushed["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
