"""Optimizers the plug-in registers with fairseq."""

from . import scaled_adam  # noqa: F401
