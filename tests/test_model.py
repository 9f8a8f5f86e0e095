"""The amos model: shapes, masked-only MLM head, tied embeddings, stop-gradients, options."""

import pytest
import torch

from amos_fairseq.criteria.sampling import gumbel_max
from amos_fairseq.models.amos import Replacement
from amos_fairseq.models.config_checks import ModelConfigError
from conftest import build_model, random_batch


def deepest_sampler(model, generated):
    logits = generated.logits[-1].detach().masked_fill(model.unplaceable, float("-inf"))
    return Replacement(tokens=gumbel_max(logits))


def test_output_shapes_and_masked_only_mlm_head():
    model, task = build_model("amos_tiny", generator_depths="1,2,3")
    net_input, target = random_batch(task)
    seen = []
    model.generator.lm_head.register_forward_hook(lambda m, inp, out: seen.append((inp[0].shape, out.shape)))
    out = model(**net_input, sampler=deepest_sampler)
    m = int(net_input["masked_tokens"].sum())
    n = int(target.ne(task.dictionary.pad()).sum())
    vocab = len(task.dictionary)
    assert out.generator.depths == [1, 2, 3]
    assert [h.shape for h in out.generator.hiddens] == [torch.Size([m, 64])] * 3
    assert [l.shape for l in out.generator.logits] == [torch.Size([m, vocab])] * 3
    # The MLM head ran once per depth, on the M masked positions only.
    assert seen == [(torch.Size([m, 64]), torch.Size([m, vocab]))] * 3
    assert out.rtd_logits.shape == (n,)
    assert out.disc_tokens.shape == target.shape
    masked = net_input["masked_tokens"]
    assert torch.equal(out.disc_tokens[~masked], net_input["src_tokens"][~masked])
    assert not model.unplaceable[out.disc_tokens[masked]].any(), "no pad/<s>/</s>/<mask> placed"


def test_embeddings_tied_as_one_tensor():
    model, _ = build_model("electra_tiny")
    table = model.token_embeddings.weight
    assert model.generator.lm_head.weight is table
    assert model.discriminator.embeddings.token_embeddings.weight is table
    assert model.generator.encoder.embeddings.token_embeddings.weight is table
    # Positions and LayerNorms belong to each network.
    assert model.generator.encoder.embeddings.position_embeddings.weight is not \
        model.discriminator.embeddings.position_embeddings.weight
    assert sum(p is table for p in model.parameters()) == 1


def layer_grads(model, loss):
    model.zero_grad()
    loss.backward(retain_graph=True)
    reached = []
    for i, layer in enumerate(model.generator.encoder.stack.layers):
        g = layer.fc1.weight.grad
        reached.append(g is not None and g.abs().sum().item() > 0)
    return reached


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_block_stop_gradients(stop_gradient):
    torch.manual_seed(0)
    model, task = build_model("amos_tiny", generator_depths="2,3,4", no_generator_stop_gradient=not stop_gradient)
    net_input, target = random_batch(task)
    out = model(**net_input, sampler=deepest_sampler)
    targets = target[net_input["masked_tokens"]]
    losses = [torch.nn.functional.cross_entropy(l, targets) for l in out.generator.logits]
    if stop_gradient:
        assert layer_grads(model, losses[0]) == [True, True, False, False]
        assert layer_grads(model, losses[1]) == [False, False, True, False]
        assert layer_grads(model, losses[2]) == [False, False, False, True]
    else:
        assert layer_grads(model, losses[0]) == [True, True, False, False]
        assert layer_grads(model, losses[1]) == [True, True, True, False]
        assert layer_grads(model, losses[2]) == [True, True, True, True]


def test_hard_sample_gives_discriminator_no_generator_gradient():
    model, task = build_model("electra_tiny")
    net_input, _ = random_batch(task)
    out = model(**net_input, sampler=deepest_sampler)
    model.zero_grad()
    out.rtd_logits.sum().backward()
    assert all(p.grad is None for p in model.generator.encoder.stack.parameters())
    assert model.discriminator.stack.layers[0].fc1.weight.grad.abs().sum() > 0


