"""A warning, during pretraining, when the discriminator sits at its label prior.

A discriminator whose RTD loss equals the loss of the best constant guess (the binary entropy
of the share of replaced tokens) no longer uses its input: it calls every token original, and
an encoder fine-tuned from it ends at the majority class. Nothing else in the progress log
looks wrong, since the generator keeps learning (docs/cpu-scale.md, "Why the RTD head starts
at its label prior"; docs/results.md, focal_hardness seed 2). The watch sums the training
batches' RTD loss over windows of updates and logs a warning for each window, past the first,
in which the discriminator is at its prior: the run can be stopped then, not found out after
fine-tuning.

The sums stay tensors on the batch's device; they are read (one host sync) once per window.
"""

import logging
import math
from typing import Optional

import torch

logger = logging.getLogger(__name__)


def label_prior_loss(replaced: float, tokens: float) -> float:
    """The RTD loss (nats per token) of the best constant guess: the binary entropy of the
    share of replaced tokens (kept off 0 and 1)."""
    share = min(max(replaced / tokens, 1e-12), 1 - 1e-12)
    return -(share * math.log(share) + (1 - share) * math.log(1 - share))


class LabelPriorWatch:
    """Windows of ``window`` training updates; the first window (``[0, window)``) is never
    judged, since ``--rtd-bias-init prior`` starts the discriminator at its prior on purpose.

    A window is *at the prior* when its RTD loss is within ``margin`` nats of the prior's and
    the discriminator catches under ``caught`` of the replaced tokens: the thresholds under
    which ``scripts/compare_results.py`` names a finished run as at its prior.
    """

    def __init__(self, window: int = 500, margin: float = 0.001, caught: float = 0.005):
        if window < 1:
            raise ValueError(f"window must be at least 1 update, got {window}")
        self.window, self.margin, self.caught = window, margin, caught
        self._window_index: Optional[int] = None
        self._sums: Optional[torch.Tensor] = None  # [4]: RTD loss, tokens, replaced, replaced caught

    def add(self, update_num: int, rtd_loss_sum, tokens, replaced, caught_replaced) -> Optional[str]:
        """Count one training micro-batch of update ``update_num`` (0-based).

        The four values are sums over the batch's non-pad tokens (scalars or 0-d tensors). Returns
        the warning logged when this batch is the first of a new window and the window just
        ended was at the prior, else None.
        """
        index = update_num // self.window
        message = None
        if self._window_index is not None and index != self._window_index:
            message = self._judge_window()
        if index != self._window_index:
            self._window_index, self._sums = index, None
        values = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in
                              (rtd_loss_sum, tokens, replaced, caught_replaced)])
        self._sums = values if self._sums is None else self._sums + values.to(self._sums.device)
        return message

    def _judge_window(self) -> Optional[str]:
        if self._window_index == 0 or self._sums is None:
            return None
        loss_sum, tokens, replaced, caught = self._sums.tolist()
        if tokens <= 0 or replaced <= 0 or replaced >= tokens:
            return None
        prior = label_prior_loss(replaced, tokens)
        loss, caught_share = loss_sum / tokens, caught / replaced
        if loss < prior - self.margin or caught_share >= self.caught:
            return None
        first = self._window_index * self.window
        message = (
            f"updates {first}-{first + self.window - 1}: the discriminator is at its label prior (RTD loss "
            f"{loss:.4f}, prior {prior:.4f}; it catches {caught_share:.1%} of the replaced tokens). If it stays "
            "there it has collapsed and an encoder fine-tuned from it ends at the majority class: restart "
            "with another --seed (docs/cpu-scale.md, 'Why the RTD head starts at its label prior')"
        )
        logger.warning(message)
        return message
