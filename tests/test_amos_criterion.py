"""The ``amos`` criterion: exact mixed-logit samples, gradient reversal onto the mixture only,
stop-gradients, reduced precision, metrics, and an end-to-end run."""

import math

import pytest
import torch
import torch.nn.functional as F
from fairseq.logging import metrics
from scipy.stats import chisquare

import amos_fairseq.criteria.amos as amos_module
from amos_fairseq.criteria.amos import AmosConfigError, AmosCriterion, AmosCriterionConfig
from amos_fairseq.criteria.electra import ElectraCriterion, ElectraCriterionConfig
from amos_fairseq.criteria.sampling import gumbel_noise_like
from amos_fairseq.models.amos import Replacement
from amos_fairseq.modules.generator import GeneratorOutput
from conftest import build_model, fairseq_train, parse_log, random_batch


def make_criterion(task, **cfg):
    return AmosCriterion.build_criterion(AmosCriterionConfig(**cfg), task)


def make_sample(task, **kw):
    net_input, target = random_batch(task, **kw)
    return {"net_input": net_input, "target": target, "ntokens": int(target.ne(1).sum()), "nsentences": target.size(0)}


def amos_setup(seed=0, depths="1,2,3", **batch):
    torch.manual_seed(seed)
    model, task = build_model("amos_tiny", criterion="amos", generator_depths=depths)
    model.eval()  # no dropout: the only randomness left is the Gumbel noise
    return model, task, make_sample(task, **batch)


class Recorder:
    """Wraps a criterion's sampler to keep what it saw and returned."""

    def __init__(self, criterion, transform=None):
        self.inner = criterion.sample
        self.transform = transform
        self.generated = self.replacement = None
        criterion.sample = self

    def __call__(self, model, generated):
        if self.transform is not None:
            generated = self.transform(generated)
        self.generated = generated
        self.replacement = self.inner(model, generated)
        return self.replacement


class FixedTokens:
    """Places given tokens with no relaxation (the reference without any reversal)."""

    def __init__(self, tokens):
        self.tokens = tokens

    def __call__(self, model, generated):
        return Replacement(tokens=self.tokens)


# ---------------------------------------------------------------------------- sampling