def test_features_classification_and_padding_invariance():
    model, task = build_model("electra_tiny")
    model.eval()
    net_input, _ = random_batch(task)
    feats, _ = model(net_input["src_tokens"], features_only=True)
    assert feats.shape == (*net_input["src_tokens"].shape, 64)
    model.register_classification_head("cls", num_classes=3)
    logits, _ = model(net_input["src_tokens"], classification_head_name="cls")
    assert logits.shape == (net_input["src_tokens"].size(0), 3)
    # Padding is masked out of attention: a row's features do not change with extra pads.
    row = net_input["src_tokens"][:1]
    padded = torch.cat([row, torch.full((1, 5), task.dictionary.pad())], dim=1)
    a, _ = model(row, features_only=True)
    b, _ = model(padded, features_only=True)
    torch.testing.assert_close(a, b[:, : row.size(1)], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [dict(rel_pos_bins=0), dict(rel_pos_bins=8, max_rel_pos=16), dict(encoder_normalize_before=True),
     dict(token_embed_dim=32)],
)
def test_options_train(overrides):
    model, task = build_model("amos_tiny", **overrides)
    net_input, _ = random_batch(task)
    out = model(**net_input, sampler=deepest_sampler)
    loss = out.rtd_logits.float().pow(2).mean() + sum(l.logsumexp(-1).mean() for l in out.generator.logits)
    loss.backward()
    assert torch.isfinite(loss)
    if overrides.get("rel_pos_bins"):
        assert model.discriminator.relative_position_bias.bias.weight.grad.abs().sum() > 0
    if "token_embed_dim" in overrides:
        assert model.token_embeddings.weight.shape[1] == 32
        assert model.discriminator.embeddings.projection is not None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_weights_run(dtype):
    model, task = build_model("amos_tiny")
    model = model.to(dtype)
    net_input, _ = random_batch(task)
    out = model(**net_input, sampler=deepest_sampler)
    assert out.rtd_logits.dtype == dtype
    assert torch.isfinite(out.rtd_logits.float()).all()
    assert all(torch.isfinite(l.float()).all() for l in out.generator.logits)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(generator_depths="2,5", generator_layers=4), "asks for depth 5 but --generator-layers is 4"),
        (dict(generator_depths=""), "--generator-depths is empty"),
        (dict(generator_depths="2,x"), "comma-separated integers"),
        (dict(generator_depths="2", generator_layers=4), "layers above it would never train"),
        (dict(encoder_attention_heads=3), "not divisible by --encoder-attention-heads"),
    ],
)
def test_bad_model_options(overrides, message):
    with pytest.raises(ModelConfigError, match=message.replace("-", r"\-")):
        build_model("amos_tiny", **overrides)


def test_local_relative_position_init_attends_to_neighbours_first():
    """The locality prior: head h scores offset d at -|d| / 2^h, the same in both directions,
    for offsets inside the exact buckets; the normal init is ~0 everywhere."""
    model, _ = build_model("amos_tiny", rel_pos_init="local")
    bias = model.discriminator.relative_position_bias(12)[0]  # [H, T, T]
    offsets = torch.arange(12)[None, :] - torch.arange(12)[:, None]
    for head in range(bias.size(0)):
        inside = offsets.abs() < 8  # exact buckets of 32 bins
        expected = -offsets.abs().float() / 2 ** head
        torch.testing.assert_close(bias[head][inside], expected[inside])
    # the generator's bias starts local too
    assert model.generator.encoder.relative_position_bias(4)[0, 0, 0, 1] == -1.0
    default, _ = build_model("amos_tiny")
    assert default.discriminator.relative_position_bias.bias.weight.abs().max() < 0.2


def test_mini_architectures_share_one_discriminator():
    electra, _ = build_model("electra_mini")
    amos, _ = build_model("amos_mini", criterion="amos")
    shapes = lambda m: {k: v.shape for k, v in m.discriminator.state_dict().items()}
    assert shapes(electra) == shapes(amos)
    assert electra.generator.depths == [4] and amos.generator.depths == [2, 3, 4]
    assert electra.discriminator.relative_position_bias(3)[0, 0, 0, 2] == -2.0
    # the CPU-scale models start their RTD head at the label prior; the papers' sizes keep 0
    prior_logit = torch.tensor(0.15 / 0.85).log().item()
    for model in (electra, amos):
        assert model.rtd_head.out.bias.item() == pytest.approx(prior_logit)
    assert build_model("electra_tiny")[0].rtd_head.out.bias.item() == 0.0


