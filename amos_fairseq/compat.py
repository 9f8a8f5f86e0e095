"""Compatibility shims for the installed fairseq, imported before anything else.

fairseq 0.12 pickles ``argparse.Namespace`` and omegaconf objects into its checkpoints and
reads them back with ``torch.load``. Since torch 2.6 ``torch.load`` defaults to
``weights_only=True``, which refuses those objects (``Unsupported global``), so resuming,
``--restore-file``, ``checkpoint_utils.load_model_ensemble_and_task`` and the distributed
broadcast of the resumed state (rank 0 pickles it through ``torch.load``) all fail.

The fix is deliberately narrow: only fairseq's ``checkpoint_utils`` and
``distributed.utils`` modules, which load the user's own checkpoints and the process
group's own messages, see a ``torch`` whose ``load`` defaults to ``weights_only=False``.
``torch.load`` itself, and every other caller in the process, keep torch's safe default.

Second, fairseq writes a checkpoint atomically once and then *copies* it in place to its
other names (``checkpoint_last.pt``, ``checkpoint_best.pt``, ...); a kill during that copy
leaves a truncated ``checkpoint_last.pt`` and the next resume dies in ``torch.load``. The
``PathManager`` that ``checkpoint_utils`` sees copies local files to a temporary name in the
same folder and renames it into place, so each name holds either the old or the new file.

Third, fairseq's ``TokenBlockDataset`` builds ``--sample-break-mode eos`` blocks with
``np.compat.long``, and ``numpy.compat`` is gone in numpy 2. That module alone sees a
``numpy`` whose ``compat.long`` is ``np.int64`` (what it was on 64-bit Linux).

Fourth, fairseq collates batches ahead in a daemon thread (``iterators.BackgroundConsumer``);
a daemon thread still inside a torch call when the interpreter finalizes aborts a finished run
at exit ("terminate called without an active exception", exit status -6, after the last
checkpoint is written). An exit handler lets each such thread finish the batch in hand and stop.

Fifth, fairseq never destroys its process group, which PyTorch asks every program to do
before it exits (communicator threads left running can abort the exit of a finished run).
An exit handler destroys the group.
"""

import atexit
import functools
import os
import shutil
import types

import torch


def _trusting_torch_namespace() -> types.ModuleType:
    """A stand-in for the ``torch`` module whose ``load`` defaults to ``weights_only=False``."""
    namespace = types.ModuleType("torch")

    @functools.wraps(torch.load)
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(*args, **kwargs)

    namespace.load = load
    # Every other attribute resolves to the real torch module.
    namespace.__getattr__ = lambda name: getattr(torch, name)
    return namespace


def _atomic_copy_path_manager(path_manager):
    """A subclass of fairseq's PathManager whose ``copy`` of a local file is atomic."""

    class AtomicCopyPathManager(path_manager):
        @staticmethod
        def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
            if path_manager.path_requires_pathmanager(dst_path):
                return path_manager.copy(src_path, dst_path, overwrite=overwrite)
            if not overwrite and os.path.exists(dst_path):
                return False
            tmp = f"{dst_path}.tmp{os.getpid()}"
            try:
                shutil.copyfile(src_path, tmp)
                os.replace(tmp, dst_path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            return True

    AtomicCopyPathManager._amos_atomic_copy = True
    return AtomicCopyPathManager


def _numpy_with_compat_namespace() -> types.ModuleType:
    """A stand-in for the ``numpy`` module that also has numpy 1's ``compat.long``."""
    import numpy

    namespace = types.ModuleType("numpy")
    namespace.compat = types.SimpleNamespace(long=numpy.int64)
    namespace.__getattr__ = lambda name: getattr(numpy, name)
    return namespace


def _stop_batch_prefetching(timeout: float = 5.0) -> None:
    """At exit: each live fairseq ``BackgroundConsumer`` finishes the batch it is making and
    stops (its queue is drained so that its last ``put`` returns)."""
    import queue
    import threading
    import time

    from fairseq.data import iterators

    for thread in threading.enumerate():
        if not isinstance(thread, iterators.BackgroundConsumer) or not thread.is_alive():
            continue
        thread._max_len = 0  # its loop breaks after the next put (count >= max_len)
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                while True:
                    thread._queue.get_nowait()
            except queue.Empty:
                pass
            thread.join(0.05)


def _destroy_process_group() -> None:
    """At exit: release the process group, if this process still holds one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def install() -> None:
    """Point fairseq's checkpoint and distributed helpers at the trusting namespace, its
    checkpoint helpers at the atomic copy, and its token blocks at numpy with ``compat``."""
    from fairseq import checkpoint_utils
    from fairseq.data import token_block_dataset
    from fairseq.distributed import utils as distributed_utils

    if not getattr(checkpoint_utils.PathManager, "_amos_atomic_copy", False):
        checkpoint_utils.PathManager = _atomic_copy_path_manager(checkpoint_utils.PathManager)

    for module in (checkpoint_utils, distributed_utils):
        if not getattr(module.torch, "_amos_trusting_load", False):
            namespace = _trusting_torch_namespace()
            namespace._amos_trusting_load = True
            module.torch = namespace

    if not hasattr(token_block_dataset.np, "compat"):
        token_block_dataset.np = _numpy_with_compat_namespace()

    if not getattr(install, "_exit_handler", False):
        atexit.register(_destroy_process_group)
        atexit.register(_stop_batch_prefetching)  # runs first (atexit is last-in, first-out)
        install._exit_handler = True


install()
