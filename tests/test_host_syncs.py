"""A training step reads nothing on the host: counted with benchmarks/host_syncs.py's
dispatch-mode counter on a real amos_rtd batch, for every criterion."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.host_syncs import HostSyncCounter, count_step  # noqa: E402
from amos_fairseq.modules.positions import collate_positions, positions_from_masks  # noqa: E402


def real_batch(data_bin, criterion_name, arch, rows=12):
    """(model, criterion, collated sample of ``rows`` variable-length blocks) via fairseq."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = [str(data_bin), "--user-dir", str(ROOT / "amos_fairseq"), "--task", "amos_rtd", "--arch", arch,
            "--criterion", criterion_name, "--tokens-per-sample", "64", "--sample-break-mode", "complete",
            "--seed", "3"]
    args = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(rows)])
    model = task.build_model(cfg.model)
    model.train()
    return model, task.build_criterion(cfg.criterion), sample


def test_collater_positions_equal_the_masks(data_bin):
    _, _, sample = real_batch(data_bin, "electra", "electra_tiny")
    net_input = sample["net_input"]
    tokens, masked = net_input["src_tokens"], net_input["masked_tokens"].bool()
    non_pad = tokens.ne(1)
    assert not non_pad.all(), "the batch should hold padding (variable-length blocks)"
    ours = net_input["positions"]
    reference = positions_from_masks(masked, non_pad)
    for key in ("masked_index", "non_pad_index", "masked_in_non_pad_index"):
        assert torch.equal(ours[key], reference[key]), key
    assert ours["padded"] is True and reference["padded"] is True
    # the definitions themselves, on the flattened batch
    assert torch.equal(tokens.flatten()[ours["masked_index"]], tokens[masked])
    assert torch.equal(masked.flatten()[ours["non_pad_index"]].nonzero().squeeze(-1), ours["masked_in_non_pad_index"])
    full = collate_positions([torch.tensor([False, True, False]), torch.tensor([True, False, False])])
    assert full["padded"] is False and full["masked_index"].tolist() == [1, 3]


@pytest.mark.parametrize("criterion_name,arch", [("electra", "electra_tiny"), ("amos", "amos_tiny"),
                                                 ("focal_hardness", "electra_tiny")])
def test_training_step_has_no_host_sync(data_bin, criterion_name, arch):
    model, criterion, sample = real_batch(data_bin, criterion_name, arch)
    assert sample["net_input"]["positions"]["padded"]  # the padded path, with its attention mask
    counts = count_step(criterion, model, sample)
    assert sum(counts.values()) == 0, dict(counts)
    # Without the collater's positions the model finds them itself: the counter sees it.
    del sample["net_input"]["positions"]
    model.zero_grad()
    fallback = count_step(criterion, model, sample)
    assert fallback["nonzero"] == 2 and fallback["_local_scalar_dense"] == 1, dict(fallback)


def test_counter_sees_boolean_indexing_and_host_reads():
    x, mask = torch.randn(6), torch.tensor([True, False] * 3)
    with HostSyncCounter() as counter:
        x[mask]
        x.index_select(0, torch.tensor([0, 2]))
        x * 2
        bool(x.sum() > 0)
    assert counter.counts == {"index (boolean mask)": 1, "_local_scalar_dense": 1}, dict(counter.counts)
