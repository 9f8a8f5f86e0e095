"""ELECTRA: replacements sampled from the generator at temperature 1, no gradient."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion

from ..models.amos import Replacement
from ..modules.generator import GeneratorOutput
from .rtd import RTDCriterion, RTDCriterionConfig
from .sampling import gumbel_max


@dataclass
class ElectraCriterionConfig(RTDCriterionConfig):
    pass


@register_criterion("electra", dataclass=ElectraCriterionConfig)
class ElectraCriterion(RTDCriterion):
    """L = sum_depths MLM + lambda * RTD, replacements ~ softmax(deepest generator logits).

    With several generator depths every depth's MLM loss is trained and the deepest one
    proposes the replacements.
    """

    def __init__(self, task, rtd_weight: float, focal_gamma: float):
        super().__init__(task, rtd_weight, focal_gamma)

    def sample(self, model, generated: GeneratorOutput) -> Replacement:
        return Replacement(tokens=gumbel_max(generated.logits[-1].detach(), exclude=model.unplaceable_index))
