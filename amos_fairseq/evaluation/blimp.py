"""Zero-shot sentence scorers for minimal pairs (BLiMP), from a pretraining checkpoint.

No training: each scorer gives every sentence one number, and a minimal pair is right when
the grammatical sentence gets the higher one (``scripts/blimp.py`` reads BLiMP's files and
reports accuracies). A sentence is encoded as the pretraining data is, ``<s>`` + its
sentencepiece pieces looked up in the corpus dictionary + ``</s>`` (``export.tokenizer.fairseq_ids``),
and every scorer sums terms over the *pieces only*: ``<s>`` and ``</s>`` are never masked
and never replaced in pretraining (their RTD label is always "original", and the generator
never predicts them), so their terms carry no judgement about the sentence. Both sentences of
a pair, and every scorer, follow the same rule.

* ``discriminator_scores``: sum over the pieces of log P(original) from the RTD head, where
  the head's logit > 0 means "replaced", so log P(original) = logsigmoid(-logit). One
  forward pass per sentence.
* ``pll_scores``: pseudo-log-likelihood (Salazar et al., 2020): each piece replaced by
  ``<mask>`` in turn, log p(original piece) summed; one row per piece, every generator depth
  of a shared-depth (AMOS) generator read from the same pass (``FairseqGeneratorLogProbs``), or
  an exported ``AutoModelForMaskedLM`` (``HFMaskedLMLogProbs``) through the same code.
* ``unigram_scores``: the context-free floor, the sum of log unigram frequencies counted from
  the binarized training data (``data-bin/train.bin``; dict.txt's counts are placeholders),
  add-one smoothed over the vocabulary without ``<s> <pad> </s> <mask>``.
* ``random_weights_model`` / ``random_hf_generator``: the same architecture from a fixed seed,
  no weights loaded (the control that says what the architecture alone gives).

Models come from ``load_pretraining_model`` (an amos_rtd checkpoint over the
``scripts/prepare_corpus.py`` folder it was pretrained on) or ``load_hf_generator`` (the
generator folder of ``scripts/export_hf.py``). Batches hold sentences of similar length
(sorted), so padding costs little; identical token sequences are scored once
(``unique_sequences``), so a pair whose two sentences encode to the same ids is an exact tie.

This file imports nothing from its package at module level, and fairseq only after the
checkpoint and corpus checks: ``scripts/blimp.py`` loads it from its path, so that a wrong
input is reported before the seconds that importing fairseq takes.
"""

import json
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

PAD_BUDGET_LOGITS = 1 << 26  # elements of a full [rows, T, V] logits tensor (256 MB in fp32)


class BlimpError(ValueError):
    """An input that cannot be scored; the message names the file and the fix."""


# ---------------------------------------------------------------------- inputs


def corpus_paths(corpus: str) -> Tuple[str, str]:
    """(data-bin folder, spm.model) of a ``scripts/prepare_corpus.py --out`` folder; its
    ``data-bin`` itself is accepted too."""
    if os.path.isfile(os.path.join(corpus, "data-bin", "dict.txt")):
        data_bin = os.path.join(corpus, "data-bin")
        spm_model = os.path.join(corpus, "spm.model")
    elif os.path.isfile(os.path.join(corpus, "dict.txt")) and os.path.isfile(
        os.path.join(os.path.dirname(os.path.abspath(corpus)), "spm.model")
    ):
        data_bin, spm_model = corpus, os.path.join(os.path.dirname(os.path.abspath(corpus)), "spm.model")
    elif not os.path.isdir(corpus):
        raise BlimpError(f"--corpus {corpus} does not exist: pass the --out folder of scripts/prepare_corpus.py "
                         "that the checkpoint was pretrained on")
    else:
        raise BlimpError(f"--corpus {corpus} has no data-bin/dict.txt: pass the --out folder of "
                         "scripts/prepare_corpus.py (spm.model, data-bin/) that the checkpoint was pretrained on")
    if not os.path.isfile(spm_model):
        raise BlimpError(f"--corpus {corpus} has no spm.model: pass the --out folder of scripts/prepare_corpus.py, "
                         "which holds the sentencepiece model beside data-bin/")
    return data_bin, spm_model


