"""AMOS-ELECTRA models for HuggingFace transformers: config, encoder and task heads.

This file is self-contained (it imports only torch and transformers): the exporter copies it
into every exported folder as ``modeling_amos_electra.py`` and points ``auto_map`` in
config.json at it, so that

    AutoModel.from_pretrained(folder, trust_remote_code=True)

works on a machine without amos-fairseq. It computes exactly what amos-fairseq's encoder
computes, including what transformers' ELECTRA cannot hold:

* a T5-style relative position bias (a learned scalar per bucket and head) computed once per
  forward and added to the attention logits of every layer,
* pre-LN layers (``pre_layer_norm``) with a LayerNorm after the last layer,
* a projection from the token embedding size to the width when they differ,
* the discriminator's replaced-token-detection head and the generator's tied MLM head.

Tensors are batch-first; B batch, T sequence length, E embedding size, C width, H heads,
V vocabulary.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.models.electra.modeling_electra import ElectraForPreTrainingOutput


class AmosElectraConfig(PretrainedConfig):
    """Sizes and options of one AMOS-ELECTRA network (a discriminator or a generator).

    ``relative_attention_num_buckets`` 0 turns the relative position bias off;
    ``pre_layer_norm`` selects pre-LN layers (with a final LayerNorm) instead of post-LN.
    The ``classifier_*`` fields shape the heads of ``...ForSequenceClassification``: dropout ->
    dense(C, C) -> ``classifier_activation`` -> dropout -> dense(C, labels), read from the
    first token (``classifier_pooling="first"``) or the mean over non-padding tokens
    (``"mean"``), as in amos-fairseq's fine-tuning.
    """

    model_type = "amos_electra"

    vocab_size: int = 30522
    embedding_size: int = 768
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-5
    pre_layer_norm: bool = False
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    initializer_range: float = 0.02
    classifier_dropout: float = 0.1
    classifier_activation: str = "tanh"
    classifier_pooling: str = "first"
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int] = 2
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}: change one of them"
            )
        buckets = self.relative_attention_num_buckets
        if buckets and (buckets < 4 or buckets % 2):
            raise ValueError(
                f"relative_attention_num_buckets must be 0 (no relative position bias) or an even "
                f"number >= 4, got {buckets}"
            )
        if buckets and self.relative_attention_max_distance <= buckets // 4:
            raise ValueError(
                f"relative_attention_max_distance ({self.relative_attention_max_distance}) must "
                f"exceed a quarter of relative_attention_num_buckets ({buckets})"
            )
        if self.classifier_pooling not in ("first", "mean"):
            raise ValueError(f"classifier_pooling must be 'first' or 'mean', got {self.classifier_pooling!r}")


# ---------------------------------------------------------------------- building blocks


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bucket ids [T, T] for (key - query) offsets [T, T], in both directions.

    Half the buckets serve each direction; within one, the first half are exact offsets and
    the second half log-spaced up to ``max_distance`` (farther offsets share the last).
    """
    half = num_buckets // 2
    buckets = (relative_position > 0).long() * half
    distance = relative_position.abs()
    max_exact = half // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (half - max_exact)).long()).clamp(max=half - 1)
    return buckets + torch.where(is_small, distance, large)


class AmosElectraRelativePositionBias(nn.Module):
    """A learned scalar per (bucket, head); ``forward(T)`` -> [1, H, T, T]."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__()
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.bias = nn.Embedding(self.num_buckets, config.num_attention_heads)

    def forward(self, seq_len: int) -> torch.Tensor:
        positions = torch.arange(seq_len, device=self.bias.weight.device)
        relative = positions[None, :] - positions[:, None]  # [T_query, T_key]
        buckets = relative_position_bucket(relative, self.num_buckets, self.max_distance)
        return self.bias(buckets).permute(2, 0, 1).unsqueeze(0)


class AmosElectraEmbeddings(nn.Module):
    """Token + learned absolute position embeddings -> LayerNorm -> dropout [-> projection].

    There are no segment (token type) embeddings. Position i uses row i unless
    ``position_ids`` say otherwise.
    """

    def __init__(self, config: AmosElectraConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # The embedding size can be smaller than the width (ELECTRA-small's 128 -> 256).
        self.projection = (
            nn.Linear(config.embedding_size, config.hidden_size)
            if config.embedding_size != config.hidden_size
            else None
        )

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """input_ids [B, T] (or inputs_embeds [B, T, E]) -> [B, T, C]."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        length = inputs_embeds.size(1)
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"sequence of {length} tokens is longer than the model's "
                f"{self.position_embeddings.num_embeddings} positions: truncate the input "
                f"(tokenizer(..., truncation=True, max_length={self.position_embeddings.num_embeddings}))"
            )
        if position_ids is None:
            positions = self.position_embeddings.weight[:length]
        else:
            positions = self.position_embeddings(position_ids)
        x = inputs_embeds + positions.to(inputs_embeds.dtype)
        x = self.dropout(self.LayerNorm(x))
        return self.projection(x) if self.projection is not None else x


