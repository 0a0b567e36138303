"""Training a vision-language policy (the tiny random Idefics3, built offline) on the simulated phone with
screenshots: the trainer scores image tokens with the pixels the sampler saw, so its log-probs equal the
stored sampling log-probs; packing keeps images with their rows; a missing image file and a text-only model
on a screenshot env fail with one clear line; `agentgym train` runs two steps end to end."""

import copy
import json
import subprocess
import sys

import pytest
import torch
import yaml

from agentgym.config import ConfigError, TrainerConfig, load_config
from agentgym.env import EnvLimits
from agentgym.images import ImageError, ImageRef, ImageStore
from agentgym.registry import make
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.trainers.core import PolicyTrainer, pack_by_tokens
from agentgym.trainers.logprobs import pad_batch, token_logprobs
from agentgym.trainers.samples import Sample, build_samples
from agentgym.trainers.session import validate
from agentgym.trainers.vision import VisionInputs

pytest.importorskip("PIL.Image")
PHONE = "agentgym/AndroidScreenshots-v0"
LIMITS = {"max_turns": 2, "max_tokens_per_turn": 6, "max_tokens_per_episode": 64}


@pytest.fixture(scope="module")
def vlm():
    from agentgym.policies.hf_vision import HFVisionPolicy, tiny_random_vlm

    model, processor = tiny_random_vlm(seed=0)
    return HFVisionPolicy(model, processor)


@pytest.fixture(scope="module")
def trees(vlm):
    torch.manual_seed(0)
    engine = RolloutEngine(vlm, lambda: make(PHONE, limits=EnvLimits(**LIMITS)), env_id=PHONE,
                           config=RolloutConfig(group_size=2, temperature=1.0))
    return engine.run([3, 11])


def samples_of(trees, tmp_path, processor):
    """Samples with per-node advantages that differ (so the loss is not 0), their images attached."""
    advantages = [{leaf: {n.id: 1.0 - 0.7 * (i % 2) for n in tree.path(leaf)} for i, leaf in enumerate(tree.leaves())}
                  for tree in trees]
    samples = build_samples(trees, advantages)
    vision = VisionInputs(processor, ImageStore(tmp_path / "images"), tmp_path)
    vision.attach(samples, trees)
    return samples, vision


