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

import numpy as np
import torch

BatchPositions = Dict[str, object]


def collate_positions(selected: List[torch.Tensor]) -> BatchPositions:
    """Positions of a batch from its items' selections (bool [T_i] each, unpadded): what
    right-padding them to [B, max T_i] gives, computed on the host.

    Computed with numpy and turned into tensors once: fairseq collates in a background
    thread, where a few array operations per batch are cheaper than many small torch calls.
    """
    arrays = [np.asarray(item, dtype=bool) for item in selected]
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    length = int(lengths.max()) if len(arrays) else 0
    flat = np.zeros((len(arrays), length), dtype=bool)
    real = np.arange(length)[None, :] < lengths[:, None]  # [B, T] True at real tokens
    for row, a in enumerate(arrays):
        flat[row, : len(a)] = a
    masked_index = np.flatnonzero(flat)
    non_pad_index = np.flatnonzero(real)
    # a masked token's rank among the real tokens, in row-major order
    rank_among_real = np.cumsum(real.ravel()) - 1
    return {
        "masked_index": torch.from_numpy(masked_index.astype(np.int64)),
        "non_pad_index": torch.from_numpy(non_pad_index.astype(np.int64)),
        "masked_in_non_pad_index": torch.from_numpy(rank_among_real[masked_index].astype(np.int64)),
        "padded": bool((lengths < length).any()),
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
