"""Fine-tuning end to end: a tiny amos checkpoint pretrained here is restored into fairseq's
own ``sentence_prediction`` task and criterion, drops its generator, RTD head and mixture
scorer on load (never strict=False), trains, and beats the majority class on real dev data
(examples/data/source_id: which text a sentence comes from)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import BIN, ROOT, fairseq_train, parse_log

SOURCE_ID = ROOT / "examples" / "data" / "source_id"


def slice_tsv(src: Path, dst: Path, rows: int):
    lines = src.read_text(encoding="utf-8").splitlines()
    dst.write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")


def finetune(data, save_dir, restore, *args, check=True):
    cmd = [
        str(BIN / "fairseq-train"), str(data), "--user-dir", str(ROOT / "amos_fairseq"),
        "--task", "sentence_prediction", "--criterion", "sentence_prediction", "--arch", "amos_tiny",
        "--num-classes", "3", "--init-token", "0", "--separator-token", "2",
        "--shorten-method", "truncate",
        "--restore-file", str(restore), "--reset-optimizer", "--reset-dataloader", "--reset-meters",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3",
        "--lr-scheduler", "polynomial_decay", "--warmup-updates", "10", "--total-num-update", "116",
        "--batch-size", "32", "--max-epoch", "4", "--seed", "1", "--num-workers", "0",
        "--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric",
        "--no-epoch-checkpoints", "--save-dir", str(save_dir),
        "--log-format", "simple", "--log-interval", "10", *map(str, args),
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT))
    if check and proc.returncode != 0:
        raise AssertionError(f"fine-tuning failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def pretrained(data_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("pretrain")
    fairseq_train(data_bin, save, "--arch", "amos_tiny", "--criterion", "amos", "--max-update", "30",
                  "--total-num-update", "30")
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def task_data(tiny_corpus, pretrained, tmp_path_factory):
    work = tmp_path_factory.mktemp("source_id")
    task = work / "tsv"
    task.mkdir()
    slice_tsv(SOURCE_ID / "train.tsv", task / "train.tsv", 900)
    slice_tsv(SOURCE_ID / "dev.tsv", task / "dev.tsv", 200)
    out = work / "bin"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_classification.py"), str(task),
         "--corpus-dir", str(tiny_corpus), "--checkpoint", str(pretrained), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.returncode == 0, proc.stdout
    return out


def test_pretrained_checkpoint_fine_tunes_and_beats_the_majority_class(pretrained, task_data, tmp_path):
    state = torch.load(pretrained, map_location="cpu", weights_only=False)["model"]
    pretraining_only = {p: sum(k.startswith(p) for k in state) for p in ("generator.", "rtd_head.", "mixture_scorer.")}
    assert all(pretraining_only.values()), pretraining_only

    proc = finetune(task_data, tmp_path / "ft", pretrained)
    log = proc.stdout
    # Dropped on purpose by the model's state-dict upgrade, with the exact counts.
    for group, count in pretraining_only.items():
        assert f"dropped {count} pretraining-only tensors of {group.rstrip('.')}" in log, log[-3000:]
    assert "Loaded checkpoint" in log and str(pretrained) in log

    # The fine-tuned model holds the discriminator and a classification head, nothing else.
    tuned = torch.load(tmp_path / "ft" / "checkpoint_best.pt", map_location="cpu", weights_only=False)["model"]
    assert not [k for k in tuned if k.startswith(tuple(pretraining_only))]
    assert tuned["classification_heads.sentence_classification_head.out_proj.weight"].shape[0] == 3
    train = parse_log(log, "train")
    assert train[-1]["loss"] < train[0]["loss"], train
    valid = parse_log(log, "valid")
    best = max(row["accuracy"] for row in valid)
    baseline = 100 * json.loads((task_data / "meta.json").read_text())["dev_majority_accuracy"]
    print(f"dev accuracy {best:.1f}% vs majority class {baseline:.1f}%")
    assert best >= baseline + 15, (best, baseline)


def test_position_table_mismatch_names_the_flag(pretrained, task_data, tmp_path):
    proc = finetune(task_data, tmp_path / "ft", pretrained, "--max-positions", "128", "--max-epoch", "1",
                    check=False)
    assert proc.returncode != 0
    assert "the checkpoint has 512 learned positions" in proc.stdout
    assert "pass --max-positions 512" in proc.stdout


@pytest.mark.parametrize("num_classes", [2, 4])
def test_num_classes_must_match_the_labels(pretrained, task_data, tmp_path, num_classes):
    """Fewer than the 3 labels would fail mid-training, more would train unused classes."""
    proc = finetune(task_data, tmp_path / "ft", pretrained, "--num-classes", num_classes, check=False)
    assert proc.returncode != 0
    last = [l for l in proc.stdout.strip().splitlines() if l.strip()][-1]
    assert f"--num-classes {num_classes} but the data's label/dict.txt holds 3 labels" in last, last
    assert "pass --num-classes 3" in last
    assert not (tmp_path / "ft").exists() or not any((tmp_path / "ft").iterdir())


def test_finetune_recipe_reports_test_accuracy_at_the_best_dev_epoch(pretrained, tiny_corpus, tmp_path):
    """examples/finetune_tsv.sh scores a labelled test split at every epoch and reports the
    test accuracy of the epoch with the best dev accuracy, as its log shows them."""

    tasks = tmp_path / "tasks" / "source_id"
    tasks.mkdir(parents=True)
    for split, rows in (("train", 300), ("dev", 100), ("test", 100)):
        slice_tsv(SOURCE_ID / f"{split}.tsv", tasks / f"{split}.tsv", rows)
    work = tmp_path / "work"
    proc = subprocess.run(
        ["bash", str(ROOT / "examples" / "finetune_tsv.sh"), str(pretrained), str(tiny_corpus), str(tasks), str(work)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
        env={**os.environ, "SKIP_SETUP": "1", "EPOCHS": "3", "LR": "1e-3", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    header, row = (work / "results.tsv").read_text().splitlines()
    result = dict(zip(header.split("\t"), row.split("\t")))
    log = (work / "source_id" / "train.log").read_text()
    dev = [float(v) for v in re.findall(r"valid on 'valid' subset .*?\| accuracy ([0-9.]+)", log)]
    test = [float(v) for v in re.findall(r"valid on 'test' subset .*?\| accuracy ([0-9.]+)", log)]
    assert len(dev) == len(test) == 3
    best = dev.index(max(dev))
    assert float(result["dev_accuracy"]) == dev[best]
    assert float(result["test_accuracy"]) == test[best]