def load_dictionary(data_bin: str):
    """The pretraining dictionary: data-bin/dict.txt plus the task's ``<mask>``."""
    from fairseq.data import Dictionary

    path = os.path.join(data_bin, "dict.txt")
    try:
        dictionary = Dictionary.load(path)
    except Exception as e:  # noqa: BLE001  (fairseq raises ValueError/RuntimeError on bad lines)
        raise BlimpError(f"{path} is not a fairseq dictionary ({str(e).splitlines()[0]}): pass the --out "
                         "folder of scripts/prepare_corpus.py") from None
    dictionary.add_symbol("<mask>")
    return dictionary


def read_checkpoint(checkpoint: str) -> dict:
    """The checkpoint's dict, refused unless it is an amos_rtd pretraining checkpoint (a file
    that is not a checkpoint, a fine-tuned one, another model's)."""
    if not os.path.isfile(checkpoint):
        raise BlimpError(f"CHECKPOINT {checkpoint} does not exist: give the path of a checkpoint file written by "
                         "fairseq-train --task amos_rtd")
    try:
        state = _torch_load(checkpoint)
    except Exception as e:  # noqa: BLE001  (EOFError, UnpicklingError, RuntimeError of a cut zip, ...)
        problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
        raise BlimpError(
            f"CHECKPOINT {checkpoint} is not a readable torch checkpoint ({problem}): pass a checkpoint_*.pt written "
            "by fairseq-train --task amos_rtd (a run killed while saving leaves unreadable ones: use another)"
        ) from None
    if not isinstance(state, dict) or "model" not in state or (state.get("cfg") is None and state.get("args") is None):
        raise BlimpError(f"CHECKPOINT {checkpoint} is not a fairseq checkpoint (no model and cfg): pass a "
                         "checkpoint_*.pt written by fairseq-train --task amos_rtd")
    task = _task_name(state)
    if task != "amos_rtd":
        raise BlimpError(
            f"CHECKPOINT {checkpoint} was trained with --task {task}, not amos_rtd: a fine-tuned model has no "
            "RTD head or generator to score with; pass the pretraining checkpoint it started from "
            "(the fairseq-train --task amos_rtd run's checkpoint_best.pt or checkpoint_last.pt)"
        )
    weights = state["model"]
    missing = [g for g in ("token_embeddings.", "rtd_head.", "generator.") if not any(k.startswith(g) for k in weights)]
    if missing:
        raise BlimpError(f"CHECKPOINT {checkpoint} has no {missing[0].rstrip('.')} weights: it is not a checkpoint "
                         "of the amos model (fairseq-train --user-dir amos_fairseq --task amos_rtd)")
    return state


def _torch_load(path: str):
    """torch.load without reading the tensors where the format allows it (zip: mmap)."""
    import zipfile

    if zipfile.is_zipfile(path):
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return torch.load(path, map_location="cpu", weights_only=False)


def _task_name(state: dict) -> Optional[str]:
    cfg = state.get("cfg")
    if cfg is not None:
        task = cfg["task"] if isinstance(cfg, dict) else cfg.task
        return task.get("_name") if hasattr(task, "get") else getattr(task, "_name", None)
    return getattr(state["args"], "task", None)


def dictionary_size(dict_path: str) -> int:
    """Ids of the pretraining vocabulary, without importing fairseq: its 4 specials, one symbol
    per line of dict.txt (``Dictionary.load`` adds every line; it refuses repeats and blank
    lines itself) and the task's ``<mask>``."""
    with open(dict_path, encoding="utf-8", errors="replace") as f:
        return 4 + sum(1 for line in f if line.strip()) + 1


