"""AMOS: an adversarial, learned mixture over shared-depth generators chooses the replacements.

For M masked positions, K generator depths and a vocabulary of V:

1. L_gen = sum_k weight_k * MLM(z^(k)) (``--generator-loss-weights``, default all 1).
2. pi_t = softmax_k(w . h_t^(k)): the model's bias-free ``mixture_scorer`` on each depth's
   hidden state.
3. zbar_t = sum_k pi_tk * stopgrad(z_t^(k)), a mixture in logit space, accumulated depth by
   depth (no [M, V, K] tensor) in fp32. The generators' own logits get no gradient from the
   discriminator.
4. A straight-through Gumbel-softmax at ``--gumbel-temperature``: the placed token is an
   exact sample from softmax(zbar_t) whatever the temperature; the backward pass uses the
   soft sample.
5. The soft sample's gradient is multiplied by ``-adversarial_scale`` before it reaches the
   mixture, so one backward pass trains the discriminator to detect replacements and the
   mixture (w and, through h, the generator layers) to make them harder to detect.

The model adds ``relaxed @ E`` (zero in value) to the discriminator's input embeddings at the
masked positions, so the forward pass sees exactly E[placed token]. RTD labels, the RTD loss,
normalisation and the common metrics come from ``RTDCriterion``.

With a single generator depth pi is identically 1 and zbar = z: the criterion is ELECTRA with
an exact Gumbel-max sample at temperature 1, and the mixture scorer gets a zero gradient.
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.logging import metrics

from ..models.amos import PretrainingOutput, Replacement
from ..modules.generator import GeneratorOutput
from .rtd import RTDCriterion, RTDCriterionConfig
from .sampling import reverse_gradient, straight_through_gumbel_softmax

logger = logging.getLogger(__name__)


@dataclass
class AmosCriterionConfig(RTDCriterionConfig):
    generator_loss_weights: str = field(
        default="",
        metadata={
            "help": "comma-separated weights of each depth's MLM loss, shallow to deep "
            "(e.g. 1,1,1 for --generator-depths 4,6,8); empty: 1 for every depth"
        },
    )
    gumbel_temperature: float = field(
        default=0.3,
        metadata={
            "help": "temperature of the soft sample whose gradient trains the mixture; the "
            "placed tokens are exact samples from the mixed logits at any temperature"
        },
    )
    adversarial_scale: float = field(
        default=1.0,
        metadata={
            "help": "the mixture's gradient is the discriminator's times -scale: 1 trains it "
            "against the discriminator, 0 leaves it untrained (non-adversarial ablation)"
        },
    )


class AmosConfigError(ValueError):
    """Criterion options that do not fit the model."""


def parse_loss_weights(spec: str) -> List[float]:
    """'1,0.5,1' -> [1.0, 0.5, 1.0]; '' -> [] (meaning: 1 for every depth)."""
    try:
        return [float(w) for w in str(spec).replace(" ", "").split(",") if w != ""]
    except ValueError:
        raise AmosConfigError(
            f"--generator-loss-weights must be comma-separated numbers like 1,1,1, got {spec!r}"
        )


def mixture_weights(model, generated: GeneratorOutput) -> torch.Tensor:
    """pi [M, K] in fp32: softmax over depths of the mixture scorer on each depth's hidden."""
    if getattr(model, "mixture_scorer", None) is None:
        raise AmosConfigError(
            "--criterion amos needs the model's mixture scorer, but this model was built "
            "without one (the amos model builds it only when the criterion is amos): build "
            "the model with --criterion amos, or use --criterion electra for this model"
        )
    scores = model.mixture_scorer(torch.stack(generated.hiddens))  # [M, K]
    return torch.softmax(scores.float(), dim=-1)


class _MixLogits(torch.autograd.Function):
    """zbar = sum_k weights[:, k] * logits_k (logits detached), fp32, unplaceable at -inf.

    Autograd would keep an fp32 copy of every depth's [M, V] logits for the gradient of the
    weights; this keeps references to the logits the generator made anyway and computes
    grad_weights[:, k] = <grad, logits_k> row by row in backward.
    """

    @staticmethod
    def forward(ctx, weights, unplaceable_index, *logits):
        zbar = logits[0].float() * weights[:, :1]
        for k in range(1, len(logits)):
            zbar.addcmul_(logits[k].float(), weights[:, k : k + 1])
        zbar.index_fill_(-1, unplaceable_index, float("-inf"))
        ctx.save_for_backward(unplaceable_index, *logits)
        return zbar

    @staticmethod
    def backward(ctx, grad):
        unplaceable_index, *logits = ctx.saved_tensors
        grad = grad.float()
        filled = grad.index_select(-1, unplaceable_index)  # [M, X]: entries that have no w
        columns = []
        for z in logits:
            z = z.float()
            full = torch.bmm(grad.unsqueeze(1), z.unsqueeze(-1)).view(-1)  # [M]: <grad_m, z_m>
            columns.append(full - (filled * z.index_select(-1, unplaceable_index)).sum(-1))
        return (torch.stack(columns, dim=-1), None) + (None,) * len(logits)


