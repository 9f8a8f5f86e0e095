"""kill -9 at any moment loses at most the work since the last checkpoint: fairseq-train is
killed with SIGKILL inside a training step and in the middle of checkpoint saves (its
atomic write of the first file, or the plug-in's atomic copies to checkpoint_last.pt and the
other names, see amos_fairseq/compat.py), resumed each time with the same command, and ends
at the planned update count with a checkpoint that loads."""

import os
import signal
import subprocess
import time

import torch

from conftest import BIN, ROOT, TINY_TRAIN_ARGS, parse_log

MAX_UPDATE = 40


def command(data, save):
    return [str(BIN / "fairseq-train"), str(data), "--save-dir", str(save), *TINY_TRAIN_ARGS,
            "--arch", "electra_tiny", "--criterion", "electra", "--max-update", str(MAX_UPDATE),
            "--total-num-update", str(MAX_UPDATE), "--log-interval", "1",
            # a save after every update: most moments of the run are near one
            "--save-interval-updates", "1", "--keep-interval-updates", "2"]


def start(data, save, log):
    out = open(log, "w")
    return subprocess.Popen(command(data, save), stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT),
                            env={**os.environ, "OMP_NUM_THREADS": "1"}), out


def wait_until(predicate, timeout=120.0, interval=0.0005):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def saving(save, moment):
    """A checkpoint file is being written: "write" fairseq's first file (NAME.pt.tmp, renamed
    when complete), "copy" the plug-in's copy of it to checkpoint_last.pt (.pt.tmpPID)."""
    try:
        names = os.listdir(save)
    except FileNotFoundError:
        return False
    if moment == "write":
        return any(name.endswith(".pt.tmp") for name in names)
    return any(name.startswith("checkpoint_last.pt.tmp") for name in names)


def updates_logged(log, at_least):
    rows = parse_log(log.read_text(), "train_inner")
    return bool(rows) and rows[-1]["num_updates"] >= at_least


def test_sigkill_inside_steps_and_saves_then_resume(data_bin, tmp_path):
    save = tmp_path / "ckpt"
    moments = []
    for i, moment in enumerate(["step", "write", "copy", "step"]):
        log = tmp_path / f"run{i}.log"
        proc, out = start(data_bin, save, log)
        if moment == "step":
            # a few updates past wherever this run started: it is between saves, in a step
            assert wait_until(lambda: updates_logged(log, 3 + 8 * i), interval=0.01), log.read_text()[-3000:]
            time.sleep(0.03)
            caught = True
        else:
            assert wait_until(lambda: updates_logged(log, 1), interval=0.01), log.read_text()[-3000:]
            caught = wait_until(lambda: saving(save, moment), timeout=20)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out.close()
        moments.append((moment, caught))
        assert proc.returncode == -signal.SIGKILL, (moment, log.read_text()[-3000:])
        assert parse_log(log.read_text(), "train_inner")[-1]["num_updates"] < MAX_UPDATE, "killed too late"
    # Each save moment was hit (the files are written for milliseconds of every update).
    assert all(caught for _, caught in moments), moments

    log = tmp_path / "final.log"
    with open(log, "w") as out:
        final = subprocess.run(command(data_bin, save), stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT),
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    text = log.read_text()
    assert final.returncode == 0, text[-3000:]
    assert "Loaded checkpoint" in text and "@ 0 updates" not in text, text[-3000:]
    assert parse_log(text, "train_inner")[-1]["num_updates"] == MAX_UPDATE
    state = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == MAX_UPDATE
    assert "discriminator.embeddings.token_embeddings.weight" in state["model"] or any(
        k.endswith("token_embeddings.weight") for k in state["model"])
