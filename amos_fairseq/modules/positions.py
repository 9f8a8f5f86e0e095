"""Where the masked and the real tokens of a padded batch are, as index tensors.

Boolean indexing (``x[mask]``), ``nonzero`` and ``mask.any()`` read a device tensor on the
host: on a GPU each one stalls the queue until everything before it has run. The
``amos_rtd`` collater knows every sequence's length and selection on the host already, so it
hands the model these indices with the batch, and a training step needs none of those reads.

A batch is [B, T], right-padded; positions are flattened row-major (``b * T + t``).

    masked_index             [M] long  flat positions of the masked tokens
    non_pad_index            [N] long  flat positions of the real (non-pad) tokens
    masked_in_non_pad_index  [M] long  where each masked token sits among the N real ones
    padded                   bool      whether any sequence is shorter than T
"""

from typing import Dict, List, Optional

import torch

BatchPositions = Dict[str, object]


def collate_positions(selected: List[torch.Tensor]) -> BatchPositions:
    """Positions of a batch from its items' selections (bool [T_i] each, unpadded): what
    right-padding them to [B, max T_i] gives, computed on the host."""
    length = max((len(s) for s in selected), default=0)
    masked, non_pad, masked_in_non_pad = [], [], []
    real_before = 0
    for row, item in enumerate(selected):
        where = torch.as_tensor(item, dtype=torch.bool).nonzero().squeeze(-1)
        masked.append(row * length + where)
        non_pad.append(row * length + torch.arange(len(item)))
        masked_in_non_pad.append(real_before + where)
        real_before += len(item)
    empty = torch.zeros(0, dtype=torch.long)
    return {
        "masked_index": torch.cat(masked) if masked else empty,
        "non_pad_index": torch.cat(non_pad) if non_pad else empty,
        "masked_in_non_pad_index": torch.cat(masked_in_non_pad) if masked_in_non_pad else empty,
        "padded": any(len(s) < length for s in selected),
    }


def positions_from_masks(masked_tokens: torch.Tensor, non_pad: torch.Tensor) -> BatchPositions:
    """The same from [B, T] bool masks on the device: for callers without the collater's
    positions (tests, other tasks). Costs three host reads (two ``nonzero``, one ``any``)."""
    flat_non_pad = non_pad.flatten()
    masked_index = masked_tokens.flatten().nonzero().squeeze(-1)
    rank_among_real = flat_non_pad.long().cumsum(0) - 1
    return {
        "masked_index": masked_index,
        "non_pad_index": flat_non_pad.nonzero().squeeze(-1),
        "masked_in_non_pad_index": rank_among_real.index_select(0, masked_index),
        "padded": bool((~flat_non_pad).any()),
    }


def check_positions(positions: Optional[BatchPositions]) -> None:
    """Raise if a positions dict lacks an entry (a collater from another version)."""
    missing = {"masked_index", "non_pad_index", "masked_in_non_pad_index", "padded"} - set(positions or {})
    if missing:
        raise ValueError(f"batch positions lack {sorted(missing)}: collate them with collate_positions")
