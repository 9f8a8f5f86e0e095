"""The ``amos`` and ``focal_hardness`` criteria against independent plain-autograd references.

What is pinned: the loss value and *every* parameter's gradient of one training step, in
float64, against a reference written from the formulation (the AMOS paper and its official
code for ``amos``; the project's importance-sampling formulation for ``focal_hardness``). The
references call only the model's network submodules (token embedding, generator stack and MLM
head, discriminator encoder and RTD head, mixture scorer weight, hardness head); nothing from
``amos_fairseq/criteria/*`` or ``modules/straight_through.py``. Straight-through estimation,
gradient reversal, mixing, the proposal, the importance weights, the focal loss and the
normalisation are all written out here with ordinary tensor operations.

Why: the criteria implement the adversarial path with custom autograd functions (a
zero-valued soft sample, a gradient-only embedding product, a reversal) whose backward passes
no forward value can check. The sign and symmetry tests elsewhere cannot see a *uniform*
rescaling of that gradient (e.g. the straight-through gradient times 3, or the reversal times
2); a per-parameter comparison with a reference can.

Both runs see the same Gumbel noise: ``sampling.gumbel_noise_like``, through which the
criteria draw every sample (the straight-through sampler of ``amos`` and ``gumbel_max`` of the
focal_hardness proposal), is replaced by a function returning a precomputed tensor, and the
reference adds the same tensor itself.

Precision note: even for an fp64 model the criteria compute some terms in fp32 on purpose:
the RTD binary cross-entropy (``rtd.py`` casts the RTD logits to fp32), the sampling path
(``sampling.py``: mixed logits and soft sample of ``amos``, proposal and importance weights of
``focal_hardness``). So the losses agree to ~1e-7 relative (fp32 resolution of the RTD sum;
asserted at 1e-6), and gradients to <= ~6e-7 relative (the mixture scorer's, fp32 all the
way, is the worst), well inside the 1e-5 bound. A uniform rescaling of the adversarial
gradient shows up as a relative error of order 1 (x3: 2; x2 on the reversal: ~1).
"""

import math

import pytest
import torch
import torch.nn.functional as F

import amos_fairseq.criteria.sampling as sampling
from amos_fairseq.criteria.amos import AmosCriterion, AmosCriterionConfig
from amos_fairseq.criteria.focal_hardness import FocalHardnessCriterion, FocalHardnessCriterionConfig
from conftest import build_model, random_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRAD_RTOL = 1e-5  # ||g - g_ref|| <= GRAD_RTOL * ||g_ref||, per parameter


# ---------------------------------------------------------------------------- shared set-up


def make_sample(task, seed=0):
    net_input, target = random_batch(task, batch=4, length=16, seed=seed)
    return {"net_input": net_input, "target": target,
            "ntokens": int(target.ne(task.dictionary.pad()).sum()), "nsentences": target.size(0)}


def spread_weights(model, seed):
    """Weights far from BERT's 0.02 init (float64), so that the depths disagree, the
    generator is far from uniform, hardness differs between tokens (importance weights far
    from 1) and the adversarial gradient is well above rounding. The mixture scorer stays
    small: a saturated softmax over depths would leave its gradient mostly to fp32
    cancellation in the criterion's sampling path."""
    g = torch.Generator().manual_seed(seed)

    def fill(p, std):
        p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)

    with torch.no_grad():
        fill(model.token_embeddings.weight, 0.2)
        model.token_embeddings.weight[model.padding_idx].zero_()
        for p in model.generator.encoder.stack.parameters():
            if p.dim() == 2:
                fill(p, 0.3)
        if model.mixture_scorer is not None:
            fill(model.mixture_scorer.score.weight, 0.05)  # [1, C_gen]
        if model.hardness_head is not None:
            for p in model.hardness_head.parameters():
                fill(p, 1.0)


def setup_model(arch, criterion, depths, seed=0):
    torch.manual_seed(seed)
    overrides = {} if depths is None else {"generator_depths": depths}
    model, task = build_model(arch, criterion=criterion, **overrides)
    model.double()
    model.eval()  # no dropout: the only randomness left is the Gumbel noise
    spread_weights(model, seed + 1)
    return model, task, make_sample(task, seed)


