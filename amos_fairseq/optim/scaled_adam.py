"""``--optimizer scaled_adam``: fairseq's Adam with a learning-rate scale per parameter.

A parameter may carry fairseq's own per-parameter override, ``p.optim_overrides =
{"optimizer": {"lr_scale": s}}`` (what fairseq's composite optimizer reads, and what its fp16
optimizers copy to their fp32 parameters when grads are not flattened); this optimizer puts
the parameters of each scale in one group and keeps every group's learning rate at the
scheduler's value times its scale. The amos model sets the scales for ELECTRA's layer-wise
learning-rate decay (``--layerwise-lr-decay``, models/amos.py).
"""

from dataclasses import dataclass
from typing import Dict, List

from fairseq.optim import register_optimizer
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig


def lr_scale(param) -> float:
    overrides = getattr(param, "optim_overrides", None) or {}
    return float(overrides.get("optimizer", {}).get("lr_scale", 1.0))


def groups_by_scale(params) -> List[Dict]:
    """[{"params": [...], "lr_scale": s}, ...], one group per scale, the unscaled group first."""
    groups: Dict[float, list] = {}
    for p in params:
        groups.setdefault(lr_scale(p), []).append(p)
    order = sorted(groups, key=lambda s: (s != 1.0, -s))
    return [{"params": groups[s], "lr_scale": s} for s in order]


@dataclass
class ScaledAdamConfig(FairseqAdamConfig):
    pass


@register_optimizer("scaled_adam", dataclass=ScaledAdamConfig)
class ScaledAdam(FairseqAdam):
    """Adam whose parameter groups run at lr x their ``lr_scale`` (module docstring)."""

    def __init__(self, cfg: ScaledAdamConfig, params):
        params = list(params)
        if params and isinstance(params[0], dict):
            raise ValueError("scaled_adam builds its own parameter groups: pass parameters, not groups")
        super().__init__(cfg, groups_by_scale(params))
        self.set_lr(self.optimizer_config["lr"])

    def get_lr(self):
        """The scheduler's learning rate (that of the parameters without a scale)."""
        group = self.param_groups[0]
        return group["lr"] / group.get("lr_scale", 1.0)

    def set_lr(self, lr):
        for group in self.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