class AmosElectraLayer(nn.Module):
    """Self-attention + feed-forward block, post-LN (BERT/ELECTRA) or pre-LN."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__()
        width = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.pre_layer_norm = config.pre_layer_norm
        self.qkv_proj = nn.Linear(width, 3 * width)  # rows: query, key, value
        self.out_proj = nn.Linear(width, width)
        self.attention_LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(width, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.output = nn.Linear(config.intermediate_size, width)
        self.output_LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.attention_dropout = config.attention_probs_dropout_prob

    def attention(
        self, x: torch.Tensor, attn_bias: Optional[torch.Tensor], output_attentions: bool
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x [B, T, C], attn_bias additive and broadcastable to [B, H, T, T] ->
        (output [B, T, C], attention probabilities [B, H, T, T] when asked for)."""
        batch, length, width = x.shape
        q, k, v = (
            self.qkv_proj(x).view(batch, length, 3, self.num_heads, width // self.num_heads).permute(2, 0, 3, 1, 4)
        )  # each [B, H, T, C/H]
        dropout = self.attention_dropout if self.training else 0.0
        probs = None
        if output_attentions:  # written out, since the fused kernel does not return them
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
            if attn_bias is not None:
                scores = scores + attn_bias
            probs = scores.softmax(dim=-1)
            out = F.dropout(probs, p=dropout, training=self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width)), probs

    def forward(
        self, x: torch.Tensor, attn_bias: Optional[torch.Tensor], output_attentions: bool = False
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        residual = x
        if self.pre_layer_norm:
            x = self.attention_LayerNorm(x)
        attended, probs = self.attention(x, attn_bias, output_attentions)
        x = residual + self.dropout(attended)
        if not self.pre_layer_norm:
            x = self.attention_LayerNorm(x)
        residual = x
        if self.pre_layer_norm:
            x = self.output_LayerNorm(x)
        x = residual + self.dropout(self.output(self.act(self.intermediate(x))))
        if not self.pre_layer_norm:
            x = self.output_LayerNorm(x)
        return x, probs


def attention_bias(
    padding_mask: Optional[torch.Tensor], position_bias: Optional[torch.Tensor], dtype: torch.dtype
) -> Optional[torch.Tensor]:
    """Additive bias [B or 1, H or 1, T or 1, T]: the dtype's lowest value at padded keys
    (padding_mask [B, T] True there, or None), plus the position bias [1, H, T, T] if any."""
    if padding_mask is None:
        return None if position_bias is None else position_bias.to(dtype)
    bias = torch.zeros(padding_mask.shape, dtype=dtype, device=padding_mask.device)
    bias = bias.masked_fill(padding_mask, torch.finfo(dtype).min)[:, None, None, :]
    if position_bias is not None:
        bias = bias + position_bias.to(dtype)
    return bias


# ---------------------------------------------------------------------- models


class AmosElectraPreTrainedModel(PreTrainedModel):
    """Weight initialisation (transformers' default: normal(0, ``initializer_range``) for
    linear and embedding weights, zero biases, unit LayerNorms) and loading."""

    config_class = AmosElectraConfig
    base_model_prefix = "amos"


class AmosElectraModel(AmosElectraPreTrainedModel):
    """The encoder: embeddings, relative position bias, layers (and the pre-LN final LayerNorm).

    ``forward(input_ids [B, T], attention_mask [B, T])`` -> ``BaseModelOutput`` with
    ``last_hidden_state`` [B, T, C]; ``hidden_states`` (when asked for) holds the embedding
    output and each layer's output, the last one after the final LayerNorm of a pre-LN model.
    """

    def __init__(self, config: AmosElectraConfig):
        super().__init__(config)
        self.embeddings = AmosElectraEmbeddings(config)
        self.relative_position_bias = (
            AmosElectraRelativePositionBias(config) if config.relative_attention_num_buckets else None
        )
        self.layers = nn.ModuleList([AmosElectraLayer(config) for _ in range(config.num_hidden_layers)])
        # Pre-LN layers leave their output unnormalised; post-LN outputs are normalised already.
        self.final_LayerNorm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.pre_layer_norm else None
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ):
        """``attention_mask`` [B, T]: 1 for tokens to attend to, 0 for padding (None: all).
        ``token_type_ids`` is accepted and ignored: the model has no segment embeddings."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        x = self.embeddings(input_ids, inputs_embeds, position_ids)
        length = x.size(1)
        padding_mask = None
        if attention_mask is not None:
            if attention_mask.dim() != 2:
                raise ValueError(f"attention_mask must be [batch, length] of 0/1, got shape {tuple(attention_mask.shape)}")
            padding_mask = attention_mask.eq(0)
            # Without padding, attention runs without a padding term (as the fairseq model does).
            if not padding_mask.any():
                padding_mask = None
        position_bias = self.relative_position_bias(length) if self.relative_position_bias is not None else None
        bias = attention_bias(padding_mask, position_bias, x.dtype)

        hidden_states = (x,) if output_hidden_states else None
        attentions = () if output_attentions else None
        for index, layer in enumerate(self.layers):
            x, probs = layer(x, bias, output_attentions)
            if output_attentions:
                attentions += (probs,)
            if output_hidden_states and index + 1 < len(self.layers):
                hidden_states += (x,)
        if self.final_LayerNorm is not None:
            x = self.final_LayerNorm(x)
        if output_hidden_states and self.layers:
            hidden_states += (x,)
        output = BaseModelOutput(last_hidden_state=x, hidden_states=hidden_states, attentions=attentions)
        return output if return_dict else output.to_tuple()


def _body(model: AmosElectraPreTrainedModel, input_ids, attention_mask, token_type_ids, position_ids,
          inputs_embeds, output_attentions, output_hidden_states) -> BaseModelOutput:
    return model.amos(
        input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
        position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
        output_hidden_states=output_hidden_states, return_dict=True,
    )


def _finish(model: AmosElectraPreTrainedModel, output, return_dict: Optional[bool]):
    return_dict = return_dict if return_dict is not None else model.config.return_dict
    return output if return_dict else output.to_tuple()


class AmosElectraDiscriminatorPredictions(nn.Module):
    """Replaced-token-detection head: dense(C, C) -> activation -> dense(C, 1). [B, T, C] -> [B, T]."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.dense_prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dense_prediction(self.act(self.dense(hidden))).squeeze(-1)