def masked_positions(sample):
    """Flat positions b * T + t of the masked tokens, [M] long, row-major."""
    return sample["net_input"]["masked_tokens"].flatten().nonzero().squeeze(-1)


def unplaceable_symbols(task):
    """[V] bool: symbols never placed as replacements (padding and the markers)."""
    d = task.dictionary
    assert "<mask>" in d.indices
    out = torch.zeros(len(d), dtype=torch.bool)
    out[[d.pad(), d.bos(), d.eos(), d.index("<mask>")]] = True
    return out


@pytest.fixture
def fixed_gumbel(monkeypatch):
    """``install(shape, seed) -> noise``: every Gumbel draw of the criteria returns a copy of
    ``noise`` (fp32, [M, V], like the real draw), and the number of draws is counted."""
    calls = []

    def install(shape, seed):
        g = torch.Generator().manual_seed(seed)
        uniform = torch.rand(shape, generator=g, dtype=torch.float32).clamp(min=1e-30)
        noise = -torch.log(-torch.log(uniform))  # standard Gumbel, [M, V] fp32

        def fake(logits):
            assert tuple(logits.shape) == tuple(shape), (tuple(logits.shape), shape)
            calls.append(1)
            return noise.clone()  # the criteria add to it in place

        monkeypatch.setattr(sampling, "gumbel_noise_like", fake)
        return noise

    install.calls = calls
    return install


def record_discriminator_tokens(model):
    """Keep the token tensor the discriminator is called with (both runs), to check that
    the criterion and the reference placed the same tokens."""
    seen = []
    handle = model.discriminator.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].clone()))  # args[0]: tokens [B, T]
    return seen, handle


