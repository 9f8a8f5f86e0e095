"""Transformer encoder stack used by both the discriminator and the generator.

fairseq's own ``TransformerEncoderLayer`` turns any ``attn_mask`` into a boolean mask, so it
cannot carry a learned relative position bias; this layer adds the bias (and the padding
mask) to the logits and runs attention through ``F.scaled_dot_product_attention``.
Tensors are batch-first: [B, T, C].
"""

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import LayerNorm


class TransformerLayer(nn.Module):
    """One self-attention + FFN block, post-LN (BERT/ELECTRA) or pre-LN."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.0,
        normalize_before: bool = False,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} attention heads")
        self.num_heads = num_heads
        self.normalize_before = normalize_before
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.self_attn_layer_norm = LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.attention_dropout = attention_dropout

    def self_attention(self, x: torch.Tensor, attn_bias: Optional[torch.Tensor]) -> torch.Tensor:
        """x: [B, T, C]; attn_bias: additive, broadcastable to [B, H, T, T]."""
        batch, length, dim = x.shape
        q, k, v = (
            self.qkv_proj(x)
            .view(batch, length, 3, self.num_heads, dim // self.num_heads)
            .permute(2, 0, 3, 1, 4)  # [3, B, H, T, C/H]
        )
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias, dropout_p=self.attention_dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))

    def forward(self, x: torch.Tensor, attn_bias: Optional[torch.Tensor]) -> torch.Tensor:
        residual = x
        if self.normalize_before:
            x = self.self_attn_layer_norm(x)
        x = residual + self.dropout(self.self_attention(x, attn_bias))
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)
        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = self.fc2(self.activation_dropout(F.gelu(self.fc1(x))))
        x = residual + self.dropout(x)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x


def attention_bias(
    padding_mask: Optional[torch.Tensor], position_bias: Optional[torch.Tensor], dtype: torch.dtype
) -> Optional[torch.Tensor]:
    """Additive attention bias [B or 1, H or 1, T or 1, T]: -inf-like at padded keys, plus the
    relative position bias when there is one. padding_mask: [B, T] bool, True at pads, or
    None when nothing is padded. None when there is neither (attention needs no bias)."""
    if padding_mask is None:
        return None if position_bias is None else position_bias.to(dtype)
    bias = torch.zeros(padding_mask.shape, dtype=dtype, device=padding_mask.device)
    bias = bias.masked_fill(padding_mask, torch.finfo(dtype).min)[:, None, None, :]
    if position_bias is not None:
        bias = bias + position_bias.to(dtype)
    return bias


class TransformerStack(nn.Module):
    """``num_layers`` TransformerLayers; optionally detaches the input of chosen layers.

    ``forward(x, attn_bias, detach_before=(), collect=())`` returns the final output and the
    outputs after the (1-based) layers named in ``collect``. ``detach_before`` holds 0-based
    layer indices whose input is cut from the graph, which is how the shared-depth generator
    keeps each block learning only from its own MLM head.
    """

    def __init__(self, num_layers: int, final_layer_norm: bool = False, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList([TransformerLayer(**layer_kwargs) for _ in range(num_layers)])
        # Pre-LN stacks need a last LayerNorm; post-LN outputs are normalised already.
        self.final_layer_norm = LayerNorm(layer_kwargs["dim"]) if final_layer_norm else None

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: Optional[torch.Tensor],
        detach_before=(),
        collect=(),
    ):
        collected: List[torch.Tensor] = []
        for index, layer in enumerate(self.layers):
            if index in detach_before:
                x = x.detach()
            x = layer(x, attn_bias)
            if index + 1 in collect:
                collected.append(self._finish(x))
        return self._finish(x), collected

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer_norm(x) if self.final_layer_norm is not None else x
