"""Our GRPO loss and gradients equal TRL's GRPOTrainer on the same batch in the equivalent configuration
(token-mean <-> TRL "bnpo", seq-mean-token-mean <-> TRL "grpo"; clip 0.2/0.28; no dual-clip; beta 0).
TRL is a test-only dependency."""

import copy

import pytest
import torch

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from agentgym.config import TrainerConfig  # noqa: E402
from agentgym.trainers.core import PolicyTrainer  # noqa: E402
from agentgym.trainers.logprobs import pad_batch, token_logprobs  # noqa: E402
from agentgym.trainers.losses import aggregate, clipped_surrogate  # noqa: E402
from agentgym.trainers.samples import Sample  # noqa: E402


def make_batch(tokenizer):
    """Two prompts x two completions; completions contain a tool output span that must not be trained."""
    torch.manual_seed(0)
    # Equal-length prompts: TRL left-pads prompts without passing position ids, so a padded row would be
    # scored at shifted positions; with equal lengths both sides see the same positions.
    prompts = [tokenizer.encode("What is 17*23? Use the tool.", add_special_tokens=False),
               tokenizer.encode("Convert 3 mi to km please now", add_special_tokens=False)]
    n = min(len(p) for p in prompts)
    prompts = [p[:n] for p in prompts]
    completions = [[int(x) for x in torch.randint(100, 5000, (n,))] for n in (7, 5, 6, 4)]
    tool_masks = [[1, 1, 0, 0, 1, 1, 1], [1] * 5, [1, 0, 0, 1, 1, 1], [1] * 4]
    advantages = [0.9, -0.9, 0.5, -0.5]
    return prompts, completions, tool_masks, advantages


def trl_trainer(model, tokenizer, loss_type, tmp_path):
    args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2,
                          beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type=loss_type, report_to=[],
                          temperature=1.0, max_completion_length=8, use_cpu=True, logging_steps=1,
                          bf16=False, fp16=False)  # fp32 like ours (TRL would autocast the forward to bf16)
    data = datasets.Dataset.from_list([{"prompt": "x"}] * 4)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                              args=args, train_dataset=data, processing_class=tokenizer)
    trainer.current_gradient_accumulation_steps = 1  # set by TRL's training loop; equivalent: no accumulation
    return trainer


def trl_inputs(prompts, completions, tool_masks, advantages, pad_id, old=None):
    rows = [(prompts[i // 2], completions[i], tool_masks[i]) for i in range(4)]
    pw = max(len(p) for p, _, _ in rows)
    cw = max(len(c) for _, c, _ in rows)
    prompt_ids = torch.full((4, pw), pad_id)
    prompt_mask = torch.zeros(4, pw, dtype=torch.long)
    comp_ids = torch.full((4, cw), pad_id)
    comp_mask = torch.zeros(4, cw, dtype=torch.long)
    tool_mask = torch.zeros(4, cw, dtype=torch.long)
    for r, (p, c, t) in enumerate(rows):
        prompt_ids[r, pw - len(p):] = torch.tensor(p)  # TRL left-pads prompts
        prompt_mask[r, pw - len(p):] = 1
        comp_ids[r, : len(c)] = torch.tensor(c)
        comp_mask[r, : len(c)] = 1
        tool_mask[r, : len(c)] = torch.tensor(t)
    inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": comp_ids,
              "completion_mask": comp_mask, "tool_mask": tool_mask, "advantages": torch.tensor(advantages),
              "num_items_in_batch": (comp_mask * tool_mask).sum()}
    if old is not None:
        inputs["old_per_token_logps"] = old
    return inputs


def our_samples(prompts, completions, tool_masks, advantages, sampler=None, pad_id=0):
    """Samples as the rollout stores them; the sampling log-probs are `sampler`'s (the trainer's own module,
    as in a run with the in-process sampler), so the truncated importance weight is 1."""
    out = []
    for i in range(4):
        p, c, t = prompts[i // 2], completions[i], tool_masks[i]
        out.append(Sample(p + c, [0] * len(p) + t, [0.0] * len(p) + [advantages[i] * m for m in t],
                          [0.0] * (len(p) + len(c)), "t", i, i // 2))
    if sampler is not None:
        mb = pad_batch(out, pad_id)
        with torch.no_grad():
            logp, _ = token_logprobs(sampler, mb["input_ids"], mb["attention_mask"], mb["loss_mask"])
        for row, s in enumerate(out):
            s.sampling_logprobs = [lp * m for lp, m in zip(logp[row, : len(s.input_ids)].tolist(), s.loss_mask)]
    return out


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("ours, theirs", [("token-mean", "bnpo"), ("seq-mean-token-mean", "grpo")])
def test_update_matches_trl(tiny_model, tokenizer, tmp_path, ours, theirs):
    prompts, completions, tool_masks, advantages = make_batch(tokenizer)
    model_a, model_b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    trainer = trl_trainer(model_b, tokenizer, theirs, tmp_path)
    model_b.train()
    loss_b = trainer._compute_loss(model_b, trl_inputs(prompts, completions, tool_masks, advantages,
                                                       tokenizer.pad_token_id))
    loss_b.backward()

    # Our production path, stopped before the optimiser step: same loss, same gradients.
    cfg = TrainerConfig(lr=0.0, clip_low=0.2, clip_high=0.28, dual_clip=None, loss_agg=ours, grad_clip=1e9)
    ours_trainer = PolicyTrainer(model_a, tokenizer.pad_token_id, cfg)
    ours_trainer.optimizer.step = lambda *a, **k: None  # keep the gradients to compare
    ours_trainer.optimizer.zero_grad = lambda *a, **k: None
    stats = ours_trainer.update(our_samples(prompts, completions, tool_masks, advantages, model_a,
                                            tokenizer.pad_token_id))
    assert stats.metrics()["tis_weight"] == pytest.approx(1.0, abs=1e-6)
    assert stats.loss == pytest.approx(loss_b.item(), abs=1e-6)
    ga, gb = grads(model_a), grads(model_b)
    assert ga.keys() == gb.keys()
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-7)


def test_clipped_loss_matches_trl_off_policy(tiny_model, tokenizer, tmp_path):
    """With old log-probs that differ from the current ones, clipping is active on both sides."""
    prompts, completions, tool_masks, advantages = make_batch(tokenizer)
    model = copy.deepcopy(tiny_model)
    trainer = trl_trainer(model, tokenizer, "bnpo", tmp_path)
    samples = our_samples(prompts, completions, tool_masks, advantages)
    mb = pad_batch(samples, tokenizer.pad_token_id)
    with torch.no_grad():
        logp, _ = token_logprobs(model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"])
    torch.manual_seed(1)
    shift = (torch.rand_like(logp) - 0.5) * 0.8  # ratios from ~0.67 to ~1.5
    old_ours = logp + shift
    # TRL's completion-aligned old log-probs
    old_trl = torch.zeros(4, max(len(c) for c in completions))
    for r in range(4):
        p = len(prompts[r // 2])
        old_trl[r, : len(completions[r])] = old_ours[r, p : p + len(completions[r])]
    loss_b = trainer._compute_loss(model, trl_inputs(prompts, completions, tool_masks, advantages,
                                                     tokenizer.pad_token_id, old=old_trl))
    per_token, clipped = clipped_surrogate(logp, old_ours, mb["advantages"], 0.2, 0.28, None)
    loss_a = aggregate(per_token, mb["loss_mask"], "token-mean")
    assert clipped[mb["loss_mask"].bool()].any()
    assert loss_a.item() == pytest.approx(loss_b.item(), abs=1e-5)
