"""Sampling primitives shared by the replacement strategies. All run in fp32.

Gumbel noise is drawn as -log(-log U) from one uniform per entry, clamped away from 0 so that
no entry is -inf. (-log E with E ~ Exp(1) from ``Tensor.exponential_`` is the same law, but
on CPUs ``exponential_`` draws one number at a time and was the slowest vocabulary-sized
operation of a training step.)
"""

import torch


def gumbel_noise_like(logits: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise with the shape of ``logits``, in fp32."""
    uniform = torch.rand(logits.shape, dtype=torch.float32, device=logits.device)
    # U in [tiny, 1): -log U in (0, 87.4], so the noise is finite; U < tiny has probability
    # below 2^-126 (torch.rand's fp32 grid never lands there except at exactly 0).
    return uniform.clamp_(min=torch.finfo(torch.float32).tiny).log_().neg_().log_().neg_()


def gumbel_max(log_weights: torch.Tensor, noise: torch.Tensor = None, exclude: torch.Tensor = None) -> torch.Tensor:
    """Exact sample from softmax(log_weights) along the last dim: [..., V] -> [...] long.

    ``exclude``: optional long [X] of entries never drawn (as if their weight were -inf).
    """
    if noise is None:
        # our own noise tensor: add the weights in place, no second [..., V] buffer
        perturbed = gumbel_noise_like(log_weights).add_(log_weights.float())
    else:
        perturbed = log_weights.float() + noise
    if exclude is not None:
        perturbed.index_fill_(-1, exclude, float("-inf"))
    return perturbed.argmax(dim=-1)


class _ZeroValuedSoftSample(torch.autograd.Function):
    """Zero in value, with the gradient of softmax(perturbed / temperature).

    Only the soft sample is kept for backward; the zero output is an expanded scalar, not an
    [M, V] tensor.
    """

    @staticmethod
    def forward(ctx, perturbed, temperature):
        soft = torch.softmax(perturbed / temperature, dim=-1)
        ctx.save_for_backward(soft)
        ctx.temperature = temperature
        return perturbed.new_zeros(()).expand(perturbed.shape)

    @staticmethod
    def backward(ctx, grad):
        (soft,) = ctx.saved_tensors
        # softmax backward, soft * (g - <g, soft>) / temperature, in one [M, V] buffer
        out = soft * grad.float()
        inner = out.sum(-1, keepdim=True)
        return out.addcmul_(soft, inner, value=-1.0).div_(ctx.temperature), None


def straight_through_gumbel_softmax(logits: torch.Tensor, temperature: float, noise: torch.Tensor = None):
    """Straight-through Gumbel-softmax over the last dim.

    Returns ``(tokens [...], relaxed [..., V])``: ``tokens`` is an exact sample from
    softmax(logits) (the temperature does not change it); ``relaxed`` is zero in value and
    has the gradient of the soft sample softmax((logits + g) / temperature), so that
    ``one_hot(tokens) + relaxed`` is the usual straight-through estimator with an exact
    one-hot forward value. Under ``torch.no_grad`` ``relaxed`` is None.
    """
    perturbed = gumbel_noise_like(logits).add_(logits.float()) if noise is None else logits.float() + noise
    tokens = perturbed.argmax(dim=-1)
    if not torch.is_grad_enabled():
        return tokens, None  # validation: nothing will read the soft sample's gradient
    return tokens, _ZeroValuedSoftSample.apply(perturbed, temperature)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-scale`` on the way back."""
    return _ReverseGradient.apply(x, scale)
