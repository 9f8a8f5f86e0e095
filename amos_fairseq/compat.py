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
"""

import functools
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


def install() -> None:
    """Point fairseq's checkpoint and distributed helpers at the trusting namespace."""
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils

    for module in (checkpoint_utils, distributed_utils):
        if not getattr(module.torch, "_amos_trusting_load", False):
            namespace = _trusting_torch_namespace()
            namespace._amos_trusting_load = True
            module.torch = namespace


install()
