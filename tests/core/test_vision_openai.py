"""A vision-language model behind an OpenAI-compatible server: `agentgym serve tiny-vlm` as a real process on
loopback; agentgym's `openai:` policy sends screenshots as image_url parts (data: URLs) on the chat route and
checks the server fed the model exactly the stored prompt ids, image tokens included."""

from __future__ import annotations

import base64
import io

import httpx
import pytest

from agentgym.launch import serving_agentgym
from agentgym.env import EnvLimits
from agentgym.images import context_images
from agentgym.policies.base import GenerationRequest, SamplingParams
from agentgym.policies.openai_compat import OpenAICompatPolicy
from agentgym.policies.server_api import ChatMessage
from agentgym.policies.server_errors import OpenAIError
from agentgym.registry import make
from agentgym.rendering import ChatRenderer, ImageInputError
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.trajectory import Observation

PIL = pytest.importorskip("PIL.Image")
PHONE = "agentgym/AndroidScreenshots-v0"


def png(color) -> str:
    buf = io.BytesIO()
    PIL.new("RGB", (90, 120), color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def served():
    with serving_agentgym("serve", "tiny-vlm", timeout_s=180) as url:
        yield url


@pytest.mark.slow(ci=True)
def test_openai_vision_rollout_sends_images_and_stays_token_exact(served):
    policy = OpenAICompatPolicy(served, images="vision", processor="tiny-vlm")
    limits = EnvLimits(max_turns=2, max_tokens_per_turn=5, max_tokens_per_episode=32)
    engine = RolloutEngine(policy, lambda: make(PHONE), env_id=PHONE, limits=limits,
                           config=RolloutConfig(group_size=2, temperature=1.0))
    (tree,) = engine.run([1])  # the engine asserts per turn: stored context == what the server fed the model
    image_id = policy.processor.image_token_id
    assert len(tree.nodes) >= 3 and not tree.meta.get("failed_paths")
    first = tree.nodes[tree.roots()[0]]
    assert not first.info.get("prompt_from_server")  # turn 1: the server rendered exactly our prompt ids
    for node in tree.nodes:
        n_images = len(context_images(tree, node.id))
        assert n_images >= 1 and tree.context_ids(node.id).count(image_id) == n_images * policy.processor.image_seq_len
        if node.info.get("prompt_from_server"):  # re-tokenised earlier turns: the server's ids are the context
            assert node.rebuild_context and node.prefix_ids == tree.context_ids(node.id)


@pytest.mark.slow(ci=True)
def test_a_server_rendering_other_image_tokens_is_reported_and_bad_images_refused(served):
    from agentgym.policies.hf_vision import tiny_vlm_processor

    policy = OpenAICompatPolicy(served, images="vision", processor=tiny_vlm_processor(image_size=64))  # 4 tokens/image
    renderer = ChatRenderer.for_policy(policy)
    obs = Observation(text="screen", images=[png((10, 20, 30))])
    request = GenerationRequest(renderer.initial_prompt_ids(None, obs), SamplingParams(max_new_tokens=2),
                                images=obs.images, messages=[renderer.chat_message(obs)])
    (gen,) = policy.generate([request])  # 4 image tokens here, 1 on the server: its ids are reported
    assert len(gen.meta["prompt_ids"]) == len(request.prompt_ids) - 3 and gen.token_exact
    bad = {"model": "tiny-vlm", "max_tokens": 2,
           "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]}
    answer = httpx.post(f"{served}/v1/chat/completions", json=bad, timeout=60)
    assert answer.status_code == 400 and "data:image" in answer.text
    bad["messages"][0]["content"][0]["image_url"]["url"] = "data:image/png;base64," + base64.b64encode(b"no").decode()
    answer = httpx.post(f"{served}/v1/chat/completions", json=bad, timeout=60)
    assert answer.status_code == 400 and "not a PNG" in answer.text


def test_text_only_policies_and_servers_refuse_images_in_one_line():
    from agentgym.policies.server import chat_inputs

    message = ChatMessage(role="user", content=[{"type": "text", "text": "hi"},
                                                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])
    with pytest.raises(OpenAIError, match="takes no images"):
        chat_inputs([message], vision=False, model_name="tiny")
    text_only = OpenAICompatPolicy("http://127.0.0.1:9", tokenizer="tiny")  # no request is made
    with pytest.raises(ImageInputError, match="text-only"):
        ChatRenderer.for_policy(text_only).observation_ids(Observation(text="x", images=[png((0, 0, 0))]), True)
    with pytest.raises(ValueError, match="needs processor="):
        OpenAICompatPolicy("http://127.0.0.1:9", images="vision")
