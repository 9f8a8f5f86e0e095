"""fairseq ``amos`` pretraining checkpoint -> AMOS-ELECTRA (``hf_modeling_amos``) weights.

For what transformers' ELECTRA cannot compute (a relative position bias, pre-LN layers) the
export writes this project's own transformers model family: ``AmosElectraForPreTraining``
(discriminator + RTD head) and ``AmosElectraForMaskedLM`` (the depth-k generator), with
``hf_modeling_amos.py`` copied into the folder as ``modeling_amos_electra.py`` and an
``auto_map`` in config.json, so ``trust_remote_code=True`` loads it where amos-fairseq is not
installed. The modules mirror the fairseq ones one to one (fused ``qkv_proj`` included), so
the mapping is a renaming and the forward pass runs the same operations in the same order.
"""

import os
import shutil
from typing import Dict

import torch

from .electra import HIDDEN_ACT, LAYER_NORM_EPS, ExportError, _linear

MODELING_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_modeling_amos.py")
MODELING_FILE = "modeling_amos_electra.py"  # its name in an exported folder
MODELING_MODULE = MODELING_FILE[: -len(".py")]

# fairseq's --pooler-activation-fn names -> transformers' ACT2FN names (same functions).
POOLER_ACTIVATIONS = {
    "tanh": "tanh",
    "relu": "relu",
    "relu_squared": "relu2",
    "gelu": "gelu",
    "gelu_accurate": "gelu_new",  # the tanh approximation in both
    "gelu_fast": "gelu_new",  # fairseq's deprecated name of gelu_accurate
    "linear": "linear",
    "swish": "silu",
}


def modeling():
    """The ``hf_modeling_amos`` module (imported here, after the torchaudio fix)."""
    from . import hf_modeling_amos

    return hf_modeling_amos


def amos_electra_config(args, vocab_size: int, pad: int, bos: int, eos: int, generator_depth=None):
    """``AmosElectraConfig`` of the discriminator, or of the depth-k generator when
    ``generator_depth`` is given, with the ``auto_map`` of the copied modeling file."""
    hf = modeling()
    if generator_depth is None:
        width, layers = args.encoder_embed_dim, args.encoder_layers
        heads, ffn = args.encoder_attention_heads, args.encoder_ffn_embed_dim
        dropout, attention_dropout = args.dropout, args.attention_dropout
        architecture = "AmosElectraForPreTraining"
    else:
        width, layers = args.generator_embed_dim, generator_depth
        heads, ffn = args.generator_attention_heads, args.generator_ffn_embed_dim
        dropout = attention_dropout = args.generator_dropout
        architecture = "AmosElectraForMaskedLM"
    pooler = args.pooler_activation_fn
    if pooler not in POOLER_ACTIVATIONS:
        raise ExportError(
            f"--pooler-activation-fn {pooler!r} has no transformers equivalent here; known: "
            f"{sorted(POOLER_ACTIVATIONS)}"
        )
    config = hf.AmosElectraConfig(
        vocab_size=vocab_size,
        embedding_size=args.token_embed_dim,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        hidden_act=HIDDEN_ACT,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=attention_dropout,
        max_position_embeddings=args.max_positions,
        layer_norm_eps=LAYER_NORM_EPS,
        pre_layer_norm=bool(args.encoder_normalize_before),
        relative_attention_num_buckets=args.rel_pos_bins or 0,
        relative_attention_max_distance=args.max_rel_pos,
        classifier_dropout=args.pooler_dropout,
        classifier_activation=POOLER_ACTIVATIONS[pooler],
        classifier_pooling=args.classification_pooling,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=True,
        architectures=[architecture],
    )
    config.auto_map = {auto: f"{MODELING_MODULE}.{name}" for auto, name in hf.AUTO_MAP.items()}
    return config


def write_modeling_code(out_dir: str) -> None:
    """Copy the modeling file beside config.json, where ``auto_map`` points."""
    shutil.copyfile(MODELING_SOURCE, os.path.join(out_dir, MODELING_FILE))


def encoder_state_dict(encoder, token_embeddings, num_layers: int, prefix: str = "amos.") -> Dict[str, torch.Tensor]:
    """``AmosElectraModel`` tensors of the first ``num_layers`` layers of a fairseq ``Encoder``
    (its final LayerNorm too, for pre-LN: it follows whichever layer is last)."""
    sd: Dict[str, torch.Tensor] = {}
    emb = encoder.embeddings
    p = prefix + "embeddings."
    sd[p + "word_embeddings.weight"] = token_embeddings.weight.detach().clone()
    sd[p + "position_embeddings.weight"] = emb.position_embeddings.weight.detach().clone()
    _linear(sd, p + "LayerNorm", emb.layer_norm)
    if emb.projection is not None:
        _linear(sd, p + "projection", emb.projection)
    if encoder.relative_position_bias is not None:
        sd[prefix + "relative_position_bias.bias.weight"] = encoder.relative_position_bias.bias.weight.detach().clone()
    for i, layer in enumerate(encoder.stack.layers[:num_layers]):
        p = f"{prefix}layers.{i}."
        _linear(sd, p + "qkv_proj", layer.qkv_proj)
        _linear(sd, p + "out_proj", layer.out_proj)
        _linear(sd, p + "attention_LayerNorm", layer.self_attn_layer_norm)
        _linear(sd, p + "intermediate", layer.fc1)
        _linear(sd, p + "output", layer.fc2)
        _linear(sd, p + "output_LayerNorm", layer.final_layer_norm)
    if encoder.stack.final_layer_norm is not None:
        _linear(sd, prefix + "final_LayerNorm", encoder.stack.final_layer_norm)
    return sd


def discriminator_state_dict(model) -> Dict[str, torch.Tensor]:
    """``AmosElectraForPreTraining`` tensors: the discriminator and the RTD head."""
    sd = encoder_state_dict(model.discriminator, model.token_embeddings, len(model.discriminator.stack.layers))
    _linear(sd, "discriminator_predictions.dense", model.rtd_head.dense)
    _linear(sd, "discriminator_predictions.dense_prediction", model.rtd_head.out)
    return sd


def generator_state_dict(model, depth: int) -> Dict[str, torch.Tensor]:
    """``AmosElectraForMaskedLM`` tensors: the generator's first ``depth`` layers, its final
    LayerNorm (pre-LN) and the shared MLM head (output matrix = the tied token table)."""
    generator = model.generator
    sd = encoder_state_dict(generator.encoder, model.token_embeddings, depth)
    head = generator.lm_head
    _linear(sd, "generator_predictions.dense", head.dense)
    _linear(sd, "generator_predictions.LayerNorm", head.layer_norm)
    sd["generator_lm_head.weight"] = head.weight.detach().clone()
    sd["generator_lm_head.bias"] = head.bias.detach().clone()
    return sd
