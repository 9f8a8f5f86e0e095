"""The compatibility module: fairseq's checkpoint copies are atomic (a kill or an error during
the copy leaves the previous file whole), and torch.load stays safe outside fairseq."""

import shutil

import pytest
import torch

import amos_fairseq  # noqa: F401  (installs the shims)
from fairseq import checkpoint_utils


def test_checkpoint_copy_replaces_the_file_whole(tmp_path):
    src, dst = tmp_path / "checkpoint_1_100.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(b"new" * 1000)
    dst.write_bytes(b"old")
    assert checkpoint_utils.PathManager.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == b"new" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1_100.pt", "checkpoint_last.pt"]


def test_interrupted_checkpoint_copy_leaves_the_previous_file(tmp_path, monkeypatch):
    src, dst = tmp_path / "checkpoint_1_100.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(b"new" * 1000)
    dst.write_bytes(b"old")

    def half_copy(a, b):
        with open(b, "wb") as f:
            f.write(b"ne")  # what a kill mid-copy leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_utils.PathManager.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1_100.pt", "checkpoint_last.pt"]


def test_torch_load_keeps_its_safe_default_outside_fairseq(tmp_path):
    import argparse

    torch.save({"args": argparse.Namespace(a=1)}, tmp_path / "x.pt")
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        torch.load(tmp_path / "x.pt")
    assert checkpoint_utils.torch.load(tmp_path / "x.pt")["args"].a == 1


def test_exit_handler_stops_fairseqs_batch_prefetching_thread():
    """A finished run's prefetching thread, blocked on a full queue or making a batch, ends
    before the interpreter finalizes (a daemon thread inside torch then aborts the exit)."""
    import time

    from fairseq.data import iterators

    from amos_fairseq.compat import _stop_batch_prefetching

    class Batches:
        def __len__(self):
            return 1000

        def __iter__(self):
            for i in range(1000):
                time.sleep(0.01)  # a batch being collated
                yield i

    iterator = iterators.BufferedIterator(2, Batches())
    first = next(iter(iterator))
    assert first == 0
    consumer = iterator._consumer
    time.sleep(0.1)  # the queue fills; the thread blocks in put or is making the next batch
    assert consumer.is_alive()
    _stop_batch_prefetching(timeout=5.0)
    assert not consumer.is_alive() and consumer.count < 1000
