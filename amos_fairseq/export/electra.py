"""fairseq ``amos`` pretraining checkpoint -> HuggingFace ELECTRA weights.

The discriminator becomes ``ElectraForPreTraining`` and the depth-k generator (its first k
layers and the shared MLM head) ``ElectraForMaskedLM``. The two networks are the same
computation, so the mapping is a renaming plus three exact rewrites:

* ``qkv_proj`` [3C, C] is split into HF's ``query``/``key``/``value`` (rows in that order,
  as ``TransformerLayer.self_attention`` views them),
* ``token_type_embeddings`` are zero (the fairseq model has none; HF adds row 0),
* ``LayerNorm`` eps is fairseq's 1e-5 (HF's ELECTRA default is 1e-12).

Position i uses row i in both (HF's default ``position_ids`` are ``arange``), the embedding
projection (``--token-embed-dim`` != width) is HF's ``embeddings_project``, and the RTD head
dense(H, H) -> GELU -> dense(H, 1) is ``ElectraDiscriminatorPredictions`` with
``hidden_act="gelu"`` (checked numerically, not assumed). What ELECTRA cannot express
(relative position bias, pre-LN layers) goes to the AMOS-ELECTRA family instead
(``amos_electra.py``), never approximated.
"""

import argparse
import copy
import logging
from typing import Dict, Optional

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

LAYER_NORM_EPS = 1e-5  # fairseq.modules.LayerNorm (torch.nn.LayerNorm's default)
HIDDEN_ACT = "gelu"


class ExportError(ValueError):
    """A checkpoint that cannot be exported exactly, with the option to blame and the fix."""


def require_transformers():
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "exporting to HuggingFace needs the optional `transformers` package: "
            "pip install -e '.[hf]'"
        ) from e


# ---------------------------------------------------------------------- what can be exported


def model_args(cfg) -> argparse.Namespace:
    """The model options of a checkpoint's cfg, with the architecture's defaults filled in."""
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    from ..models.amos import AmosModel

    model_cfg = cfg["model"] if isinstance(cfg, dict) else cfg.model
    if isinstance(model_cfg, argparse.Namespace):
        args = copy.copy(model_cfg)
    else:  # an omegaconf node
        from omegaconf import OmegaConf

        args = argparse.Namespace(**OmegaConf.to_container(model_cfg, resolve=True))
    arch = getattr(args, "arch", None)
    if ARCH_MODEL_REGISTRY.get(arch) is not AmosModel:
        raise ExportError(
            f"checkpoint architecture {arch!r} is not an amos model: the export takes checkpoints of "
            "`fairseq-train --user-dir amos_fairseq --arch amos_*|electra_*`"
        )
    ARCH_CONFIG_REGISTRY[arch](args)
    return args


def needs_amos_electra(args: argparse.Namespace) -> bool:
    """True if ``ElectraModel`` cannot compute this model (a relative position bias,
    ``--rel-pos-bins`` > 0, or pre-LN layers, ``--encoder-normalize-before``), so that it
    exports as the AMOS-ELECTRA family; False for ELECTRA-shaped models (stock ``Electra*``)."""
    return bool(getattr(args, "rel_pos_bins", 0)) or bool(getattr(args, "encoder_normalize_before", False))


def check_activation() -> None:
    """HF's ``hidden_act="gelu"`` must be the exact (erf) GELU the fairseq layers use."""
    from transformers.activations import ACT2FN

    probe = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    if not torch.allclose(ACT2FN[HIDDEN_ACT](probe), F.gelu(probe), rtol=0, atol=1e-12):
        raise ExportError(f"transformers' {HIDDEN_ACT!r} activation is not torch's exact GELU in this version")


# ---------------------------------------------------------------------- configs


def electra_config(args, vocab_size: int, pad: int, bos: int, eos: int, generator_depth: Optional[int] = None):
    """``ElectraConfig`` of the discriminator, or of the depth-k generator when
    ``generator_depth`` is given."""
    from transformers import ElectraConfig

    if generator_depth is None:
        width, layers = args.encoder_embed_dim, args.encoder_layers
        heads, ffn = args.encoder_attention_heads, args.encoder_ffn_embed_dim
        dropout, attention_dropout = args.dropout, args.attention_dropout
        architecture = "ElectraForPreTraining"
    else:
        width, layers = args.generator_embed_dim, generator_depth
        heads, ffn = args.generator_attention_heads, args.generator_ffn_embed_dim
        dropout = attention_dropout = args.generator_dropout
        architecture = "ElectraForMaskedLM"
    return ElectraConfig(
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
        type_vocab_size=2,
        layer_norm_eps=LAYER_NORM_EPS,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=True,
        architectures=[architecture],
    )