class AmosElectraForPreTraining(AmosElectraPreTrainedModel):
    """The discriminator: ``logits`` [B, T], > 0 means "this token was replaced".

    ``labels`` [B, T] (1 replaced, 0 original) give the binary cross-entropy over the tokens
    that ``attention_mask`` keeps.
    """

    def __init__(self, config: AmosElectraConfig):
        super().__init__(config)
        self.amos = AmosElectraModel(config)
        self.discriminator_predictions = AmosElectraDiscriminatorPredictions(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        body = _body(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                     output_attentions, output_hidden_states)
        logits = self.discriminator_predictions(body.last_hidden_state)
        loss = None
        if labels is not None:
            keep = attention_mask.bool() if attention_mask is not None else torch.ones_like(labels, dtype=torch.bool)
            loss = F.binary_cross_entropy_with_logits(logits[keep], labels[keep].to(logits.dtype))
        output = ElectraForPreTrainingOutput(loss=loss, logits=logits, hidden_states=body.hidden_states,
                                             attentions=body.attentions)
        return _finish(self, output, return_dict)


class AmosElectraGeneratorPredictions(nn.Module):
    """dense(C, E) -> activation -> LayerNorm(E): the generator's MLM head before the tied output."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.act = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(hidden)))


class AmosElectraForMaskedLM(AmosElectraPreTrainedModel):
    """The generator: ``logits`` [B, T, V] over the vocabulary at every position; the output
    matrix is the (tied) token embedding table, plus a bias of its own. ``labels`` [B, T]
    (-100 where not masked) give the masked-LM cross-entropy."""

    _tied_weights_keys = {"generator_lm_head.weight": "amos.embeddings.word_embeddings.weight"}

    def __init__(self, config: AmosElectraConfig):
        super().__init__(config)
        self.amos = AmosElectraModel(config)
        self.generator_predictions = AmosElectraGeneratorPredictions(config)
        self.generator_lm_head = nn.Linear(config.embedding_size, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.generator_lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.generator_lm_head = value

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        body = _body(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                     output_attentions, output_hidden_states)
        logits = self.generator_lm_head(self.generator_predictions(body.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size)
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=body.hidden_states,
                                attentions=body.attentions)
        return _finish(self, output, return_dict)


class AmosElectraClassificationHead(nn.Module):
    """dropout -> dense(C, C) -> activation -> dropout -> dense(C, labels), over the first
    token or the mean of the non-padding tokens. [B, T, C] -> [B, labels]."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__()
        self.pooling = config.classifier_pooling
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.classifier_activation]
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        if self.pooling == "mean":
            keep = (attention_mask if attention_mask is not None else hidden.new_ones(hidden.shape[:2]))
            keep = keep.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            x = (hidden * keep).sum(1) / keep.sum(1).clamp(min=1)
        else:
            x = hidden[:, 0]
        x = self.dropout(self.act(self.dense(self.dropout(x))))
        return self.out_proj(x)