def check_vocabulary(state: dict, checkpoint: str, data_bin: str) -> None:
    """The checkpoint's token table must have one row per symbol of dict.txt + ``<mask>``."""
    rows = state["model"]["token_embeddings.weight"].shape[0]
    dict_path = os.path.join(data_bin, "dict.txt")
    size = dictionary_size(dict_path)
    if rows != size:
        raise BlimpError(
            f"vocabulary mismatch: CHECKPOINT {checkpoint} has {rows} token embeddings but {dict_path} gives "
            f"{size} (with <mask>): pass as --corpus the prepare_corpus.py folder the checkpoint was pretrained on"
        )


def load_pretraining_model(checkpoint: str, corpus: str, device: str = "cpu"):
    """(model in eval mode, task, saved cfg) of an amos_rtd checkpoint over ``corpus``'s
    dictionary. Every refusal is raised as ``BlimpError`` before fairseq is imported."""
    data_bin, _ = corpus_paths(corpus)
    state = read_checkpoint(checkpoint)
    check_vocabulary(state, checkpoint, data_bin)
    del state
    import amos_fairseq  # noqa: F401  (registers the task and the model; torch.load compatibility)
    from amos_fairseq.models.config_checks import ModelConfigError
    from amos_fairseq.tasks.amos_rtd import DataConfigError
    from fairseq import checkpoint_utils

    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = state.get("cfg")
    if cfg is None:
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        cfg = convert_namespace_to_omegaconf(state["args"])
        state["cfg"], state["args"] = cfg, None
    try:
        (model,), _, task = checkpoint_utils.load_model_ensemble_and_task(
            [checkpoint], arg_overrides={"data": data_bin}, state=state
        )
    except (DataConfigError, ModelConfigError) as e:  # e.g. data-bin ids beyond its dict.txt
        raise BlimpError(f"CHECKPOINT {checkpoint} with --corpus {corpus}: {e}") from None
    except RuntimeError as e:
        if "size mismatch" in str(e):
            raise BlimpError(f"CHECKPOINT {checkpoint} does not fit --corpus {corpus} ({str(e).splitlines()[0]}): "
                             "pass the corpus the checkpoint was pretrained on") from None
        raise
    return model.to(device).eval(), task, cfg


def random_weights_model(cfg, task, seed: int = 0, device: str = "cpu"):
    """The checkpoint's architecture (its saved model config) from ``seed``, no weights loaded."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = task.build_model(cfg.model, from_checkpoint=True)
    finally:
        torch.random.set_rng_state(state)
    return model.to(device).eval()


def load_hf_generator(folder: str, device: str = "cpu") -> dict:
    """{"model", "tokenizer", "mask", "folder"} of an exported generator: export_hf.py's
    DIR/generator, or DIR itself when DIR holds a masked LM."""
    from amos_fairseq.export import hide_broken_torchaudio  # before transformers' model code

    hide_broken_torchaudio()
    if os.path.isfile(os.path.join(folder, "generator", "config.json")):
        folder = os.path.join(folder, "generator")
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise BlimpError(f"--hf-generator {folder} has no config.json: pass the folder scripts/export_hf.py wrote "
                         "(its generator/ subfolder holds the generator)")
    with open(config_path, encoding="utf-8") as f:
        architectures = json.load(f).get("architectures") or []
    if not any(a.endswith("ForMaskedLM") for a in architectures):
        raise BlimpError(f"--hf-generator {folder} holds {architectures or 'no architecture'}, not a masked LM: pass the "
                         "generator/ folder of scripts/export_hf.py (an export made with --no-generator has none)")
    try:
        from transformers import AutoModelForMaskedLM, AutoTokenizer
    except ImportError:
        raise BlimpError("--hf-generator needs the optional transformers package: pip install -e '.[hf]'") from None
    load = dict(local_files_only=True, trust_remote_code=True)
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True, **load)
        tokenizer = AutoTokenizer.from_pretrained(folder, **load)
    except (OSError, ValueError) as e:
        raise BlimpError(f"--hf-generator {folder} cannot be loaded ({str(e).splitlines()[0]}): pass the "
                         "generator/ folder scripts/export_hf.py wrote") from None
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(("position_ids", "token_type_ids"))]
    if missing:
        raise BlimpError(f"--hf-generator {folder} lacks weights of its model ({missing[0]}, ...): export it again "
                         "with scripts/export_hf.py")
    if tokenizer.mask_token_id is None:
        raise BlimpError(f"--hf-generator {folder}: its tokenizer has no mask token; pass an export of scripts/export_hf.py")
    return dict(model=model.to(device).eval(), tokenizer=tokenizer, mask=tokenizer.mask_token_id, folder=folder)


def random_hf_generator(folder: str, seed: int = 0, device: str = "cpu"):
    """The exported generator's architecture from ``seed``, no weights loaded."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=True)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = AutoModelForMaskedLM.from_config(config, trust_remote_code=True)
    finally:
        torch.random.set_rng_state(state)
    return model.to(device).eval()


