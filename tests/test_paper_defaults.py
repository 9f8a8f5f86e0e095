"""Each recipe and architecture follows its paper: ELECTRA's generator dropout (0.1) and Adam
beta2 (0.999), AMOS's dropout-free generators and RoBERTa-style Adam (0.9, 0.98); the
previous values stay reachable by a flag."""

import argparse
import re

import pytest

from conftest import ROOT
from test_recipes import recipe


def arch_defaults(arch, **given):
    from fairseq.models import ARCH_CONFIG_REGISTRY

    import amos_fairseq  # noqa: F401

    args = argparse.Namespace(**given)
    ARCH_CONFIG_REGISTRY[arch](args)
    return args


@pytest.mark.parametrize("arch,dropout", [
    ("electra_small", 0.1), ("electra_base", 0.1), ("electra_large", 0.1),  # ELECTRA: BERT's 0.1
    ("amos_small", 0.0), ("amos_base", 0.0), ("amos_large", 0.0),  # AMOS: none
    ("electra_mini", 0.0), ("amos_mini", 0.0), ("electra_tiny", 0.0),  # CPU scale: none anywhere
])
def test_generator_dropout_follows_the_paper(arch, dropout):
    assert arch_defaults(arch).generator_dropout == dropout
    assert arch_defaults(arch, generator_dropout=0.0).generator_dropout == 0.0  # the flag still wins


def adam_betas_of_a_run(tmp_path, method, **env):
    proc = recipe("pretrain.sh", method, "tiny", "cpu", WORK=str(tmp_path / method), CPU_UPDATES="1", **env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    found = re.search(r"'adam_betas': '([^']+)'", proc.stdout)
    assert found, proc.stdout[-3000:]
    return found.group(1)


def test_pretraining_recipe_uses_each_papers_adam_betas(tmp_path):
    assert adam_betas_of_a_run(tmp_path, "electra") == "(0.9,0.999)"
    assert adam_betas_of_a_run(tmp_path, "amos") == "(0.9,0.98)"
    assert adam_betas_of_a_run(tmp_path / "old", "electra", ADAM_BETAS="(0.9,0.98)") == "(0.9,0.98)"


def test_effective_rtd_weight_is_logged():
    """The RTD term weighs lambda * mask_prob per token, i.e. lambda * mask_prob * N / M
    relative to the mean MLM loss: logged as rtd_weight_effective, above lambda because
    <s> and </s> are RTD tokens that are never masked."""
    import torch
    from fairseq.logging import metrics

    from amos_fairseq.criteria.electra import ElectraCriterion, ElectraCriterionConfig
    from conftest import build_model, random_batch

    torch.manual_seed(0)
    model, task = build_model("electra_tiny")
    task.cfg.mask_prob = 0.15
    criterion = ElectraCriterion.build_criterion(ElectraCriterionConfig(), task)
    net_input, target = random_batch(task, batch=6, length=30, mask_prob=0.15)
    sample = {"net_input": net_input, "target": target,
              "ntokens": int(target.ne(task.dictionary.pad()).sum()), "nsentences": target.size(0)}
    logs = [criterion(model, sample)[2] for _ in range(2)]
    with metrics.aggregate() as agg:
        ElectraCriterion.reduce_metrics(logs)
        values = agg.get_smoothed_values()
    non_pad = int(target.ne(task.dictionary.pad()).sum())
    masked = int(net_input["masked_tokens"].sum())
    assert values["rtd_weight_effective"] == pytest.approx(50 * 0.15 * non_pad / masked, abs=0.01)
