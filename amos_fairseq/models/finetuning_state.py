"""How a checkpoint's state dict becomes the state of the ``amos`` model that loads it.

A pretraining checkpoint holds the generator, the RTD head and a strategy head next to the
discriminator; a fine-tuning model (``sentence_prediction``) holds the discriminator and its
classification heads only. ``upgrade_state_dict`` (called by the model's
``upgrade_state_dict_named`` before fairseq's strict ``load_state_dict``) makes the keys
match, on purpose and with a log line for everything it drops or fills in:

- a position table of another length stops the load, naming ``--max-positions``;
- pretraining-only groups the model was built without are dropped;
- a strategy head the model has but the checkpoint lacks (pretrained with another
  ``--criterion``) keeps its fresh weights;
- classification heads follow RoBERTa's rules: one of another shape under a registered name
  is dropped for this run's fresh head, unregistered ones are dropped (or registered, with
  ``--load-checkpoint-heads``), and registered heads new to the checkpoint keep theirs.

``check_num_classes`` guards the fine-tuning run's ``--num-classes`` against its labels.
"""

import logging

from .config_checks import ModelConfigError

logger = logging.getLogger(__name__)

# Parameter groups that exist only for pretraining, by state-dict prefix.
PRETRAINING_ONLY = ("generator.", "rtd_head.", "mixture_scorer.", "hardness_head.")
STRATEGY_HEADS = ("mixture_scorer.", "hardness_head.")  # built only for their own criterion


def upgrade_state_dict(model, state_dict, prefix: str) -> None:
    """Make ``state_dict`` (keys under ``prefix``, '' or 'name.') loadable, strictly, into
    ``model``, an ``AmosModel``; edits ``state_dict`` in place and may register
    classification heads on ``model`` (``--load-checkpoint-heads``)."""
    check_position_table(model, state_dict, prefix)
    drop_pretraining_only(model, state_dict, prefix)
    fill_missing_strategy_heads(model, state_dict, prefix)
    match_classification_heads(model, state_dict, prefix)


def check_position_table(model, state_dict, prefix: str) -> None:
    """Stop when the checkpoint's learned positions [P, H] are not the model's
    ``--max-positions`` rows."""
    positions = state_dict.get(prefix + "discriminator.embeddings.position_embeddings.weight")
    ours = model.discriminator.embeddings.position_embeddings.num_embeddings
    if positions is not None and positions.size(0) != ours:
        # sentence_prediction sets the model's --max-positions from the task's flag, so
        # a fine-tuning run must name the pretraining value (it also bounds truncation).
        raise ModelConfigError(
            f"the checkpoint has {positions.size(0)} learned positions but this model is "
            f"built with --max-positions {ours}: pass --max-positions {positions.size(0)} "
            "(with --shorten-method truncate for longer inputs)"
        )


def drop_pretraining_only(model, state_dict, prefix: str) -> None:
    """Drop the generator, RTD head and strategy heads the model was built without (a
    pretraining checkpoint loaded for fine-tuning, or one trained under another criterion)."""
    for group in PRETRAINING_ONLY:
        if getattr(model, group.rstrip(".")) is None:
            dropped = [k for k in state_dict if k.startswith(prefix + group)]
            for k in dropped:
                del state_dict[k]
            if dropped:
                logger.info("dropped %d pretraining-only tensors of %s (not in this model)", len(dropped), group.rstrip("."))


def fill_missing_strategy_heads(model, state_dict, prefix: str) -> None:
    """Give a strategy head the model has but the checkpoint lacks its fresh weights."""
    for group in STRATEGY_HEADS:
        module = getattr(model, group.rstrip("."))
        if module is not None and not any(k.startswith(prefix + group) for k in state_dict):
            # A checkpoint pretrained with another criterion (e.g. electra, continued with
            # amos): the strategy's own head starts from its fresh weights.
            logger.warning(
                "the checkpoint has no %s (pretrained with another --criterion): it starts "
                "from random weights; resume with --reset-optimizer (the optimizer state "
                "belongs to the other criterion's parameters)", group.rstrip(".")
            )
            for k, v in module.state_dict().items():
                state_dict[prefix + group + k] = v


def match_classification_heads(model, state_dict, prefix: str) -> None:
    """RoBERTa's rules for classification heads (``dense.weight`` [inner, H],
    ``out_proj.weight`` [classes, inner]): a checkpoint head of another shape under a name
    registered here is dropped and this run's head starts fresh; a head not registered here
    is dropped, or registered from its shapes with ``--load-checkpoint-heads``; heads
    registered here but new to the checkpoint keep their fresh weights."""
    head_prefix = prefix + "classification_heads."
    load_heads = getattr(model.args, "load_checkpoint_heads", False)
    for k in [k for k in state_dict if k.startswith(head_prefix)]:
        head = k[len(head_prefix):].split(".")[0]
        if k not in state_dict:
            continue  # already dropped with the rest of its head
        if head in model.classification_heads:
            ours = model.classification_heads[head].state_dict()
            theirs = {n[len(head_prefix + head) + 1:]: state_dict[n] for n in state_dict
                      if n.startswith(head_prefix + head + ".")}
            if any(n in ours and ours[n].shape != t.shape for n, t in theirs.items()):
                # Same name, other task (e.g. an MNLI model fine-tuned on RTE): RoBERTa's rule.
                logger.warning(
                    "classification head %s of the checkpoint has another shape (%d classes) "
                    "than this run's (%d): it is dropped and this run's head starts fresh",
                    head, theirs["out_proj.weight"].size(0), ours["out_proj.weight"].size(0),
                )
                for n in theirs:
                    del state_dict[head_prefix + head + "." + n]
            continue
        if load_heads:
            weight = state_dict[head_prefix + head + ".out_proj.weight"]
            inner = state_dict[head_prefix + head + ".dense.weight"].size(0)
            model.register_classification_head(head, weight.size(0), inner)
        else:
            logger.info("dropped classification head %s from the checkpoint: %s", head, k)
            del state_dict[k]
    # Heads registered for this run but new to the checkpoint keep their fresh weights.
    for k, v in model.classification_heads.state_dict().items():
        state_dict.setdefault(head_prefix + k, v)


def check_num_classes(args, task) -> None:
    """fairseq's sentence_prediction task takes --num-classes on trust: fewer than the labels
    fails mid-training with an index error, more trains heads for classes that never occur."""
    labels = getattr(task, "label_dictionary", None)
    num_classes = getattr(args, "num_classes", None)
    if labels is None or num_classes is None or getattr(args, "regression_target", False):
        return
    # fairseq's sentence_prediction adds <mask> to every dictionary it loads, labels' included
    found = sum(symbol != "<mask>" for symbol in labels.symbols[labels.nspecial:])
    if num_classes != found:
        raise ModelConfigError(
            f"--num-classes {num_classes} but the data's label/dict.txt holds {found} labels: pass "
            f"--num-classes {found} (scripts/prepare_classification.py writes it to meta.json)"
        )