def test_trainer_logprobs_with_the_pixels_equal_the_sampling_logprobs(vlm, trees, tmp_path):
    samples, vision = samples_of(trees, tmp_path, vlm.processor)
    assert all(s.images and all(isinstance(r, ImageRef) for r in s.images) for s in samples)
    first = pack_by_tokens(samples, TrainerConfig().micro_batch_tokens)[0]  # the trainer's first micro-batch
    assert len(first) >= 2 and len({tuple(r.sha256 for r in s.images) for s in first}) >= 2  # rows' images differ
    mb = pad_batch(first, vlm.tokenizer.pad_token_id)
    with torch.no_grad():
        pixels = vision.model_inputs([s.images for s in first], vlm.model)
        logp, _ = token_logprobs(vlm.model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"], 1.0,
                                 model_inputs=pixels)
        blind, _ = token_logprobs(vlm.model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"], 1.0)
        swapped = vision.model_inputs([s.images for s in first[1:] + first[:1]], vlm.model)  # rows' images rotated
        moved, _ = token_logprobs(vlm.model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"], 1.0,
                                  model_inputs=swapped)
    mask = mb["loss_mask"].bool()
    assert mask.sum() > 10
    assert (logp - mb["sampling_logprobs"])[mask].abs().max() <= 1e-4  # token-exact, pixels included
    # without the pixels, or with another row's, the trainer would score other log-probs than the sampler's
    assert (blind - mb["sampling_logprobs"])[mask].abs().max() > 1e-3
    assert (moved - mb["sampling_logprobs"])[mask].abs().max() > 1e-3


def test_loss_and_importance_ratio_behave_as_for_text(vlm, trees, tmp_path):
    samples, vision = samples_of(trees, tmp_path, vlm.processor)

    def update(batch):
        trainer = PolicyTrainer(copy.deepcopy(vlm.model), vlm.tokenizer.pad_token_id, TrainerConfig(lr=0.0),
                                vision=vision)
        return trainer.update(batch).metrics()

    stored = update(samples)
    on_policy = [copy.copy(s) for s in samples]  # the trainer's own log-probs as the sampler's: ratio exactly 1
    for s in on_policy:
        mb = pad_batch([s], vlm.tokenizer.pad_token_id)
        with torch.no_grad():
            own, _ = token_logprobs(vlm.model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"], 1.0,
                                    model_inputs=vision.model_inputs([s.images], vlm.model))
        s.sampling_logprobs = (own[0] * mb["loss_mask"][0]).tolist()
    today = update(on_policy)
    assert stored["trained_tokens"] == sum(s.trained_tokens for s in samples) and stored["loss"] != 0.0
    assert stored["loss"] == pytest.approx(today["loss"], rel=1e-4, abs=1e-6)
    assert stored["mismatch_abs_logp"] < 1e-4 and stored["tis_weight"] == pytest.approx(1.0, abs=1e-4)
    assert stored["tis_capped_frac"] == 0.0
    text_only = PolicyTrainer(copy.deepcopy(vlm.model), vlm.tokenizer.pad_token_id, TrainerConfig())
    with pytest.raises(ValueError, match="context images but the trainer has no vision inputs"):
        text_only.update(samples)


def test_a_lora_wrapped_vision_model_trains_its_adapters_on_the_pixels(trees, tmp_path):
    from agentgym.trainers.session import open_session

    session = open_session(config(tmp_path, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}))
    samples, vision = samples_of(trees, tmp_path, session.policy.processor)
    before = {n: p.detach().clone() for n, p in session.model.named_parameters()}
    trainer = PolicyTrainer(session.model, session.tokenizer.pad_token_id, TrainerConfig(lr=1e-2), vision=vision)
    stats = trainer.update(samples).metrics()
    assert stats["mismatch_abs_logp"] < 1e-4  # adapters start at zero: the sampler's weights, pixels included
    moved = {n for n, p in session.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert moved and all("lora_" in n for n in moved)


def test_packing_never_mixes_image_counts_and_keeps_text_packing():
    ref = [ImageRef(sha256=f"{i:064x}", mime="image/png", size=1) for i in range(3)]

    def sample(n_tokens, images):
        return Sample([1] * n_tokens, [1] * n_tokens, [0.0] * n_tokens, [0.0] * n_tokens, "t", 0, 0, images=images)

    mixed = [sample(5, ref[:1]), sample(6, []), sample(4, ref[:2]), sample(7, ref[1:2]), sample(3, []),
             sample(5, ref[:2])]
    batches = pack_by_tokens(mixed, budget=100)
    assert sorted(id(s) for mb in batches for s in mb) == sorted(id(s) for s in mixed)  # each sample once
    assert all(len({len(s.images) for s in mb}) == 1 for mb in batches)
    assert [s.images for s in batches[0]] == [ref[:1], ref[1:2]]  # a row keeps its own images, in order
    text = [sample(n, []) for n in (5, 9, 2, 8, 8, 3)]
    packed = pack_by_tokens(text, budget=20)
    assert [s for mb in packed for s in mb] == text  # text-only: consecutive, in order, as before
    assert all(len(mb) * max(len(s.input_ids) for s in mb) <= 20 for mb in packed)


def test_a_missing_image_file_fails_before_any_forward_naming_hash_and_run(vlm, trees, tmp_path):
    samples, vision = samples_of(trees, tmp_path, vlm.processor)
    gone = samples[-1].images[-1]
    vision.images.path(gone).unlink()
    model = copy.deepcopy(vlm.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = PolicyTrainer(model, vlm.tokenizer.pad_token_id, TrainerConfig(lr=1e-2), vision=vision)
    with pytest.raises(ImageError) as err:
        trainer.update(samples)
    message = str(err.value)
    assert gone.sha256 in message and str(tmp_path) in message and "\n" not in message
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # nothing was trained


def test_a_stored_runs_image_refs_are_used_as_they_are(vlm, trees, tmp_path):
    from agentgym.store import TrajectoryStore

    store = TrajectoryStore(tmp_path / "trajectories.jsonl")
    store.append_many(trees)
    stored = store.read_all()
    from_store, _ = samples_of(stored, tmp_path, vlm.processor)
    live, _ = samples_of(trees, tmp_path / "live", vlm.processor)
    assert [s.images for s in from_store] == [s.images for s in live]  # same hashes, same order


def config(tmp_path, **policy):
    return load_config(run_dir=str(tmp_path / "run"), env={"id": PHONE, "limits": LIMITS},
                       policy={"model": "tiny-vlm", **policy}, logging={"tensorboard": False})


@pytest.mark.parametrize("env", [{"id": PHONE}, {"id": "agentgym/Android-v0", "kwargs": {"screenshots": True}},
                                 {"id": "agentgym/MiniWoBScreenshots-v0"}])
def test_a_text_only_model_on_a_screenshot_env_is_a_config_error_naming_the_key(tmp_path, env):
    cfg = load_config(run_dir=str(tmp_path / "run"), env=env, policy={"model": "tiny"})
    with pytest.raises(ConfigError, match=r"^policy\.model=tiny is a text-only model and env .* observes images"):
        validate(cfg)
    validate(cfg.model_copy(update={"env": cfg.env.model_copy(update={"id": "agentgym/Android-v0", "kwargs": {}})}))
    validate(config(tmp_path))  # the vision model on screenshots: fine


@pytest.mark.parametrize("sampler", ["vllm", "openai:http://127.0.0.1:9/v1"])
def test_a_vision_model_on_a_separate_sampler_is_a_config_error(tmp_path, sampler):
    with pytest.raises(ConfigError, match=r"^policy\.sampler=.*vision-language policy\.model \(tiny-vlm\)"):
        validate(config(tmp_path, sampler=sampler))


def test_igpo_with_a_vision_model_is_a_config_error(tmp_path):  # its credit scores contexts as ids only
    cfg = load_config(run_dir=str(tmp_path / "run"), env={"id": PHONE}, policy={"model": "tiny-vlm"},
                      algorithm={"name": "igpo"})
    with pytest.raises(ConfigError, match=r"^algorithm\.name=igpo scores each turn's context"):
        validate(cfg)


@pytest.mark.slow(ci=True)  # ~30 s on 2 cores: a CLI process, two rollouts and updates
def test_agentgym_train_runs_a_vision_policy_two_steps(tmp_path):
    run = tmp_path / "run"
    cfg = {"run_dir": str(run), "seed": 1, "env": {"id": PHONE, "limits": LIMITS},
           "policy": {"model": "tiny-vlm"}, "rollout": {"group_size": 2, "temperature": 1.0},
           "trainer": {"steps": 2, "tasks_per_step": 1, "lr": 1e-3},
           "logging": {"tensorboard": False, "progress": False}}
    path = tmp_path / "vlm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "agentgym.cli", "train", str(path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["trained_tokens"] > 0 for r in records)
    assert records[0]["mismatch_abs_logp"] < 1e-4 and records[0]["tis_weight"] == pytest.approx(1.0, abs=1e-4)
    assert b"iVBOR" not in (run / "trajectories.jsonl").read_bytes() and any((run / "images").iterdir())
    saved = run / "checkpoints" / "step-000002" / "model"
    assert (saved / "processor_config.json").is_file()  # loadable as policy.model: hf-vision:<that dir>
    from agentgym.policies.hf_vision import load_vision

    model, processor = load_vision(f"hf-vision:{saved}", device="cpu")
    assert processor.image_token_id == model.config.image_token_id


# ---- SFT on stored runs ---------------------------------------------------------------------------------

def stored(trees, path):
    from agentgym.store import TrajectoryStore

    for tree in trees:
        tree.final_rewards = {leaf: 1.0 for leaf in tree.leaves()}  # every path kept (sft.min_reward)
    TrajectoryStore(path).append_many(trees)
    return path


def test_sft_on_a_vision_run_feeds_the_pixels_and_refuses_a_text_only_model(vlm, trees, tmp_path):
    from agentgym.trainers.session import open_session
    from agentgym.trainers.sft import load_data, sft_train
    from agentgym.trainers.vision import sft_vision
    from agentgym.config import SFTConfig

    data = stored(copy.deepcopy(trees), tmp_path / "vlm-run" / "trajectories.jsonl")
    text_cfg = load_config(run_dir=str(tmp_path / "sft-text"), env={"id": "agentgym/Android-v0"},
                           policy={"model": "tiny"})
    with pytest.raises(ConfigError, match=r"^policy\.model=tiny is a text-only model and the SFT data \(sft\.data\)"):
        sft_vision(load_data([data], 1.0), open_session(text_cfg), [data], tmp_path / "sft-text")
    session = open_session(config(tmp_path))  # tiny-vlm, the same weights that sampled the data
    samples = load_data([data], 1.0)
    vision = sft_vision(samples, session, [data], tmp_path / "run")
    assert vision is not None and all(s.images and isinstance(s.images[0], ImageRef) for s in samples)
    losses = sft_train(session.model, session.tokenizer.pad_token_id, samples,
                       SFTConfig(epochs=1, lr=0.0, batch_size=len(samples)), vision=vision)
    sampled = [lp for s in samples for lp, m in zip(s.sampling_logprobs, s.loss_mask) if m]
    assert losses[0] == pytest.approx(-sum(sampled) / len(sampled), abs=1e-4)  # NLL of the sampled tokens, exact


def test_sft_on_screenshots_shown_as_text_lines_needs_no_pixels(tmp_path):
    from agentgym.policies.models import load_tokenizer
    from agentgym.trainers.session import open_session
    from agentgym.trainers.sft import expert_trees, load_data
    from agentgym.trainers.vision import sft_vision

    tok = load_tokenizer("tiny")
    trees = expert_trees("agentgym.envs.android.expert:android_expert", lambda: make(PHONE), PHONE, tok, [1, 2])
    data = stored(trees, tmp_path / "expert" / "trajectories.jsonl")
    samples = load_data([data], 1.0)
    assert any(s.images for s in samples)  # the screenshots are in the contexts, as the text fallback's lines
    text_cfg = load_config(run_dir=str(tmp_path / "sft"), env={"id": "agentgym/Android-v0"}, policy={"model": "tiny"})
    assert sft_vision(samples, open_session(text_cfg), [data], tmp_path / "sft") is None
    assert not any(s.images for s in samples)
