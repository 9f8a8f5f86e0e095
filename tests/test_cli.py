"""End to end through the real fairseq-train CLI: training, metrics, resume, loading."""

import re

import pytest
import torch

from conftest import fairseq_train, parse_log

COMMON_METRICS = {"loss", "gen_loss", "rtd_loss", "gen_acc", "replace_rate", "rtd_acc_replaced", "rtd_acc_original"}


@pytest.fixture(scope="module")
def electra_run(data_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("electra_ckpt")
    proc = fairseq_train(
        data_bin, save, "--arch", "electra_tiny", "--criterion", "electra",
        "--max-update", "40", "--total-num-update", "60", "--validate-interval-updates", "20",
        validate=True,
    )
    return save, proc.stdout


def test_loss_falls_and_metrics_are_logged(electra_run):
    _, log = electra_run
    rows = parse_log(log, "train_inner")
    assert len(rows) == 8, log[-3000:]
    for row in rows:
        assert COMMON_METRICS <= row.keys(), row
        assert 0.0 <= row["replace_rate"] <= 1.0
    first, last = rows[0]["loss"], sum(r["loss"] for r in rows[-2:]) / 2
    assert last < 0.8 * first, [r["loss"] for r in rows]
    # The generator learns something beyond chance over 40 updates.
    assert rows[-1]["gen_loss"] < rows[0]["gen_loss"]
    valid = parse_log(log, "valid")
    assert len(valid) == 2 and COMMON_METRICS <= valid[-1].keys()
    assert valid[-1]["loss"] < valid[0]["loss"]


def test_resume_continues_update_count(electra_run, data_bin):
    save, _ = electra_run
    proc = fairseq_train(
        data_bin, save, "--arch", "electra_tiny", "--criterion", "electra",
        "--max-update", "50", "--total-num-update", "60",
    )
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch \d+ @ 40 updates\)", proc.stdout), proc.stdout[-3000:]
    rows = parse_log(proc.stdout, "train")
    assert rows and rows[-1]["num_updates"] == 50


def test_checkpoint_loads_with_fairseq_api(electra_run):
    from fairseq import checkpoint_utils

    from amos_fairseq.models.amos import AmosModel
    from amos_fairseq.tasks.amos_rtd import AmosRTDTask

    save, _ = electra_run
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(save / "checkpoint_last.pt")])
    model = models[0]
    assert isinstance(model, AmosModel) and isinstance(task, AmosRTDTask)
    assert cfg.model.arch == "electra_tiny" and model.generator is not None
    state = torch.load(save / "checkpoint_last.pt", weights_only=False)["model"]
    torch.testing.assert_close(model.token_embeddings.weight, state["token_embeddings.weight"])
    # The loaded discriminator runs.
    tokens = torch.tensor([[task.dictionary.bos(), 10, 11, 12, task.dictionary.eos()]])
    features, _ = model(tokens, features_only=True)
    assert features.shape == (1, 5, 64) and torch.isfinite(features).all()


def test_torch_load_keeps_its_safe_default_elsewhere(electra_run):
    """The compatibility fix is scoped to fairseq's checkpoint loaders."""
    import amos_fairseq  # noqa: F401

    save, _ = electra_run
    with pytest.raises(Exception, match="weights_only|Unsupported global|WeightsUnpickler"):
        torch.load(save / "checkpoint_last.pt")
