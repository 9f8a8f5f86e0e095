"""T5-style relative position bias, computed once per forward and shared by all layers."""

import math

import torch
import torch.nn as nn


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bucket ids for (key - query) offsets, bidirectional.

    Half the buckets are for each direction; within a direction, half are exact offsets and
    half are log-spaced up to ``max_distance`` (offsets beyond share the last bucket).
    """
    num_buckets //= 2
    buckets = (relative_position > 0).long() * num_buckets
    distance = relative_position.abs()
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """A learned scalar per (bucket, head) added to the attention logits.

    ``forward(T)`` returns [1, H, T, T] in the embedding's dtype.
    """

    def __init__(self, num_buckets: int, max_distance: int, num_heads: int):
        super().__init__()
        if num_buckets < 4 or num_buckets % 2:
            raise ValueError(f"--rel-pos-bins must be an even number >= 4 (or 0 to disable), got {num_buckets}")
        if max_distance <= num_buckets // 4:
            raise ValueError(
                f"--max-rel-pos ({max_distance}) must exceed a quarter of --rel-pos-bins ({num_buckets})"
            )
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bias = nn.Embedding(num_buckets, num_heads)

    def bucket_distances(self) -> torch.Tensor:
        """[num_buckets] the smallest |offset| that falls in each bucket (0 for an unused one)."""
        offsets = torch.arange(-self.max_distance, self.max_distance + 1)
        buckets = relative_position_bucket(offsets, self.num_buckets, self.max_distance)
        unused = offsets.abs().max() + 1
        distance = torch.full((self.num_buckets,), int(unused)).scatter_reduce(0, buckets, offsets.abs(), "amin")
        return distance.masked_fill(distance == unused, 0)

    @torch.no_grad()
    def init_local(self) -> None:
        """Start from a locality prior instead of ~0: head h adds ``-|offset| / 2^h`` (ALiBi's
        linear decay, slopes 1, 1/2, 1/4, ...), so the first heads attend to the neighbours
        from the first update and the last ones almost uniformly. A learned scalar moves by
        about the learning rate per Adam step, so from ~0 a sharp local head takes thousands
        of updates to form, and small masked LMs sit on the unigram plateau until it has."""
        heads = self.bias.embedding_dim
        slopes = torch.pow(2.0, -torch.arange(heads, dtype=torch.float32))  # [H]
        distance = self.bucket_distances().float()  # [num_buckets]
        self.bias.weight.copy_(-distance[:, None] * slopes[None, :])

    def forward(self, seq_len: int) -> torch.Tensor:
        positions = torch.arange(seq_len, device=self.bias.weight.device)
        relative = positions[None, :] - positions[:, None]  # [T_query, T_key]
        buckets = relative_position_bucket(relative, self.num_buckets, self.max_distance)
        return self.bias(buckets).permute(2, 0, 1).unsqueeze(0)
