"""Per-path KV cache reuse in the HF backend: same samples as re-encoding, each context token encoded once."""

import pytest
import torch

from agentgym.env import EnvLimits, TextEnv
from agentgym.policies.hf import HFPolicy
from agentgym.policies.kv_cache import BLOCK, PrefixKVCache
from agentgym.policies.models import set_torch_threads
from agentgym.rollout import RolloutConfig, RolloutEngine


class EchoEnv(TextEnv):
    """Answers every action with an observation whose length depends on the seed and the turn, so batched
    paths have different cached and new lengths (the padded layouts of `kv_cache.batch_inputs`)."""

    def _reset(self, options):
        n = int(self.np_random.integers(1, 30))
        return "Count the apples. " * n, {}

    def _step(self, action):
        return "Noted, go on. " * (1 + (self.turn + len(action)) % 4), 0.0, False, {}  # self.turn: TextEnv's count


def rollout(policy, seeds, turns, temperature, group_size=2):
    engine = RolloutEngine(policy, lambda: EchoEnv(limits=EnvLimits(max_turns=turns, max_tokens_per_turn=5,
                                                                    max_tokens_per_episode=10_000)),
                           env_id="test/Echo", config=RolloutConfig(group_size=group_size, temperature=temperature,
                                                                    deterministic=True))
    torch.manual_seed(1234)  # generate samples with torch's global generator
    return engine.run(seeds)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_kv_reuse_samples_the_same_tokens(tiny_model, tokenizer, temperature):
    plain = HFPolicy(tiny_model, tokenizer, kv_cache_mb=0)
    cached = HFPolicy(tiny_model, tokenizer)
    a = rollout(plain, range(3), turns=6, temperature=temperature)
    b = rollout(cached, range(3), turns=6, temperature=temperature)
    assert cached.kv_cache is not None and cached.prompt_tokens_encoded < plain.prompt_tokens_encoded / 2
    for ta, tb in zip(a, b):
        assert len(ta.nodes) == len(tb.nodes) == 12
        for na, nb in zip(ta.nodes, tb.nodes):
            assert na.action_ids == nb.action_ids and ta.context_ids(na.id) == tb.context_ids(nb.id)
            # Same tokens; log-probs agree to float32 rounding (a cached prefix is not bit-identical to a re-encode)
            assert max(abs(x - y) for x, y in zip(na.logprobs, nb.logprobs)) <= 1e-5
            assert max(abs(x - y) for x, y in zip(na.entropies, nb.entropies)) <= 1e-4


def test_thirty_turn_episode_encodes_each_context_token_once(tiny_model, tokenizer):
    fed = []
    hook = tiny_model.register_forward_pre_hook(lambda m, args, kw: fed.append(kw["input_ids"].numel()), with_kwargs=True)
    try:
        policy = HFPolicy(tiny_model, tokenizer)
        (tree,) = rollout(policy, [7], turns=30, temperature=1.0, group_size=1)
        with_reuse = sum(fed)
        fed.clear()
        (again,) = rollout(HFPolicy(tiny_model, tokenizer, kv_cache_mb=0), [7], turns=30, temperature=1.0, group_size=1)
        without = sum(fed)
    finally:
        hook.remove()
    (leaf,) = tree.leaves()
    assert len(tree.path(leaf)) == 30
    sequence = tree.context_ids(leaf) + tree.nodes[leaf].action_ids
    # every token of the episode went through the model exactly once, except the last sampled one (never fed)
    assert with_reuse == len(sequence) - 1
    assert without > 5 * with_reuse  # re-encoding: the sum of all 30 contexts


def entry_layers(n, value=0.0):
    return [(torch.full((2, n, 4), value), torch.full((2, n, 4), value))]


def test_prefix_cache_matches_only_equal_prefixes_and_shares_branches():
    cache = PrefixKVCache(max_tokens=10_000)
    trunk = list(range(100, 100 + 3 * BLOCK))
    cache.add(trunk, entry_layers(len(trunk)))
    # a branch forked mid-way reuses the common prefix only; a different token at position 0 reuses nothing
    n, entry = cache.match(trunk[:20] + [7, 8, 9])
    assert n == 20 and entry.tokens == trunk
    assert cache.match([1] + trunk[1:]) == (0, None)
    # the last prompt token is always fed (its logits start the generation)
    assert cache.match(trunk)[0] == len(trunk) - 1
    # an extension replaces the entry it extends; a sibling branch is kept
    cache.add(trunk + [1, 2], entry_layers(len(trunk) + 2))
    cache.add(trunk[:20] + list(range(BLOCK)), entry_layers(20 + BLOCK))
    assert sorted(len(e.tokens) for e in cache.entries.values()) == [20 + BLOCK, len(trunk) + 2]
    cache.release(trunk[:BLOCK])
    assert not cache.entries and cache.tokens == 0 and not cache.by_hash


