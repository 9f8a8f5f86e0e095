#!/usr/bin/env python
"""TSV classification task -> fairseq ``sentence_prediction`` data directory.

    python scripts/prepare_classification.py TASK_DIR --corpus-dir PREPARED --out OUT \
        [--checkpoint pretrained.pt] [--text-columns sentence1,sentence2] [--force]

TASK_DIR holds ``train.tsv``, ``dev.tsv`` and optionally ``test.tsv``, each with a header
line: ``sentence<TAB>label`` for single sentences, two text columns (e.g.
``sentence1<TAB>sentence2<TAB>label``) for sentence pairs. ``test.tsv`` may lack the label
column (unlabelled test sets). Text is encoded with the pretraining sentencepiece model and
binarized against the pretraining ``dict.txt`` (``fairseq-preprocess --only-source
--srcdict``), so token ids are exactly those the checkpoint was trained with.

Writes under OUT the layout fairseq's ``sentence_prediction`` task reads::

    input0/{dict.txt,train,valid,test}.{bin,idx}   first text column
    input1/...                                      second text column (pairs only)
    label/{dict.txt,train,valid,test}.{bin,idx}     labels, in the order of label/dict.txt
    meta.json                                       labels, --num-classes, majority baseline

``dev.tsv`` becomes the ``valid`` split. Labels come from train.tsv; a dev/test label not
seen in train is an error (fairseq would silently map it to <unk>). With ``--checkpoint``
the dictionary size is checked against the checkpoint's embedding rows. OUT is built in a
temporary folder and appears only when complete; ``--force`` replaces only an OUT that this
script made, and never one that holds an input.
"""

import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # scripts/, also when loaded by path
from output_dir import OutputDirError, check_output_dir, output_dir

TOOL = "prepare_classification"

SPLITS = (("train", "train"), ("dev", "valid"), ("test", "test"))
PAIR_LIMIT = 2  # sentence_prediction reads input0 and input1 only

csv.field_size_limit(sys.maxsize)


class PrepareError(Exception):
    """A problem with the inputs; the message names the file and the fix."""


def read_tsv(path, label_column, text_columns=None, require_label=True):
    """Rows of a headed TSV -> (text column names, list of text tuples, list of labels or None)."""
    try:
        return _read_tsv(path, label_column, text_columns, require_label)
    except UnicodeDecodeError as e:
        raise PrepareError(
            f"{path} is not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}): re-save it "
            "as UTF-8, e.g. iconv -f latin1 -t utf-8 IN > OUT"
        ) from None