# ---------------------------------------------------------------------- weights


def _linear(sd: Dict[str, torch.Tensor], prefix: str, linear) -> None:
    sd[prefix + ".weight"] = linear.weight.detach().clone()
    sd[prefix + ".bias"] = linear.bias.detach().clone()


def encoder_state_dict(encoder, token_embeddings, num_layers: int, prefix: str = "electra.") -> Dict[str, torch.Tensor]:
    """HF ``ElectraModel`` tensors of the first ``num_layers`` layers of a fairseq ``Encoder``."""
    sd: Dict[str, torch.Tensor] = {}
    emb = encoder.embeddings
    p = prefix + "embeddings."
    sd[p + "word_embeddings.weight"] = token_embeddings.weight.detach().clone()
    sd[p + "position_embeddings.weight"] = emb.position_embeddings.weight.detach().clone()
    # The fairseq model has no segment embeddings: zero rows add nothing, whatever the type id.
    sd[p + "token_type_embeddings.weight"] = torch.zeros(2, token_embeddings.embedding_dim)
    _linear(sd, p + "LayerNorm", emb.layer_norm)
    if emb.projection is not None:
        _linear(sd, prefix + "embeddings_project", emb.projection)
    for i, layer in enumerate(encoder.stack.layers[:num_layers]):
        p = f"{prefix}encoder.layer.{i}."
        q, k, v = layer.qkv_proj.weight.detach().chunk(3, dim=0)
        qb, kb, vb = layer.qkv_proj.bias.detach().chunk(3, dim=0)
        for name, w, b in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            sd[p + f"attention.self.{name}.weight"] = w.clone()
            sd[p + f"attention.self.{name}.bias"] = b.clone()
        _linear(sd, p + "attention.output.dense", layer.out_proj)
        _linear(sd, p + "attention.output.LayerNorm", layer.self_attn_layer_norm)
        _linear(sd, p + "intermediate.dense", layer.fc1)
        _linear(sd, p + "output.dense", layer.fc2)
        _linear(sd, p + "output.LayerNorm", layer.final_layer_norm)
    return sd


def discriminator_state_dict(model) -> Dict[str, torch.Tensor]:
    """``ElectraForPreTraining`` tensors: the discriminator and the RTD head."""
    sd = encoder_state_dict(model.discriminator, model.token_embeddings, len(model.discriminator.stack.layers))
    _linear(sd, "discriminator_predictions.dense", model.rtd_head.dense)
    _linear(sd, "discriminator_predictions.dense_prediction", model.rtd_head.out)
    return sd


def generator_state_dict(model, depth: int) -> Dict[str, torch.Tensor]:
    """``ElectraForMaskedLM`` tensors: the generator's first ``depth`` layers and the shared
    MLM head (its output matrix is the tied token table)."""
    generator = model.generator
    sd = encoder_state_dict(generator.encoder, model.token_embeddings, depth)
    head = generator.lm_head
    _linear(sd, "generator_predictions.dense", head.dense)
    _linear(sd, "generator_predictions.LayerNorm", head.layer_norm)
    sd["generator_lm_head.weight"] = head.weight.detach().clone()
    sd["generator_lm_head.bias"] = head.bias.detach().clone()
    return sd


def load_into(hf_model, state_dict: Dict[str, torch.Tensor]):
    """Load every tensor, refusing missing or unexpected names (no silent defaults)."""
    result = hf_model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or result.unexpected_keys:
        raise ExportError(
            f"weight names do not match {type(hf_model).__name__}: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return hf_model


# ---------------------------------------------------------------------- fairseq reference


@torch.no_grad()
def fairseq_discriminator(model, tokens: torch.Tensor):
    """(features [B, T, H], RTD logits [B, T]) of the fairseq discriminator."""
    features = model.extract_features(tokens)
    return features, model.rtd_head(features)


@torch.no_grad()
def fairseq_generator(model, tokens: torch.Tensor, depth: int):
    """(hidden [B, T, C], MLM logits [B, T, V]) of the depth-``depth`` fairseq generator."""
    _, (hidden,) = model.generator.encoder(tokens, collect={depth})
    return hidden, model.generator.lm_head(hidden)
