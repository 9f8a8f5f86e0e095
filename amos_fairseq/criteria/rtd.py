"""What every replaced-token-detection objective shares: generator losses, the RTD loss,
normalisation and the common metrics. Strategies subclass ``RTDCriterion`` and implement
``sample`` (and, if they need to, ``rtd_weights`` and ``extra_losses``).

Normalisation. ELECTRA's objective is mean_M(MLM) + lambda * mean_N(RTD) over the M masked
positions and N non-pad tokens of a batch. fairseq sums losses over micro-batches and
workers and divides by the summed ``sample_size``, so the loss returned here is a plain sum
with ``sample_size = M``: sum_M(MLM) + lambda * mask_prob * sum_N(RTD). Since M is about
mask_prob * N, each RTD token weighs lambda / N as in ELECTRA, and gradient accumulation and
data parallelism give exactly the update of one big batch.

The weight that results is lambda * mask_prob * N / M, not exactly lambda: M counts only the
maskable tokens (``<s>`` and ``</s>`` are never masked but are RTD tokens), so at 128-token
blocks M / N is about 0.146 and the effective weight about 51.4 for lambda = 50. It is logged
as ``rtd_weight_effective``. A per-batch M / N instead of mask_prob would make it exact per
batch but break the equality of accumulated and one-big-batch updates.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import FairseqCriterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..models.amos import PretrainingOutput, Replacement
from ..modules.generator import GeneratorOutput
from .prior_watch import LabelPriorWatch, label_prior_loss


@dataclass
class RTDCriterionConfig(FairseqDataclass):
    rtd_weight: float = field(default=50.0, metadata={"help": "lambda: weight of the RTD loss (ELECTRA: 50)"})
    focal_gamma: float = field(
        default=0.0, metadata={"help": "focal exponent of the generator loss; 0 is plain MLM cross-entropy"}
    )


class _TargetLogProb(torch.autograd.Function):
    """log softmax(logits)[target] per row, without an [M, V] log-softmax kept for backward.

    Forward reads the logits once (logsumexp); backward writes the one [M, V] gradient
    g * (onehot(target) - softmax(logits)) in place. Autograd's log_softmax + gather would
    keep an fp32 [M, V] output per generator depth for backward and pass three more [M, V]
    tensors (a zero-filled scatter, the log-softmax gradient, the cast).
    """

    @staticmethod
    def forward(ctx, logits, targets):
        dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32, or fp64 for fp64 input
        lse = torch.logsumexp(logits.to(dtype), dim=-1)  # [M]
        picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).to(dtype)
        ctx.save_for_backward(logits, targets, lse)
        return picked - lse

    @staticmethod
    def backward(ctx, grad):
        logits, targets, lse = ctx.saved_tensors
        grad = grad.to(lse.dtype).unsqueeze(-1)  # [M, 1]
        grad_logits = logits.to(lse.dtype).sub(lse.unsqueeze(-1)).exp_().mul_(-grad)  # -g * softmax
        grad_logits.scatter_add_(-1, targets.unsqueeze(-1), grad)  # + g at the target
        return grad_logits.to(logits.dtype), None


def target_log_prob(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) [M] in fp32 (fp64 for fp64 logits) from logits [M, V] and targets [M]."""
    return _TargetLogProb.apply(logits, targets)


def focal_nll(logits: torch.Tensor, targets: torch.Tensor, gamma: float):
    """Per-position generator loss -(1 - p(x))^gamma * log p(x), in fp32.

    logits [M, V], targets [M] -> (loss [M], log p(x) [M]).
    """
    target_log_probs = target_log_prob(logits, targets)
    loss = -target_log_probs
    if gamma != 0:
        # 1 - p clamped away from 0: for 0 < gamma < 1 the derivative of (1 - p)^gamma is
        # infinite at p = 1, and infinity times log p = 0 would make the gradient NaN.
        one_minus_p = (-torch.expm1(target_log_probs)).clamp(min=torch.finfo(torch.float32).tiny)
        loss = loss * one_minus_p.pow(gamma)
    return loss, target_log_probs