def mixed_logits(model, generated: GeneratorOutput, weights: torch.Tensor) -> torch.Tensor:
    """zbar [M, V] fp32 = sum_k weights[:, k] * stopgrad(z^(k)), unplaceable symbols at -inf.

    Gradient only to ``weights`` [M, K]; memory O(M * V) for any number of depths.
    """
    logits = [z.detach() for z in generated.logits]
    return _MixLogits.apply(weights, model.unplaceable_index, *logits)


@register_criterion("amos", dataclass=AmosCriterionConfig)
class AmosCriterion(RTDCriterion):
    """L = sum_k weight_k * MLM_k + lambda * RTD with mixture-adversarial replacements
    (see the module docstring)."""

    def __init__(
        self,
        task,
        rtd_weight: float,
        focal_gamma: float,
        generator_loss_weights: str = "",
        gumbel_temperature: float = 0.3,
        adversarial_scale: float = 1.0,
    ):
        super().__init__(task, rtd_weight, focal_gamma)
        self.loss_weights = parse_loss_weights(generator_loss_weights)
        if not gumbel_temperature > 0:
            raise AmosConfigError(f"--gumbel-temperature must be positive, got {gumbel_temperature}")
        self.gumbel_temperature = gumbel_temperature
        self.adversarial_scale = adversarial_scale
        self._warned_single_depth = False

    # -------------------------------------------------------------- hooks

    def generator_loss_weights(self, depths: List[int]) -> List[float]:
        if not self.loss_weights:
            return [1.0] * len(depths)
        if len(self.loss_weights) != len(depths):
            raise AmosConfigError(
                f"--generator-loss-weights gives {len(self.loss_weights)} weights but the model "
                f"has {len(depths)} generator depths {depths}: give one weight per depth"
            )
        return self.loss_weights

    def sample(self, model, generated: GeneratorOutput) -> Replacement:
        """Tokens [M] ~ softmax(zbar) and the reversed straight-through relaxation [M, V]."""
        if len(generated.depths) == 1 and not self._warned_single_depth:
            logger.warning(
                "--criterion amos with a single generator depth (%s): the mixture is constant, "
                "so this is ELECTRA with Gumbel-max sampling; give --generator-depths several "
                "depths (e.g. 4,6,8) for AMOS",
                generated.depths[0],
            )
            self._warned_single_depth = True
        weights = mixture_weights(model, generated)  # [M, K]
        zbar = mixed_logits(model, generated, weights)  # [M, V]
        tokens, relaxed = straight_through_gumbel_softmax(zbar, self.gumbel_temperature)
        if relaxed is not None:  # None in validation (no gradient)
            relaxed = reverse_gradient(relaxed, self.adversarial_scale)
        return Replacement(tokens=tokens, relaxed=relaxed, extras={"mixture_weights": weights.detach()})

    def extra_losses(self, out: PretrainingOutput, rtd_labels, rtd_logits, masked_in_non_pad, log: Dict):
        """No extra loss; logs the mixture weights and entropy as sums over masked positions."""
        weights = out.replacement.extras["mixture_weights"]  # [M, K]
        for depth, column in zip(out.generator.depths, weights.unbind(-1)):
            log[f"mix_w_d{depth}"] = column.sum()
        log["mix_entropy"] = -(weights * weights.clamp(min=1e-12).log()).sum()
        return 0.0

    # -------------------------------------------------------------- metrics

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)

        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        masked = max(total("sample_size"), 1)
        keys = logging_outputs[0].keys() if logging_outputs else ()
        for key in keys:
            if key.startswith("mix_w_d"):
                metrics.log_scalar(key, total(key) / masked, masked, round=4)
        if "mix_entropy" in keys:
            # in nats; log(K) is a uniform mixture
            metrics.log_scalar("mix_entropy", total("mix_entropy") / masked, masked, round=4)
