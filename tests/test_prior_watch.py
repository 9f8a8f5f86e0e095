"""The training-time warning for a discriminator at its label prior: which windows it judges,
its thresholds, and the sums the RTD criteria feed it (training only, never for an MLM-only run)."""

import logging
import math

import pytest
import torch

from amos_fairseq.criteria.electra import ElectraCriterion, ElectraCriterionConfig
from amos_fairseq.criteria.prior_watch import LabelPriorWatch
from conftest import build_model, random_batch

WATCH_LOGGER = "amos_fairseq.criteria.prior_watch"


def entropy(share):
    return -(share * math.log(share) + (1 - share) * math.log(1 - share))


def feed(watch, updates, loss_per_token, share=0.15, caught_share=0.0, tokens=1000):
    """One batch per update of ``updates``; returns the warnings."""
    messages = []
    for update in updates:
        replaced = share * tokens
        message = watch.add(update, torch.tensor(loss_per_token * tokens), torch.tensor(float(tokens)),
                            torch.tensor(replaced), torch.tensor(caught_share * replaced))
        if message:
            messages.append(message)
    return messages


def test_a_discriminator_at_its_prior_is_named_for_each_window_but_the_first(caplog):
    watch = LabelPriorWatch(window=10)
    with caplog.at_level(logging.WARNING, logger=WATCH_LOGGER):
        messages = feed(watch, range(41), entropy(0.15))
    # Windows 0-9 (the prior init's start), then 10-19, 20-29, 30-39 judged when the next begins.
    assert [m.split(":")[0] for m in messages] == ["updates 10-19", "updates 20-29", "updates 30-39"]
    assert f"RTD loss {entropy(0.15):.4f}, prior {entropy(0.15):.4f}" in messages[0]
    assert "another --seed" in messages[0]
    assert [r.getMessage() for r in caplog.records if r.name == WATCH_LOGGER] == messages


@pytest.mark.parametrize("loss_below_prior,caught_share,warns", [
    (0.0, 0.0, True),
    (0.0009, 0.004, True),  # inside both thresholds
    (0.0011, 0.0, False),  # the loss beats the prior by more than the margin
    (0.0, 0.006, False),  # it catches replaced tokens
    (0.05, 0.3, False),  # a discriminator that learns
])
def test_thresholds(loss_below_prior, caught_share, warns):
    watch = LabelPriorWatch(window=5)
    messages = feed(watch, range(11), entropy(0.2) - loss_below_prior, share=0.2, caught_share=caught_share)
    assert bool(messages) == warns


def test_micro_batches_of_one_update_count_together():
    # Two micro-batches per update, at half and one and a half times the prior: the window's
    # loss is their token-weighted mean, the prior itself (neither batch alone gives it).
    watch = LabelPriorWatch(window=2)
    prior = entropy(0.15)
    for update in range(2, 4):
        watch.add(update, torch.tensor(0.5 * prior * 500), torch.tensor(500.0), torch.tensor(75.0), torch.tensor(0.0))
        watch.add(update, torch.tensor(1.5 * prior * 500), torch.tensor(500.0), torch.tensor(75.0), torch.tensor(0.0))
    message = watch.add(4, 0.0, 1.0, 0.0, 0.0)
    assert message is not None and f"RTD loss {prior:.4f}, prior {prior:.4f}" in message


def make_sample(task, seed=0):
    net_input, target = random_batch(task, seed=seed)
    return {"net_input": net_input, "target": target, "ntokens": int(target.ne(1).sum()), "nsentences": target.size(0)}


def test_the_criterion_feeds_the_watch_its_logged_sums_in_training_only(caplog):
    torch.manual_seed(0)
    model, task = build_model("electra_tiny")
    sample = make_sample(task)
    criterion = ElectraCriterion.build_criterion(ElectraCriterionConfig(), task)
    criterion.prior_watch = LabelPriorWatch(window=1)

    model.train()
    criterion.set_num_updates(3)
    _, _, log = criterion(model, sample)
    expected = [float(log[k]) for k in ("rtd_loss", "rtd_tokens", "replaced", "rtd_correct_replaced")]
    torch.testing.assert_close(criterion.prior_watch._sums.tolist(), expected)

    # An always-warning watch: evaluation batches and an MLM-only criterion never reach it.
    always = dict(window=1, margin=1e9, caught=2.0)
    mlm = ElectraCriterion.build_criterion(ElectraCriterionConfig(rtd_weight=0.0), task)
    with caplog.at_level(logging.WARNING, logger=WATCH_LOGGER):
        for crit, training in ((criterion, False), (mlm, True), (criterion, True)):
            crit.prior_watch = LabelPriorWatch(**always)
            model.train(training)
            for update in range(1, 4):
                crit.set_num_updates(update)
                crit(model, sample)
    warned = [r.getMessage() for r in caplog.records if r.name == WATCH_LOGGER]
    assert [m.split(":")[0] for m in warned] == ["updates 1-1", "updates 2-2"]  # the last case only