def test_prefix_cache_evicts_least_recently_used_within_budget():
    cache = PrefixKVCache(max_tokens=4 * BLOCK)
    a, b, c = ([k] * (2 * BLOCK) for k in (1, 2, 3))
    cache.add(a, entry_layers(len(a)))
    cache.add(b, entry_layers(len(b)))
    cache.match(a + [0])  # a was used last: b goes first
    cache.add(c, entry_layers(len(c)))
    assert [e.tokens[0] for e in cache.entries.values()] == [1, 3] and cache.tokens == 4 * BLOCK
    cache.add([5] * (5 * BLOCK), entry_layers(5 * BLOCK))  # larger than the budget: not kept
    assert cache.tokens == 4 * BLOCK


def test_weight_update_clears_the_cache(tiny_model, tokenizer):
    policy = HFPolicy(tiny_model, tokenizer)
    rollout(policy, [0], turns=3, temperature=0.0, group_size=1)
    policy.kv_cache.add(list(range(2 * BLOCK)), entry_layers(2 * BLOCK))
    assert policy.kv_cache.entries
    policy.bump_version()
    assert not policy.kv_cache.entries


def test_group_end_releases_its_entries(tiny_model, tokenizer):
    policy = HFPolicy(tiny_model, tokenizer)
    rollout(policy, range(2), turns=3, temperature=0.0)
    assert not policy.kv_cache.entries and policy.kv_cache.tokens == 0


def test_torch_threads_setting(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(1) == 1
        monkeypatch.setenv("AGENTGYM_TORCH_THREADS", "1")
        assert set_torch_threads() == 1
        monkeypatch.setenv("AGENTGYM_TORCH_THREADS", "many")
        with pytest.raises(ValueError, match="AGENTGYM_TORCH_THREADS must be an integer"):
            set_torch_threads()
        with pytest.raises(ValueError, match=">= 0"):
            set_torch_threads(-2)
    finally:
        torch.set_num_threads(before)


def test_models_whose_layers_drop_their_past_reencode(tokenizer, caplog):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                             sliding_window=8)).eval()
    policy = HFPolicy(model, tokenizer)
    assert policy.kv_cache is None and "KV reuse across turns is off" in caplog.text
    (tree,) = rollout(policy, [0], turns=2, temperature=0.0, group_size=1)
    assert len(tree.nodes) == 2


@pytest.mark.parametrize("change", ["load_state_dict", "load_weights_same_version"])
def test_weights_changed_in_place_never_meet_stale_keys_values(tiny_model, tokenizer, change):
    """A user reloading a state dict (no bump_version) or a weight push repeating a version number: the next
    generation re-encodes under the new weights and equals a cache-less policy's."""
    import copy

    from agentgym.policies.base import GenerationRequest, SamplingParams

    model = copy.deepcopy(tiny_model)
    policy = HFPolicy(model, tokenizer)
    prompt = tokenizer.encode("Count the apples. " * 12)
    params = SamplingParams(max_new_tokens=6, temperature=0.0)
    first = policy.generate([GenerationRequest(prompt, params)])[0]
    assert policy.kv_cache.entries  # the prompt and its continuation are cached
    with torch.no_grad():
        new = {k: v + 0.05 * torch.randn_like(v) for k, v in model.named_parameters()}
    if change == "load_state_dict":
        model.load_state_dict(new, strict=False)
    else:
        policy.load_weights(new.items(), version=policy.version)
    longer = prompt + list(first.token_ids) + tokenizer.encode(" More apples.")
    reused = policy.kv_cache.reused_tokens
    got = policy.generate([GenerationRequest(longer, params)])[0]
    assert policy.kv_cache.reused_tokens == reused  # nothing computed under the old weights was reused
    want = HFPolicy(model, tokenizer, kv_cache_mb=0).generate([GenerationRequest(longer, params)])[0]
    assert got.token_ids == want.token_ids
    assert max(abs(a - b) for a, b in zip(got.logprobs, want.logprobs)) < 1e-5