def gradients(model, loss):
    """Backward from ``loss``; every parameter's gradient by name (zeros where none)."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in model.named_parameters()}


def relative_errors(grads, ref):
    """Per parameter ||g - g_ref|| / ||g_ref|| (0 where both are 0, inf where only g_ref is)."""
    out = {}
    for name, g_ref in ref.items():
        diff, norm = (grads[name] - g_ref).norm().item(), g_ref.norm().item()
        out[name] = diff / norm if norm > 0 else (0.0 if diff == 0 else math.inf)
    return out


def assert_gradients_match(grads, ref):
    """Every parameter within GRAD_RTOL relative; returns the largest relative error."""
    errors = relative_errors(grads, ref)
    worst = sorted(errors.items(), key=lambda kv: -kv[1])
    bad = [(n, f"{e:.3g}") for n, e in worst if not e <= GRAD_RTOL]
    assert not bad, (
        f"{len(bad)} of {len(errors)} parameters' gradients differ from the reference by more than "
        f"{GRAD_RTOL} relative; largest: {bad[:6]}; mixture scorer: "
        f"{errors.get('mixture_scorer.score.weight', 'n/a')}"
    )
    return worst[0][1]


def generator_at_masked(model, src, masked_index):
    """The shared-depth generator at the masked positions.

    src [B, T] -> (hiddens: K x [M, C_gen], logits: K x [M, V]), shallow to deep. The block
    above each non-final depth reads a detached input (block stop-gradient: with depths
    1,2,3, layer 1 learns from the depth-1 head only, and so on); one MLM head for all.
    """
    gen = model.generator
    depths = gen.depths
    cut = set(depths[:-1]) if len(depths) > 1 else set()  # 0-based index of the layer after a head
    _, per_depth = gen.encoder(src, detach_before=cut, collect=set(depths))  # K x [B, T, C_gen]
    hiddens = [h.flatten(0, 1)[masked_index] for h in per_depth]
    return hiddens, [gen.lm_head(h) for h in hiddens]


def rtd_terms(model, disc_tokens, target, token_embeds=None):
    """Discriminator on disc_tokens [B, T] (optionally with its input embeddings [B, T, E]).

    -> (rtd_logits_all [B*T], labels_all [B*T] bool, non_pad [B*T] bool); a position is
    'replaced' iff its token differs from the original.
    """
    features, _ = model.discriminator(disc_tokens, token_embeds)  # [B, T, H]
    logits_all = model.rtd_head(features.flatten(0, 1))  # [B*T], >0: replaced
    labels_all = disc_tokens.ne(target).flatten()
    non_pad = disc_tokens.ne(model.padding_idx).flatten()
    return logits_all, labels_all, non_pad


# ---------------------------------------------------------------------------- amos


def amos_reference(model, task, sample, noise, rtd_weight=50.0, temperature=0.3, adversarial_scale=1.0):
    """AMOS's loss in plain autograd -> (loss, M, disc_tokens [B, T], extras).

    L = sum_k CE(z^(k), x) over M  +  lambda * mask_prob * sum_N BCE(D(x~), replaced)
    with x~ at the masked positions drawn by a straight-through Gumbel-softmax from
    zbar = sum_k pi_k * stopgrad(z^(k)), pi = softmax_k(w . h^(k)), and the soft sample's
    gradient reversed (official AMOS code: y = y_hard - y_soft.detach() + y_soft).
    """
    src = sample["net_input"]["src_tokens"]  # [B, T]
    target = sample["target"]  # [B, T]
    B, T = src.shape
    masked_index = masked_positions(sample)  # [M]
    x = target.flatten()[masked_index]  # [M] original tokens
    hiddens, logits = generator_at_masked(model, src, masked_index)  # K x [M, C], K x [M, V]
    V = logits[0].size(-1)

    gen_loss = sum(F.cross_entropy(z, x, reduction="sum") for z in logits)

    w = model.mixture_scorer.score.weight.view(-1)  # [C], no bias, shared by depths
    pi = torch.softmax(torch.stack([h @ w for h in hiddens], dim=-1), dim=-1)  # [M, K]
    zbar = sum(pi[:, k : k + 1] * z.detach() for k, z in enumerate(logits))  # [M, V]
    zbar = zbar.masked_fill(unplaceable_symbols(task), float("-inf"))  # never place markers

    perturbed = zbar + noise.to(zbar.dtype)  # [M, V]
    y_soft = torch.softmax(perturbed / temperature, dim=-1)  # [M, V]
    placed = perturbed.argmax(dim=-1)  # [M]
    y_hard = F.one_hot(placed, V).to(y_soft.dtype)  # [M, V]
    y = y_hard - y_soft.detach() + y_soft  # straight-through: value one-hot, gradient soft
    y = y.detach() - adversarial_scale * (y - y.detach())  # gradient reversal: value y, grad * -scale

    table = model.token_embeddings.weight  # E [V, E]
    disc_tokens = src.flatten().index_copy(0, masked_index, placed).view(B, T)
    embeds = model.token_embeddings(src).flatten(0, 1)  # [B*T, E], E[x] at unmasked positions
    embeds = embeds.index_copy(0, masked_index, y @ table).view(B, T, -1)  # y @ E at masked ones

    logits_all, labels_all, non_pad = rtd_terms(model, disc_tokens, target, embeds)
    rtd = F.binary_cross_entropy_with_logits(
        logits_all[non_pad], labels_all[non_pad].to(logits_all.dtype), reduction="sum")
    # ELECTRA: mean_M(MLM) + lambda * mean_N(RTD). As a fairseq sum over sample_size = M, the
    # RTD term per token weighs lambda * M / N, i.e. lambda * mask_prob in expectation.
    loss = gen_loss + rtd_weight * task.cfg.mask_prob * rtd
    return loss, masked_index.numel(), disc_tokens, {"pi": pi.detach(), "placed": placed}


@pytest.mark.parametrize("depths", ["1,2,3", "1,3", "2,3,4"])
def test_amos_loss_and_every_gradient_match_plain_autograd_reference(depths, fixed_gumbel):
    """``amos`` (defaults: lambda 50, temperature 0.3, adversarial scale 1) on amos_tiny:
    the same tokens placed, loss equal to 1e-6 relative (fp32 RTD sum), every parameter's
    gradient within 1e-5 relative of the reference's, and the adversarial path live (mixture
    scorer gradient > 0, mixture not uniform). A uniform rescale of the straight-through
    gradient or of the reversal scales the mixture scorer's gradient (relative error 2 for
    x3, 1 for x2) and the generator layers' adversarial part, and fails here."""
    model, task, sample = setup_model("amos_tiny", "amos", depths)
    criterion = AmosCriterion.build_criterion(AmosCriterionConfig(), task)
    assert (criterion.gumbel_temperature, criterion.adversarial_scale, criterion.rtd_weight) == (0.3, 1.0, 50.0)
    M, V = int(sample["net_input"]["masked_tokens"].sum()), len(task.dictionary)
    noise = fixed_gumbel((M, V), seed=7)
    seen, hook = record_discriminator_tokens(model)

    loss, sample_size, _ = criterion(model, sample)
    grads = gradients(model, loss)
    assert len(fixed_gumbel.calls) == 1

    ref_loss, ref_size, ref_tokens, extras = amos_reference(model, task, sample, noise)
    ref_grads = gradients(model, ref_loss)
    hook.remove()

    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], ref_tokens)  # same placed tokens
    assert int(sample_size) == ref_size == M
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss.detach(), ref_loss.detach(), rtol=1e-6, atol=0)
    assert_gradients_match(grads, ref_grads)

    # The comparison means something: the adversarial path carries gradient, the mixture is
    # not uniform, and some placed tokens differ from the originals.
    assert ref_grads["mixture_scorer.score.weight"].norm() > 0
    assert extras["pi"].std() > 1e-3
    masked_index = masked_positions(sample)
    assert extras["placed"].ne(sample["target"].flatten()[masked_index]).any()


