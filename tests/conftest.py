"""Shared fixtures: a tiny real corpus binarized once per session, and a fairseq-train runner."""

import lzma
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORPUS = ROOT / "examples" / "data" / "corpus.txt.xz"
# Tiny models: one thread each avoids oversubscribing a small shared machine (a step of the
# 2-layer model goes from ~0.07 s to seconds when threads contend).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Small enough for seconds-long CPU runs, real English prose.
TINY_TRAIN_ARGS = [
    "--user-dir", str(ROOT / "amos_fairseq"),
    "--task", "amos_rtd",
    "--tokens-per-sample", "64",
    "--batch-size", "16",
    "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
    "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "5",
    "--total-num-update", "1000",  # callers may pass it again; the last value wins
    "--log-format", "simple", "--log-interval", "5",
    "--num-workers", "0", "--seed", "1",
    "--no-epoch-checkpoints", "--disable-validation",
]


def write_corpus_slice(path: Path, lines: int) -> Path:
    with lzma.open(CORPUS, "rt", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= lines:
                break
            dst.write(line)
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """Prepared corpus directory (spm.model, dict.txt, data-bin/) from 3000 real lines."""
    work = tmp_path_factory.mktemp("corpus")
    text = write_corpus_slice(work / "slice.txt", 3000)
    out = work / "prepared"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_corpus.py"), str(text), "--out", str(out),
         "--vocab-size", "800", "--valid-lines", "200"],
        check=True, capture_output=True, text=True,
    )
    return out


@pytest.fixture(scope="session")
def data_bin(tiny_corpus):
    return tiny_corpus / "data-bin"


def fairseq_train(data, save_dir, *args, check=True, env=None, validate=False):
    """Run the real fairseq-train CLI; returns the CompletedProcess (stdout+stderr in .stdout).
    ``validate=True`` keeps fairseq's validation (TINY_TRAIN_ARGS disable it)."""
    base = [a for a in TINY_TRAIN_ARGS if not (validate and a == "--disable-validation")]
    cmd = [str(BIN / "fairseq-train"), str(data), "--save-dir", str(save_dir), *base, *map(str, args)]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})}, cwd=str(ROOT),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"fairseq-train failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc


_METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)(?:=| )(-?\d+(?:\.\d+)?(?:e-?\d+)?)(?=[,| ]|$)")


def parse_log(text: str, kind: str = "train_inner"):
    """Rows of metrics (name -> float) from fairseq's simple log lines of ``kind``
    (train_inner, train, valid)."""
    rows = []
    for line in text.splitlines():
        if f"| {kind} |" in line:
            body = line.split(f"| {kind} |", 1)[1]
            rows.append({k: float(v) for k, v in _METRIC.findall(body)})
    return rows


def build_model(arch="amos_tiny", criterion="electra", vocab_words=60, **overrides):
    """An in-process (model, task) pair for a tiny architecture over a synthetic dictionary.

    ``overrides`` are model args (e.g. generator_depths="2,3,4", rel_pos_bins=0).
    """
    import argparse

    from fairseq.data import Dictionary
    from fairseq.models import ARCH_CONFIG_REGISTRY

    from amos_fairseq.models.amos import AmosModel
    from amos_fairseq.tasks.amos_rtd import AmosRTDConfig, AmosRTDTask

    dictionary = Dictionary()
    for i in range(vocab_words):
        dictionary.add_symbol(f"w{i}")
    task = AmosRTDTask(AmosRTDConfig(data="unused", tokens_per_sample=32), dictionary)
    args = argparse.Namespace(arch=arch, criterion=criterion, **overrides)
    ARCH_CONFIG_REGISTRY[arch](args)
    return AmosModel.build_model(args, task), task


def random_batch(task, batch=4, length=20, mask_prob=0.3, seed=0):
    """A batch shaped like the task's: (net_input dict, target [B, T]). Some rows padded."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d = task.dictionary
    target = torch.randint(d.nspecial, task.mask_idx, (batch, length), generator=g)
    target[:, 0] = d.bos()
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
    lengths[0] = length
    for i, n in enumerate(lengths.tolist()):
        target[i, n - 1] = d.eos()
        target[i, n:] = d.pad()
    real = target.ge(d.nspecial)
    masked = (torch.rand(target.shape, generator=g) < mask_prob) & real
    masked[:, 1] = True  # at least one per row
    src = target.masked_fill(masked, task.mask_idx)
    return {"src_tokens": src, "src_lengths": lengths, "masked_tokens": masked}, target


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch.set_num_threads(1) for a module's in-process work, restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
