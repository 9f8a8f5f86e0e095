"""Every criterion under torch.autocast (bfloat16 and float16 on CPU): a full training step
gives a finite loss and finite gradients; and the focal loss keeps finite gradients for any
gamma when the generator is certain."""

import pytest
import torch

from amos_fairseq.criteria.amos import AmosCriterion, AmosCriterionConfig
from amos_fairseq.criteria.electra import ElectraCriterion, ElectraCriterionConfig
from amos_fairseq.criteria.focal_hardness import FocalHardnessCriterion, FocalHardnessCriterionConfig
from amos_fairseq.criteria.rtd import focal_nll
from conftest import build_model, random_batch

CRITERIA = {
    "electra": (ElectraCriterion, ElectraCriterionConfig, "electra_tiny"),
    "amos": (AmosCriterion, AmosCriterionConfig, "amos_tiny"),
    "focal_hardness": (FocalHardnessCriterion, FocalHardnessCriterionConfig, "electra_tiny"),
}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", sorted(CRITERIA))
def test_training_step_under_autocast_is_finite(name, dtype):
    cls, config, arch = CRITERIA[name]
    torch.manual_seed(0)
    model, task = build_model(arch, criterion=name)
    criterion = cls.build_criterion(config(), task)
    net_input, target = random_batch(task)
    sample = {"net_input": net_input, "target": target,
              "ntokens": int(target.ne(task.dictionary.pad()).sum()), "nsentences": target.size(0)}
    with torch.autocast("cpu", dtype=dtype):
        loss, sample_size, log = criterion(model, sample)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.discriminator.stack.layers[0].fc1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("gamma", [0.25, 0.5, 1.0, 2.0])
def test_focal_loss_gradient_is_finite_when_the_generator_is_certain(gamma):
    # p(target) rounds to exactly 1 in fp32: (1 - p)^gamma has an infinite slope there for gamma < 1
    logits = torch.tensor([[60.0, 0.0, 0.0], [2.0, 1.0, 0.0]], requires_grad=True)
    loss, _ = focal_nll(logits, torch.tensor([0, 0]), gamma)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    assert loss[0] == 0 and logits.grad[0].abs().max() < 1e-6
    # the uncertain row is unchanged by the clamp: -(1 - p)^gamma log p
    p = torch.softmax(logits[1].detach(), -1)[0]
    torch.testing.assert_close(loss[1], -(1 - p) ** gamma * torch.log(p))
