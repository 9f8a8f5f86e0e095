#!/usr/bin/env python
"""Raw text -> sentencepiece model -> encoded train/valid -> fairseq data directory.

    python scripts/prepare_corpus.py corpus.txt[.xz|.gz] [more files] --out DIR \
        [--vocab-size 8000] [--valid-lines 500] [--spm-sample-lines 2000000] [--force]

Writes under DIR: ``spm.model``/``spm.vocab`` (the tokenizer), ``dict.txt`` (the fixed
fairseq vocabulary derived from the sentencepiece vocabulary, so fine-tuning data built
later with ``--srcdict`` shares ids exactly), ``train.spm``/``valid.spm`` (encoded text) and
``data-bin/`` (made by ``fairseq-preprocess --only-source``), the directory to pass to
``fairseq-train``. Lines are streamed; blank lines separate documents (kept, so
``--sample-break-mode complete_doc`` works). Everything is built in a temporary folder that
becomes DIR only when complete: a failure leaves no partial DIR and an earlier DIR untouched.
An existing DIR is refused unless ``--force``, which replaces only a folder this script made.
"""

import argparse
import gzip
import lzma
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # scripts/, also when loaded by path
from output_dir import OutputDirError, check_output_dir, output_dir

TOOL = "prepare_corpus"

# Symbols fairseq's Dictionary puts first itself; sentencepiece's own are mapped onto them.
SPM_CONTROL = {"<unk>", "<s>", "</s>", "<pad>"}


def open_text(path):
    """Open plain, .xz or .gz text for reading as UTF-8."""
    if path.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8", errors="replace")
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def iter_lines(paths):
    for path in paths:
        with open_text(path) as f:
            for line in f:
                yield line.rstrip("\n")


class CorpusError(Exception):
    """A corpus or option this tool cannot turn into a data directory."""


class Progress:
    """A line every few seconds on stderr: what is done, how fast."""

    def __init__(self, what, every=5.0):
        self.what, self.every, self.start, self.last, self.count = what, every, time.time(), time.time(), 0

    def step(self, n=1):
        self.count += n
        now = time.time()
        if now - self.last >= self.every:
            self.last = now
            rate = self.count / max(now - self.start, 1e-9)
            print(f"[{self.what}] {self.count:,} lines ({rate:,.0f}/s)", file=sys.stderr, flush=True)

    def done(self):
        print(f"[{self.what}] {self.count:,} lines in {time.time() - self.start:.1f}s", file=sys.stderr, flush=True)


# sentencepiece's trainer skips, without a word, every sentence longer than its
# max_sentence_length (4192 bytes by default): a paragraph-per-line corpus would lose its
# long paragraphs from the tokenizer's training. They are cut at spaces below this size.
SPM_MAX_SENTENCE_BYTES = 4000


def spm_training_pieces(line, max_bytes=SPM_MAX_SENTENCE_BYTES):
    """``line`` cut at spaces into pieces of at most ``max_bytes`` UTF-8 bytes (a single word
    longer than that is kept whole; sentencepiece then skips it)."""
    if len(line.encode("utf-8")) <= max_bytes:
        return [line]
    pieces, current, size = [], [], 0
    for word in line.split(" "):
        n = len(word.encode("utf-8")) + 1
        if current and size + n > max_bytes:
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += n
    pieces.append(" ".join(current))
    return pieces


def train_sentencepiece(paths, out_dir, vocab_size, sample_lines, model_type, seed):
    """Train on (a reservoir sample of) the non-blank lines, long lines cut at spaces into
    pieces sentencepiece accepts. Returns the model path."""
    import sentencepiece as spm

    rng = random.Random(seed)
    reservoir, progress = [], Progress("spm sample")
    lines = (piece for l in iter_lines(paths) if l.strip() for piece in spm_training_pieces(l))
    for i, line in enumerate(lines):
        if len(reservoir) < sample_lines:
            reservoir.append(line)
        else:
            j = rng.randrange(i + 1)
            if j < sample_lines:
                reservoir[j] = line
        progress.step()
    progress.done()
    if not reservoir:
        raise CorpusError(f"no text in {paths}")
    prefix = os.path.join(out_dir, "spm")
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(reservoir),
            model_prefix=prefix,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=1.0,
            # ids match fairseq's Dictionary layout: <s>=0 <pad>=1 </s>=2 <unk>=3
            bos_id=0, pad_id=1, eos_id=2, unk_id=3,
            input_sentence_size=0,  # all of the reservoir, which is the sample already
            shuffle_input_sentence=True,
            minloglevel=2,
        )
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[-1].split("] ")[-1]  # drop sentencepiece's source location
        if "Vocabulary size" in reason:  # "Vocabulary size too high (8000). Please set it to a value <= 1234."
            raise CorpusError(f"sentencepiece cannot make --vocab-size {vocab_size} pieces from this "
                              f"corpus: {reason} (pass a smaller --vocab-size)") from None
        raise CorpusError(f"sentencepiece failed on {paths}: {reason}") from None
    return prefix + ".model"


