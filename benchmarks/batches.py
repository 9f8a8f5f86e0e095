"""The synthetic batch every benchmark peer trains on (shared by worker.py and hf_electra.py)."""

import torch


def make_batch(batch: int, length: int, vocab_size: int, mask_prob: float, seed: int):
    """A binarized-like batch: <s> w ... w </s>, ``mask_prob`` of the words selected.

    Words are drawn from a Zipf-like law over the vocabulary (as in real text). Returns
    (original [B, T], selected [B, T] bool); ids follow fairseq's Dictionary (bos 0, pad 1,
    eos 2, unk 3, words 4..V-2, <mask> V-1).
    """
    gen = torch.Generator().manual_seed(seed)
    words = vocab_size - 5
    ranks = torch.arange(1, words + 1, dtype=torch.float64)
    zipf = 1.0 / ranks
    tokens = torch.multinomial(zipf / zipf.sum(), batch * length, replacement=True, generator=gen)
    tokens = (tokens + 4).view(batch, length)
    tokens[:, 0] = 0
    tokens[:, -1] = 2
    selected = torch.zeros(batch, length, dtype=torch.bool)
    real = length - 2
    count = max(1, int(round(mask_prob * real)))
    for row in range(batch):
        positions = torch.randperm(real, generator=gen)[:count] + 1
        selected[row, positions] = True
    return tokens, selected
