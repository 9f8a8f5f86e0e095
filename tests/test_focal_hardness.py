"""focal_hardness: focal loss, the hardness-guided proposal, importance weights, the hardness
head's training signal, and the criterion end to end through fairseq-train."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats

from amos_fairseq.criteria.focal_hardness import (
    FocalHardnessCriterion,
    FocalHardnessCriterionConfig,
    discriminator_error,
    hardness_proposal,
)
from amos_fairseq.criteria.rtd import focal_nll
from amos_fairseq.models.amos import PretrainingOutput
from amos_fairseq.modules.generator import GeneratorOutput
from amos_fairseq.modules.heads import HardnessHead
from amos_fairseq.modules.positions import positions_from_masks

TASK = SimpleNamespace(cfg=SimpleNamespace(mask_prob=0.15))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second intra-op thread only spins on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_criterion(**overrides):
    cfg = FocalHardnessCriterionConfig(**overrides)
    return FocalHardnessCriterion.build_criterion(cfg, TASK)


# ---------------------------------------------------------------------- focal loss


def test_focal_default_gamma_is_one():
    assert FocalHardnessCriterionConfig().focal_gamma == 1.0
    assert build_criterion().focal_gamma == 1.0


def test_focal_loss_gamma0_is_cross_entropy_and_gamma2_matches_formula():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [-1.0, 4.0, 0.5]])
    targets = torch.tensor([0, 1, 1])
    loss0, _ = focal_nll(logits, targets, gamma=0.0)
    assert torch.allclose(loss0, F.cross_entropy(logits, targets, reduction="none"))

    def by_hand(row, target, gamma):
        z = [math.exp(v) for v in row]
        p = z[target] / sum(z)
        return -((1 - p) ** gamma) * math.log(p)

    loss2, log_p = focal_nll(logits, targets, gamma=2.0)
    expected = torch.tensor([by_hand(r.tolist(), int(t), 2.0) for r, t in zip(logits, targets)])
    assert torch.allclose(loss2, expected, atol=1e-6)
    # the confident, correct row is damped far more than the wrong one
    assert loss2[2] / loss0[2] < 0.01 and loss2[1] / loss0[1] > 0.9
    assert torch.allclose(log_p, -loss0)


def test_focal_generator_places_the_original_less_often():
    """Fit one position's logits to a peaked true distribution f: cross-entropy recovers f,
    the focal loss (gamma 1) a flatter p, so a sample equals the original token less often
    (the share is sum_v f(v) p(v))."""
    f = torch.tensor([0.7, 0.15, 0.1, 0.04, 0.01])
    tokens = torch.arange(len(f))

    def fit(gamma):
        logits = torch.zeros(len(f), requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=0.05)
        for _ in range(600):
            optimizer.zero_grad()
            loss, _ = focal_nll(logits.expand(len(f), -1), tokens, gamma)
            (loss * f).sum().backward()
            optimizer.step()
        return torch.softmax(logits.detach(), -1)

    p_mlm, p_focal = fit(0.0), fit(1.0)
    assert torch.allclose(p_mlm, f, atol=0.01)
    share_mlm, share_focal = float((f * p_mlm).sum()), float((f * p_focal).sum())
    assert share_focal < share_mlm - 0.03, (share_focal, share_mlm)
    assert p_focal[0] < f[0] - 0.05


# ---------------------------------------------------------------------- proposal


V = 6
P_LOGITS = torch.tensor([1.5, 0.5, 0.0, -0.5, 1.0, -1.0])
H_LOGITS = torch.tensor([-3.0, 2.0, 0.0, 1.0, -1.0, 3.0])


def draw(alpha, eps, n=60_000, seed=0):
    torch.manual_seed(seed)
    log_p = torch.log_softmax(P_LOGITS, -1).expand(n, V)
    tokens, log_importance = hardness_proposal(log_p, H_LOGITS.expand(n, V), alpha, eps)
    return tokens, log_importance


def target_q(alpha, eps):
    p = torch.softmax(P_LOGITS.double(), -1)
    q = p * (torch.sigmoid(H_LOGITS.double()) + eps) ** alpha
    return (q / q.sum()).numpy(), p.numpy()


@pytest.mark.parametrize("alpha,eps", [(1.0, 0.1), (2.0, 0.05)])
def test_draws_follow_p_times_hardness(alpha, eps):
    tokens, _ = draw(alpha, eps)
    counts = np.bincount(tokens.numpy(), minlength=V)
    q, p = target_q(alpha, eps)
    assert stats.chisquare(counts, q * counts.sum()).pvalue > 1e-3, (counts, q)
    # and they are clearly not draws from p itself
    assert stats.chisquare(counts, p * counts.sum()).pvalue < 1e-12


def test_alpha_zero_samples_from_p_with_unit_weights():
    tokens, log_importance = draw(alpha=0.0, eps=0.1)
    counts = np.bincount(tokens.numpy(), minlength=V)
    _, p = target_q(0.0, 0.1)
    assert stats.chisquare(counts, p * counts.sum()).pvalue > 1e-3
    assert torch.all(log_importance == 0)


def test_importance_weighted_mean_under_q_is_the_mean_under_p():
    alpha, eps = 1.5, 0.05
    f = torch.tensor([3.0, -1.0, 0.5, 2.0, 7.0, -4.0], dtype=torch.float64)
    tokens, log_importance = draw(alpha, eps, n=200_000, seed=1)
    w = log_importance.double().exp()  # raw p/q: no clipping, no normalisation
    values = w * f[tokens]
    _, p = target_q(alpha, eps)
    truth = float((torch.from_numpy(p) * f).sum())
    stderr = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean()) - truth) < 4 * stderr, (float(values.mean()), truth, stderr)
    # without the weights the estimate is biased by far more than its noise
    assert abs(float(f[tokens].mean()) - truth) > 20 * stderr
    # and the raw weights are p/q exactly
    q, p = target_q(alpha, eps)
    assert torch.allclose(w, torch.from_numpy(p / q)[tokens], rtol=1e-4)


def test_weights_are_clipped_and_normalised_and_only_touch_masked_positions():
    crit = build_criterion(max_importance_weight=2.0)
    log_importance = torch.log(torch.tensor([0.5, 1.0, 4.0, 8.0]))
    applied, clipped, raw = crit.importance_weights(log_importance)
    assert torch.allclose(clipped, torch.tensor([0.5, 1.0, 2.0, 2.0]))
    assert torch.allclose(applied.mean(), torch.tensor(1.0)) and torch.allclose(applied, clipped / 1.375)
    masked_in_non_pad = torch.tensor([False, True, True, False, True, True, False])
    out = SimpleNamespace(
        replacement=SimpleNamespace(extras={"log_importance": log_importance}),
        positions={"masked_in_non_pad_index": masked_in_non_pad.nonzero().squeeze(-1)},
    )
    weights = crit.rtd_weights(out, masked_in_non_pad)
    assert torch.allclose(weights[~masked_in_non_pad], torch.ones(3))
    assert torch.allclose(weights[masked_in_non_pad], applied)
    assert build_criterion(no_importance_weights=True).rtd_weights(out, masked_in_non_pad) is None


def test_alpha_ramps_over_warmup():
    crit = build_criterion(hardness_alpha=2.0, hardness_warmup_updates=100)
    alphas = []
    for n in (0, 50, 100, 500):
        crit.set_num_updates(n)
        alphas.append(crit.current_alpha)
    assert alphas == [0.0, 1.0, 2.0, 2.0]


# ---------------------------------------------------------------------- hardness head


class ToyModel(nn.Module):
    """A fixed generator and a fixed discriminator whose RTD logit depends only on the
    placed token; only the hardness head has parameters. Sequences are <s> x </s> with the
    middle position masked. Token 0 is padding and never placeable."""

    def __init__(self, vocab=12, width=16, batch=64, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hardness_head = HardnessHead(width, vocab)
        unplaceable = torch.zeros(vocab, dtype=torch.bool)
        unplaceable[:3] = True  # pad, <s>, </s>
        self.register_buffer("unplaceable", unplaceable)
        self.register_buffer("hidden", torch.randn(batch, width, generator=g))
        self.register_buffer("gen_logits", 0.5 * torch.randn(batch, vocab, generator=g))
        # discriminator logit (>0: 'replaced') for each token wherever it stands
        self.register_buffer("disc_score", torch.linspace(-3.0, 3.0, vocab)[torch.randperm(vocab, generator=g)])
        originals = torch.randint(3, vocab, (batch,), generator=g)
        self.register_buffer("target", torch.stack([torch.ones_like(originals), originals, 2 * torch.ones_like(originals)], 1))

    def batch(self):
        masked = torch.zeros_like(self.target, dtype=torch.bool)
        masked[:, 1] = True
        src = self.target.masked_fill(masked, 3)
        n = self.target.numel()
        return {
            "net_input": {"src_tokens": src, "src_lengths": torch.full((len(src),), 3), "masked_tokens": masked},
            "target": self.target, "ntokens": n, "nsentences": len(src),
        }

    def forward(self, src_tokens, src_lengths, masked_tokens, sampler):
        generated = GeneratorOutput(depths=[1], hiddens=[self.hidden], logits=[self.gen_logits])
        replacement = sampler(self, generated)
        disc_tokens = src_tokens.masked_scatter(masked_tokens, replacement.tokens)
        non_pad = disc_tokens.ne(0)
        return PretrainingOutput(generated, replacement, disc_tokens, non_pad, self.disc_score[disc_tokens][non_pad],
                                 positions=positions_from_masks(masked_tokens, non_pad))

    def expected_error(self):
        """[B, V] the discriminator's error probability if v were placed at the masked position."""
        prob_replaced = torch.sigmoid(self.disc_score).expand(len(self.target), -1)
        is_original = torch.arange(len(self.disc_score)).unsqueeze(0) == self.target[:, 1:2]
        return torch.where(is_original, prob_replaced, 1.0 - prob_replaced)


