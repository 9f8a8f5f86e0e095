"""No token of a corpus is dropped: lines longer than a block become several pieces.

A corpus with one paragraph per line (Wikipedia dumps, web text) holds lines of hundreds or
thousands of tokens. Each break mode must serve every one of them, and the task must say
how many it serves.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ONE_THREAD, ROOT, fairseq_train, parse_log, write_corpus_slice

from amos_fairseq.tasks.line_pieces import LinePiecesDataset


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, lines):
        self.lines = [torch.as_tensor(line) for line in lines]
        self.sizes = np.array([len(line) for line in lines])

    def __getitem__(self, i):
        return self.lines[i]

    def __len__(self):
        return len(self.lines)


def test_pieces_cover_every_line_in_order_and_fit_the_block():
    rng = np.random.default_rng(0)
    eos = 2
    lines = []
    for size in [1, 2, 7, 8, 9, 16, 17, 1000, 1001] + list(rng.integers(1, 300, 200)):
        lines.append(np.concatenate([rng.integers(4, 100, size - 1), [eos]]))
    for max_len in (1, 2, 8, 127):
        pieces = LinePiecesDataset(ListDataset(lines), max_len)
        got = [pieces[j].numpy() for j in range(len(pieces))]
        assert all(len(p) <= max_len for p in got)
        assert [len(p) for p in got] == list(pieces.sizes)
        np.testing.assert_array_equal(np.concatenate(got), np.concatenate(lines))
        # Fewest pieces, of nearly equal size: a line of n tokens gives ceil(n / max_len).
        assert len(got) == sum(-(-len(line) // max_len) for line in lines)
        for line in range(len(lines)):
            sizes = pieces.sizes[pieces.line_of_piece == line]
            assert sizes.max() - sizes.min() <= 1
        if max_len >= 4:
            # Only an empty line (a lone </s>) is a one-token piece (each piece of a longer
            # line holds more than max_len / 2 tokens): complete_doc reads those as document
            # boundaries.
            assert sum(len(p) == 1 for p in got) == sum(len(line) == 1 for line in lines)
        assert pieces.num_long_lines == sum(len(line) > max_len for line in lines)


@pytest.fixture(scope="module")
def long_line_corpus(tmp_path_factory):
    """A prepared corpus whose paragraphs are one line each: 20 lines of about 1,500 tokens,
    short lines between them and blank lines separating three documents."""
    work = tmp_path_factory.mktemp("long_lines")
    sentences = write_corpus_slice(work / "slice.txt", 1500).read_text(encoding="utf-8").splitlines()
    text = []
    for i in range(20):
        text.append(" ".join(sentences[i * 60 : (i + 1) * 60]))  # one paragraph per line
        text.append(sentences[1200 + i])
        if i in (6, 13):
            text.append("")
    (work / "paragraphs.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    out = work / "prepared"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_corpus.py"), str(work / "paragraphs.txt"),
         "--out", str(out), "--vocab-size", "600", "--valid-lines", "4"],
        check=True, capture_output=True, text=True,
    )
    return out


def corpus_tokens(spm_file):
    """Tokens of an encoded split as fairseq binarizes it: each line's pieces and its </s>."""
    lines = spm_file.read_text(encoding="utf-8").splitlines()
    return [line.split() for line in lines], sum(len(line.split()) + 1 for line in lines)


def test_every_token_of_a_long_line_corpus_reaches_a_block(long_line_corpus):
    from fairseq.data import data_utils

    from amos_fairseq.tasks.amos_rtd import AmosRTDConfig, AmosRTDTask

    lines, expected = corpus_tokens(long_line_corpus / "train.spm")
    assert max(len(line) for line in lines) >= 1000
    data = str(long_line_corpus / "data-bin")
    for mode in ("complete", "complete_doc", "eos", "none"):
        task = AmosRTDTask.setup_task(AmosRTDConfig(data=data, tokens_per_sample=128, sample_break_mode=mode))
        task.load_dataset("train")
        dataset = task.datasets["train"]
        targets = [dataset[i]["target"] for i in range(len(dataset))]
        order = np.argsort([dataset[i]["id"] for i in range(len(dataset))])
        assert max(len(t) for t in targets) <= 128
        assert all(int(t[0]) == task.dictionary.bos() for t in targets)
        served = torch.cat([targets[i][1:] for i in order])  # blocks in corpus order, <s> aside
        raw = data_utils.load_indexed_dataset(data + "/train", task.dictionary)
        lines = [raw[i] for i in range(len(raw))]
        if mode == "complete_doc":  # empty lines separate documents and are not text
            lines = [line for line in lines if len(line) > 1]
        np.testing.assert_array_equal(served.numpy(), torch.cat(lines).numpy())
        assert len(served) == expected - (2 if mode == "complete_doc" else 0), mode


@pytest.mark.parametrize("mode", ["complete", "complete_doc", "eos", "none"])
def test_each_break_mode_trains_and_logs_the_tokens_it_serves(long_line_corpus, tmp_path, mode):
    _, expected = corpus_tokens(long_line_corpus / "train.spm")
    proc = fairseq_train(
        long_line_corpus / "data-bin", tmp_path / "ckpt",
        "--arch", "electra_tiny", "--criterion", "electra", "--sample-break-mode", mode,
        "--tokens-per-sample", "128", "--max-update", "3", "--batch-size", "4", "--no-save",
        env=ONE_THREAD,
    )
    served = re.search(r"train: the blocks serve ([\d,]+) of the data's ([\d,]+) tokens(.*)", proc.stdout)
    assert served, proc.stdout[-3000:]
    boundaries = 2 if mode == "complete_doc" else 0  # the corpus's two empty lines
    assert int(served.group(2).replace(",", "")) == expected
    assert int(served.group(1).replace(",", "")) == expected - boundaries
    assert "none dropped" in served.group(3)
    if boundaries:
        assert "2 empty lines mark document boundaries" in served.group(3)
    if mode != "none":
        assert "lines longer than 127 tokens split into pieces" in served.group(3)
    last = parse_log(proc.stdout, "train")[-1]
    assert last["num_updates"] == 3 and np.isfinite(last["loss"])


def test_shortening_is_logged_as_what_drops_tokens(long_line_corpus, tmp_path):
    proc = fairseq_train(
        long_line_corpus / "data-bin", tmp_path / "ckpt",
        "--arch", "electra_tiny", "--criterion", "electra", "--shorten-method", "truncate",
        "--tokens-per-sample", "128", "--max-update", "1", "--batch-size", "4", "--no-save",
        env=ONE_THREAD,
    )
    assert re.search(r"train: the blocks serve [\d,]+ of the data's [\d,]+ tokens .*dropped by "
                     r"--shorten-method truncate", proc.stdout), proc.stdout[-3000:]
