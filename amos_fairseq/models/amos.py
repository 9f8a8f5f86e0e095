"""The ``amos`` model: discriminator, shared-depth generator and strategy heads in one module.

One ``forward`` runs generator -> replacement -> discriminator, so fairseq's DDP/FSDP and
fp16/bf16 wrappers see a single call; the criterion only chooses *how* replacements are
drawn by passing a ``sampler``. For fine-tuning (``sentence_prediction``) the same class
behaves like fairseq's RoBERTa: classification heads over the discriminator's features,
with the generator and RTD head not built and dropped from pretraining checkpoints on load
(``finetuning_state.py``). The model's options are checked in ``config_checks.py`` before
it is built; the architectures (named default sizes) are registered at the bottom.
"""

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
from fairseq.models import BaseFairseqModel, register_model
from fairseq.models.roberta.model import RobertaClassificationHead
from fairseq.modules.transformer_sentence_encoder import init_bert_params

from ..cpu_bf16 import CHOICES as CPU_BF16_CHOICES
from ..cpu_bf16 import resolve_cpu_bf16
from ..modules.encoder import Encoder
from ..modules.generator import GeneratorOutput, SharedDepthGenerator
from ..modules.heads import HardnessHead, MixtureScorer, ReplacedTokenHead
from ..modules.positions import check_positions, positions_from_masks
from ..modules.relative_position import RelativePositionBias
from ..modules.straight_through import add_relaxed_embedding
from ..training_checks import check_training_run, rebuilt_from_checkpoint
from .config_checks import parse_depths, validate_args
from .finetuning_state import check_num_classes, upgrade_state_dict

logger = logging.getLogger(__name__)


@dataclass
class Replacement:
    """What a sampler places at the M masked positions.

    tokens:  [M] long, the placed token ids (forward value of the replacement)
    relaxed: optional [M, V] tensor whose *value is zero* and whose gradient is that of a
             relaxed (soft) sample; the model adds ``relaxed @ E`` to the looked-up
             embeddings, which makes a straight-through estimator exact in the forward pass
    relaxed_is_zero: True (the straight-through case) lets the model skip computing
             ``relaxed @ E``; False adds it as written (surrogates in tests)
    extras:  anything the criterion wants back (proposal log-probs, mixture weights, ...)
    """

    tokens: torch.Tensor
    relaxed: Optional[torch.Tensor] = None
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)
    relaxed_is_zero: bool = True


Sampler = Callable[["AmosModel", GeneratorOutput], Replacement]


@dataclass
class PretrainingOutput:
    """generator:    per-depth hiddens and logits at masked positions ([M, C_gen], [M, V])
    replacement:  what the sampler placed
    disc_tokens:  [B, T] the discriminator's input tokens
    non_pad:      [B, T] bool, where the RTD head ran
    rtd_logits:   [N] one logit per non-pad token (N = non_pad.sum()), >0 means 'replaced'
    positions:    the batch's index tensors (``modules/positions.py``): masked_index [M],
                  non_pad_index [N], masked_in_non_pad_index [M], padded
    """

    generator: GeneratorOutput
    replacement: Replacement
    disc_tokens: torch.Tensor
    non_pad: torch.Tensor
    rtd_logits: torch.Tensor
    positions: Dict[str, object] = field(default_factory=dict)


