from . import amos  # noqa: F401