def _read_tsv(path, label_column, text_columns, require_label):
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise PrepareError(f"{path} is empty: it needs a header line like 'sentence<TAB>label'")
        header = [h.strip() for h in header]
        has_label = label_column in header
        if require_label and not has_label:
            raise PrepareError(
                f"{path} has no {label_column!r} column (header: {header}): add a label column "
                "named 'label', or name yours with --label-column"
            )
        if text_columns is None:
            text_columns = [h for h in header if h != label_column]
        missing = [c for c in text_columns if c not in header]
        if missing:
            raise PrepareError(
                f"{path} has no column {missing[0]!r} (header: {header}): every split needs the "
                f"same text columns {text_columns}; fix the header or choose columns with --text-columns"
            )
        if not text_columns:
            raise PrepareError(f"{path} has no text column besides {label_column!r} (header: {header})")
        if len(text_columns) > PAIR_LIMIT:
            raise PrepareError(
                f"{path} has {len(text_columns)} text columns {text_columns}; sentence_prediction takes "
                "one or two: choose them with --text-columns a,b"
            )
        text_idx = [header.index(c) for c in text_columns]
        label_idx = header.index(label_column) if has_label else None
        texts, labels = [], [] if has_label else None
        for lineno, row in enumerate(reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                raise PrepareError(
                    f"{path}:{lineno} has {len(row)} fields but the header has {len(header)}: a "
                    "missing column or a tab inside the text; fix the line"
                )
            texts.append(tuple(row[i].strip() for i in text_idx))
            if has_label:
                label = row[label_idx].strip()
                if not label:
                    raise PrepareError(f"{path}:{lineno} has an empty label")
                labels.append(label)
    if not texts:
        raise PrepareError(f"{path} has a header but no rows")
    return text_columns, texts, labels


def load_dict_size(dict_path):
    from fairseq.data import Dictionary

    return len(Dictionary.load(dict_path))


def checkpoint_vocab_rows(checkpoint):
    """Rows of the token embedding matrix of a fairseq checkpoint."""
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated: EOFError, RuntimeError (zip), UnpicklingError
        raise PrepareError(f"--checkpoint {checkpoint} cannot be read ({type(e).__name__}): it is not a "
                           "complete checkpoint (a kill while saving, a full disk?); use another one") from None
    model = state.get("model", state)
    for key, value in model.items():
        if key.endswith("token_embeddings.weight") or key.endswith("embed_tokens.weight"):
            return value.size(0)
    raise PrepareError(f"{checkpoint} has no token embedding matrix: is it a checkpoint of the amos model?")


def check_vocabulary(dict_path, spm_model, checkpoint):
    """dict.txt must fit the sentencepiece model and (if given) the checkpoint."""
    import sentencepiece as spm

    size = load_dict_size(dict_path)  # fairseq's 4 specials included
    pieces = spm.SentencePieceProcessor(model_file=spm_model).get_piece_size()
    if size != pieces:
        raise PrepareError(
            f"{dict_path} gives {size} symbols but {spm_model} has {pieces} pieces: they come from "
            "different corpora; use the spm.model and dict.txt written together by "
            "scripts/prepare_corpus.py (--corpus-dir)"
        )
    if checkpoint:
        rows = checkpoint_vocab_rows(checkpoint)
        expected = size + 1  # the pretraining task adds <mask>
        if rows != expected:
            raise PrepareError(
                f"vocabulary mismatch: {checkpoint} has {rows} token embeddings but {dict_path} gives "
                f"{expected} (with <mask>): use the dict.txt and spm.model of the corpus directory the "
                "checkpoint was pretrained on (scripts/prepare_corpus.py --out DIR, then --corpus-dir DIR)"
            )


def binarize(raw_prefixes, dict_path, dest, workers):
    """fairseq-preprocess --only-source over the splits present in raw_prefixes (split -> path)."""
    # The running interpreter's fairseq, whatever is first on PATH.
    cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--only-source", "--srcdict", dict_path, "--destdir", dest, "--workers", str(workers)]
    for split, flag in (("train", "--trainpref"), ("valid", "--validpref"), ("test", "--testpref")):
        if split in raw_prefixes:
            cmd += [flag, raw_prefixes[split]]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise PrepareError(f"fairseq-preprocess failed for {dest}:\n{proc.stdout[-3000:]}")


def write_output(out, data, text_columns, labels, label_counts, sp, dict_path, workers):
    """Encode and binarize every split into ``out``; write meta.json and return its content."""
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        raw = collections.defaultdict(dict)  # folder -> split -> raw prefix
        for split, (texts, split_labels) in data.items():
            for col in range(len(text_columns)):
                prefix = os.path.join(tmp, f"input{col}.{split}")
                with open(prefix, "w", encoding="utf-8") as f:
                    for row in texts:
                        f.write(" ".join(sp.encode(row[col], out_type=str)) + "\n")
                raw[f"input{col}"][split] = prefix
            if split_labels is not None:
                prefix = os.path.join(tmp, f"label.{split}")
                with open(prefix, "w", encoding="utf-8") as f:
                    f.write("".join(label + "\n" for label in split_labels))
                raw["label"][split] = prefix
        label_dict = os.path.join(tmp, "label.dict.txt")
        with open(label_dict, "w", encoding="utf-8") as f:
            f.write("".join(f"{label} {label_counts[label]}\n" for label in labels))
        for folder, prefixes in raw.items():
            binarize(prefixes, label_dict if folder == "label" else dict_path,
                     os.path.join(out, folder), workers)
            for leftover in ("preprocess.log",):
                path = os.path.join(out, folder, leftover)
                if os.path.exists(path):
                    os.remove(path)

    majority = label_counts.most_common(1)[0][0]
    dev_labels = data["valid"][1]
    meta = {
        "text_columns": text_columns,
        "labels": labels,
        "num_classes": len(labels),
        "pair": len(text_columns) == 2,
        "rows": {split: len(texts) for split, (texts, _) in data.items()},
        "majority_label": majority,
        "dev_majority_accuracy": sum(l == majority for l in dev_labels) / len(dev_labels),
    }
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task_dir", help="folder with train.tsv, dev.tsv [, test.tsv]")
    parser.add_argument("--out", required=True, help="output directory (fairseq layout)")
    parser.add_argument("--corpus-dir", help="folder written by scripts/prepare_corpus.py (spm.model, dict.txt)")
    parser.add_argument("--spm-model", help="sentencepiece model (default CORPUS_DIR/spm.model)")
    parser.add_argument("--dict", help="pretraining dict.txt (default CORPUS_DIR/dict.txt)")
    parser.add_argument("--checkpoint", help="pretrained checkpoint whose vocabulary must match")
    parser.add_argument("--text-columns", help="comma-separated text columns (default: all but the label)")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="replace an existing --out directory")
    args = parser.parse_args(argv)
    try:
        prepare(args)
    except PrepareError as e:
        sys.exit(f"error: {e}")


