"""The shared-depth generator: several masked-LM generators in one transformer stack."""

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from .encoder import Encoder
from .heads import MaskedLMHead


@dataclass
class GeneratorOutput:
    """What the generator hands to a replacement sampler, for K depths and M masked positions.

    depths:  the K depths, shallow to deep
    hiddens: K tensors [M, C_gen], each depth's last hidden state at the masked positions
    logits:  K tensors [M, V], each depth's MLM logits at the masked positions
    """

    depths: List[int]
    hiddens: List[torch.Tensor]
    logits: List[torch.Tensor]


class SharedDepthGenerator(nn.Module):
    """``max(depths)`` layers; the output after each layer named in ``depths`` feeds one
    shared MLM head, giving K generators of those depths that share their lower layers.

    With ``stop_gradient`` the input of the block after each head is detached: with depths
    4,6,8, layers 1-4 learn only from the depth-4 head, 5-6 from depth 6, 7-8 from depth 8.
    """

    def __init__(self, encoder: Encoder, depths: Sequence[int], token_embeddings: nn.Embedding, stop_gradient: bool):
        super().__init__()
        self.encoder = encoder
        self.depths = sorted(set(depths))
        self.stop_gradient = stop_gradient
        self.lm_head = MaskedLMHead(encoder.stack.layers[0].fc1.in_features, token_embeddings)
        # 0-based indices of layers whose input is cut: the first layer after each head.
        self.detach_before = set(self.depths[:-1]) if stop_gradient else set()

    def forward(self, tokens: torch.Tensor, masked_index: torch.Tensor, padded: Optional[bool] = None) -> GeneratorOutput:
        """tokens: [B, T] generator input; masked_index: [M] flat positions (b * T + t) of
        the masked tokens; padded: whether ``tokens`` holds padding (None: look)."""
        _, per_depth = self.encoder(
            tokens, detach_before=self.detach_before, collect=set(self.depths), padded=padded
        )
        # Index selection, not boolean indexing, which would read the mask on the host.
        hiddens = [h.flatten(0, 1).index_select(0, masked_index) for h in per_depth]
        return GeneratorOutput(
            depths=list(self.depths), hiddens=hiddens, logits=[self.lm_head(h) for h in hiddens]
        )
