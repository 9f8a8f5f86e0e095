"""Embeddings + transformer stack: the body of the discriminator and of the generator."""

from typing import Optional

import torch
import torch.nn as nn
from fairseq.modules import LayerNorm

from .relative_position import RelativePositionBias
from .transformer import TransformerStack, attention_bias


class EncoderEmbeddings(nn.Module):
    """Token + learned absolute position embeddings, LayerNorm, dropout, projection.

    The token table is passed in and shared; positions and LayerNorm belong to this network.
    Position i of a sequence uses row i (padding included, masked out in attention), as in
    BERT/ELECTRA. A linear projection maps the embedding size to the network width when they
    differ (ELECTRA-small).
    """

    def __init__(self, token_embeddings: nn.Embedding, max_positions: int, width: int, dropout: float):
        super().__init__()
        embed_dim = token_embeddings.embedding_dim
        self.token_embeddings = token_embeddings
        self.position_embeddings = nn.Embedding(max_positions, embed_dim)
        self.layer_norm = LayerNorm(embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(embed_dim, width) if width != embed_dim else None

    def forward(self, tokens: torch.Tensor, token_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens: [B, T] -> [B, T, width]. ``token_embeds`` [B, T, E] replaces the lookup
        (the AMOS discriminator feeds a straight-through one-hot through the table)."""
        length = tokens.size(1)
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"sequence of {length} tokens is longer than the model's "
                f"{self.position_embeddings.num_embeddings} positions: lower --tokens-per-sample "
                "or --max-positions of the data"
            )
        if token_embeds is None:
            token_embeds = self.token_embeddings(tokens)
        x = token_embeds + self.position_embeddings.weight[:length].to(token_embeds.dtype)
        x = self.dropout(self.layer_norm(x))
        return self.projection(x) if self.projection is not None else x


class Encoder(nn.Module):
    """A bidirectional transformer encoder over a shared token table.

    ``forward(tokens, ...)`` returns ``(last [B, T, C], collected)``, where ``collected`` holds
    the outputs after the requested 1-based layers (see ``TransformerStack``).
    """

    def __init__(
        self,
        token_embeddings: nn.Embedding,
        padding_idx: int,
        num_layers: int,
        width: int,
        num_heads: int,
        ffn_dim: int,
        max_positions: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        normalize_before: bool,
        rel_pos_bins: int,
        max_rel_pos: int,
    ):
        super().__init__()
        self.padding_idx = padding_idx
        self.embeddings = EncoderEmbeddings(token_embeddings, max_positions, width, dropout)
        self.relative_position_bias = (
            RelativePositionBias(rel_pos_bins, max_rel_pos, num_heads) if rel_pos_bins > 0 else None
        )
        self.stack = TransformerStack(
            num_layers,
            final_layer_norm=normalize_before,
            dim=width,
            num_heads=num_heads,
            ffn_dim=ffn_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            normalize_before=normalize_before,
        )

    @property
    def max_positions(self) -> int:
        return self.embeddings.position_embeddings.num_embeddings

    def forward(
        self,
        tokens: torch.Tensor,
        token_embeds: Optional[torch.Tensor] = None,
        detach_before=(),
        collect=(),
        padded: Optional[bool] = None,
    ):
        """``padded``: whether ``tokens`` holds padding, when the caller knows (the pretraining
        collater does); None looks, at the cost of one host read of a device tensor."""
        x = self.embeddings(tokens, token_embeds)
        position_bias = (
            self.relative_position_bias(tokens.size(1)) if self.relative_position_bias is not None else None
        )
        # Without padding attention runs without a padding bias: no [B, H, T, T] bias is
        # built, and on a GPU SDPA may pick its fused kernels.
        padding_mask = tokens.eq(self.padding_idx)
        if padded is None:
            padded = bool(padding_mask.any())  # one host sync; the collater's flag avoids it
        if not padded:
            padding_mask = None
        bias = attention_bias(padding_mask, position_bias, x.dtype)
        return self.stack(x, bias, detach_before=detach_before, collect=collect)
