"""Masking for replaced-token detection: which positions the generator fills in."""

from functools import lru_cache

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset, Dictionary, data_utils


class RTDMaskingDataset(BaseWrapperDataset):
    """Selects ``mask_prob`` of each sequence's real tokens for the generator to replace.

    ``view="source"`` yields the generator's input (selected positions become ``<mask>``,
    or stay unchanged with ``leave_unmasked_prob``, or become a random real token with
    ``random_token_prob``); ``view="selected"`` yields the bool selection itself, which the
    model needs because a kept or random token does not say it was selected.

    The selection is a pure function of (seed, epoch, index): a resumed or data-parallel
    run sees exactly the masks of an uninterrupted single-process run. ``<s>``, ``</s>``,
    padding and any other special symbol are never selected; every sequence with at least
    one real token gets at least one selected position.

    Item shapes: both views are [T] for an underlying item of length T (long / bool).
    """

    VIEWS = ("source", "selected")

    def __init__(
        self,
        dataset,
        dictionary: Dictionary,
        mask_idx: int,
        view: str,
        seed: int = 1,
        mask_prob: float = 0.15,
        leave_unmasked_prob: float = 0.0,
        random_token_prob: float = 0.0,
    ):
        super().__init__(dataset)
        if view not in self.VIEWS:
            raise ValueError(f"view must be one of {self.VIEWS}, got {view!r}")
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"--mask-prob must lie in (0, 1), got {mask_prob}")
        if leave_unmasked_prob + random_token_prob > 1.0:
            raise ValueError(
                "--leave-unmasked-prob plus --random-token-prob must not exceed 1, got "
                f"{leave_unmasked_prob} + {random_token_prob}"
            )
        self.view = view
        self.mask_idx = mask_idx
        self.seed = seed
        self.mask_prob = mask_prob
        self.leave_unmasked_prob = leave_unmasked_prob
        self.random_token_prob = random_token_prob
        self.epoch = 0
        # Symbols that are never selected and never drawn as random replacements.
        self.special_ids = np.array(
            sorted(
                {dictionary.bos(), dictionary.eos(), dictionary.pad(), dictionary.unk(), mask_idx}
                | set(range(dictionary.nspecial))
            )
        )
        self.replacement_ids = np.setdiff1d(np.arange(len(dictionary)), self.special_ids)
        # <unk> in the text is a real token and may be selected; only markers are excluded.
        self.unselectable_ids = np.array(
            [dictionary.bos(), dictionary.eos(), dictionary.pad(), mask_idx]
        )

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # masks change with the epoch

    def set_epoch(self, epoch, **unused):
        super().set_epoch(epoch)
        self.epoch = epoch

    def __getitem__(self, index: int):
        return self._item(self.seed, self.epoch, index)

    @lru_cache(maxsize=8)
    def _item(self, seed: int, epoch: int, index: int) -> torch.Tensor:
        item = self.dataset[index]
        tokens = item.numpy()
        selected = self.select_positions(tokens, seed, epoch, index)
        if self.view == "selected":
            return torch.from_numpy(selected)
        source = tokens.copy()
        with data_utils.numpy_seed(seed, epoch, index, 1):
            # One uniform per selected position decides keep / random / <mask>.
            u = np.random.rand(int(selected.sum()))
            kept = u < self.leave_unmasked_prob
            random = (~kept) & (u < self.leave_unmasked_prob + self.random_token_prob)
            replacement = np.full(u.shape, self.mask_idx, dtype=tokens.dtype)
            replacement[kept] = tokens[selected][kept]
            if random.any():
                replacement[random] = np.random.choice(self.replacement_ids, int(random.sum()))
        source[selected] = replacement
        return torch.from_numpy(source)

    def select_positions(self, tokens: np.ndarray, seed: int, epoch: int, index: int) -> np.ndarray:
        """Bool [T]: the positions selected for replacement in this item."""
        candidates = np.flatnonzero(~np.isin(tokens, self.unselectable_ids))
        selected = np.zeros(tokens.shape, dtype=bool)
        if candidates.size == 0:
            return selected
        with data_utils.numpy_seed(seed, epoch, index):
            # Randomised rounding keeps the expected rate exact for short sequences.
            num = int(self.mask_prob * candidates.size + np.random.rand())
            num = min(max(num, 1), candidates.size)
            selected[np.random.choice(candidates, num, replace=False)] = True
        return selected
