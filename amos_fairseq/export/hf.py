"""Export an ``amos_rtd`` pretraining checkpoint as a HuggingFace transformers directory.

    result = export_pretrained("checkpoints/checkpoint_best.pt", "hf-model",
                               data="corpus/data-bin", spm_model="corpus/spm.model")

writes ``hf-model/`` (the discriminator: config.json, model.safetensors, tokenizer) and
``hf-model/generator/`` (the generator of the chosen depth, same tokenizer), then loads both
back with ``from_pretrained`` and checks them against the fairseq model.

ELECTRA-shaped models (absolute positions, post-LN) become stock ``ElectraForPreTraining`` /
``ElectraForMaskedLM``; models with a relative position bias or pre-LN layers become
``AmosElectraForPreTraining`` / ``AmosElectraForMaskedLM``, whose modeling file is written
into each folder (``trust_remote_code=True`` loads it).
"""

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import torch

from . import amos_electra, electra
from .electra import (
    ExportError,
    check_activation,
    fairseq_discriminator,
    fairseq_generator,
    load_into,
    model_args,
    needs_amos_electra,
    require_transformers,
)
from .tokenizer import export_tokenizer

logger = logging.getLogger(__name__)

GENERATOR_SUBDIR = "generator"
INFO_FILE = "amos_export.json"
VERIFY_ATOL = 1e-4


@dataclass(frozen=True)
class Family:
    """How one kind of model is written: its transformers classes, config and tensors."""

    pretraining_class: type  # the discriminator with its RTD head
    masked_lm_class: type  # the generator
    config: Callable  # (args, vocab_size, pad=, bos=, eos=, generator_depth=None) -> config
    discriminator_state_dict: Callable  # (fairseq model) -> tensors
    generator_state_dict: Callable  # (fairseq model, depth) -> tensors
    remote_code: bool  # the folder carries its modeling file (trust_remote_code=True)


def model_family(args) -> Family:
    """Stock ELECTRA where it computes the model exactly, else AMOS-ELECTRA."""
    if needs_amos_electra(args):
        hf = amos_electra.modeling()
        return Family(hf.AmosElectraForPreTraining, hf.AmosElectraForMaskedLM, amos_electra.amos_electra_config,
                      amos_electra.discriminator_state_dict, amos_electra.generator_state_dict, True)
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    return Family(ElectraForPreTraining, ElectraForMaskedLM, electra.electra_config,
                  electra.discriminator_state_dict, electra.generator_state_dict, False)


@dataclass
class ExportResult:
    """Where things went and how closely the exported models reproduce the fairseq ones."""

    out_dir: str
    generator_dir: Optional[str]
    generator_depth: Optional[int]
    vocab_size: int
    trained_depths: List[int] = field(default_factory=list)  # the generator depths the checkpoint has
    # largest |hf - fairseq| on the verification batch, by output name
    max_abs_diff: Dict[str, float] = field(default_factory=dict)
    # the transformers classes written (AmosElectra* ones need trust_remote_code=True)
    model_class: str = ""
    generator_class: Optional[str] = None
    remote_code: bool = False


def find_spm_model(data: str) -> Optional[str]:
    """prepare_corpus.py puts spm.model beside data-bin/: look in DATA and its parent."""
    for folder in (data, os.path.dirname(os.path.abspath(data))):
        path = os.path.join(folder, "spm.model")
        if os.path.isfile(path):
            return path
    return None


def load_pretraining_model(checkpoint: str, data: Optional[str] = None):
    """(fairseq model in eval mode, its model args, its task) from an amos_rtd checkpoint.

    Everything that cannot be exported is refused from the checkpoint's options before the
    data directory is read or the model is built.
    """
    import amos_fairseq  # noqa: F401  (registers the task and model; torch.load compatibility)
    from fairseq import checkpoint_utils

    from ..checkpoint_file import CheckpointFileError, check_checkpoint_file

    try:
        check_checkpoint_file(checkpoint, "checkpoint")
    except CheckpointFileError as e:
        raise ExportError(str(e)) from None
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = state.get("cfg")
    if cfg is None:
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        cfg = convert_namespace_to_omegaconf(state["args"])
    args = model_args(cfg)
    task_name = cfg.task._name if hasattr(cfg.task, "_name") else getattr(cfg.task, "task", None)
    if task_name != "amos_rtd":
        raise ExportError(
            f"{checkpoint} was trained with --task {task_name}, not amos_rtd: only pretraining "
            "checkpoints hold the RTD head and the generator that the export writes"
        )
    data = data or cfg.task.data.split(":")[0]
    if not os.path.isfile(os.path.join(data, "dict.txt")):
        raise ExportError(
            f"no dict.txt in {data!r}: pass --data with the data directory the model was "
            "pretrained on (the fairseq-preprocess --destdir holding dict.txt)"
        )
    state["cfg"], state["args"] = cfg, None
    try:
        (model,), _, task = checkpoint_utils.load_model_ensemble_and_task(
            [checkpoint], arg_overrides={"data": data}, state=state
        )
    except RuntimeError as e:
        if "size mismatch" in str(e):
            raise ExportError(
                f"the dictionary in {data!r} does not match the checkpoint's vocabulary ({e}); "
                "pass --data with the data directory the model was pretrained on"
            ) from e
        raise
    if model.generator is None or model.rtd_head is None:
        raise ExportError(f"{checkpoint} has no generator/RTD head: it is not a pretraining checkpoint")
    return model.eval(), args, task


