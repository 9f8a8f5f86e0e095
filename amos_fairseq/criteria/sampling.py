"""Sampling primitives shared by the replacement strategies. All run in fp32.

Gumbel noise is drawn as -log(Exp(1)), which avoids log(0) at the ends of the uniform.
"""

import torch


def gumbel_noise_like(logits: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise with the shape of ``logits``, in fp32."""
    return -torch.empty(logits.shape, dtype=torch.float32, device=logits.device).exponential_().log()


def gumbel_max(log_weights: torch.Tensor, noise: torch.Tensor = None) -> torch.Tensor:
    """Exact sample from softmax(log_weights) along the last dim: [..., V] -> [...] long."""
    if noise is None:
        noise = gumbel_noise_like(log_weights)
    return (log_weights.float() + noise).argmax(dim=-1)


def straight_through_gumbel_softmax(logits: torch.Tensor, temperature: float, noise: torch.Tensor = None):
    """Straight-through Gumbel-softmax over the last dim.

    Returns ``(tokens [...], relaxed [..., V])``: ``tokens`` is an exact sample from
    softmax(logits) (the temperature does not change it); ``relaxed`` is zero in value and
    has the gradient of the soft sample softmax((logits + g) / temperature), so that
    ``one_hot(tokens) + relaxed`` is the usual straight-through estimator with an exact
    one-hot forward value.
    """
    if noise is None:
        noise = gumbel_noise_like(logits)
    perturbed = logits.float() + noise
    tokens = perturbed.argmax(dim=-1)
    soft = torch.softmax(perturbed / temperature, dim=-1)
    return tokens, soft - soft.detach()


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
