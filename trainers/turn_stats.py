"""Per-turn statistics over a batch of training rows: a row is one sequence (a trajectory, or one round of
a context-rebuilding env), its trained tokens are grouped into turns by the node id of each token
(`LossBatch.turn_ids`, -1 outside actions). Multi-turn regularisers (EPO) average per turn first, so a
long turn does not outweigh short ones.
"""

from __future__ import annotations

import torch


def nested_turn_mean(values: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per row: the mean over its turns of each turn's mean over trained tokens ([rows]; 0 for a row with
    none). Differentiable in `values`. Trained tokens with turn id -1 (unknown) form one turn."""
    rows, length = values.shape
    keep = mask.bool()
    row_of = torch.arange(rows, device=values.device).unsqueeze(1).expand(rows, length)[keep]
    width = int(turn_ids.max()) + 2 if turn_ids.numel() else 1
    keys, inverse = torch.unique(row_of * width + (turn_ids[keep] + 1), return_inverse=True)
    ones = torch.ones_like(inverse, dtype=values.dtype)
    sums = torch.zeros(len(keys), dtype=values.dtype, device=values.device).index_add(0, inverse, values[keep])
    counts = torch.zeros(len(keys), dtype=values.dtype, device=values.device).index_add(0, inverse, ones)
    turn_row = keys // width
    per_row = torch.zeros(rows, dtype=values.dtype, device=values.device).index_add(0, turn_row, sums / counts)
    turns = torch.zeros(rows, dtype=values.dtype, device=values.device).index_add(
        0, turn_row, torch.ones_like(turn_row, dtype=values.dtype))
    return per_row / turns.clamp(min=1)
