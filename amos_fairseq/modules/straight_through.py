"""Adding a relaxed sample to the discriminator's input embeddings without E's dead gradient.

A straight-through sampler hands the model ``relaxed`` [M, V] whose value is zero and whose
gradient is the soft sample's; the discriminator's input at the M masked positions is
``E[token] + relaxed @ E``. In the backward pass the table E would receive
``relaxed^T @ grad``, an [V, M] x [M, E] product that is exactly zero for a zero-valued
``relaxed``; only ``d/d relaxed = grad @ E^T`` carries information. This function computes
the sum as written (so a non-zero ``relaxed``, e.g. a surrogate in a test, still changes the
value) and skips E's gradient from this term.
"""

import torch


class _AddRelaxedEmbedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token_embeds, relaxed, table, masked_index):
        ctx.save_for_backward(table, masked_index)
        ctx.relaxed_dtype = relaxed.dtype
        out = token_embeds.clone()
        out.view(-1, out.size(-1)).index_add_(0, masked_index, (relaxed.to(table.dtype) @ table).to(out.dtype))
        return out

    @staticmethod
    def backward(ctx, grad):
        table, masked_index = ctx.saved_tensors
        grad_relaxed = None
        if ctx.needs_input_grad[1]:
            at_masked = grad.reshape(-1, grad.size(-1)).index_select(0, masked_index)  # [M, E]
            grad_relaxed = (at_masked @ table.to(grad.dtype).t()).to(ctx.relaxed_dtype)  # [M, V]
        return grad, grad_relaxed, None, None


def add_relaxed_embedding(
    token_embeds: torch.Tensor, relaxed: torch.Tensor, table: torch.Tensor, masked_tokens: torch.Tensor
) -> torch.Tensor:
    """token_embeds [B, T, E] + (relaxed [M, V] @ table [V, E]) scattered to the M positions
    where ``masked_tokens`` [B, T] is True (row-major order), for a zero-valued ``relaxed``.

    Value and the gradients of ``token_embeds`` and ``relaxed`` are those of the written-out
    sum; ``table`` gets no gradient from this term (exactly zero when ``relaxed`` is).
    """
    if relaxed.dim() != 2 or relaxed.size(1) != table.size(0):
        raise ValueError(f"relaxed must be [M, V={table.size(0)}], got {tuple(relaxed.shape)}")
    masked_index = masked_tokens.flatten().nonzero().squeeze(-1)
    return _AddRelaxedEmbedding.apply(token_embeds, relaxed, table, masked_index)
