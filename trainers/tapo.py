"""TAPO: Tool-Augmented Policy Optimization (arXiv 2510.07038; reference code Goer17/TAPO; reference/
seed-plugins.md §4). DAPO adapted to interleaved tool calls: a strict-format reward, an overlong penalty
on model tokens only, dynamic sampling on accuracy, and the DAPO loss (clip-higher 0.2/0.28, dual-clip
c = 10, token-mean, no KL: the trainer section of examples/tapo_python.yaml).

    R_i = -1                                    if the actions are not a strict sequence of allowed tags
                                                 ending in <answer> (format error)
          score_i + min(-(L_i - (L_max - L_buf)) / L_buf * factor, 0)     otherwise
    keep a group iff std over it of [score_i > 0.9] > 0

score_i is the env's outcome reward (the answer's grade in [0, 1]); L_i counts the tokens the model
sampled, never tool outputs (TAPO's change to DAPO's penalty).

Paper vs code: the paper's reward equations were not readable; we follow the code. Its penalty has no -1
floor (DAPO's paper has one; truncation at the token limit bounds it). It has no tool-count term (computed
but commented out of the reward). Its format check runs on the whole response, tool outputs included
(``<response>`` blocks); ours runs on the model's actions only, as the env writes the outputs. The code
regenerates up to 10 batches to fill a batch with kept groups, then pads with unfiltered groups; here a
dropped group is simply left out of the update (counted), as the trainer's dynamic sampling does.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r"\s*<(\w+)>(.*?)</\1>\s*", re.S)


def tag_sequence(text: str) -> list[str] | None:
    """The tags of `text` if it is nothing but ``<tag>...</tag>`` blocks separated by whitespace, else None."""
    tags: list[str] = []
    pos = 0
    while pos < len(text):
        block = _BLOCK.match(text, pos)
        if block is None:
            return None
        tags.append(block.group(1).lower())
        pos = block.end()
    return tags


def strict_format(actions: list[str], allowed_tags: list[str]) -> bool:
    """Every action is a sequence of allowed tag blocks, and the trajectory's last block is <answer>."""
    tags: list[str] = []
    for action in actions:
        seq = tag_sequence(action)
        if seq is None:
            return False
        tags += seq
    return bool(tags) and tags[-1] == "answer" and all(t in allowed_tags for t in tags)


def overlong_penalty(model_tokens: int, max_length: int, buffer: int, factor: float) -> float:
    """DAPO's soft overlong penalty on the model's tokens: 0 up to max_length - buffer, then linear."""
    return min(-(model_tokens - (max_length - buffer)) / buffer * factor, 0.0)


def tapo_reward(format_ok: bool, score: float, model_tokens: int, max_length: int, buffer: int,
                factor: float) -> float:
    return -1.0 if not format_ok else score + overlong_penalty(model_tokens, max_length, buffer, factor)


def keep_group(scores: list[float], threshold: float = 0.9) -> bool:
    """Dynamic sampling: keep a group whose accuracies (score > threshold) are not all equal."""
    accurate = {s > threshold for s in scores}
    return len(scores) > 1 and len(accurate) > 1