def write_dictionary(spm_model_path, dict_path):
    """dict.txt with every sentencepiece piece but the control symbols, in id order."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_model_path)
    with open(dict_path, "w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            piece = sp.id_to_piece(i)
            if piece in SPM_CONTROL:
                continue
            # The count is unused by fairseq-preprocess --srcdict; keep the id order stable.
            f.write(f"{piece} {sp.get_piece_size() - i}\n")


def encode(paths, spm_model_path, train_out, valid_out, valid_lines, seed):
    """Encode every line; a random ``valid_lines`` of the non-blank lines go to valid."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_model_path)
    total = sum(1 for l in iter_lines(paths) if l.strip())
    valid_ids = set(random.Random(seed).sample(range(total), valid_lines))
    progress, k = Progress("encode"), 0
    with open(train_out, "w", encoding="utf-8") as train, open(valid_out, "w", encoding="utf-8") as valid:
        for line in iter_lines(paths):
            if not line.strip():
                train.write("\n")  # document boundary
                continue
            pieces = " ".join(sp.encode(line.strip(), out_type=str))
            (valid if k in valid_ids else train).write(pieces + "\n")
            k += 1
            progress.step()
    progress.done()


def binarize(out_dir, workers):
    cmd = [
        # fairseq-preprocess of the running interpreter, whether or not its venv is active
        sys.executable, "-m", "fairseq_cli.preprocess",
        "--only-source",
        "--srcdict", os.path.join(out_dir, "dict.txt"),
        "--trainpref", os.path.join(out_dir, "train.spm"),
        "--validpref", os.path.join(out_dir, "valid.spm"),
        "--destdir", os.path.join(out_dir, "data-bin"),
        "--workers", str(workers),
    ]
    print("[binarize] " + " ".join(cmd), file=sys.stderr, flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise CorpusError("fairseq-preprocess failed (its message is above)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="raw text files (.txt, .xz, .gz)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"])
    parser.add_argument("--valid-lines", type=int, default=500)
    parser.add_argument("--spm-sample-lines", type=int, default=2_000_000,
                        help="sentencepiece trains on a uniform sample of this many lines")
    parser.add_argument("--spm-model", help="reuse this sentencepiece model instead of training one")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="replace an existing --out directory")
    args = parser.parse_args(argv)

    for path in args.inputs:
        if not os.path.isfile(path):
            sys.exit(f"error: input {path!r} does not exist")
    if args.spm_model and not os.path.isfile(args.spm_model):
        sys.exit(f"error: --spm-model {args.spm_model!r} does not exist")
    if args.vocab_size < 10:
        sys.exit(f"error: --vocab-size must be at least 10, got {args.vocab_size}")
    if args.valid_lines < 1:
        sys.exit(f"error: --valid-lines must be at least 1 (fairseq-train validates on them), got {args.valid_lines}")
    try:
        check_output_dir(args.out, TOOL, args.force, [*args.inputs, args.spm_model])
        total = sum(1 for line in iter_lines(args.inputs) if line.strip())
        if total <= args.valid_lines:
            raise CorpusError(f"the corpus has {total} non-blank lines; --valid-lines {args.valid_lines} leaves "
                              "no training data: pass a smaller --valid-lines")
        with output_dir(args.out, TOOL, args.force, [*args.inputs, args.spm_model]) as tmp:
            if args.spm_model:
                shutil.copy(args.spm_model, os.path.join(tmp, "spm.model"))
                spm_model = os.path.join(tmp, "spm.model")
            else:
                spm_model = train_sentencepiece(
                    args.inputs, tmp, args.vocab_size, args.spm_sample_lines, args.model_type, args.seed
                )
            write_dictionary(spm_model, os.path.join(tmp, "dict.txt"))
            encode(args.inputs, spm_model, os.path.join(tmp, "train.spm"), os.path.join(tmp, "valid.spm"),
                   args.valid_lines, args.seed)
            binarize(tmp, args.workers)
    except (OutputDirError, CorpusError) as e:
        sys.exit(f"error: {e}")
    print(f"[done] fairseq data directory: {os.path.join(args.out, 'data-bin')}", file=sys.stderr)


if __name__ == "__main__":
    main()
