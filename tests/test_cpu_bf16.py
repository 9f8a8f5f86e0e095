"""--cpu-bf16: the training forward pass multiplies matrices in bf16 while the weights, their
gradients, the sampling and the losses stay fp32; it refuses (on) or falls back (auto) where
this CPU's bf16 products are not fast."""

import pytest
import torch

from amos_fairseq.cpu_bf16 import CpuBf16Error, resolve_cpu_bf16
from amos_fairseq.criteria.amos import AmosCriterion, AmosCriterionConfig
from conftest import ONE_THREAD, build_model, fairseq_train, random_batch


def fast():
    return 1.0, 0.3  # fp32 s, bf16 s


def slow():
    return 1.0, 1.5


def test_on_refuses_and_auto_falls_back_where_bf16_is_slow(caplog):
    with pytest.raises(CpuBf16Error, match=r"bf16 would slow training down .* use --cpu-bf16 auto"):
        resolve_cpu_bf16("on", measure=slow)
    with caplog.at_level("INFO"):
        assert resolve_cpu_bf16("auto", measure=slow) is False
    assert "--cpu-bf16 auto: fp32" in caplog.text
    assert resolve_cpu_bf16("on", measure=fast) is True and resolve_cpu_bf16("auto", measure=fast) is True
    assert resolve_cpu_bf16("off", measure=slow) is False


def test_products_in_bf16_weights_sampling_and_losses_in_fp32():
    torch.manual_seed(0)
    model, task = build_model("amos_tiny", criterion="amos")
    model.cpu_bf16 = True  # as resolve_cpu_bf16 decides on a CPU with fast bf16
    model.train()
    criterion = AmosCriterion.build_criterion(AmosCriterionConfig(), task)
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)
        return hook

    model.discriminator.stack.layers[0].fc1.register_forward_hook(record("discriminator fc1"))
    model.generator.encoder.stack.layers[0].fc1.register_forward_hook(record("generator fc1"))
    model.mixture_scorer.register_forward_hook(record("mixture scorer"))
    net_input, target = random_batch(task)
    sample = {"net_input": net_input, "target": target,
              "ntokens": int(target.ne(task.dictionary.pad()).sum()), "nsentences": target.size(0)}
    loss, _, log = criterion(model, sample)
    assert seen["discriminator fc1"] == torch.bfloat16 and seen["generator fc1"] == torch.bfloat16
    assert seen["mixture scorer"] == torch.float32  # the sampler runs with autocast off
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        assert p.grad is None or p.grad.dtype == torch.float32, name
    assert model.mixture_scorer.score.weight.grad.abs().sum() > 0

    seen.clear()
    model.eval()  # validation: fp32
    with torch.no_grad():
        criterion(model, sample)
    assert seen["discriminator fc1"] == torch.float32


def test_cli_on_stops_with_the_measurement_where_bf16_is_slow(data_bin, tmp_path):
    from amos_fairseq.cpu_bf16 import bf16_matmul_speed

    fp32, bf16 = bf16_matmul_speed()
    if bf16 / fp32 <= 0.8:
        pytest.skip("this CPU has fast bf16 products")
    proc = fairseq_train(data_bin, tmp_path, "--arch", "electra_tiny", "--criterion", "electra",
                         "--max-update", "1", "--cpu-bf16", "on", check=False, env=ONE_THREAD)
    assert proc.returncode != 0 and "--cpu-bf16 on: a 512x512 bf16 product takes" in proc.stdout
    assert not (tmp_path / "checkpoint_last.pt").exists()
