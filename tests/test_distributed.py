"""Two CPU processes (torchrun + gloo, through examples/distributed.sh) train amos_rtd with
one log and a doubled batch, save, and resume; for every criterion they end with the
parameters of one process with ``--update-freq 2``.

Why the two runs can agree exactly. Worker k of 2 gets batches k, k+2, ...; one process
with --update-freq 2 groups batches (0, 1), (2, 3), ..., so every update sees the same two
batches either way, with the same masks (deterministic in seed, epoch, index). The task
seeds torch for each micro-batch from (seed, update, the batch's smallest example index), so the
Gumbel noise (and dropout) of a batch is the same whichever worker or accumulation step
runs it. What is left is the order of float additions in the gradient sum.

The runs use plain SGD: Adam's first steps are nearly invariant to the gradient's scale, so
a gradient normalised by the wrong sample count would go unseen after 2 Adam updates.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY_TRAIN_ARGS, parse_log

COMMON = ["--dropout", "0", "--attention-dropout", "0", "--batch-size", "8", "--log-interval", "1"]
ARCH = {"amos": "amos_tiny", "electra": "electra_tiny", "focal_hardness": "electra_tiny"}


def sgd_args():
    """TINY_TRAIN_ARGS with SGD (lr 0.5, no momentum) in place of Adam."""
    args, skip = [], 0
    for a in TINY_TRAIN_ARGS:
        if skip:
            skip -= 1
            continue
        if a in ("--optimizer", "--adam-betas", "--lr", "--lr-scheduler", "--warmup-updates", "--total-num-update"):
            skip = 1
            continue
        args.append(a)
    return args + ["--optimizer", "sgd", "--lr", "0.5", "--lr-scheduler", "fixed"]


def single(data, save_dir, *args):
    cmd = [str(ROOT / ".venv" / "bin" / "fairseq-train"), str(data), "--save-dir", str(save_dir),
           *sgd_args(), *COMMON, *map(str, args)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise AssertionError(f"single-process run failed ({proc.returncode}):\n{proc.stdout[-5000:]}")
    return proc.stdout


def distributed(data, save_dir, *args):
    cmd = ["bash", str(ROOT / "examples" / "distributed.sh"), "2", "cpu", str(data),
           "--save-dir", str(save_dir), *sgd_args(), *COMMON, *map(str, args)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                          env={**os.environ, "SKIP_SETUP": "1", "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise AssertionError(f"distributed run failed ({proc.returncode}):\n{proc.stdout[-5000:]}")
    return proc.stdout


def model_state(save_dir):
    return torch.load(Path(save_dir) / "checkpoint_last.pt", map_location="cpu", weights_only=False)["model"]


@pytest.fixture(scope="module", params=sorted(ARCH))
def runs(request, data_bin, tmp_path_factory):
    """(work dir, single-process log, 2-worker log, criterion) after 2 updates of each."""
    name = request.param
    work = tmp_path_factory.mktemp(f"dist_{name}")
    args = ["--criterion", name, "--arch", ARCH[name], "--max-update", "2"]
    one = single(data_bin, work / "single", *args, "--update-freq", "2",
                 "--save-interval-updates", "1", "--keep-interval-updates", "2")
    two = distributed(data_bin, work / "two", *args)
    return work, one, two, name


def test_two_workers_write_one_log_with_the_doubled_batch(runs):
    _, one, two, name = runs
    assert two.count("distributed init (rank") == 2, "both workers joined one process group"
    assert "training on 2 devices" in two
    rows = parse_log(two, "train_inner")
    assert [r["num_updates"] for r in rows] == [1, 2], "one log line per update, from rank 0 only"
    assert all(r["bsz"] == 16 for r in rows), rows  # 2 workers x --batch-size 8
    assert [r["bsz"] for r in parse_log(one, "train_inner")] == [16, 16]
    # Every criterion's logs are sums, so fairseq all-reduces them as one gloo tensor (a
    # criterion whose logs cannot be summed is gathered through a CUDA byte buffer: fails on CPU).
    own = {"amos": ("mix_entropy", "mix_w_d1"), "electra": ("rtd_prior_loss",),
           "focal_hardness": ("hardness_loss", "iw_ess", "iw_raw_mean", "hardness_alpha")}[name]
    for key in own:
        assert key in rows[-1], (key, rows[-1])


def test_two_updates_match_one_process_with_update_freq_2(runs):
    work, one, two, name = runs
    for a, b in zip(parse_log(one, "train_inner"), parse_log(two, "train_inner")):
        for key in ("loss", "gen_loss", "rtd_loss", "replace_rate", "wpb"):
            assert b[key] == pytest.approx(a[key], abs=2e-3), (key, a, b)
    ref, got = model_state(work / "single"), model_state(work / "two")
    assert ref.keys() == got.keys()
    for key, value in ref.items():
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name} {key}: {m}")
    # The comparison has teeth: the second SGD update alone moved weights far beyond the tolerance.
    after_one = torch.load(work / "single" / "checkpoint_1_1.pt", map_location="cpu", weights_only=False)["model"]
    moved = max((ref[k] - after_one[k]).abs().max().item() for k in ref if ref[k].is_floating_point())
    assert moved > 1e-2, moved


def test_distributed_run_resumes_from_its_checkpoint(runs, data_bin):
    work, _, _, name = runs
    assert (work / "two" / "checkpoint_last.pt").exists()
    resumed = distributed(data_bin, work / "two", "--criterion", name, "--arch", ARCH[name], "--max-update", "4")
    assert "Loaded checkpoint" in resumed and "@ 2 updates" in resumed, resumed[-3000:]
    assert [r["num_updates"] for r in parse_log(resumed, "train_inner")] == [3, 4]
