"""Replacement strategies: each criterion draws replacements and computes its objective."""

from . import electra  # noqa: F401
from . import amos  # noqa: F401
from . import focal_hardness  # noqa: F401