def test_mean_pooling_feeds_the_head_the_mean_over_real_tokens():
    model, task = build_model("electra_tiny", classification_pooling="mean")
    model.register_classification_head("cls", num_classes=3)
    model.eval()
    net_input, target = random_batch(task)
    tokens = target  # padded rows included
    logits, _ = model(tokens, classification_head_name="cls")
    features, _ = model(tokens, features_only=True)
    real = tokens.ne(model.padding_idx)
    means = torch.stack([features[i][real[i]].mean(0) for i in range(tokens.size(0))])
    expected = model.classification_heads["cls"](means[:, None, :])
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    first, _ = build_model("electra_tiny")
    assert first.args.classification_pooling == "first"


# ---------------------------------------------------------------- loading and DDP-readiness


@pytest.mark.parametrize("criterion,arch", [("electra", "electra_tiny"), ("amos", "amos_tiny"),
                                            ("focal_hardness", "electra_tiny")])
def test_every_parameter_gets_a_gradient(criterion, arch):
    """fairseq's pytorch_ddp fails on parameters outside the graph (unless told
    --find-unused-parameters): a model built for a criterion holds only what it trains."""
    from test_precision import CRITERIA

    cls, config, _ = CRITERIA[criterion]
    torch.manual_seed(0)
    model, task = build_model(arch, criterion=criterion)
    net_input, target = random_batch(task)
    sample = {"net_input": net_input, "target": target,
              "ntokens": int(target.ne(task.dictionary.pad()).sum()), "nsentences": target.size(0)}
    loss, _, _ = cls.build_criterion(config(), task)(model, sample)
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, unused
    assert (model.hardness_head is not None) == (criterion == "focal_hardness")
    assert (model.mixture_scorer is not None) == (criterion == "amos")


def test_checkpoint_head_with_another_class_count_starts_fresh(caplog):
    """An MNLI model (3 classes) fine-tuned on a 2-class task under the same head name: the
    discriminator loads, the head keeps this run's fresh weights (RoBERTa's rule)."""
    from amos_fairseq.models.amos import AmosModel

    torch.manual_seed(0)
    source, task = build_model("amos_tiny")
    source.register_classification_head("sentence_classification_head", num_classes=3)
    state = source.state_dict()
    model = AmosModel(source.args, task.dictionary, pretraining=False)
    model.register_classification_head("sentence_classification_head", num_classes=2)
    fresh = {k: v.clone() for k, v in model.classification_heads.state_dict().items()}
    with caplog.at_level("WARNING"):
        model.load_state_dict(state, strict=True)
    assert "has another shape (3 classes) than this run's (2)" in caplog.text
    for k, v in model.classification_heads.state_dict().items():
        torch.testing.assert_close(v, fresh[k])
    torch.testing.assert_close(model.discriminator.stack.layers[0].fc1.weight,
                               source.discriminator.stack.layers[0].fc1.weight)


def test_checkpoint_of_another_criterion_loads_with_a_fresh_strategy_head(caplog):
    """An electra checkpoint continued under --criterion amos: the mixture scorer starts from
    its initial weights, with a warning that names --reset-optimizer."""
    torch.manual_seed(0)
    electra, _ = build_model("amos_tiny", criterion="electra")
    amos, _ = build_model("amos_tiny", criterion="amos")
    fresh = {k: v.clone() for k, v in amos.mixture_scorer.state_dict().items()}
    with caplog.at_level("WARNING"):
        amos.load_state_dict(electra.state_dict(), strict=True)
    assert "no mixture_scorer" in caplog.text and "--reset-optimizer" in caplog.text
    for k, v in amos.mixture_scorer.state_dict().items():
        torch.testing.assert_close(v, fresh[k])
    torch.testing.assert_close(amos.rtd_head.dense.weight, electra.rtd_head.dense.weight)


def test_rtd_bias_prior_init_starts_the_discriminator_at_its_label_prior():
    """With --rtd-bias-init prior the untrained RTD head predicts p(replaced) = mask_prob for
    every token (the label prior); with the default (zero bias, BERT init) about 0.5."""
    torch.manual_seed(0)
    for init, expected_p in (("prior", 0.15), ("zero", 0.5)):
        model, task = build_model("electra_tiny", rtd_bias_init=init)
        assert task.cfg.mask_prob == 0.15  # the task's default, which the bias is set from
        net_input, _ = random_batch(task, batch=8, length=32)
        with torch.no_grad():
            p = torch.sigmoid(model(**net_input, sampler=deepest_sampler).rtd_logits)
        assert (p - expected_p).abs().max() < 0.03, (init, p.min().item(), p.max().item())
