"""amos-fairseq: ELECTRA-style pretraining with AMOS and focal-hardness replacement sampling.

Point fairseq at this folder with ``--user-dir amos_fairseq``. The compatibility shims are
imported first, then the task, the model and its architectures, the criteria and the optimizer register
themselves with fairseq.
"""

from . import compat  # noqa: F401  (must come first)
from . import criteria, models, optim, tasks  # noqa: F401

__version__ = "0.1.0"