# ---------------------------------------------------------------------------- focal_hardness


def focal_hardness_reference(model, task, sample, noise, *, rtd_weight, focal_gamma, hardness_loss_weight,
                             alpha, eps, max_importance_weight):
    """Focal-hardness's loss in plain autograd -> (loss, M, disc_tokens [B, T], extras).

    L = sum_k sum_M -(1 - p(x))^gamma log p(x)
        + lambda * mask_prob * sum_N w_n BCE(D(x~)_n, replaced_n)
        + hardness_loss_weight * sum_M BCE(u_t(v_t), stopgrad(1 - P_D(correct label at t)))
    with v_t ~ q_t = p_t * (sigmoid(u_t) + eps)^alpha / Z_t (deepest generator, markers
    excluded from p), w = p(v)/q(v) detached, clipped and normalised to mean 1 over the
    masked positions, 1 at every unmasked token.
    """
    src = sample["net_input"]["src_tokens"]  # [B, T]
    target = sample["target"]  # [B, T]
    B, T = src.shape
    masked_index = masked_positions(sample)  # [M]
    x = target.flatten()[masked_index]  # [M]
    hiddens, logits = generator_at_masked(model, src, masked_index)  # K x [M, C], K x [M, V]

    gen_loss = 0.0
    for z in logits:
        p_x = torch.softmax(z, dim=-1).gather(-1, x[:, None]).squeeze(-1)  # [M]
        gen_loss = gen_loss + (-(1 - p_x) ** focal_gamma * torch.log(p_x)).sum()

    deepest = logits[-1].detach().masked_fill(unplaceable_symbols(task), float("-inf"))  # [M, V]
    p = torch.softmax(deepest, dim=-1)  # [M, V], 0 at the markers
    u = model.hardness_head(hiddens[-1])  # [M, V] hardness logits, with gradient
    q = p * (torch.sigmoid(u.detach()) + eps) ** alpha
    q = q / q.sum(dim=-1, keepdim=True)  # [M, V], a distribution per row
    placed = (torch.log(q) + noise.to(q.dtype)).argmax(dim=-1)  # [M], Gumbel-max draw from q
    ratio = (p / q).gather(-1, placed[:, None]).squeeze(-1)  # [M] p(v)/q(v), no gradient
    clipped = ratio.clamp(max=max_importance_weight)
    w = clipped / clipped.mean()  # mean 1 over the masked positions

    disc_tokens = src.flatten().index_copy(0, masked_index, placed).view(B, T)
    logits_all, labels_all, non_pad = rtd_terms(model, disc_tokens, target)  # [B*T] each
    weights_all = torch.ones(B * T, dtype=w.dtype).index_copy(0, masked_index, w)  # 1 off M
    bce_all = F.binary_cross_entropy_with_logits(
        logits_all, labels_all.to(logits_all.dtype), reduction="none")  # [B*T]
    rtd = (weights_all * bce_all)[non_pad].sum()

    d_logit = logits_all.detach()[masked_index]  # [M]
    p_replaced = torch.sigmoid(d_logit)
    error = torch.where(labels_all[masked_index], 1 - p_replaced, p_replaced)  # 1 - P_D(correct)
    u_placed = u.gather(-1, placed[:, None]).squeeze(-1)  # [M]
    hardness = F.binary_cross_entropy_with_logits(u_placed, error, reduction="sum")

    loss = gen_loss + rtd_weight * task.cfg.mask_prob * rtd + hardness_loss_weight * hardness
    return loss, masked_index.numel(), disc_tokens, {"ratio": ratio, "w": w, "placed": placed}


