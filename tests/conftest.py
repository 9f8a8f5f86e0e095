"""Shared fixtures: a tiny real corpus binarized once per session, and a fairseq-train runner."""

import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORPUS = ROOT / "examples" / "data" / "corpus.txt.xz"

# Small enough for seconds-long CPU runs, real English prose.
TINY_TRAIN_ARGS = [
    "--user-dir", str(ROOT / "amos_fairseq"),
    "--task", "amos_rtd",
    "--tokens-per-sample", "64",
    "--batch-size", "16",
    "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
    "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "5",
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


def fairseq_train(data, save_dir, *args, check=True, env=None):
    """Run the real fairseq-train CLI; returns the CompletedProcess (stdout+stderr in .stdout)."""
    cmd = [str(BIN / "fairseq-train"), str(data), "--save-dir", str(save_dir), *TINY_TRAIN_ARGS, *map(str, args)]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})}, cwd=str(ROOT),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"fairseq-train failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc


def parse_log(text: str, kind: str = "train_inner"):
    """Rows of metrics from fairseq's simple log format, for lines of ``kind``."""
    rows = []
    for line in text.splitlines():
        if f"| {kind} |" not in line:
            continue
        body = line.split(f"| {kind} |", 1)[1]
        row = {}
        for part in body.replace("|", ",").split(","):
            part = part.strip()
            if "=" in part:
                key, value = part.split("=", 1)
            elif " " in part:
                key, value = part.rsplit(" ", 1)
            else:
                continue
            try:
                row[key.strip()] = float(value)
            except ValueError:
                pass
        rows.append(row)
    return rows
