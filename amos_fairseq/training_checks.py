"""Checks of the flags that judge a training run, made where training starts.

A saved model is rebuilt from its checkpoint's config wherever it is used: exported, scored
or fine-tuned on another machine. That config keeps the flags of the run that wrote it
(``--fp16`` from a GPU cluster, a ``--restore-file`` that has since moved), and none of them
matters once the weights exist. So these checks run when fairseq builds a model for a new
run, and never when it rebuilds one from a checkpoint.
"""

import importlib.util
import sys

import torch

from .checkpoint_file import CheckpointFileError, check_checkpoint_file


class TrainingConfigError(ValueError):
    """Training flags this machine or these files cannot honour; raised before anything is written."""


def rebuilt_from_checkpoint() -> bool:
    """Whether the model being built is a saved one that fairseq rebuilds from its config.

    ``checkpoint_utils.load_model_ensemble_and_task`` (export, scoring, fairseq's hub) calls
    ``task.build_model(cfg.model, from_checkpoint=True)``; fairseq-train calls it without.
    ``fairseq.models.build_model`` receives that flag but does not hand it to the model class,
    so it is read from that function's frame on the call stack.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "build_model" and frame.f_globals.get("__name__") == "fairseq.models":
            return bool(frame.f_locals.get("from_checkpoint", False))
        frame = frame.f_back
    return False


def check_training_run(args) -> None:
    """The checks of a new training run (pretraining or fine-tuning)."""
    check_restore_file(args)
    check_precision(args)
    check_layerwise_lr_decay(args)


def check_layerwise_lr_decay(args) -> None:
    """--layerwise-lr-decay sets per-parameter scales that only --optimizer scaled_adam reads,
    and that fp16's flattened fp32 copy of the weights would lose."""
    decay = getattr(args, "layerwise_lr_decay", 1.0)
    if decay is None or decay == 1.0:
        return
    if not 0.0 < decay <= 1.0:
        raise TrainingConfigError(f"--layerwise-lr-decay must lie in (0, 1], got {decay} (ELECTRA: 0.8, large: 0.9)")
    optimizer = getattr(args, "optimizer", None)
    if optimizer is not None and optimizer not in ("scaled_adam", "composite"):
        raise TrainingConfigError(
            f"--layerwise-lr-decay {decay} needs --optimizer scaled_adam (--optimizer {optimizer} would "
            "train every layer at the same learning rate)"
        )
    flattened = getattr(args, "fp16", False) and not getattr(args, "memory_efficient_fp16", False)
    if flattened and not getattr(args, "fp16_no_flatten_grads", False):
        raise TrainingConfigError(
            f"--layerwise-lr-decay {decay} with --fp16 needs --fp16-no-flatten-grads (the flattened "
            "fp32 copy of the weights has no per-layer scales)"
        )


def check_precision(args) -> None:
    """Half precision that fairseq 0.12 cannot run here stops with the fix, not deep inside
    fairseq: --fp16 needs a CUDA GPU ("Torch not compiled with CUDA enabled"), and --bf16
    implies --tpu there, so it needs torch_xla (an XLA attribute error otherwise, on GPUs too)."""
    if getattr(args, "bf16", False) and importlib.util.find_spec("torch_xla") is None:
        raise TrainingConfigError(
            "--bf16 in fairseq 0.12 means TPU training (it implies --tpu) and needs torch_xla, "
            "which is not installed: on a GPU use --fp16 (or --amp); on the CPU drop it to train in fp32"
        )
    if getattr(args, "fp16", False) and not torch.cuda.is_available():
        raise TrainingConfigError(
            "--fp16 needs a CUDA GPU and this machine has none (torch.cuda.is_available() is "
            "False): drop --fp16 to train in fp32 on the CPU"
        )


def check_restore_file(args) -> None:
    """fairseq trains from random weights, with one info line, when ``--restore-file`` names a
    file that does not exist (a fine-tuning run would silently score an untrained model), and
    dies deep in ``torch.load`` on a truncated one: both stop here, before anything is written."""
    restore = getattr(args, "restore_file", None)
    if restore and restore != "checkpoint_last.pt":
        try:
            check_checkpoint_file(restore, "--restore-file")
        except CheckpointFileError as e:
            raise TrainingConfigError(
                f"{e}; or leave --restore-file out to start from random weights"
            ) from None
