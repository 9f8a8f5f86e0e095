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
            grad_relaxed = relaxed_gradient(at_masked, table).to(ctx.relaxed_dtype)  # [M, V]
        return grad, grad_relaxed, None, None, None


# The dtype of d/d relaxed = grad @ E^T. The soft sample's backward centres it per row
# (soft * (g - <g, soft>)), which cancels most of its magnitude: formed in half precision,
# the mixture's gradient came out 2.8% off its fp32 value (benchmarks/mixture_grad_precision.py).
# None: the gradient's own dtype (the behaviour before, kept for that benchmark).
RELAXED_GRADIENT_DTYPE = torch.float32


def relaxed_gradient(at_masked: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """grad [M, E] @ table [V, E]^T -> [M, V] in ``RELAXED_GRADIENT_DTYPE`` (or wider).

    Half or bfloat16 inputs are exactly representable in TF32, so on a GPU the fp32 product
    may use TF32 tensor cores at no loss: the products are exact and the sums fp32.
    """
    dtype = at_masked.dtype
    if RELAXED_GRADIENT_DTYPE is not None:
        dtype = torch.promote_types(dtype, RELAXED_GRADIENT_DTYPE)  # fp64 stays fp64
    half_inputs = at_masked.dtype in (torch.float16, torch.bfloat16) and table.dtype in (torch.float16, torch.bfloat16)
    if dtype == torch.float32 and half_inputs and at_masked.is_cuda:
        allowed = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            return at_masked.float() @ table.float().t()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = allowed
    return at_masked.to(dtype) @ table.to(dtype).t()


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