def test_hardness_target_is_discriminator_error_and_detached():
    logits = torch.tensor([2.0, -1.0, 0.0], requires_grad=True)
    replaced = torch.tensor([True, True, False])
    err = discriminator_error(logits, replaced)
    assert torch.allclose(err, torch.stack([1 - torch.sigmoid(logits[0]), 1 - torch.sigmoid(logits[1]), torch.tensor(0.5)]))

    torch.manual_seed(0)
    model, crit = ToyModel(), build_criterion(hardness_warmup_updates=0)
    sample = model.batch()
    out = model(**sample["net_input"], sampler=crit.sample)
    rtd_logits = out.rtd_logits.clone().requires_grad_(True)
    labels = out.disc_tokens.ne(sample["target"])[out.non_pad]
    masked_in_non_pad = sample["net_input"]["masked_tokens"][out.non_pad]
    log = {}
    loss = crit.extra_losses(out, labels, rtd_logits, masked_in_non_pad, log)
    loss.backward()
    assert rtd_logits.grad is None  # the head never pushes on the discriminator
    assert model.hardness_head.out.weight.grad.abs().sum() > 0
    assert int(log["sample_eq_orig"]) == int((~labels[masked_in_non_pad]).sum())


def test_hardness_head_learns_the_discriminator_error():
    torch.manual_seed(0)
    model = ToyModel()
    crit = build_criterion(hardness_warmup_updates=0, hardness_alpha=1.0)
    placeable = ~model.unplaceable
    truth = model.expected_error()[:, placeable].flatten()

    def correlation():
        with torch.no_grad():
            pred = torch.sigmoid(model.hardness_head(model.hidden))[:, placeable].flatten()
        return float(torch.corrcoef(torch.stack([pred, truth]))[0, 1])

    before = correlation()
    optimizer = torch.optim.Adam(model.hardness_head.parameters(), lr=1e-2)
    sample = model.batch()
    for _ in range(150):
        optimizer.zero_grad()
        loss, sample_size, log = crit(model, sample)
        (loss / sample_size).backward()
        optimizer.step()
    after = correlation()
    assert abs(before) < 0.3 and after > 0.8, (before, after)
    # once the head knows, the proposal favours hard tokens: the realised error rises
    assert float(log["hardness_target"]) / int(sample_size) > float(truth.mean()) + 0.05


