"""Adding a relaxed sample to the discriminator's input embeddings at no forward cost.

A straight-through sampler hands the model ``relaxed`` [M, V] whose value is zero and whose
gradient is the soft sample's; the discriminator's input at the M masked positions is
``E[token] + relaxed @ E``. For a zero-valued ``relaxed`` the product is known to be zero, so
the forward pass skips it (an [M, V] x [V, E] matmul), and in the backward pass the table E
would receive ``relaxed^T @ grad``, exactly zero too; only ``d/d relaxed = grad @ E^T``
carries information, and only that is computed.

``zero_valued=False`` computes the sum as written (a non-zero ``relaxed``, e.g. a surrogate in
a test, then changes the value), still without E's gradient from this term.
"""

import torch


class _AddRelaxedEmbedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token_embeds, relaxed, table, masked_index, zero_valued):
        ctx.save_for_backward(table, masked_index)
        ctx.relaxed_dtype = relaxed.dtype
        if zero_valued:
            return token_embeds.view_as(token_embeds)
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
        return grad, grad_relaxed, None, None, None


def add_relaxed_embedding(
    token_embeds: torch.Tensor,
    relaxed: torch.Tensor,
    table: torch.Tensor,
    masked_index: torch.Tensor,
    zero_valued: bool = True,
) -> torch.Tensor:
    """token_embeds [B, T, E] + (relaxed [M, V] @ table [V, E]) added at the M flat positions
    ``masked_index`` [M] (b * T + t).

    Value and the gradients of ``token_embeds`` and ``relaxed`` are those of the written-out
    sum, provided ``relaxed`` is zero when ``zero_valued`` (the product is then not
    computed); ``table`` gets no gradient from this term (exactly zero for a zero ``relaxed``).
    """
    if relaxed.dim() != 2 or relaxed.size(1) != table.size(0):
        raise ValueError(f"relaxed must be [M, V={table.size(0)}], got {tuple(relaxed.shape)}")
    return _AddRelaxedEmbedding.apply(token_embeds, relaxed, table, masked_index, zero_valued)
