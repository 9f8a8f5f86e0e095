"""ELECTRA's layer-wise learning-rate decay through fairseq's per-parameter optimizer
overrides: --layerwise-lr-decay D gives the parameters at depth d (embeddings 0, layer i
i + 1, heads L + 2) the scale D^(L + 2 - d), and --optimizer scaled_adam applies them."""

import argparse

import pytest
import torch

from conftest import ONE_THREAD, build_model, fairseq_train


def scales(model):
    from amos_fairseq.optim.scaled_adam import lr_scale

    return {name: lr_scale(p) for name, p in model.named_parameters()}


def test_scales_follow_electras_depths():
    model, _ = build_model("electra_tiny", layerwise_lr_decay=0.5)  # 2 layers: L + 2 = 4
    model.register_classification_head("head", num_classes=2)
    model.set_layerwise_lr_decay(0.5)
    s = scales(model)
    assert s["token_embeddings.weight"] == 0.5 ** 4
    assert s["discriminator.embeddings.position_embeddings.weight"] == 0.5 ** 4
    assert s["discriminator.stack.layers.0.fc1.weight"] == 0.5 ** 3
    assert s["discriminator.stack.layers.1.qkv_proj.bias"] == 0.5 ** 2
    assert s["classification_heads.head.dense.weight"] == 1.0
    plain, _ = build_model("electra_tiny")
    assert set(scales(plain).values()) == {1.0}


def test_scaled_adam_runs_each_group_at_its_scale():
    from omegaconf import OmegaConf

    from amos_fairseq.optim.scaled_adam import ScaledAdam, ScaledAdamConfig

    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    b.optim_overrides = {"optimizer": {"lr_scale": 0.25}}
    optimizer = ScaledAdam(OmegaConf.structured(ScaledAdamConfig(lr=[0.1], tpu=False)), [a, b])
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.025]
    optimizer.set_lr(0.01)
    assert optimizer.get_lr() == 0.01 and optimizer.param_groups[1]["lr"] == pytest.approx(0.0025)
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    optimizer.step()
    # Adam's first step moves every weight by lr (the normalised gradient is 1)
    assert a.data == pytest.approx(torch.full((3,), -0.01), abs=1e-6)
    assert b.data == pytest.approx(torch.full((3,), -0.0025), abs=1e-6)


def test_decay_without_the_optimizer_that_applies_it_stops_the_run(data_bin, tmp_path):
    proc = fairseq_train(data_bin, tmp_path, "--arch", "electra_tiny", "--criterion", "electra",
                         "--max-update", "1", "--layerwise-lr-decay", "0.8", check=False, env=ONE_THREAD)
    assert proc.returncode != 0 and "--layerwise-lr-decay 0.8 needs --optimizer scaled_adam" in proc.stdout