@register_model("amos")
class AmosModel(BaseFairseqModel):
    def __init__(self, args, dictionary, pretraining: bool):
        super().__init__()
        self.args = args
        self.cpu_bf16 = False  # training forward passes under CPU bf16 autocast (cpu_bf16.py)
        self.padding_idx = dictionary.pad()
        self.token_embeddings = nn.Embedding(len(dictionary), args.token_embed_dim, padding_idx=self.padding_idx)
        self.discriminator = Encoder(
            self.token_embeddings,
            self.padding_idx,
            num_layers=args.encoder_layers,
            width=args.encoder_embed_dim,
            num_heads=args.encoder_attention_heads,
            ffn_dim=args.encoder_ffn_embed_dim,
            max_positions=args.max_positions,
            dropout=args.dropout,
            attention_dropout=args.attention_dropout,
            activation_dropout=args.activation_dropout,
            normalize_before=args.encoder_normalize_before,
            rel_pos_bins=args.rel_pos_bins,
            max_rel_pos=args.max_rel_pos,
        )
        self.classification_heads = nn.ModuleDict()
        # Symbols a sampler must never place: padding would vanish from attention, and the
        # markers carry no content. Samplers fill these logits with -inf.
        unplaceable = torch.zeros(len(dictionary), dtype=torch.bool)
        markers = [dictionary.pad(), dictionary.bos(), dictionary.eos()]
        if "<mask>" in dictionary.indices:
            markers.append(dictionary.index("<mask>"))
        unplaceable[markers] = True
        self.register_buffer("unplaceable", unplaceable, persistent=False)
        self.register_buffer("unplaceable_index", unplaceable.nonzero().squeeze(-1), persistent=False)
        self.generator = self.rtd_head = self.mixture_scorer = self.hardness_head = None
        if pretraining:
            depths = parse_depths(args.generator_depths)
            generator_encoder = Encoder(
                self.token_embeddings,
                self.padding_idx,
                num_layers=max(depths),
                width=args.generator_embed_dim,
                num_heads=args.generator_attention_heads,
                ffn_dim=args.generator_ffn_embed_dim,
                max_positions=args.max_positions,
                dropout=args.generator_dropout,
                attention_dropout=args.generator_dropout,
                activation_dropout=0.0,
                normalize_before=args.encoder_normalize_before,
                rel_pos_bins=args.rel_pos_bins,
                max_rel_pos=args.max_rel_pos,
            )
            stop_gradient = len(depths) > 1 and not args.no_generator_stop_gradient
            self.generator = SharedDepthGenerator(generator_encoder, depths, self.token_embeddings, stop_gradient)
            self.rtd_head = ReplacedTokenHead(args.encoder_embed_dim)
            strategy = getattr(args, "criterion", None)
            if strategy == "amos":
                self.mixture_scorer = MixtureScorer(args.generator_embed_dim)
            if strategy == "focal_hardness":
                self.hardness_head = HardnessHead(args.generator_embed_dim, len(dictionary))
        self.apply(init_bert_params)
        if args.rel_pos_init == "local":
            for module in self.modules():
                if isinstance(module, RelativePositionBias):
                    module.init_local()

    # ------------------------------------------------------------------ construction

    @staticmethod
    def add_args(parser):
        """Model flags; architectures only change their defaults."""
        add = parser.add_argument
        add("--encoder-layers", type=int, metavar="L", help="discriminator layers")
        add("--encoder-embed-dim", type=int, metavar="H", help="discriminator width")
        add("--encoder-ffn-embed-dim", type=int, metavar="F", help="discriminator FFN width")
        add("--encoder-attention-heads", type=int, metavar="A", help="discriminator heads")
        add("--token-embed-dim", type=int, metavar="E",
            help="token embedding size shared by both networks (projected when != width)")
        add("--max-positions", type=int, help="learned absolute positions")
        add("--encoder-normalize-before", action="store_true", help="pre-LN layers (default post-LN)")
        add("--rel-pos-bins", type=int, help="relative position bias buckets; 0 disables it")
        add("--max-rel-pos", type=int, help="largest distance with its own log-spaced bucket")
        add("--rel-pos-init", choices=["normal", "local"],
            help="initial relative position bias: normal(0, 0.02) like every weight (BERT), or a "
                 "locality prior (-|offset| / 2^head, ALiBi's slopes) that small models learn from sooner")
        add("--rtd-bias-init", choices=["zero", "prior"],
            help="initial bias of the replaced-token head's logit: 0 (BERT init: every token starts "
                 "at p=0.5) or the logit of the mask probability, so the discriminator starts at its "
                 "label prior instead of first pushing every token towards 'original'")
        add("--dropout", type=float, metavar="D")
        add("--attention-dropout", type=float, metavar="D")
        add("--activation-dropout", type=float, metavar="D")
        add("--generator-layers", type=int,
            help="generator stack depth; defaults to the deepest of --generator-depths")
        add("--generator-depths", type=str,
            help="comma-separated depths whose outputs feed the shared MLM head, e.g. 4,6,8")
        add("--generator-embed-dim", type=int, help="generator width")
        add("--generator-ffn-embed-dim", type=int, help="generator FFN width")
        add("--generator-attention-heads", type=int, help="generator heads")
        add("--generator-dropout", type=float,
            help="generator dropout and attention dropout: 0.1 for electra_small/base/large "
                 "(ELECTRA), 0 for amos_* (AMOS) and the tiny/mini archs")
        add("--no-generator-stop-gradient", action="store_true",
            help="let deeper heads' losses reach the layers below their block")
        add("--cpu-bf16", choices=list(CPU_BF16_CHOICES),
            help="training forward passes under CPU bf16 autocast (weights, optimizer state, "
                 "sampling and losses stay fp32): on (stops where this CPU's bf16 products are "
                 "not fast), auto (falls back to fp32 there), off (default)")
        add("--layerwise-lr-decay", type=float, metavar="D",
            help="ELECTRA's layer-wise learning-rate decay: the discriminator's parameters at "
                 "depth d (embeddings 0, layer i i+1, heads L+2) learn at lr x D^(L+2-d); needs "
                 "--optimizer scaled_adam. 1 (default): off")
        add("--classification-pooling", choices=["first", "mean"],
            help="what classification heads read: the <s> token's features (RoBERTa, ELECTRA) "
                 "or their mean over the non-pad tokens")
        add("--pooler-activation-fn", type=str, help="classification head activation")
        add("--pooler-dropout", type=float, help="classification head dropout")

    @classmethod
    def build_model(cls, args, task):
        from ..tasks.amos_rtd import AmosRTDTask

        base_architecture(args)
        validate_args(args)
        training_run = not rebuilt_from_checkpoint()
        if training_run:
            check_training_run(args)
        check_num_classes(args, task)
        pretraining = isinstance(task, AmosRTDTask)
        model = cls(args, task.source_dictionary, pretraining)
        if pretraining and args.rtd_bias_init == "prior":
            model.rtd_head.start_at_prior(task.cfg.mask_prob)
        if args.layerwise_lr_decay != 1.0:
            model.set_layerwise_lr_decay(args.layerwise_lr_decay)
        # A saved model rebuilt elsewhere (export, scoring) runs in fp32 whatever it trained with.
        model.cpu_bf16 = training_run and resolve_cpu_bf16(args.cpu_bf16)
        logger.info(
            "amos model: discriminator %d x %d, %s",
            args.encoder_layers,
            args.encoder_embed_dim,
            f"generator width {args.generator_embed_dim} depths {model.generator.depths}"
            if pretraining
            else "no generator (fine-tuning)",
        )
        return model

    def max_positions(self):
        return self.args.max_positions

    def set_layerwise_lr_decay(self, decay: float) -> None:
        """Give each discriminator parameter ELECTRA's learning-rate scale decay^(L + 2 - depth)
        (embeddings and the relative position bias: depth 0; layer i: i + 1; anything else,
        e.g. classification heads: L + 2, scale 1) as fairseq's per-parameter override
        ``optim_overrides``, which ``--optimizer scaled_adam`` applies."""
        top = self.args.encoder_layers + 2
        for name, param in self.named_parameters():
            if name.startswith(("token_embeddings.", "discriminator.embeddings.", "discriminator.relative_position_bias.")):
                depth = 0
            elif name.startswith("discriminator.stack.layers."):
                depth = int(name.split(".")[3]) + 1
            else:
                continue
            param.optim_overrides = {"optimizer": {"lr_scale": decay ** (top - depth)}}

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        src_tokens: torch.Tensor,
        src_lengths: Optional[torch.Tensor] = None,
        masked_tokens: Optional[torch.Tensor] = None,
        sampler: Optional[Sampler] = None,
        features_only: bool = False,
        classification_head_name: Optional[str] = None,
        positions: Optional[Dict[str, object]] = None,
        **kwargs,
    ):
        """Pretraining when a ``sampler`` is given, else the discriminator alone.

        Pretraining: src_tokens [B, T] generator input, masked_tokens [B, T] bool, and
        optionally the collater's ``positions`` (``modules/positions.py``; without them
        they are computed here at the cost of three host syncs) -> ``PretrainingOutput``.
        Otherwise (RoBERTa convention): ``(features [B, T, H], {})``, or
        ``(logits [B, classes], {})`` with ``classification_head_name``.
        """
        if self.cpu_bf16 and self.training and src_tokens.device.type == "cpu":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self._forward(src_tokens, masked_tokens, sampler, features_only,
                                     classification_head_name, positions)
        return self._forward(src_tokens, masked_tokens, sampler, features_only, classification_head_name, positions)

    def _forward(self, src_tokens, masked_tokens, sampler, features_only, classification_head_name, positions):
        if sampler is None or features_only or classification_head_name is not None:
            features = self.extract_features(src_tokens)
            if classification_head_name is not None:
                if self.args.classification_pooling == "mean":
                    features = self.mean_pool(features, src_tokens)
                return self.classification_heads[classification_head_name](features), {}
            return features, {}
        return self.pretraining_forward(src_tokens, masked_tokens.bool(), sampler, positions)

    def mean_pool(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Mean of features [B, T, H] over the non-pad tokens, as [B, 1, H], where the
        classification head reads its input (RoBERTa's head takes position 0)."""
        keep = tokens.ne(self.padding_idx).unsqueeze(-1).to(features.dtype)  # [B, T, 1]
        return (features * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)

    def extract_features(self, tokens: torch.Tensor, token_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Discriminator features [B, T, H]."""
        features, _ = self.discriminator(tokens, token_embeds)
        return features

    def pretraining_forward(self, src_tokens, masked_tokens, sampler: Sampler, positions=None) -> PretrainingOutput:
        if self.generator is None:
            raise RuntimeError("this model was built without a generator (not for the amos_rtd task)")
        if positions is None:
            # Samplers never place padding, so the discriminator's input pads where this does.
            positions = positions_from_masks(masked_tokens, src_tokens.ne(self.padding_idx))
        check_positions(positions)
        masked_index, padded = positions["masked_index"], positions["padded"]
        generated = self.generator(src_tokens, masked_index, padded)
        if torch.is_autocast_enabled("cpu"):
            # --cpu-bf16: the sampler (vocabulary-wide softmax, Gumbel noise, the mixture and
            # the hardness head) runs in fp32 with autocast off, on fp32 copies of what the
            # generator made in bf16.
            generated = GeneratorOutput(generated.depths, [h.float() for h in generated.hiddens],
                                        [z.float() for z in generated.logits])
            with torch.autocast("cpu", enabled=False):
                replacement = sampler(self, generated)
        else:
            replacement = sampler(self, generated)
        disc_tokens = (
            src_tokens.flatten().index_copy(0, masked_index, replacement.tokens.to(src_tokens.dtype)).view_as(src_tokens)
        )
        token_embeds = None
        if replacement.relaxed is not None:
            # relaxed is zero-valued: the forward embedding stays exactly E[token], while the
            # backward pass carries the soft sample's gradient (grad @ E^T) to the sampler.
            token_embeds = add_relaxed_embedding(
                self.token_embeddings(disc_tokens),
                replacement.relaxed,
                self.token_embeddings.weight,
                masked_index,
                zero_valued=replacement.relaxed_is_zero,
            )
        features, _ = self.discriminator(disc_tokens, token_embeds, padded=padded)
        return PretrainingOutput(
            generator=generated,
            replacement=replacement,
            disc_tokens=disc_tokens,
            non_pad=disc_tokens.ne(self.padding_idx),
            rtd_logits=self.rtd_head(features.flatten(0, 1).index_select(0, positions["non_pad_index"])),
            positions=positions,
        )

    # ------------------------------------------------------------------ fine-tuning

    def register_classification_head(self, name, num_classes=None, inner_dim=None, **kwargs):
        self.classification_heads[name] = RobertaClassificationHead(
            input_dim=self.args.encoder_embed_dim,
            inner_dim=inner_dim or self.args.encoder_embed_dim,
            num_classes=num_classes,
            activation_fn=self.args.pooler_activation_fn,
            pooler_dropout=self.args.pooler_dropout,
        )

    def upgrade_state_dict_named(self, state_dict, name):
        """Make a checkpoint's keys this model's before fairseq's strict load: drop, on
        purpose and with a log line, what this model does not have (the generator, RTD head
        and strategy heads when a pretraining checkpoint is loaded for fine-tuning, and
        classification heads that are not registered here); the rules are in
        ``finetuning_state.py``."""
        super().upgrade_state_dict_named(state_dict, name)
        upgrade_state_dict(self, state_dict, name + "." if name else "")


# ---------------------------------------------------------------------- architectures


def base_architecture(args):
    """Defaults shared by every architecture (BERT/ELECTRA-base sizes)."""

    def default(name, value):
        if getattr(args, name, None) is None:
            setattr(args, name, value)

    default("encoder_layers", 12)
    default("encoder_embed_dim", 768)
    default("encoder_ffn_embed_dim", 4 * args.encoder_embed_dim)
    default("encoder_attention_heads", max(1, args.encoder_embed_dim // 64))
    default("token_embed_dim", args.encoder_embed_dim)
    default("max_positions", 512)
    default("encoder_normalize_before", False)
    default("rel_pos_bins", 0)
    default("max_rel_pos", 128)
    default("rel_pos_init", "normal")
    default("rtd_bias_init", "zero")
    default("dropout", 0.1)
    default("attention_dropout", 0.1)
    default("activation_dropout", 0.0)
    default("generator_depths", "12")
    default("generator_embed_dim", args.encoder_embed_dim)
    default("generator_ffn_embed_dim", 4 * args.generator_embed_dim)
    default("generator_attention_heads", max(1, args.generator_embed_dim // 64))
    default("generator_dropout", 0.0)
    default("no_generator_stop_gradient", False)
    default("cpu_bf16", "off")
    default("layerwise_lr_decay", 1.0)
    default("classification_pooling", "first")
    default("pooler_activation_fn", "tanh")
    default("pooler_dropout", 0.1)


def _architecture(name: str, **sizes):
    """Register ``name`` with these defaults (any of them can still be set on the CLI)."""
    from fairseq.models import register_model_architecture

    def apply(args):
        for key, value in sizes.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
        base_architecture(args)

    apply.__name__ = name
    register_model_architecture("amos", name)(apply)


_AMOS_REL_POS = dict(rel_pos_bins=32, max_rel_pos=128)  # AMOS / COCO-LM use T5-style bias

_architecture("amos_tiny", encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=256,
              encoder_attention_heads=2, generator_embed_dim=64, generator_ffn_embed_dim=256,
              generator_attention_heads=2, generator_depths="1,2,3", **_AMOS_REL_POS)
_architecture("amos_small", encoder_layers=12, encoder_embed_dim=256, encoder_ffn_embed_dim=1024,
              encoder_attention_heads=4, token_embed_dim=128, generator_embed_dim=256,
              generator_ffn_embed_dim=1024, generator_attention_heads=4, generator_depths="4,6,8",
              **_AMOS_REL_POS)
_architecture("amos_base", encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
              encoder_attention_heads=12, generator_embed_dim=768, generator_ffn_embed_dim=3072,
              generator_attention_heads=12, generator_depths="4,6,8", **_AMOS_REL_POS)
_architecture("amos_large", encoder_layers=24, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096,
              encoder_attention_heads=16, generator_embed_dim=1024, generator_ffn_embed_dim=4096,
              generator_attention_heads=16, generator_depths="4,6,8", **_AMOS_REL_POS)
_architecture("electra_tiny", encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=256,
              encoder_attention_heads=2, generator_embed_dim=32, generator_ffn_embed_dim=128,
              generator_attention_heads=1, generator_depths="2")
# CPU scale (docs/cpu-scale.md): the smallest models that learn on 2 cores in minutes. One
# discriminator for both strategies, so that comparisons isolate the replacement strategy;
# the relative position bias starts from a locality prior, without which these sizes sit on
# the unigram plateau for thousands of updates; the RTD head starts at its label prior, without
# which some seeds' discriminators collapse to answering the prior for every token.
_MINI_DISCRIMINATOR = dict(encoder_layers=4, encoder_embed_dim=128, encoder_ffn_embed_dim=512,
                           encoder_attention_heads=4, token_embed_dim=128, rel_pos_bins=32,
                           max_rel_pos=128, rel_pos_init="local", max_positions=128,
                           rtd_bias_init="prior")
# Generators a quarter of the discriminator's width: at this scale the half-width one made
# a weaker discriminator (docs/cpu-scale.md).
_MINI_GENERATOR = dict(generator_embed_dim=32, generator_ffn_embed_dim=128, generator_attention_heads=1)
_architecture("electra_mini", generator_depths="4", **_MINI_GENERATOR, **_MINI_DISCRIMINATOR)
_architecture("amos_mini", generator_depths="2,3,4", **_MINI_GENERATOR, **_MINI_DISCRIMINATOR)
# ELECTRA's generator is a small BERT with BERT's dropout, 0.1 (its released configs); AMOS
# runs its generators without dropout, and the CPU-scale archs above use none anywhere.
_ELECTRA_GENERATOR_DROPOUT = dict(generator_dropout=0.1)
_architecture("electra_small", encoder_layers=12, encoder_embed_dim=256, encoder_ffn_embed_dim=1024,
              encoder_attention_heads=4, token_embed_dim=128, generator_embed_dim=64,
              generator_ffn_embed_dim=256, generator_attention_heads=1, generator_depths="12",
              **_ELECTRA_GENERATOR_DROPOUT)
_architecture("electra_base", encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
              encoder_attention_heads=12, generator_embed_dim=256, generator_ffn_embed_dim=1024,
              generator_attention_heads=4, generator_depths="12", **_ELECTRA_GENERATOR_DROPOUT)
_architecture("electra_large", encoder_layers=24, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096,
              encoder_attention_heads=16, generator_embed_dim=256, generator_ffn_embed_dim=1024,
              generator_attention_heads=4, generator_depths="24", **_ELECTRA_GENERATOR_DROPOUT)
