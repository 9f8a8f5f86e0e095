"""Focal-hardness: a focal generator loss plus hardness-guided replacement sampling with
importance weights (after Hao et al., "Learning to Sample Replacements for ELECTRA
Pre-Training", 2021).

The paper's exact hardness head and formulas were not available; what is implemented here
is the importance-sampling formulation of its abstract, built from standard
importance-sampling theory:

1. Focal generator loss, mean over the masked positions M of
   ``-(1 - p_t(x_t))^gamma * log p_t(x_t)`` (``--focal-gamma``, default 1; 0 is plain MLM),
   so the generator stops putting nearly all its mass on the original token.
2. A hardness head on the generator's last hidden state gives vocabulary logits u_t;
   ``h_t(v) = sigmoid(u_t(v))`` predicts the discriminator's error probability at t if v were
   placed there, 1 - P_D(correct label). That is the magnitude of the RTD loss gradient at
   the discriminator's logit, the quantity variance-optimal importance sampling is
   proportional to. It is trained by BCE on the placed token only, against the realised
   error probability at t (detached).
3. Proposal ``q_t(v) ~ p_t(v) * (h_t(v) + eps)^alpha``, drawn by Gumbel-max on
   ``log p_t + alpha * log(h_t + eps)`` in fp32, without gradient; alpha ramps linearly from
   0 over ``--hardness-warmup-updates`` while the head is still untrained. ``eps`` keeps q > 0
   wherever p > 0 and bounds the weights below.
4. Importance weights ``w_t = p_t(v_t) / q_t(v_t)``, detached, clipped at
   ``--max-importance-weight`` and normalised to mean 1 over the batch's masked positions,
   multiply the RTD loss at masked positions. This is an *approximation* to ELECTRA's
   objective, not an unbiased estimate of it: w_t corrects the loss at the replaced position
   t for the changed proposal, but the loss at every other position of the sequence also
   depends on the draw at t (the discriminator reads the whole sequence), and an exact
   correction would weight every position by the product of the sequence's weights, whose
   variance is unusable. The clip and the per-micro-batch normalisation add their own bias.
   The discriminator thus sees more of the replacements it gets wrong, with the
   replaced-position term reweighted towards ELECTRA's. ``--no-importance-weights`` gives
   plain hard-negative sampling.

Normalisation follows ``RTDCriterion``: every term is a sum, ``sample_size`` = |M|, so the
hardness BCE enters as ``hardness_loss_weight * sum_M(BCE)``, i.e. a mean per masked
position after fairseq's division, like the generator loss.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.logging import metrics

from ..models.amos import PretrainingOutput, Replacement
from ..modules.generator import GeneratorOutput
from .rtd import RTDCriterion, RTDCriterionConfig
from .sampling import gumbel_max


@dataclass
class FocalHardnessCriterionConfig(RTDCriterionConfig):
    focal_gamma: float = field(
        default=1.0, metadata={"help": "focal exponent of the generator loss (0 is plain MLM cross-entropy)"}
    )
    hardness_loss_weight: float = field(
        default=1.0, metadata={"help": "weight of the hardness head's BCE (per masked position, like the MLM loss)"}
    )
    hardness_alpha: float = field(
        default=1.0, metadata={"help": "exponent alpha of the proposal p * (h + eps)^alpha; 0 samples from p"}
    )
    hardness_warmup_updates: int = field(
        default=1000, metadata={"help": "updates over which alpha ramps linearly from 0 (the head starts untrained)"}
    )
    hardness_eps: float = field(
        default=0.1, metadata={"help": "eps in (h + eps)^alpha; bounds p/q by (E_p[h] + eps) / eps"}
    )
    max_importance_weight: float = field(
        default=10.0, metadata={"help": "clip the importance weights p/q at this value before normalising"}
    )
    no_importance_weights: bool = field(
        default=False, metadata={"help": "RTD loss unweighted: plain hard-negative sampling (biased)"}
    )
    hardness_detach_generator: bool = field(
        default=False,
        metadata={
            "help": "the hardness head reads a detached copy of the generator's hidden state, so "
            "its loss trains the head alone (default: it also trains the generator's layers)"
        },
    )


def hardness_proposal(log_p: torch.Tensor, hardness_logits: torch.Tensor, alpha: float, eps: float):
    """Draw from q ~ p * (sigmoid(u) + eps)^alpha by Gumbel-max, in fp32, without gradient.

    log_p [M, V] generator log-probabilities (-inf where nothing may be placed),
    hardness_logits u [M, V] -> (tokens [M] long, log_importance [M] = log p(v) - log q(v)).
    """
    with torch.no_grad():
        log_p = log_p.float()
        log_q = log_p
        if alpha != 0:
            log_h = torch.log(torch.sigmoid(hardness_logits.float()) + eps)
            log_q = torch.log_softmax(log_p + alpha * log_h, dim=-1)
        tokens = gumbel_max(log_q)
        picked = tokens.unsqueeze(-1)
        log_importance = (log_p.gather(-1, picked) - log_q.gather(-1, picked)).squeeze(-1)
    return tokens, log_importance


def discriminator_error(rtd_logits: torch.Tensor, replaced: torch.Tensor) -> torch.Tensor:
    """1 - P_D(correct label) from RTD logits [N] (>0 means 'replaced') and labels [N] bool."""
    prob_replaced = torch.sigmoid(rtd_logits.float())
    return torch.where(replaced, 1.0 - prob_replaced, prob_replaced)


@register_criterion("focal_hardness", dataclass=FocalHardnessCriterionConfig)
class FocalHardnessCriterion(RTDCriterion):
    """L = focal MLM + lambda * (importance-weighted) RTD + weight * hardness BCE.

    Replacements come from p * (h + eps)^alpha of the deepest generator; see the module
    docstring for the formulation and its provenance.
    """

    def __init__(
        self,
        task,
        rtd_weight: float,
        focal_gamma: float,
        hardness_loss_weight: float,
        hardness_alpha: float,
        hardness_warmup_updates: int,
        hardness_eps: float,
        max_importance_weight: float,
        no_importance_weights: bool,
        hardness_detach_generator: bool = False,
    ):
        super().__init__(task, rtd_weight, focal_gamma)
        if hardness_eps <= 0 and not no_importance_weights:
            raise ValueError(
                f"--hardness-eps must be > 0 (got {hardness_eps}): with eps 0 the proposal can give "
                "probability 0 to tokens the generator proposes and their importance weights "
                "are undefined; use e.g. --hardness-eps 0.1, or --no-importance-weights"
            )
        if max_importance_weight <= 0:
            raise ValueError(f"--max-importance-weight must be > 0, got {max_importance_weight}")
        if hardness_warmup_updates < 0:
            raise ValueError(f"--hardness-warmup-updates must be >= 0, got {hardness_warmup_updates}")
        self.hardness_loss_weight = hardness_loss_weight
        self.hardness_alpha = hardness_alpha
        self.hardness_warmup_updates = hardness_warmup_updates
        self.hardness_eps = hardness_eps
        self.max_importance_weight = max_importance_weight
        self.use_importance_weights = not no_importance_weights
        self.hardness_detach_generator = hardness_detach_generator

    # ------------------------------------------------------------------ schedule

    @property
    def current_alpha(self) -> float:
        """alpha ramped linearly from 0 over the warm-up updates."""
        if self.hardness_warmup_updates <= 0:
            return self.hardness_alpha
        return self.hardness_alpha * min(1.0, self.num_updates / self.hardness_warmup_updates)

    # ------------------------------------------------------------------ hooks

    def sample(self, model, generated: GeneratorOutput) -> Replacement:
        """Draw v_t ~ q_t from the deepest generator; keep what the losses need.

        extras: ``hardness_logit`` [M] u_t(v_t) with gradient (trains the head),
        ``log_importance`` [M] log p(v_t) - log q(v_t), detached.
        """
        head = getattr(model, "hardness_head", None)
        if head is None:
            raise RuntimeError(
                "--criterion focal_hardness needs the model's hardness head, which is built when "
                "the model is created with --criterion focal_hardness; this model has none: "
                "build it with that flag"
            )
        hidden = generated.hiddens[-1]  # [M, width]
        if self.hardness_detach_generator:
            hidden = hidden.detach()  # the hardness loss then trains the head alone
        features = head.features(hidden)  # [M, width], with gradient
        log_p = torch.log_softmax(self.unplaceable_fill(model, generated.logits[-1].detach().float()), dim=-1)
        with torch.no_grad():
            # Every candidate's hardness is needed only to draw; the loss reads the placed
            # token's logit alone, so no [M, V] gradient goes back through the output layer.
            hardness_logits = head.output(features)  # [M, V]
        tokens, log_importance = hardness_proposal(log_p, hardness_logits, self.current_alpha, self.hardness_eps)
        placed_logit = head.output_at(features, tokens)  # [M], with gradient
        return Replacement(tokens=tokens, extras={"hardness_logit": placed_logit, "log_importance": log_importance})

    def importance_weights(self, log_importance: torch.Tensor):
        """Raw log p/q [M] -> (applied weights [M], clipped raw weights [M], raw weights [M]).

        Applied = clipped and normalised to mean 1 over these M positions (all detached).
        """
        raw = log_importance.detach().float().exp()
        clipped = raw.clamp(max=self.max_importance_weight)
        return clipped / clipped.mean().clamp(min=1e-12), clipped, raw

    def rtd_weights(self, out: PretrainingOutput, masked_in_non_pad: torch.Tensor) -> Optional[torch.Tensor]:
        if not self.use_importance_weights:
            return None
        applied, _, _ = self.importance_weights(out.replacement.extras["log_importance"])
        weights = torch.ones(masked_in_non_pad.shape, dtype=applied.dtype, device=applied.device)
        return weights.index_copy(0, out.positions["masked_in_non_pad_index"], applied)

    def extra_losses(self, out: PretrainingOutput, rtd_labels, rtd_logits, masked_in_non_pad, log: Dict):
        extras = out.replacement.extras
        at_masked = out.positions["masked_in_non_pad_index"]  # [M], indices into the N tokens
        replaced = rtd_labels.index_select(0, at_masked)  # [M]
        target = discriminator_error(rtd_logits.detach().index_select(0, at_masked), replaced)
        placed_logit = extras["hardness_logit"].float()
        hardness_loss = F.binary_cross_entropy_with_logits(placed_logit, target, reduction="sum")

        _, clipped, raw = self.importance_weights(extras["log_importance"])
        log.update(
            hardness_loss=hardness_loss.detach(),
            hardness_pred=torch.sigmoid(placed_logit.detach()).sum(),
            hardness_target=target.sum(),
            sample_eq_orig=(~replaced).sum(),
            iw_sum=clipped.sum(),
            iw_sq_sum=clipped.pow(2).sum(),
            iw_raw_sum=raw.sum(),
            iw_clipped=(raw > self.max_importance_weight).sum(),
            # a sum like every entry, so that logs are all-reduced as one tensor across
            # workers: alpha times the masked positions, divided back in reduce_metrics
            hardness_alpha=self.current_alpha * replaced.numel(),
        )
        return self.hardness_loss_weight * hardness_loss

    # ------------------------------------------------------------------ metrics

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        if not logging_outputs or "iw_sum" not in logging_outputs[0]:
            return

        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        masked = total("sample_size")
        n = max(masked, 1)
        iw_sum, iw_sq_sum = total("iw_sum"), total("iw_sq_sum")
        metrics.log_scalar("hardness_loss", total("hardness_loss") / n, masked, round=4)
        metrics.log_scalar("hardness_pred", total("hardness_pred") / n, masked, round=4)
        metrics.log_scalar("hardness_target", total("hardness_target") / n, masked, round=4)
        metrics.log_scalar("sample_eq_orig", total("sample_eq_orig") / n, masked, round=4)
        # mean of the clipped weights before normalisation: about 1 unless the clip bites
        metrics.log_scalar("iw_mean", iw_sum / n, masked, round=4)
        # effective sample size per position, pooled over every micro-batch and worker
        metrics.log_scalar("iw_ess", iw_sum**2 / max(iw_sq_sum, 1e-12) / n, masked, round=4)
        # mean raw p/q: 1 when q = p; and the share of positions whose weight hit the clip
        metrics.log_scalar("iw_raw_mean", total("iw_raw_sum") / n, masked, round=4)
        metrics.log_scalar("iw_clip_rate", total("iw_clipped") / n, masked, round=4)
        metrics.log_scalar("hardness_alpha", total("hardness_alpha") / n, masked, round=3)
