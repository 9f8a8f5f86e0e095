"""The amos_rtd task's masking: rate, specials, determinism, targets."""

import numpy as np
import pytest
import torch
from fairseq.data import Dictionary, data_utils

from amos_fairseq.tasks.masking import RTDMaskingDataset


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items
        self.sizes = np.array([len(x) for x in items])

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


@pytest.fixture(scope="module")
def setup():
    d = Dictionary()
    for i in range(50):
        d.add_symbol(f"w{i}")
    mask = d.add_symbol("<mask>")
    rng = np.random.RandomState(0)
    items = []
    for _ in range(400):
        n = rng.randint(3, 60)
        body = rng.randint(d.nspecial, len(d) - 1, size=n)
        items.append(torch.tensor([d.bos(), *body, d.eos()], dtype=torch.long))
    return d, mask, ListDataset(items)


def views(setup, epoch=1, seed=7, **kw):
    d, mask, data = setup
    out = []
    for view in RTDMaskingDataset.VIEWS:
        ds = RTDMaskingDataset(data, d, mask, view=view, seed=seed, **kw)
        ds.set_epoch(epoch)
        out.append(ds)
    return out


def test_rate_specials_and_minimum(setup):
    d, mask, data = setup
    source, selected = views(setup, mask_prob=0.15)
    chosen = real = 0
    for i in range(len(data)):
        sel = selected[i]
        item = data[i]
        assert sel.dtype == torch.bool and sel.shape == item.shape
        assert not sel[0] and not sel[-1], "<s> and </s> are never selected"
        assert sel.sum() >= 1, "at least one selected position per sequence"
        # every selected position is <mask> by default; everything else is unchanged
        assert torch.equal(source[i][sel], torch.full_like(item[sel], mask))
        assert torch.equal(source[i][~sel], item[~sel])
        chosen += int(sel.sum())
        real += len(item) - 2
    rate = chosen / real
    # ~12k real tokens: the binomial standard error is ~0.003; the at-least-one rule adds a bit.
    assert 0.14 < rate < 0.17, rate


def test_padding_never_selected(setup):
    d, mask, _ = setup
    item = torch.tensor([d.bos(), 10, 11, 12, d.eos(), d.pad(), d.pad()])
    ds = RTDMaskingDataset(ListDataset([item] * 50), d, mask, view="selected", mask_prob=0.5)
    for i in range(50):
        sel = ds[i]
        assert not sel[[0, 4, 5, 6]].any()


def test_deterministic_across_calls_instances_and_resume(setup):
    d, mask, data = setup
    first = [x.clone() for x in (views(setup, epoch=3)[0][i] for i in range(len(data)))]
    again = views(setup, epoch=3)[0]
    # A fresh instance (as after a resume) at the same epoch gives the same masks, in any order.
    for i in reversed(range(len(data))):
        assert torch.equal(again[i], first[i])
    other_epoch = views(setup, epoch=4)[0]
    assert any(not torch.equal(other_epoch[i], first[i]) for i in range(len(data)))
    other_seed = views(setup, epoch=3, seed=8)[0]
    assert any(not torch.equal(other_seed[i], first[i]) for i in range(len(data)))


def test_keep_and_random_shares(setup):
    d, mask, data = setup
    source, selected = views(setup, mask_prob=0.3, leave_unmasked_prob=0.2, random_token_prob=0.2)
    counts = {"mask": 0, "kept": 0, "other": 0}
    for i in range(len(data)):
        sel = selected[i]
        placed, orig = source[i][sel], data[i][sel]
        counts["mask"] += int((placed == mask).sum())
        counts["kept"] += int((placed == orig).sum())
        counts["other"] += int(((placed != mask) & (placed != orig)).sum())
        assert (placed >= d.nspecial).all(), "random replacements are real symbols"
    total = sum(counts.values())
    assert abs(counts["mask"] / total - 0.6) < 0.03
    # a random token equals the original with probability ~1/50, counted as kept
    assert abs(counts["kept"] / total - 0.2 - 0.2 / 50) < 0.03
    assert abs(counts["other"] / total - 0.2) < 0.03


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_mask_prob_outside_unit_interval(setup, bad):
    d, mask, data = setup
    with pytest.raises(ValueError, match="--mask-prob must lie in"):
        RTDMaskingDataset(data, d, mask, view="source", mask_prob=bad)


def test_task_batches_targets_equal_original(data_bin):
    """Through the real task: target is the whole original sequence, source differs only at
    selected positions, and <s> is prepended."""
    from fairseq import tasks
    from amos_fairseq.tasks.amos_rtd import AmosRTDConfig, AmosRTDTask

    cfg = AmosRTDConfig(data=str(data_bin), tokens_per_sample=64, seed=3)
    task = AmosRTDTask.setup_task(cfg)
    task.load_dataset("valid")
    ds = task.dataset("valid")
    batch = ds.collater([ds[i] for i in range(8)])
    src, sel, tgt = batch["net_input"]["src_tokens"], batch["net_input"]["masked_tokens"], batch["target"]
    assert src.shape == sel.shape == tgt.shape and src.shape[1] <= 64
    assert (tgt[:, 0] == task.dictionary.bos()).all()
    assert torch.equal(src[~sel], tgt[~sel])
    assert (src[sel] == task.mask_idx).all()
    assert not (sel & tgt.eq(task.dictionary.pad())).any()
    assert not (tgt == task.mask_idx).any(), "targets are the original text"