def verification_batch(dictionary, max_positions: int, seed: int = 0) -> torch.Tensor:
    """[3, T] rows of random corpus symbols framed by <s> ... </s>, two of them right-padded."""
    g = torch.Generator().manual_seed(seed)
    length = min(max_positions, 48)
    rows = torch.full((3, length), dictionary.pad())
    for row, n in enumerate((length, length // 2, 5)):
        rows[row, :n] = torch.randint(dictionary.nspecial, len(dictionary), (n,), generator=g)
        rows[row, 0], rows[row, n - 1] = dictionary.bos(), dictionary.eos()
    return rows


@torch.no_grad()
def compare(model, hf_dir: str, tokens: torch.Tensor, pad: int, depth: Optional[int],
            family: Optional[Family] = None) -> Dict[str, float]:
    """Max |hf - fairseq| at non-pad positions of hidden states and logits (the discriminator,
    or the depth-``depth`` generator)."""
    family = family or model_family(model.args)
    real = tokens.ne(pad)
    if depth is None:
        hf = family.pretraining_class.from_pretrained(hf_dir, local_files_only=True).eval()
        out = hf(input_ids=tokens, attention_mask=real.long(), output_hidden_states=True)
        ref_hidden, ref_logits = fairseq_discriminator(model, tokens)
        names = ("hidden", "rtd_logits")
    else:
        hf = family.masked_lm_class.from_pretrained(hf_dir, local_files_only=True).eval()
        out = hf(input_ids=tokens, attention_mask=real.long(), output_hidden_states=True)
        ref_hidden, ref_logits = fairseq_generator(model, tokens, depth)
        names = ("hidden", "mlm_logits")
    diffs = (out.hidden_states[-1] - ref_hidden)[real], (out.logits - ref_logits)[real]
    return {name: d.abs().max().item() for name, d in zip(names, diffs)}


def export_pretrained(
    checkpoint: str,
    out_dir: str,
    data: Optional[str] = None,
    spm_model: Optional[str] = None,
    generator: bool = True,
    generator_depth: Optional[int] = None,
    verify: bool = True,
) -> ExportResult:
    """Write the discriminator (and the depth-``generator_depth`` generator, default the
    deepest) of an amos_rtd checkpoint as transformers models with their tokenizer.

    ``data`` is the pretraining data directory (dict.txt; default: the one recorded in the
    checkpoint); ``spm_model`` the sentencepiece model (default: spm.model in ``data`` or its
    parent). With ``verify`` the written directories are loaded back and compared with the
    fairseq model on a padded batch; an ``ExportError`` is raised beyond 1e-4.
    """
    require_transformers()
    check_activation()

    model, args, task = load_pretraining_model(checkpoint, data)
    family = model_family(args)
    dictionary = task.source_dictionary
    data = data or task.cfg.data.split(":")[0]
    spm_model = spm_model or find_spm_model(data)
    if spm_model is None:
        raise ExportError(
            f"no spm.model in {data!r} or its parent: pass --spm with the sentencepiece model "
            "the corpus was encoded with"
        )
    depths = model.generator.depths
    if generator_depth is None:
        generator_depth = depths[-1]
    if generator and generator_depth not in depths:
        raise ExportError(
            f"--generator-depth {generator_depth} is not one of the trained depths {depths} "
            "(only those feed the MLM head); pick one of them"
        )
    if args.activation_dropout:
        logger.warning("--activation-dropout %s has no transformers equivalent; it only affects training",
                       args.activation_dropout)
    special = dict(pad=dictionary.pad(), bos=dictionary.bos(), eos=dictionary.eos())
    vocab_size = len(dictionary)

    def write(hf_model, state_dict, folder):
        # The tokenizer first: AutoTokenizer reads config.json when there is one, and an
        # auto_map there would make it ask whether to trust the modeling code.
        export_tokenizer(spm_model, dictionary, folder, max_length=args.max_positions)
        load_into(hf_model, state_dict).save_pretrained(folder)
        if family.remote_code:
            amos_electra.write_modeling_code(folder)

    os.makedirs(out_dir, exist_ok=True)
    write(family.pretraining_class(family.config(args, vocab_size, **special)),
          family.discriminator_state_dict(model), out_dir)
    result = ExportResult(out_dir=out_dir, generator_dir=None, generator_depth=None, vocab_size=vocab_size,
                          trained_depths=list(depths), model_class=family.pretraining_class.__name__,
                          remote_code=family.remote_code)

    if generator:
        gen_dir = os.path.join(out_dir, GENERATOR_SUBDIR)
        write(family.masked_lm_class(family.config(args, vocab_size, generator_depth=generator_depth, **special)),
              family.generator_state_dict(model, generator_depth), gen_dir)
        result.generator_dir, result.generator_depth = gen_dir, generator_depth
        result.generator_class = family.masked_lm_class.__name__

    if verify:
        tokens = verification_batch(dictionary, args.max_positions)
        pad = dictionary.pad()
        result.max_abs_diff = {
            f"discriminator_{k}": v for k, v in compare(model, out_dir, tokens, pad, None, family).items()
        }
        if generator:
            result.max_abs_diff.update({
                f"generator_{k}": v
                for k, v in compare(model, result.generator_dir, tokens, pad, generator_depth, family).items()
            })
        worst = max(result.max_abs_diff.values())
        if worst > VERIFY_ATOL:
            raise ExportError(f"exported model differs from the fairseq model by {worst:.2e}: {result.max_abs_diff}")

    with open(os.path.join(out_dir, INFO_FILE), "w", encoding="utf-8") as f:
        json.dump({"checkpoint": os.path.basename(checkpoint), "arch": args.arch, **asdict(result),
                   "out_dir": ".", "generator_dir": GENERATOR_SUBDIR if generator else None}, f, indent=2)
    return result
