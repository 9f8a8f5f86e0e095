"""The shell recipes under examples/ never write into, or delete, a folder they did not make:
each refuses with one error line, before any work, and leaves the folder as it was."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT


def recipe(name, *args, **env):
    return subprocess.run(["bash", str(ROOT / "examples" / name), *map(str, args)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                          env={**os.environ, "SKIP_SETUP": "1", **env})


def users_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    return folder


def untouched(folder: Path) -> bool:
    return [p.name for p in folder.iterdir()] == ["notes.txt"] and (folder / "notes.txt").read_text() == "keep me"


def last_line(proc):
    return [line for line in proc.stdout.strip().splitlines() if line.strip()][-1]


def test_pretrain_never_prepares_data_into_a_folder_the_user_named(tmp_path):
    mine = users_folder(tmp_path)
    proc = recipe("pretrain.sh", "electra", "tiny", "cpu", DATA=str(mine), WORK=str(tmp_path / "work"))
    assert proc.returncode == 2
    assert f"DATA={mine} has no train.bin" in last_line(proc), proc.stdout[-2000:]
    assert untouched(mine) and not (tmp_path / "work").exists()


@pytest.mark.parametrize("name", ["quickstart.sh", "compare.sh"])
def test_fresh_removes_only_the_recipes_own_folder(name, tmp_path):
    mine = users_folder(tmp_path)
    proc = recipe(name, mine, FRESH="1")
    assert proc.returncode == 2
    assert f"{mine} exists and was not made by {name[:-3]}" in last_line(proc), proc.stdout[-2000:]
    assert untouched(mine)
    proc = recipe(name, mine)  # without FRESH: not written into either
    assert proc.returncode == 2 and untouched(mine)


def test_finetune_work_folder_is_its_own(tiny_corpus, tmp_path):
    checkpoint = tmp_path / "cut.pt"
    checkpoint.write_bytes(b"PK\x03\x04 a checkpoint cut short")
    mine = users_folder(tmp_path)
    tasks = ROOT / "examples" / "data" / "source_id"
    proc = recipe("finetune_tsv.sh", checkpoint, tiny_corpus, tasks, mine)
    assert proc.returncode == 2 and "was not made by finetune_tsv" in last_line(proc), proc.stdout[-2000:]
    assert untouched(mine)
    # A new folder is claimed (marker), and a truncated checkpoint is named before any work.
    work = tmp_path / "work"
    proc = recipe("finetune_tsv.sh", checkpoint, tiny_corpus, tasks, work)
    assert proc.returncode != 0 and f"{checkpoint} is not a complete checkpoint" in last_line(proc), proc.stdout
    assert [p.name for p in work.iterdir()] == [".amos-fairseq-output"]
    assert (work / ".amos-fairseq-output").read_text().strip() == "finetune_tsv"


@pytest.mark.parametrize("env, message", [
    ({"METHODS": "electra amoss"}, "METHODS has 'amoss': choose among electra, amos, focal_hardness, mlm"),
    ({"JOBS": "0"}, "JOBS=0: give a whole number of runs at once"),
])
def test_compare_refuses_bad_settings_before_any_work(env, message, tmp_path):
    work = tmp_path / "work"
    proc = recipe("compare.sh", work, **env)
    assert proc.returncode == 2 and message in last_line(proc), proc.stdout[-2000:]
    assert not work.exists()


def test_compare_redoes_a_fine_tuning_run_that_started_from_another_pretraining_seed(tmp_path):
    """compare.sh reuses a finished fine-tuning run only when it started from the checkpoint
    this call asks for: after PRETRAIN_SEEDS="1" then "1 2", fine-tuning seed 2 must start
    from pretraining seed 2, not keep the run that started from seed 1."""
    work = tmp_path / "work"
    (work / "corpus" / "data-bin").mkdir(parents=True)
    (work / "corpus" / "data-bin" / "train.bin").write_bytes(b"")
    (work / ".amos-fairseq-output").write_text("compare\n")
    tsv = "task\tdev_accuracy\tmajority_baseline\tupdates\ttest_accuracy\nsource_id\t80\t50\t10\t80\n"
    for seed in (1, 2):
        ckpt_dir = work / f"pretrain-electra-seed{seed}" / "checkpoints"
        ckpt_dir.mkdir(parents=True)
        (ckpt_dir / "checkpoint_last.pt").write_bytes(b"PK\x03\x04 a checkpoint cut short")
        (ckpt_dir.parent / "summary.json").write_text("{}")
        for arm in ("scratch", "electra"):
            out = work / "finetune" / arm / f"seed{seed}"
            out.mkdir(parents=True)
            (out / "results.tsv").write_text(tsv)
            # every run so far started from pretraining seed 1 (scratch: from random weights)
            (out / "started_from").write_text(
                "random weights\n" if arm == "scratch" else f"{work}/pretrain-electra-seed1/checkpoints/checkpoint_last.pt\n")
    proc = recipe("compare.sh", work, METHODS="electra", PRETRAIN_SEEDS="1 2", SEEDS="1 2",
                  TASKS=str(ROOT / "examples" / "data" / "source_id"), BLIMP=str(tmp_path / "no-blimp"))
    redone = [line.split("] ", 1)[-1] for line in proc.stdout.splitlines() if "redoing" in line]
    assert redone == [f"redoing {work}/finetune/electra/seed2: it started from "
                      f"{work}/pretrain-electra-seed1/checkpoints/checkpoint_last.pt, this call asks for "
                      f"{work}/pretrain-electra-seed2/checkpoints/checkpoint_last.pt"], proc.stdout[-3000:]
    # The redone run is started; it fails here (the corpus has no sentencepiece model), and its
    # stale results.tsv from pretraining seed 1 must not count as finished.
    assert "fine-tune electra, seed 2, from" in proc.stdout
    assert proc.returncode == 1 and last_line(proc) == f"error: fine-tuning did not finish {work}/finetune/electra/seed2", \
        proc.stdout[-3000:]
    assert not (work / "results").exists()
    for arm, seed in (("scratch", 1), ("scratch", 2), ("electra", 1)):
        assert (work / "finetune" / arm / f"seed{seed}" / "results.tsv").read_text() == tsv


def test_compute_curve_redoes_a_fine_tuning_run_that_was_cut_short(tmp_path):
    """An interrupted fine-tuning run leaves results.tsv with its header only: the curve must
    run it again, not count it as done (and then report the checkpoint without it)."""
    work = tmp_path / "curve"
    text = tmp_path / "novel.txt"
    text.write_text("A line.\n")
    (work / "corpus" / "data-bin").mkdir(parents=True)
    (work / "corpus" / "data-bin" / "train.bin").write_bytes(b"")
    (work / ".amos-fairseq-output").write_text("compute_curve\n")
    (work / "novel.paragraphs.txt").write_text("A line.\n")
    (work / "novel.paragraphs.txt.done").write_text("")
    (work / "run" / "checkpoints").mkdir(parents=True)
    (work / "run" / "checkpoints" / "checkpoint_1_1000.pt").write_bytes(b"PK\x03\x04 a checkpoint cut short")
    header = "task\tdev_accuracy\tmajority_baseline\tupdates\ttest_accuracy\n"
    cut = work / "eval" / "1000" / "finetune-seed1"
    cut.mkdir(parents=True)
    (cut / "results.tsv").write_text(header)
    scratch = work / "eval" / "scratch" / "finetune-seed1"
    scratch.mkdir(parents=True)
    (scratch / "results.tsv").write_text(header + "source_id\t80\t33.3\t10\t79\n")
    proc = recipe("compute_curve.sh", work, SKIP_TRAIN="1", EVAL_AT="1000", FT_SEEDS="1", CURVE_TEXT=str(text),
                  TASKS=str(ROOT / "examples" / "data" / "source_id"), BLIMP=str(tmp_path / "no-blimp"))
    assert proc.returncode == 1 and last_line(proc) == f"error: fine-tuning failed ({cut}.log)", proc.stdout[-3000:]
    assert (scratch / "results.tsv").read_text().endswith("79\n")  # the finished one is kept