def prepare(args):
    spm_model = args.spm_model or (args.corpus_dir and os.path.join(args.corpus_dir, "spm.model"))
    dict_path = args.dict or (args.corpus_dir and os.path.join(args.corpus_dir, "dict.txt"))
    if not spm_model or not dict_path:
        raise PrepareError("name the pretraining vocabulary: --corpus-dir DIR (or --spm-model and --dict)")
    for path, flag in ((spm_model, "--spm-model"), (dict_path, "--dict")):
        if not os.path.isfile(path):
            raise PrepareError(f"{path} does not exist: check {flag} / --corpus-dir")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise PrepareError(f"checkpoint {args.checkpoint} does not exist: check --checkpoint")
    for name in ("train", "dev"):
        if not os.path.isfile(os.path.join(args.task_dir, f"{name}.tsv")):
            raise PrepareError(f"{os.path.join(args.task_dir, name + '.tsv')} does not exist: the task folder "
                               "needs train.tsv and dev.tsv (test.tsv is optional)")
    inputs = [args.task_dir, spm_model, dict_path, args.checkpoint]
    try:
        check_output_dir(args.out, TOOL, args.force, inputs)
    except OutputDirError as e:
        raise PrepareError(str(e)) from None
    check_vocabulary(dict_path, spm_model, args.checkpoint)

    # Read and validate everything before writing anything.
    text_columns = args.text_columns.split(",") if args.text_columns else None
    data = {}
    for name, split in SPLITS:
        path = os.path.join(args.task_dir, f"{name}.tsv")
        if not os.path.isfile(path):
            continue
        text_columns, texts, labels = read_tsv(path, args.label_column, text_columns, require_label=name != "test")
        data[split] = (texts, labels)
    label_counts = collections.Counter(data["train"][1])
    labels = sorted(label_counts)
    for (name, split) in SPLITS:
        unknown = sorted(set(data.get(split, (None, None))[1] or ()) - set(labels))
        if unknown:
            raise PrepareError(
                f"{name}.tsv has labels not in train.tsv: {unknown[:5]} (train has {labels}); fix "
                "the labels or add training examples for them"
            )
    spaced = [label for label in labels if len(label.split()) != 1]
    if spaced:
        raise PrepareError(f"train.tsv has labels with whitespace {spaced[:3]}: fairseq dictionaries hold "
                           "one token per label; replace the spaces, e.g. with '_'")
    if len(labels) < 2:
        raise PrepareError(f"train.tsv has only one label {labels}: classification needs at least two")

    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_model)
    with output_dir(args.out, TOOL, args.force, inputs) as out:
        meta = write_output(out, data, text_columns, labels, label_counts, sp, dict_path, args.workers)
    print(f"[done] {args.out}: {meta['rows']} rows, {len(labels)} labels {labels}, "
          f"--num-classes {len(labels)}{' (sentence pairs)' if meta['pair'] else ''}", file=sys.stderr)


if __name__ == "__main__":
    main()