FOCAL_CASES = {
    # name: (arch, generator depths, criterion config overrides)
    "electra_tiny-defaults": ("electra_tiny", None, {}),
    "electra_tiny-clipped-gamma2": ("electra_tiny", None,
                                    dict(focal_gamma=2.0, max_importance_weight=1.5, hardness_loss_weight=0.5,
                                         hardness_alpha=2.0, hardness_eps=0.05)),
    "amos_tiny-depths-1,2": ("amos_tiny", "1,2", {}),
}


@pytest.mark.parametrize("case", sorted(FOCAL_CASES))
def test_focal_hardness_loss_and_every_gradient_match_plain_autograd_reference(case, fixed_gumbel):
    """``focal_hardness`` past its alpha warm-up: the same tokens placed, loss equal to 1e-6
    relative (the criterion's RTD sum and importance weights are fp32), every parameter's
    gradient within 1e-5 relative, with non-trivial importance weights (and, in the clipped
    case, the clip biting) and a live hardness-head gradient. Importance weights left
    unnormalised or a changed focal exponent move the loss by ~1e-3 or more and fail here."""
    arch, depths, overrides = FOCAL_CASES[case]
    model, task, sample = setup_model(arch, "focal_hardness", depths)
    cfg = FocalHardnessCriterionConfig(**overrides)
    criterion = FocalHardnessCriterion.build_criterion(cfg, task)
    criterion.set_num_updates(cfg.hardness_warmup_updates + 1)
    assert criterion.current_alpha == cfg.hardness_alpha > 0
    M, V = int(sample["net_input"]["masked_tokens"].sum()), len(task.dictionary)
    noise = fixed_gumbel((M, V), seed=11)
    seen, hook = record_discriminator_tokens(model)

    loss, sample_size, _ = criterion(model, sample)
    grads = gradients(model, loss)
    assert len(fixed_gumbel.calls) == 1

    ref_loss, ref_size, ref_tokens, extras = focal_hardness_reference(
        model, task, sample, noise, rtd_weight=cfg.rtd_weight, focal_gamma=cfg.focal_gamma,
        hardness_loss_weight=cfg.hardness_loss_weight, alpha=cfg.hardness_alpha, eps=cfg.hardness_eps,
        max_importance_weight=cfg.max_importance_weight)
    ref_grads = gradients(model, ref_loss)
    hook.remove()

    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], ref_tokens)
    assert int(sample_size) == ref_size == M
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss.detach(), ref_loss.detach(), rtol=1e-6, atol=0)
    assert_gradients_match(grads, ref_grads)

    # The comparison means something: weights far from 1, the hardness head trained, some
    # tokens replaced.
    assert extras["w"].std() > 0.1
    if "clipped" in case:
        assert (extras["ratio"] > cfg.max_importance_weight).any()
    assert ref_grads["hardness_head.dense.weight"].norm() > 0
    assert ref_grads["hardness_head.out.weight"].norm() > 0
    masked_index = masked_positions(sample)
    assert extras["placed"].ne(sample["target"].flatten()[masked_index]).any()