class RTDCriterion(FairseqCriterion):
    """Base class; see the module docstring for the objective."""

    def __init__(self, task, rtd_weight: float, focal_gamma: float):
        super().__init__(task)
        self.rtd_weight = rtd_weight
        self.focal_gamma = focal_gamma
        # mask_prob turns lambda per token into lambda per masked position (module docstring).
        self.rtd_scale = rtd_weight * getattr(task.cfg, "mask_prob", 0.15)
        self.num_updates = 0
        self.prior_watch = LabelPriorWatch()

    def set_num_updates(self, num_updates: int) -> None:
        """Called by the amos_rtd task before every training step."""
        self.num_updates = num_updates

    # -------------------------------------------------------------- strategy hooks

    def sample(self, model, generated: GeneratorOutput) -> Replacement:
        """Choose the tokens placed at the masked positions (called inside model.forward)."""
        raise NotImplementedError

    def generator_loss_weights(self, depths: List[int]) -> List[float]:
        return [1.0] * len(depths)

    def rtd_weights(self, out: PretrainingOutput, masked_in_non_pad: torch.Tensor) -> Optional[torch.Tensor]:
        """Optional per-token weights [N] on the RTD loss (importance weights)."""
        return None

    def extra_losses(self, out: PretrainingOutput, rtd_labels, rtd_logits, masked_in_non_pad, log: Dict):
        """Further loss terms (already summed), logging into ``log``."""
        return 0.0

    # -------------------------------------------------------------- objective

    @staticmethod
    def unplaceable_fill(model, logits: torch.Tensor) -> torch.Tensor:
        """logits [M, V] with the symbols a sampler must never place set to -inf."""
        return logits.masked_fill(model.unplaceable, float("-inf"))

    def forward(self, model, sample, reduce=True):
        masked = sample["net_input"]["masked_tokens"].bool()
        out: PretrainingOutput = model(**sample["net_input"], sampler=self.sample)
        # Index tensors instead of boolean masks: no host sync on a GPU (modules/positions.py).
        masked_index = out.positions["masked_index"]  # [M]
        non_pad_index = out.positions["non_pad_index"]  # [N]
        targets = sample["target"]
        masked_targets = targets.flatten().index_select(0, masked_index)  # [M]
        sample_size = masked.sum()

        log: Dict[str, torch.Tensor] = {}
        gen_loss = 0.0
        depths = out.generator.depths
        for depth, weight, logits in zip(depths, self.generator_loss_weights(depths), out.generator.logits):
            per_position, _ = focal_nll(logits, masked_targets, self.focal_gamma)
            depth_loss = per_position.sum()
            gen_loss = gen_loss + weight * depth_loss
            correct = (logits.detach().argmax(-1) == masked_targets).sum()
            if len(depths) > 1:
                log[f"gen_loss_d{depth}"] = depth_loss.detach()
                log[f"gen_correct_d{depth}"] = correct
        log["gen_correct"] = correct  # of the deepest generator

        # RTD over every non-pad token; a sample equal to the original counts as original.
        rtd_labels = out.disc_tokens.ne(targets).flatten().index_select(0, non_pad_index)  # [N] bool
        rtd_logits = out.rtd_logits.float()
        rtd_per_token = F.binary_cross_entropy_with_logits(rtd_logits, rtd_labels.float(), reduction="none")
        masked_in_non_pad = masked.flatten().index_select(0, non_pad_index)  # [N] bool
        weights = self.rtd_weights(out, masked_in_non_pad)
        rtd_loss = rtd_per_token.sum() if weights is None else (rtd_per_token * weights).sum()

        extra = self.extra_losses(out, rtd_labels, rtd_logits, masked_in_non_pad, log)
        loss = gen_loss + self.rtd_scale * rtd_loss + extra

        predicted = rtd_logits > 0
        caught = (predicted & rtd_labels).sum()
        if model.training and self.rtd_scale > 0:  # an MLM-only run (--rtd-weight 0) sits at the prior by design
            self.prior_watch.add(self.num_updates, rtd_per_token.detach().sum(), out.non_pad.sum(), rtd_labels.sum(), caught)
        log.update(
            loss=loss.detach(),
            gen_loss=gen_loss.detach(),
            rtd_loss=rtd_per_token.detach().sum(),
            rtd_tokens=out.non_pad.sum(),
            rtd_weighted_tokens=self.rtd_scale * out.non_pad.sum(),  # / M: the effective lambda
            replaced=rtd_labels.sum(),
            rtd_correct_replaced=caught,
            rtd_correct_original=(~predicted & ~rtd_labels).sum(),
            ntokens=sample["ntokens"],
            nsentences=sample["nsentences"],
            sample_size=sample_size,
        )
        return loss, sample_size, log

    # -------------------------------------------------------------- metrics

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True  # every entry is a sum, so workers' outputs are all-reduced as one tensor

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        masked = total("sample_size")
        tokens = total("rtd_tokens")
        replaced = total("replaced")
        original = tokens - replaced
        metrics.log_scalar("loss", total("loss") / max(masked, 1), masked, round=3)
        metrics.log_scalar("gen_loss", total("gen_loss") / max(masked, 1), masked, round=3)
        metrics.log_scalar("rtd_loss", total("rtd_loss") / max(tokens, 1), tokens, round=4)
        if "rtd_weighted_tokens" in (logging_outputs[0] if logging_outputs else {}):
            # lambda * mask_prob * N / M: the RTD weight relative to mean_M(MLM)
            metrics.log_scalar("rtd_weight_effective", total("rtd_weighted_tokens") / max(masked, 1), masked, round=2)
        metrics.log_scalar("gen_acc", total("gen_correct") / max(masked, 1), masked, round=4)
        metrics.log_scalar("replace_rate", replaced / max(masked, 1), masked, round=4)
        if tokens:
            # The RTD loss of the best constant guess (the label prior): rtd_loss below it
            # is the only sign that the discriminator uses its input.
            metrics.log_scalar("rtd_prior_loss", label_prior_loss(replaced, tokens), tokens, round=4)
        if replaced:
            metrics.log_scalar("rtd_acc_replaced", total("rtd_correct_replaced") / replaced, replaced, round=4)
        if original:
            metrics.log_scalar("rtd_acc_original", total("rtd_correct_original") / original, original, round=4)
        keys = logging_outputs[0].keys() if logging_outputs else ()
        for key in keys:
            if key.startswith("gen_loss_d"):
                depth = key[len("gen_loss_d"):]
                metrics.log_scalar(key, total(key) / max(masked, 1), masked, round=3)
                metrics.log_scalar(f"gen_acc_d{depth}", total(f"gen_correct_d{depth}") / max(masked, 1), masked, round=4)
