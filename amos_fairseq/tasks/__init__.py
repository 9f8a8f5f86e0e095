from . import amos_rtd  # noqa: F401