def check_hf_vocabulary(tokenizer, dictionary, folder: str, data_bin: str) -> None:
    """The unigram control of an HF-only run counts --corpus ids: they must be the tokenizer's."""
    vocab = tokenizer.get_vocab()
    if len(vocab) != len(dictionary) or any(vocab.get(s) != i for i, s in enumerate(dictionary.symbols)):
        raise BlimpError(f"--hf-generator {folder} numbers its tokens otherwise than {data_bin}/dict.txt: pass as "
                         "--corpus the prepare_corpus.py folder of the pretraining run it was exported from")


class FairseqEncoder:
    """Text -> the ids pretraining saw: ``<s>`` + pieces -> dict.txt ids + ``</s>``, i.e.
    ``export.tokenizer.fairseq_ids`` for a list of lines (sentencepiece encodes them in one call)."""

    def __init__(self, spm_model: str, dictionary):
        import sentencepiece as spm

        self.processor = spm.SentencePieceProcessor(model_file=spm_model)
        self.dictionary = dictionary
        pieces = self.processor.get_piece_size()
        if pieces != len(dictionary) - 1:
            raise BlimpError(
                f"{spm_model} has {pieces} pieces but the dictionary has {len(dictionary) - 1} symbols: they come "
                "from different corpora; pass the --out folder of one scripts/prepare_corpus.py run"
            )

    def __call__(self, sentences: Sequence[str]) -> List[List[int]]:
        d = self.dictionary
        encoded = self.processor.encode([s.strip() for s in sentences], out_type=str)
        return [[d.bos()] + d.encode_line(" ".join(p), add_if_not_exist=False, append_eos=True).tolist()
                for p in encoded]


class HFEncoder:
    """Text -> ids with an exported folder's tokenizer (the same ids as ``FairseqEncoder``)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, sentences: Sequence[str]) -> List[List[int]]:
        return self.tokenizer(list(sentences), add_special_tokens=True)["input_ids"]


def unique_sequences(sequences: Sequence[Sequence[int]]) -> Tuple[List[List[int]], np.ndarray]:
    """(distinct sequences, index of each input in them)."""
    seen: Dict[tuple, int] = {}
    where = np.empty(len(sequences), dtype=np.int64)
    for i, seq in enumerate(sequences):
        where[i] = seen.setdefault(tuple(seq), len(seen))
    return [list(s) for s in seen], where


# ---------------------------------------------------------------------- batching


def length_batches(lengths: Sequence[int], budget: int, rows: Optional[Sequence[int]] = None) -> Iterator[List[int]]:
    """Indices in order of length, cut into batches of at most ``budget`` padded tokens
    (rows x longest length; ``rows[i]`` rows for sequence i, default 1). A sequence that
    alone exceeds the budget is a batch of its own."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batch: List[int] = []
    batch_rows = 0
    for i in order.tolist():
        n = 1 if rows is None else rows[i]
        if batch and (batch_rows + n) * lengths[i] > budget:
            yield batch
            batch, batch_rows = [], 0
        batch.append(i)
        batch_rows += n
    if batch:
        yield batch