def synthetic_generator_output(model, draws, seed=0, mixture=(0.5, 0.3, 0.2)):
    """K=3 depths at one position, repeated ``draws`` times: clearly different logits, and
    hidden states that give the mixture weights ``mixture`` under a unit scorer."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.unplaceable.numel()
    width = model.mixture_scorer.score.in_features
    with torch.no_grad():
        model.mixture_scorer.score.weight.zero_()[0, 0] = 1.0
    logits = [(torch.randn(1, vocab, generator=g) * 2.0).expand(draws, vocab) for _ in range(3)]
    hiddens = []
    for weight in mixture:
        h = torch.randn(1, width, generator=g)
        h[0, 0] = math.log(weight)
        hiddens.append(h.expand(draws, width))
    return GeneratorOutput(depths=[1, 2, 3], hiddens=hiddens, logits=logits)


def expected_distributions(model, generated):
    """softmax(zbar) and, for contrast, the probability-space mixture, over placeable ids."""
    with torch.no_grad():
        scores = torch.stack([model.mixture_scorer.score.weight[0] @ h[0] for h in generated.hiddens])
        pi = torch.softmax(scores, 0)
        logits = torch.stack([l[0] for l in generated.logits])  # [K, V]
        placeable = ~model.unplaceable
        zbar = (pi[:, None] * logits).sum(0)
        logit_mix = torch.softmax(zbar[placeable], 0)
        prob_mix = (pi[:, None] * torch.softmax(logits[:, placeable], -1)).sum(0)
    return pi, logit_mix.double(), prob_mix.double()


def counts_over_placeable(model, tokens):
    counts = torch.bincount(tokens, minlength=model.unplaceable.numel())
    assert counts[model.unplaceable].sum() == 0, "an unplaceable symbol was sampled"
    return counts[~model.unplaceable].double()


def chi2_pvalue(counts, probs):
    """Pearson chi-square p-value of ``counts`` against ``probs``; bins expecting < 5 merged."""
    probs = probs.double() / probs.double().sum()
    expected = probs * counts.sum()
    small = expected < 5
    if small.any():
        counts = torch.cat([counts[~small], counts[small].sum().view(1)])
        expected = torch.cat([expected[~small], expected[small].sum().view(1)])
    return chisquare(counts.numpy(), expected.numpy()).pvalue


def test_forward_sample_is_exact_sample_of_mixed_logits():
    torch.manual_seed(0)
    model, task = build_model("amos_tiny", criterion="amos", vocab_words=10)
    draws = 40000
    generated = synthetic_generator_output(model, draws)
    pi, logit_mix, prob_mix = expected_distributions(model, generated)
    torch.testing.assert_close(pi, torch.tensor([0.5, 0.3, 0.2]))

    criterion = make_criterion(task)
    torch.manual_seed(1)
    counts = counts_over_placeable(model, criterion.sample(model, generated).tokens)
    assert chi2_pvalue(counts, logit_mix) > 1e-3
    # Power check: the same counts reject the probability-space mixture and the deepest depth.
    assert chi2_pvalue(counts, prob_mix) < 1e-6
    deepest = torch.softmax(generated.logits[-1][0][~model.unplaceable], 0).double()
    assert chi2_pvalue(counts, deepest) < 1e-6


def test_temperature_does_not_change_forward_sample():
    torch.manual_seed(0)
    model, task = build_model("amos_tiny", criterion="amos", vocab_words=10)
    generated = synthetic_generator_output(model, 5000, seed=3)
    tokens, relaxed = [], []
    for temperature in (0.05, 0.3, 3.0):
        torch.manual_seed(7)
        out = make_criterion(task, gumbel_temperature=temperature).sample(model, generated)
        tokens.append(out.tokens)
        relaxed.append(out.relaxed)
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[1], tokens[2])
    _, logit_mix, _ = expected_distributions(model, generated)
    assert chi2_pvalue(counts_over_placeable(model, tokens[2]), logit_mix) > 1e-3
    for r in relaxed:  # straight-through: zero in value, soft in gradient
        assert r.dtype == torch.float32 and r.abs().max() == 0 and r.requires_grad


# ---------------------------------------------------------------------------- gradients


def surrogate_rtd_loss(model, criterion, sample, seed, tokens, soft_at_start):
    """The RTD loss (summed BCE, in the model's precision) with the same Gumbel noise and
    placed tokens, where the discriminator input at masked positions is
    E[token] + (soft - soft_at_start) @ E: exactly the hard loss at the starting parameters,
    and differentiable in the mixture with the straight-through gradient.
    Returns (loss, soft sample [M, V])."""
    soft_box = []

    def sampler(model, generated):
        weights = amos_module.mixture_weights(model, generated)
        zbar = amos_module.mixed_logits(model, generated, weights)
        torch.manual_seed(seed)
        noise = gumbel_noise_like(zbar)
        if soft_at_start is None:
            assert torch.equal((zbar + noise).argmax(-1), tokens), "noise differs from the training pass"
        soft = torch.softmax((zbar + noise) / criterion.gumbel_temperature, -1)
        soft_box.append(soft)
        start = soft if soft_at_start is None else soft_at_start
        return Replacement(tokens=tokens, relaxed=soft - start, relaxed_is_zero=False)

    with torch.no_grad():
        out = model(**sample["net_input"], sampler=sampler)
        labels = out.disc_tokens.ne(sample["target"])[out.non_pad]
        loss = F.binary_cross_entropy_with_logits(out.rtd_logits, labels.to(out.rtd_logits.dtype), reduction="sum")
    return loss.item(), soft_box[0]


def sensitive_model(seed=0):
    """A double-precision model whose depths disagree and whose discriminator reacts to its
    input embeddings (at BERT's init scale the effect of one step is below fp32 resolution)."""
    model, task, sample = amos_setup(seed=seed, batch=8, length=24)
    model.double()
    with torch.no_grad():
        model.token_embeddings.weight.normal_(0, 1.0)
        for name, p in model.generator.encoder.stack.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return model, task, sample


@pytest.mark.parametrize("scale,direction", [(1.0, +1), (-1.0, -1)])
def test_sgd_step_on_mixture_moves_rtd_loss_against_discriminator(scale, direction):
    model, task, sample = sensitive_model()
    criterion = make_criterion(task, adversarial_scale=scale)
    recorder = Recorder(criterion)
    seed = 11
    torch.manual_seed(seed)
    loss, _, log = criterion(model, sample)
    tokens = recorder.replacement.tokens
    start_loss, soft_start = surrogate_rtd_loss(model, criterion, sample, seed, tokens, None)
    assert start_loss == pytest.approx(log["rtd_loss"].item(), rel=1e-5)  # same noise, same loss

    scorer = model.mixture_scorer.score.weight
    model.zero_grad()
    loss.backward()
    assert scorer.grad.abs().sum() > 0
    torch.optim.SGD([scorer], lr=1e-3 / scorer.grad.norm().item()).step()
    moved_loss, _ = surrogate_rtd_loss(model, criterion, sample, seed, tokens, soft_start)
    assert direction * (moved_loss - start_loss) > 0, (start_loss, moved_loss)


def test_zero_adversarial_scale_gives_mixture_no_gradient():
    model, task, sample = amos_setup()
    criterion = make_criterion(task, adversarial_scale=0.0, generator_loss_weights="0,0,0")
    loss, _, _ = criterion(model, sample)
    loss.backward()
    assert model.mixture_scorer.score.weight.grad.abs().max() == 0
    for layer in model.generator.encoder.stack.layers:
        assert layer.fc1.weight.grad.abs().max() == 0
    assert model.discriminator.stack.layers[0].fc1.weight.grad.abs().max() > 0


def test_rtd_loss_reaches_mixture_and_generator_layers_but_not_generator_logits():
    model, task, sample = amos_setup()
    # Generator losses weighted 0: what remains is the RTD loss.
    criterion = make_criterion(task, generator_loss_weights="0,0,0")

    def keep_logit_grads(generated):
        for logits in generated.logits:
            logits.retain_grad()
        return generated

    recorder = Recorder(criterion, keep_logit_grads)
    loss, _, _ = criterion(model, sample)
    loss.backward()
    for logits in recorder.generated.logits:
        assert logits.grad is None or logits.grad.abs().max() == 0
    head = model.generator.lm_head
    assert head.dense.weight.grad.abs().max() == 0 and head.bias.grad.abs().max() == 0
    assert model.mixture_scorer.score.weight.grad.abs().max() > 0
    # Through h^(k) the adversarial gradient trains every generator block.
    for layer in model.generator.encoder.stack.layers:
        assert layer.fc1.weight.grad.abs().max() > 0


def embedding_grad(model, criterion, sample, seed=5):
    model.zero_grad()
    torch.manual_seed(seed)
    loss, _, _ = criterion(model, sample)
    loss.backward()
    scorer = model.mixture_scorer.score.weight.grad
    return model.token_embeddings.weight.grad.clone(), None if scorer is None else scorer.clone()


def test_token_embeddings_get_unreversed_discriminator_gradient():
    model, task, sample = amos_setup()
    amos = make_criterion(task, adversarial_scale=1.0)
    reference = ElectraCriterion.build_criterion(ElectraCriterionConfig(), task)

    # (a) Cut the path mixture -> h -> generator -> E: what E receives must then equal the
    # gradient of plain ELECTRA-style placement of the same tokens (no relaxation, no reversal).
    detach_h = lambda g: GeneratorOutput(g.depths, [h.detach() for h in g.hiddens], g.logits)  # noqa: E731
    recorder = Recorder(amos, detach_h)
    grad_amos, scorer_grad = embedding_grad(model, amos, sample)
    assert scorer_grad.abs().max() > 0  # the adversarial path was live
    reference.sample = FixedTokens(recorder.replacement.tokens)
    grad_ref, _ = embedding_grad(model, reference, sample)
    torch.testing.assert_close(grad_amos, grad_ref, rtol=1e-5, atol=1e-8)

    # (b) Uncut: only the adversarial part flips with the scale; the rest stays unreversed.
    grads = {}
    for scale in (1.0, -1.0):
        crit = make_criterion(task, adversarial_scale=scale)
        rec = Recorder(crit)
        grads[scale], _ = embedding_grad(model, crit, sample)
        assert torch.equal(rec.replacement.tokens, recorder.replacement.tokens)
    torch.testing.assert_close(grads[1.0] + grads[-1.0], 2 * grad_ref, rtol=1e-4, atol=1e-7)
    assert (grads[1.0] - grad_ref).abs().max() > 0


def generator_layers_reached(model, criterion, sample):
    model.zero_grad()
    loss, _, _ = criterion(model, sample)
    loss.backward()
    return [layer.fc1.weight.grad is not None and layer.fc1.weight.grad.abs().max().item() > 0
            for layer in model.generator.encoder.stack.layers]


def test_block_stop_gradients_hold_under_amos():
    model, task, sample = amos_setup(depths="1,2,3")
    mlm_only = dict(rtd_weight=0.0)
    assert generator_layers_reached(model, make_criterion(task, generator_loss_weights="1,0,0", **mlm_only), sample) \
        == [True, False, False]
    assert generator_layers_reached(model, make_criterion(task, generator_loss_weights="0,1,0", **mlm_only), sample) \
        == [False, True, False]
    assert generator_layers_reached(model, make_criterion(task, generator_loss_weights="0,0,1", **mlm_only), sample) \
        == [False, False, True]
    # The adversarial RTD gradient enters each block only through that block's own h^(k).
    def keep_only_depth(k):
        return lambda g: GeneratorOutput(
            g.depths, [h if i == k else h.detach() for i, h in enumerate(g.hiddens)], g.logits)
    for k in range(3):
        criterion = make_criterion(task, generator_loss_weights="0,0,0")
        Recorder(criterion, keep_only_depth(k))
        assert generator_layers_reached(model, criterion, sample) == [i == k for i in range(3)]


# ---------------------------------------------------------------------------- precision


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_weights_give_finite_loss_with_fp32_sampling(dtype, monkeypatch):
    model, task, sample = amos_setup()
    model.to(dtype)
    seen = []
    real = amos_module.straight_through_gumbel_softmax

    def spy(logits, temperature, noise=None):
        seen.append(logits.dtype)
        return real(logits, temperature, noise)

    monkeypatch.setattr(amos_module, "straight_through_gumbel_softmax", spy)
    criterion = make_criterion(task)
    recorder = Recorder(criterion)
    loss, _, log = criterion(model, sample)
    assert recorder.generated.logits[0].dtype == dtype  # the network itself ran in low precision
    assert seen == [torch.float32]
    assert recorder.replacement.relaxed.dtype == torch.float32
    assert recorder.replacement.extras["mixture_weights"].dtype == torch.float32
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    grad = model.mixture_scorer.score.weight.grad
    assert grad is not None and torch.isfinite(grad).all()


# ---------------------------------------------------------------------------- options, metrics


def test_single_depth_reduces_to_gumbel_sampled_electra():
    torch.manual_seed(0)
    model, task = build_model("electra_tiny", criterion="amos")
    model.eval()
    sample = make_sample(task)
    amos, electra = make_criterion(task), ElectraCriterion.build_criterion(ElectraCriterionConfig(), task)
    torch.manual_seed(3)
    loss_amos, size, log = amos(model, sample)
    torch.manual_seed(3)
    loss_electra, _, _ = electra(model, sample)
    # pi == 1, so zbar == z and the same noise places the same tokens: the same objective.
    assert loss_amos.item() == pytest.approx(loss_electra.item(), rel=1e-6)
    assert log["mix_w_d2"].item() == pytest.approx(size.item()) and log["mix_entropy"].item() == 0
    loss_amos.backward()
    assert model.mixture_scorer.score.weight.grad.abs().max() == 0


def test_clear_errors():
    model, task = build_model("amos_tiny", criterion="electra")  # no mixture scorer
    sample = make_sample(task)
    with pytest.raises(AmosConfigError, match="--criterion amos"):
        make_criterion(task)(model, sample)
    model, task = build_model("amos_tiny", criterion="amos")
    with pytest.raises(AmosConfigError, match="--generator-loss-weights"):
        make_criterion(task, generator_loss_weights="1,1")(model, make_sample(task))
    with pytest.raises(AmosConfigError, match="--generator-loss-weights"):
        make_criterion(task, generator_loss_weights="1,x,1")
    with pytest.raises(AmosConfigError, match="--gumbel-temperature"):
        make_criterion(task, gumbel_temperature=0.0)


def test_generator_loss_weights_weight_each_depth():
    model, task, sample = amos_setup()
    torch.manual_seed(2)
    _, _, log = make_criterion(task, generator_loss_weights="1,0.5,2")(model, sample)
    expected = log["gen_loss_d1"] + 0.5 * log["gen_loss_d2"] + 2 * log["gen_loss_d3"]
    assert log["gen_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_mixture_metrics_aggregate_as_weighted_means():
    model, task, _ = amos_setup()
    criterion = make_criterion(task)
    logs, weights = [], []
    for seed in (0, 1):  # two workers / validation batches of different sizes
        recorder = Recorder(criterion)
        _, _, log = criterion(model, make_sample(task, seed=seed, batch=3 + seed))
        logs.append(log)
        weights.append(recorder.replacement.extras["mixture_weights"])
        criterion.sample = recorder.inner
    pooled = torch.cat(weights)  # [M1 + M2, K]
    with metrics.aggregate() as agg:
        AmosCriterion.reduce_metrics(logs)
    values = agg.get_smoothed_values()
    for k, depth in enumerate((1, 2, 3)):
        assert values[f"mix_w_d{depth}"] == pytest.approx(pooled[:, k].mean().item(), abs=1e-4)
    entropy = -(pooled * pooled.log()).sum(-1).mean().item()
    assert values["mix_entropy"] == pytest.approx(entropy, abs=1e-4)
    assert "rtd_acc_replaced" in values and "gen_loss_d3" in values  # the base metrics too


# ---------------------------------------------------------------------------- end to end


E2E_UPDATES = 100


@pytest.fixture(scope="module")
def amos_run(data_bin, tmp_path_factory):
    """One fairseq-train run with a higher learning rate than the tiny default so that the
    mixture visibly moves.

    Whether the adversary makes replacements harder to detect is not asserted here: at a
    budget CI can afford the depths give near-identical logits and the errors of scale 1
    and scale 0 tie (a test that passes on a tie cannot fail). The sign of the adversarial
    gradient is checked exactly by test_sgd_step_on_mixture_moves_rtd_loss_against_discriminator;
    the effect at a scale where the generators differ is measured in docs/amos.md."""
    proc = fairseq_train(
        data_bin, tmp_path_factory.mktemp("amos_e2e"),
        "--arch", "amos_tiny", "--criterion", "amos", "--lr", "3e-3",
        "--max-update", E2E_UPDATES, "--total-num-update", E2E_UPDATES, "--no-save",
    )
    return parse_log(proc.stdout), parse_log(proc.stdout, "train")


def test_end_to_end_amos_training(amos_run):
    inner, summary = amos_run
    assert len(inner) >= 10 and summary
    assert inner[-1]["loss"] < 0.8 * inner[0]["loss"]
    assert inner[-1]["gen_loss_d3"] < inner[0]["gen_loss_d3"]
    # The mixture trains: it leaves uniform (a scorer without gradient stays where it starts).
    # Where it is after 100 updates depends on the seed and the data (it moves out and back
    # within the run), so the test reads the farthest it went.
    away = [max(abs(row[f"mix_w_d{d}"] - 1 / 3) for d in (1, 2, 3)) for row in inner]
    assert max(away) > away[0] + 0.01, away
