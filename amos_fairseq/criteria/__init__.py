"""Replacement strategies: each criterion draws replacements and computes its objective."""

from . import electra  # noqa: F401
