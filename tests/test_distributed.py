"""Two CPU processes (torchrun + gloo, through examples/distributed.sh) train amos_rtd with
one log and a doubled batch, save, and resume; the first update matches one process with
``--update-freq 2``.

Why the first update is comparable, and how closely. Worker k of 2 gets batches k, k+2, ...;
one process with --update-freq 2 groups batches (0, 1), (2, 3), ..., so update 1 sees the
same two batches either way, with the same masks (deterministic in seed, epoch, index) and
the same initial weights. fairseq seeds torch's RNG with seed + num_updates before each
update, so worker 0 and the single process draw identical Gumbel noise for batch 0; worker 1
draws *that same noise stream* for batch 1, while the single process continues the stream
after batch 0. With dropout off, everything that does not depend on the sampled tokens is
therefore identical: the generator losses (every depth), the token and sentence counts. The
RTD loss depends on which tokens were placed in batch 1, so it agrees only statistically:
at initialisation the discriminator outputs nearly the same logit for every token and about
99% of the masked positions are replaced in both runs, so the total loss agrees to well
within 2%. After update 1 the weights differ (batch 1's gradient saw other replacements),
so later updates are not compared.
"""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, TINY_TRAIN_ARGS, fairseq_train, parse_log

COMMON = ["--arch", "amos_tiny", "--criterion", "amos", "--dropout", "0", "--attention-dropout", "0",
          "--batch-size", "8", "--log-interval", "1", "--total-num-update", "4"]


def distributed(data, save_dir, *args):
    cmd = ["bash", str(ROOT / "examples" / "distributed.sh"), "2", "cpu", str(data),
           "--save-dir", str(save_dir), *TINY_TRAIN_ARGS, *COMMON, *map(str, args)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                          env={**os.environ, "SKIP_SETUP": "1", "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise AssertionError(f"distributed run failed ({proc.returncode}):\n{proc.stdout[-5000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def runs(data_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("dist")
    single = fairseq_train(data_bin, work / "single", *COMMON, "--update-freq", "2", "--max-update", "2",
                           env={"OMP_NUM_THREADS": "1"}).stdout
    two = distributed(data_bin, work / "two", "--max-update", "2")
    return work, single, two


def test_two_workers_write_one_log_with_the_doubled_batch(runs):
    _, single, two = runs
    assert two.count("distributed init (rank") == 2, "both workers joined one process group"
    assert "training on 2 devices" in two
    rows = parse_log(two, "train_inner")
    assert [r["num_updates"] for r in rows] == [1, 2], "one log line per update, from rank 0 only"
    assert all(r["bsz"] == 16 for r in rows), rows  # 2 workers x --batch-size 8
    assert [r["bsz"] for r in parse_log(single, "train_inner")] == [16, 16]


def test_first_update_matches_one_process_with_update_freq_2(runs):
    _, single, two = runs
    a, b = parse_log(single, "train_inner")[0], parse_log(two, "train_inner")[0]
    # Independent of the sampled replacements: equal up to the log's rounding.
    for key in ("wpb", "bsz", "gen_loss", "gen_loss_d1", "gen_loss_d2", "gen_loss_d3", "gen_acc"):
        assert b[key] == pytest.approx(a[key], abs=2e-3), (key, a, b)
    # Dependent on the Gumbel noise of the second batch (module docstring): within 2%.
    for key in ("loss", "rtd_loss", "replace_rate"):
        assert b[key] == pytest.approx(a[key], rel=0.02), (key, a, b)


def test_distributed_run_resumes_from_its_checkpoint(runs, data_bin):
    work, _, _ = runs
    assert (work / "two" / "checkpoint_last.pt").exists()
    resumed = distributed(data_bin, work / "two", "--max-update", "4")
    assert "Loaded checkpoint" in resumed and "@ 2 updates" in resumed, resumed[-3000:]
    assert [r["num_updates"] for r in parse_log(resumed, "train_inner")] == [3, 4]


def test_focal_hardness_runs_on_two_workers(data_bin, tmp_path):
    """Its logs are sums like every criterion's, so fairseq all-reduces them (a gloo tensor)
    instead of gathering pickles through a CUDA byte buffer, which fails on CPU."""
    out = distributed(data_bin, tmp_path / "fh", "--criterion", "focal_hardness", "--arch", "electra_tiny",
                      "--max-update", "2", "--no-save")
    rows = parse_log(out, "train_inner")
    assert [r["num_updates"] for r in rows] == [1, 2], out[-3000:]
    assert all(r["bsz"] == 16 for r in rows)
    for key in ("hardness_loss", "iw_ess", "iw_raw_mean", "hardness_alpha"):
        assert key in rows[-1], (key, rows[-1])
