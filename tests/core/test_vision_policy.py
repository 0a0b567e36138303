"""Observation images into the model's input: a tiny random vision-language model (Idefics3, built offline)
rolls out on the simulated phone with screenshots, token-exact; a text-only policy refuses images with one
line, or renders them as text lines when the user opts in."""

import base64
import io

import pytest

from agentgym.env import EnvLimits
from agentgym.images import context_images
from agentgym.policies.base import GenerationRequest, SamplingParams
from agentgym.registry import make
from agentgym.rendering import ChatRenderer, ImageInputError
from agentgym.rollout import RolloutConfig, RolloutEngine, RolloutError
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Observation, trajectory_tokens

PIL = pytest.importorskip("PIL.Image")
PHONE = "agentgym/AndroidScreenshots-v0"
LIMITS = EnvLimits(max_turns=3, max_tokens_per_turn=6, max_tokens_per_episode=64)


@pytest.fixture(scope="module")
def vlm():
    from agentgym.policies.hf_vision import HFVisionPolicy, tiny_random_vlm

    model, processor = tiny_random_vlm(seed=0)
    return HFVisionPolicy(model, processor)


def png(color, size=(160, 210)) -> str:
    buf = io.BytesIO()
    PIL.new("RGB", size, color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def rollout(policy, tmp_path=None, group_size=2):
    engine = RolloutEngine(policy, lambda: make(PHONE), env_id=PHONE, limits=LIMITS,
                           config=RolloutConfig(group_size=group_size, temperature=1.0))
    return engine.run([3])


def test_vision_policy_rollout_is_token_exact_with_image_tokens_as_context(vlm, tmp_path):
    (tree,) = rollout(vlm)  # the engine asserts per turn: stored context == the ids the model was fed
    image_id = vlm.processor.image_token_id
    per_image = vlm.processor.image_seq_len
    assert tree.initial_observation.images and len(tree.nodes) >= 4
    for node in tree.nodes:
        context = tree.context_ids(node.id)
        # every screenshot the model saw is in its context as image tokens, and no other image tokens are
        assert context.count(image_id) == per_image * len(context_images(tree, node.id)) > 0
    for leaf in tree.leaves():
        for ids, mask, logprobs in trajectory_tokens(tree, leaf):
            assert all(m == 0 for t, m in zip(ids, mask) if t == image_id)  # image tokens: context, never trained
            assert sum(mask) == sum(len(n.action_ids) for n in tree.path(leaf))
    store = TrajectoryStore(tmp_path / "trajectories.jsonl")
    store.append(tree)
    (back,) = store.read_all()
    assert back.context_ids(tree.leaves()[0]) == tree.context_ids(tree.leaves()[0])
    assert b"iVBOR" not in store.path.read_bytes() and any((tmp_path / "images").iterdir())


def test_the_images_change_what_the_model_computes(vlm):
    renderer = ChatRenderer.for_policy(vlm)
    red, blue = png((255, 0, 0)), png((0, 0, 255))
    ids = renderer.initial_prompt_ids(None, Observation(text="What is on the screen?", images=[red]))
    params = SamplingParams(max_new_tokens=3, temperature=0.0)
    a, b, a2 = vlm.generate([GenerationRequest(ids, params, images=[red]), GenerationRequest(ids, params, images=[blue]),
                             GenerationRequest(ids, params, images=[red])])
    assert a.logprobs == pytest.approx(a2.logprobs)  # the same image in another row of the batch: the same result
    assert a.logprobs[0] != pytest.approx(b.logprobs[0], abs=1e-6)  # the pixels reach the model


def test_text_only_policy_given_screenshots_fails_with_one_line(tiny_policy):
    with pytest.raises(RolloutError) as err:
        rollout(tiny_policy, group_size=1)
    message = str(err.value)
    assert "ImageInputError" in message and "text-only" in message and "images='text'" in message
    assert "\n" not in message
    with pytest.raises(ImageInputError, match="carries 1 image"):
        ChatRenderer.for_policy(tiny_policy).observation_ids(Observation(text="x", images=[png((0, 0, 0))]), True)


def test_text_fallback_is_opt_in_and_deterministic(tiny_model, tokenizer):
    from agentgym.policies.hf import HFPolicy

    policy = HFPolicy(tiny_model, tokenizer, images="text")
    (tree,) = rollout(policy, group_size=1)
    prompt = tokenizer.decode(tree.nodes[0].prefix_ids)
    assert "[image 1/1: image/png, " in prompt and "sha256 " in prompt
    obs = Observation(text="screen", images=[png((9, 9, 9))])
    renderer = ChatRenderer.for_policy(policy)
    assert renderer.observation_ids(obs, True) == renderer.observation_ids(obs, True)
    with pytest.raises(ValueError, match="images must be none or text"):
        HFPolicy(tiny_model, tokenizer, images="vision")


def test_text_envs_are_unchanged_for_a_vision_policy(vlm):
    env_id = "agentgym/Calculator-v0"
    engine = RolloutEngine(vlm, lambda: make(env_id), env_id=env_id, limits=LIMITS, config=RolloutConfig(group_size=1))
    (tree,) = engine.run([0])
    assert all(vlm.processor.image_token_id not in tree.context_ids(n.id) for n in tree.nodes)