# ---------------------------------------------------------------------- end to end


# Same data, seed and updates for all three runs. --mask-prob 0.4 balances the RTD classes
# so that a tiny discriminator starts detecting replacements within 80 updates.
E2E_ARGS = ["--arch", "electra_tiny", "--max-update", "80", "--total-num-update", "80",
            "--lr", "2e-3", "--mask-prob", "0.4"]
E2E_RUNS = {
    "electra": ["--criterion", "electra"],
    "focal": ["--criterion", "focal_hardness", "--hardness-alpha", "0", "--hardness-loss-weight", "5"],
    "hardness": ["--criterion", "focal_hardness", "--hardness-warmup-updates", "20", "--hardness-loss-weight", "5"],
}


@pytest.fixture(scope="module")
def e2e_logs(data_bin, tmp_path_factory):
    """The three fairseq-train runs, side by side (one intra-op thread each: 2 cores)."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import fairseq_train

    def run(name):
        save = tmp_path_factory.mktemp(f"fh_{name}")
        return fairseq_train(data_bin, save, *E2E_ARGS, *E2E_RUNS[name], env={"OMP_NUM_THREADS": "1"}).stdout

    with ThreadPoolExecutor(len(E2E_RUNS)) as pool:
        logs = dict(zip(E2E_RUNS, pool.map(run, E2E_RUNS)))
    return logs


def test_end_to_end_focal_and_hardness_against_electra(e2e_logs):
    from conftest import parse_log

    inner = {name: parse_log(log, "train_inner") for name, log in e2e_logs.items()}
    total = {name: parse_log(log, "train")[-1] for name, log in e2e_logs.items()}
    for name in ("focal", "hardness"):
        rows = inner[name]
        assert len(rows) == 16, e2e_logs[name][-3000:]
        for key in ("hardness_loss", "sample_eq_orig", "iw_mean", "iw_raw_mean", "iw_clip_rate", "iw_ess",
                    "rtd_acc_replaced"):
            assert key in rows[-1], (key, rows[-1])
        assert sum(r["loss"] for r in rows[-2:]) / 2 < 0.95 * rows[0]["loss"], [r["loss"] for r in rows]
        assert rows[-1]["gen_loss"] < rows[0]["gen_loss"]
        # sample_eq_orig is 1 - replace_rate when nothing is left unmasked
        assert abs(total[name]["sample_eq_orig"] - (1 - total[name]["replace_rate"])) < 2e-3
    # alpha 0: q = p, all weights 1
    assert total["focal"]["iw_raw_mean"] == 1.0 and total["focal"]["iw_ess"] == 1.0
    assert total["focal"]["iw_clip_rate"] == 0.0
    hard = inner["hardness"]
    assert hard[-1]["hardness_alpha"] == 1.0 and hard[0]["hardness_alpha"] < 0.5
    assert hard[-1]["iw_raw_mean"] != 1.0 and hard[-1]["iw_ess"] < 1.0 and abs(hard[-1]["iw_mean"] - 1) < 0.05
    assert hard[-1]["hardness_loss"] < hard[0]["hardness_loss"]

    # (That gamma 1 lowers sample_eq_orig is asserted on a fitted distribution in
    # test_focal_generator_places_the_original_less_often: at this budget the generator is
    # not yet confident and the shares tie.)
    error = {name: 1 - total[name]["rtd_acc_replaced"] for name in E2E_RUNS}
    # Hardness sampling hands the discriminator replacements it gets wrong more often, than
    # ELECTRA's and than the same focal generator sampling from p.
    assert error["hardness"] > error["electra"] and error["hardness"] > error["focal"], error


# ---------------------------------------------------------------------- hardness head's reach


def test_detached_hardness_head_trains_the_head_alone():
    """--hardness-detach-generator: the hardness loss reaches the head and not the generator's
    layers, whose gradient is then that of a run without the hardness loss; by default it
    reaches both."""
    from conftest import build_model, random_batch

    torch.manual_seed(0)
    model, task = build_model("electra_tiny", criterion="focal_hardness")
    net_input, target = random_batch(task, batch=4, length=20)
    sample = {"net_input": net_input, "target": target,
              "ntokens": int(target.ne(task.dictionary.pad()).sum()), "nsentences": target.size(0)}

    def grads(**overrides):
        criterion = FocalHardnessCriterion.build_criterion(FocalHardnessCriterionConfig(**overrides), task)
        criterion.set_num_updates(10_000)  # past the alpha ramp
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same draws in every call
        loss, _, _ = criterion(model, sample)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    detached = grads(hardness_detach_generator=True)
    without = grads(hardness_loss_weight=0.0)
    default = grads()
    layers = [n for n in default if n.startswith("generator.encoder.")]
    assert layers
    for name in layers:
        torch.testing.assert_close(detached[name], without[name], rtol=1e-6, atol=1e-9)
    assert max((default[n] - without[n]).abs().max().item() for n in layers) > 1e-6
    head = [n for n in detached if n.startswith("hardness_head.")]
    assert head and all(detached[n].abs().sum() > 0 for n in head)