def pad_batch(sequences: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    """Right-padded [B, T] long tensor."""
    out = torch.full((len(sequences), max(len(s) for s in sequences)), pad, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


def piece_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """[B, T] bool: positions 1 .. L-2 of each row, the pieces between <s> and </s>."""
    t = torch.arange(width, device=lengths.device)
    return (t >= 1) & (t < (lengths - 1).unsqueeze(1))


# ---------------------------------------------------------------------- scorers


@torch.inference_mode()
def discriminator_scores(model, sequences: Sequence[Sequence[int]], batch_tokens: int = 8192,
                         device: str = "cpu") -> np.ndarray:
    """[S] float64: sum over each sequence's pieces of log P(original) = logsigmoid(-logit)
    from the RTD head (logit > 0 means "replaced"). ``sequences`` hold <s> ... </s>."""
    pad = model.padding_idx
    scores = np.zeros(len(sequences), dtype=np.float64)
    lengths = [len(s) for s in sequences]
    for batch in length_batches(lengths, batch_tokens):
        tokens = pad_batch([sequences[i] for i in batch], pad).to(device)
        logits = model.rtd_head(model.extract_features(tokens)).double()  # [B, T]
        counted = piece_positions(torch.tensor([lengths[i] for i in batch], device=device), tokens.size(1))
        log_original = F.logsigmoid(-logits).masked_fill(~counted, 0.0)
        scores[batch] = log_original.sum(1).cpu().numpy()
    return scores


def target_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[R, V] logits, [R] targets -> [R] log softmax(logits)[target], computed in fp32."""
    logits = logits.float()
    return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=-1)


class FairseqGeneratorLogProbs:
    """log p(target) at one masked position per row, for every depth of the generator.

    ``(tokens [R, T], positions [R], targets [R]) -> {"<prefix>generator d<k>": [R]}``. The
    depths share their lower layers, so one pass of the stack serves all of them, and the
    MLM head (with its full-vocabulary softmax, as in training) runs at the R masked
    positions only.
    """

    def __init__(self, model, prefix: str = ""):
        self.generator = model.generator
        self.depths = list(self.generator.depths)
        self.names = [f"{prefix}generator d{d}" for d in self.depths]
        self.pad = model.padding_idx
        self.batch_tokens = None  # no [R, T, V] tensor: the caller's budget applies

    def __call__(self, tokens, positions, targets):
        _, per_depth = self.generator.encoder(tokens, collect=set(self.depths))
        rows = torch.arange(tokens.size(0), device=tokens.device)
        out = {}
        for name, hidden in zip(self.names, per_depth):
            out[name] = target_log_probs(self.generator.lm_head(hidden[rows, positions]), targets)
        return out


class HFMaskedLMLogProbs:
    """The same contract for a transformers ``...ForMaskedLM`` (e.g. the exported generator):
    its own forward pass, logits read at the masked positions."""

    def __init__(self, hf_model, name: str):
        self.model = hf_model
        self.names = [name]
        self.pad = hf_model.config.pad_token_id
        # the model computes logits at every position: keep [R, T, V] bounded
        self.batch_tokens = max(1, PAD_BUDGET_LOGITS // hf_model.config.vocab_size)

    def __call__(self, tokens, positions, targets):
        logits = self.model(input_ids=tokens, attention_mask=tokens.ne(self.pad).long()).logits
        rows = torch.arange(tokens.size(0), device=tokens.device)
        return {self.names[0]: target_log_probs(logits[rows, positions], targets)}


@torch.inference_mode()
def pll_scores(log_probs, sequences: Sequence[Sequence[int]], mask: int, batch_tokens: int = 8192,
               device: str = "cpu") -> Dict[str, np.ndarray]:
    """Pseudo-log-likelihood of each sequence (<s> ... </s>) under every model of ``log_probs``
    (``FairseqGeneratorLogProbs`` / ``HFMaskedLMLogProbs``): the sum over its pieces of
    log p(piece | the sequence with that piece masked). -> {name: [S] float64}."""
    pad = log_probs.pad
    if log_probs.batch_tokens is not None:
        batch_tokens = min(batch_tokens, log_probs.batch_tokens)
    lengths = [len(s) for s in sequences]
    pieces = [max(n - 2, 0) for n in lengths]
    scores = {name: torch.zeros(len(sequences), dtype=torch.float64) for name in log_probs.names}
    for batch in length_batches(lengths, batch_tokens, rows=pieces):
        batch = [i for i in batch if pieces[i] > 0]
        if not batch:
            continue
        tokens = pad_batch([sequences[i] for i in batch], pad).to(device)  # [B, T]
        counts = torch.tensor([pieces[i] for i in batch], device=device)
        owner = torch.repeat_interleave(torch.arange(len(batch), device=device), counts)  # [R]
        # position of each row's mask: 1 .. L-2 for each sequence, in order
        starts = torch.cumsum(counts, 0) - counts
        positions = torch.arange(owner.numel(), device=device) - starts[owner] + 1  # [R]
        rows = tokens[owner]  # [R, T]
        targets = rows.gather(1, positions.unsqueeze(1)).squeeze(1)
        rows[torch.arange(rows.size(0), device=device), positions] = mask
        index = torch.tensor(batch)[owner.cpu()]
        for name, lp in log_probs(rows, positions, targets).items():
            scores[name].index_add_(0, index, lp.double().cpu())
    return {name: s.numpy() for name, s in scores.items()}


def token_counts(data_bin: str, dictionary, split: str = "train") -> np.ndarray:
    """[V] int64: occurrences of each id in the binarized ``split`` of ``data_bin``."""
    from fairseq.data import data_utils, indexed_dataset

    prefix = os.path.join(data_bin, split)
    dataset = data_utils.load_indexed_dataset(prefix, dictionary)
    if dataset is None:
        raise BlimpError(f"{prefix}.bin not found: the unigram control counts the binarized training data "
                         "(prepare_corpus.py writes data-bin/train.bin); pass that corpus, or --no-controls")
    counts = np.zeros(len(dictionary), dtype=np.int64)
    if isinstance(dataset, indexed_dataset.MMapIndexedDataset):
        # the .bin file is the token ids of every sentence back to back
        flat = np.frombuffer(dataset._bin_buffer, dtype=dataset._index.dtype, count=int(dataset.sizes.sum()))
        for start in range(0, len(flat), 1 << 24):
            counts += np.bincount(flat[start:start + (1 << 24)], minlength=len(dictionary))[: len(dictionary)]
    else:
        for i in range(len(dataset)):
            counts += np.bincount(dataset[i].numpy(), minlength=len(dictionary))[: len(dictionary)]
    return counts


def unigram_log_probs(counts: np.ndarray, dictionary) -> np.ndarray:
    """[V] log p(id) of the add-one smoothed unigram model over the ids text can hold: every
    id but ``<s> <pad> </s>`` and ``<mask>`` (which get the unseen-id value, never used)."""
    excluded = [dictionary.bos(), dictionary.pad(), dictionary.eos()]
    if "<mask>" in dictionary.indices:
        excluded.append(dictionary.index("<mask>"))
    real = np.ones(len(counts), dtype=bool)
    real[excluded] = False
    smoothed = counts.astype(np.float64) + 1.0
    total = smoothed[real].sum()
    log_p = np.log(smoothed / total)
    log_p[~real] = np.log(1.0 / total)
    return log_p


def unigram_scores(log_p: np.ndarray, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """[S] float64: sum of log p over each sequence's pieces (<s> and </s> left out)."""
    return np.array([float(log_p[np.asarray(s[1:-1], dtype=np.int64)].sum()) for s in sequences])
