"""The hand-written autograd of the vocabulary-sized operations equals autograd's own."""

from types import SimpleNamespace

import torch

from amos_fairseq.criteria.amos import mixed_logits
from amos_fairseq.criteria.rtd import target_log_prob
from amos_fairseq.criteria.sampling import gumbel_noise_like, straight_through_gumbel_softmax
from amos_fairseq.modules.generator import GeneratorOutput
from amos_fairseq.modules.heads import HardnessHead


def test_target_log_prob_matches_log_softmax_and_gather():
    torch.manual_seed(0)
    logits = torch.randn(7, 11, dtype=torch.double, requires_grad=True)
    targets = torch.randint(0, 11, (7,))
    assert torch.autograd.gradcheck(lambda z: target_log_prob(z, targets), (logits,))
    reference = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
    torch.testing.assert_close(target_log_prob(logits, targets), reference.float(), check_dtype=False)
    # half-precision logits: the gradient comes back in their dtype, computed in fp32
    half = logits.detach().half().requires_grad_()
    target_log_prob(half, targets).sum().backward()
    assert half.grad.dtype == torch.float16 and torch.isfinite(half.grad).all()


def test_mixed_logits_gradient_reaches_only_the_weights():
    torch.manual_seed(0)
    unplaceable = torch.zeros(9, dtype=torch.bool)
    unplaceable[[0, 2]] = True
    model = SimpleNamespace(unplaceable=unplaceable, unplaceable_index=unplaceable.nonzero().squeeze(-1))
    logits = [torch.randn(5, 9, dtype=torch.double, requires_grad=True) for _ in range(3)]
    weights = torch.softmax(torch.randn(5, 3, dtype=torch.double), -1).requires_grad_()
    generated = GeneratorOutput(depths=[1, 2, 3], hiddens=[], logits=logits)
    zbar = mixed_logits(model, generated, weights)
    reference = sum(weights[:, k : k + 1] * logits[k].detach() for k in range(3)).masked_fill(unplaceable, float("-inf"))
    assert torch.equal(zbar, reference.float()) or torch.allclose(zbar.double(), reference)
    upstream = torch.randn(5, 9, dtype=torch.double)
    (zbar.double().masked_fill(unplaceable, 0) * upstream).sum().backward()
    expected = torch.stack([(upstream * logits[k].detach()).masked_fill(unplaceable, 0).sum(-1) for k in range(3)], -1)
    torch.testing.assert_close(weights.grad, expected, check_dtype=False, rtol=1e-5, atol=1e-6)  # fp32 inside
    assert all(z.grad is None for z in logits)  # the generators' logits are stop-gradient


def test_straight_through_sample_has_the_soft_sample_gradient():
    torch.manual_seed(0)
    logits = torch.randn(6, 10, requires_grad=True)
    torch.manual_seed(1)
    noise = gumbel_noise_like(logits)
    tokens, relaxed = straight_through_gumbel_softmax(logits, 0.3, noise)
    assert torch.equal(tokens, (logits + noise).argmax(-1)) and relaxed.abs().max() == 0
    upstream = torch.randn(6, 10)
    (relaxed * upstream).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    soft = torch.softmax((logits + noise) / 0.3, -1)
    ((soft - soft.detach()) * upstream).sum().backward()
    torch.testing.assert_close(ours, logits.grad)
    with torch.no_grad():
        assert straight_through_gumbel_softmax(logits, 0.3, noise)[1] is None  # nothing to train


def test_gumbel_noise_is_standard_gumbel():
    torch.manual_seed(0)
    noise = gumbel_noise_like(torch.empty(400_000))
    assert torch.isfinite(noise).all()
    # Gumbel(0, 1): mean = Euler's gamma, variance = pi^2 / 6
    assert abs(noise.mean().item() - 0.5772) < 0.01 and abs(noise.var().item() - 1.6449) < 0.02


def test_hardness_head_logit_at_matches_the_full_output_with_a_sparse_gradient():
    torch.manual_seed(0)
    head = HardnessHead(8, 50)
    hidden = torch.randn(6, 8)
    tokens = torch.tensor([3, 7, 7, 0, 49, 12])
    features = head.features(hidden)
    torch.testing.assert_close(head.output_at(features, tokens), head(hidden).gather(-1, tokens[:, None]).squeeze(-1))
    head.output_at(features, tokens).sum().backward()
    touched = head.out.weight.grad.abs().sum(-1).ne(0).nonzero().squeeze(-1)
    assert touched.tolist() == sorted(set(tokens.tolist()))


def test_mixture_keeps_no_fp32_copy_of_half_precision_logits():
    """Under mixed precision the depths' logits are bf16/fp16: what the mixture saves for
    backward are those tensors themselves, not K fp32 [M, V] copies."""
    unplaceable = torch.zeros(50, dtype=torch.bool)
    model = SimpleNamespace(unplaceable=unplaceable, unplaceable_index=unplaceable.nonzero().squeeze(-1))
    logits = [torch.randn(8, 50).to(torch.bfloat16).requires_grad_() for _ in range(3)]
    weights = torch.softmax(torch.randn(8, 3), -1).requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        zbar = mixed_logits(model, GeneratorOutput(depths=[1, 2, 3], hiddens=[], logits=logits), weights)
    assert zbar.dtype == torch.float32
    vocabulary_sized = [t for t in saved if t.dim() == 2 and t.shape[-1] == 50]
    assert len(vocabulary_sized) == 3 and all(t.dtype == torch.bfloat16 for t in vocabulary_sized)
    assert all(any(t.data_ptr() == z.data_ptr() for z in logits) for t in vocabulary_sized)
    zbar.sum().backward()
    assert weights.grad is not None and torch.isfinite(weights.grad).all()