class AmosElectraForSequenceClassification(AmosElectraPreTrainedModel):
    """Sequence classification or regression: ``logits`` [B, num_labels]; the loss follows
    ``config.problem_type`` (transformers' rules) when ``labels`` [B] are given."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__(config)
        self.amos = AmosElectraModel(config)
        self.classifier = AmosElectraClassificationHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        body = _body(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                     output_attentions, output_hidden_states)
        logits = self.classifier(body.last_hidden_state, attention_mask)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=body.hidden_states,
                                          attentions=body.attentions)
        return _finish(self, output, return_dict)


class AmosElectraForTokenClassification(AmosElectraPreTrainedModel):
    """Per-token classification: dropout -> dense(C, labels); ``logits`` [B, T, num_labels],
    ``labels`` [B, T] (-100 to ignore)."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__(config)
        self.amos = AmosElectraModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        body = _body(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                     output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(body.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, config=self.config)
        output = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=body.hidden_states,
                                       attentions=body.attentions)
        return _finish(self, output, return_dict)


class AmosElectraForQuestionAnswering(AmosElectraPreTrainedModel):
    """Extractive question answering: dense(C, 2) gives ``start_logits`` and ``end_logits``
    [B, T]; ``start_positions`` / ``end_positions`` [B] give the span loss."""

    def __init__(self, config: AmosElectraConfig):
        super().__init__(config)
        self.amos = AmosElectraModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        body = _body(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                     output_attentions, output_hidden_states)
        start_logits, end_logits = self.qa_outputs(body.last_hidden_state).unbind(dim=-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = self.loss_function(start_logits, end_logits, start_positions, end_positions)
        output = QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits.contiguous(),
                                              end_logits=end_logits.contiguous(),
                                              hidden_states=body.hidden_states, attentions=body.attentions)
        return _finish(self, output, return_dict)


# The Auto classes each exported folder maps to this file (config.json "auto_map").
AUTO_MAP = {
    "AutoConfig": "AmosElectraConfig",
    "AutoModel": "AmosElectraModel",
    "AutoModelForPreTraining": "AmosElectraForPreTraining",
    "AutoModelForMaskedLM": "AmosElectraForMaskedLM",
    "AutoModelForSequenceClassification": "AmosElectraForSequenceClassification",
    "AutoModelForTokenClassification": "AmosElectraForTokenClassification",
    "AutoModelForQuestionAnswering": "AmosElectraForQuestionAnswering",
}

__all__ = [
    "AmosElectraConfig",
    "AmosElectraModel",
    "AmosElectraPreTrainedModel",
    "AmosElectraForPreTraining",
    "AmosElectraForMaskedLM",
    "AmosElectraForSequenceClassification",
    "AmosElectraForTokenClassification",
    "AmosElectraForQuestionAnswering",
]
