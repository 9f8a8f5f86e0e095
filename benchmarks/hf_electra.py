"""The peer: a minimal, correct ELECTRA training step with HuggingFace transformers.

``ElectraForMaskedLM`` (generator) and ``ElectraForPreTraining`` (discriminator) of the same
sizes as our architecture, written the way a transformers user would: the generator shares
the discriminator's embedding layer (token, position, type embeddings and their LayerNorm,
as in the official ELECTRA), its output layer is tied to the token embeddings, replacements
are sampled from softmax(logits) at the masked positions without gradient (Gumbel-max), and
the loss is 1 x MLM + 50 x RTD. Two ways to get the generator's logits:

- ``masked_only=True`` (the strongest step a user would write, the default peer): the
  generator body runs on every position, its prediction head and vocabulary projection only
  on the masked ones, with the MLM cross-entropy there;
- ``masked_only=False`` (the stock call): ``ElectraForMaskedLM(..., labels=...)`` computes
  vocabulary logits at every position, as transformers does.
"""

import torch


def import_transformers():
    """Import transformers without torchaudio: transformers imports it whenever it is
    installed, and a torchaudio built for another torch fails to load (CPU wheels here)."""
    import transformers.utils as utils
    import transformers.utils.import_utils as import_utils

    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        import_utils.is_torchaudio_available = utils.is_torchaudio_available = lambda: False
    import transformers

    return transformers


def hf_configs(sizes: dict, vocab_size: int, max_positions: int):
    """(generator, discriminator) ElectraConfigs from our size dictionary."""
    ElectraConfig = import_transformers().ElectraConfig

    common = dict(
        vocab_size=vocab_size,
        embedding_size=sizes["token_embed_dim"],
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        pad_token_id=1,
    )
    disc = ElectraConfig(
        hidden_size=sizes["encoder_embed_dim"],
        num_hidden_layers=sizes["encoder_layers"],
        num_attention_heads=sizes["encoder_attention_heads"],
        intermediate_size=sizes["encoder_ffn_embed_dim"],
        **common,
    )
    gen = ElectraConfig(
        hidden_size=sizes["generator_embed_dim"],
        num_hidden_layers=sizes["generator_layers"],
        num_attention_heads=sizes["generator_attention_heads"],
        intermediate_size=sizes["generator_ffn_embed_dim"],
        **common,
    )
    return gen, disc


class HFElectraPretraining(torch.nn.Module):
    def __init__(self, gen_config, disc_config, rtd_weight: float = 50.0, masked_only: bool = True):
        super().__init__()
        self.masked_only = masked_only
        transformers = import_transformers()
        ElectraForMaskedLM, ElectraForPreTraining = transformers.ElectraForMaskedLM, transformers.ElectraForPreTraining

        self.discriminator = ElectraForPreTraining(disc_config)
        self.generator = ElectraForMaskedLM(gen_config)
        # Shared embedding layer; the generator's output layer tied to its token table.
        self.generator.electra.embeddings = self.discriminator.electra.embeddings
        self.generator.generator_lm_head.weight = self.discriminator.electra.embeddings.word_embeddings.weight
        self.rtd_weight = rtd_weight

    def forward(self, original, masked_input, selected, attention_mask):
        """original, masked_input: [B, T] long; selected: [B, T] bool -> scalar loss."""
        if self.masked_only:
            hidden = self.generator.electra(input_ids=masked_input, attention_mask=attention_mask).last_hidden_state
            logits = self.generator.generator_lm_head(self.generator.generator_predictions(hidden[selected]))  # [M, V]
            mlm_loss = torch.nn.functional.cross_entropy(logits.float(), original[selected])
        else:
            labels = original.masked_fill(~selected, -100)
            generated = self.generator(input_ids=masked_input, attention_mask=attention_mask, labels=labels)
            logits, mlm_loss = generated.logits[selected], generated.loss  # [M, V]
        with torch.no_grad():
            uniform = torch.rand(logits.shape, device=logits.device).clamp_(min=torch.finfo(torch.float32).tiny)
            sampled = (logits.float() - uniform.log_().neg_().log_()).argmax(-1)  # Gumbel-max
        disc_input = original.masked_scatter(selected, sampled)
        is_replaced = disc_input.ne(original).long()
        detected = self.discriminator(input_ids=disc_input, attention_mask=attention_mask, labels=is_replaced)
        return mlm_loss + self.rtd_weight * detected.loss


def arch_sizes(arch: str) -> dict:
    """Our architecture's sizes (the registered defaults), for building the peer."""
    from argparse import Namespace

    import amos_fairseq  # noqa: F401  (registers the architectures)
    from fairseq.models import ARCH_CONFIG_REGISTRY

    args = Namespace()
    ARCH_CONFIG_REGISTRY[arch](args)
    sizes = vars(args)
    sizes["generator_layers"] = max(int(d) for d in str(args.generator_depths).split(","))
    return sizes


def build_hf_electra_step(spec):
    """(forward_backward(autocast) -> loss, params, skipped) for the worker."""
    try:
        import_transformers()
    except ImportError:
        return None, None, "transformers is not installed (pip install 'amos-fairseq[hf]')"
    from benchmarks.batches import make_batch

    device = spec["device"]
    gen_config, disc_config = hf_configs(arch_sizes(spec["arch"]), spec["vocab_size"], max(512, spec["length"]))
    model = HFElectraPretraining(gen_config, disc_config, masked_only=spec.get("masked_only", True)).to(device).train()
    original, selected = make_batch(spec["batch"], spec["length"], spec["vocab_size"], spec["mask_prob"], spec["seed"])
    mask_idx = spec["vocab_size"] - 1
    masked_input = original.masked_fill(selected, mask_idx)
    attention_mask = torch.ones_like(original)
    original, masked_input, selected, attention_mask = (
        t.to(device) for t in (original, masked_input, selected, attention_mask)
    )
    params = [p for p in model.parameters() if p.requires_grad]

    def forward_backward(autocast):
        with autocast():
            return model(original, masked_input, selected, attention_mask)

    return forward_backward, params, None
