#!/usr/bin/env python
"""Build the small public-domain data shipped under examples/data (reproducibly).

    python scripts/make_demo_data.py SOTU.txt.xz MOBY_DICK.txt.xz --out examples/data

Writes ``corpus.txt.xz`` (a pretraining slice: one sentence per line, a blank line between
documents) and ``source_id/{train,dev,test}.tsv``: a sentence classification task whose
label is where a sentence comes from: ``moby_dick``, ``sotu_early`` (the first half of the
State of the Union addresses, chronologically) or ``sotu_late``. Sentences used for the
classification task are held out of the pretraining slice.
"""

import argparse
import lzma
import os
import random
import re

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z])")


def sentences(paragraph):
    return [s.strip() for s in SENTENCE_END.split(paragraph) if 30 <= len(s.strip()) <= 400]


def read_documents(path):
    """Documents as lists of sentences: SOTU has one address per line, Moby Dick one
    paragraph per line block (chapters are split at 'CHAPTER')."""
    with lzma.open(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if "CHAPTER" in text:
        docs = re.split(r"\n\s*CHAPTER [0-9]+\.?[^\n]*\n", text)
        return [[s for para in re.split(r"\n\s*\n", d) for s in sentences(" ".join(para.split()))] for d in docs]
    return [sentences(line) for line in text.splitlines() if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sotu")
    parser.add_argument("moby_dick")
    parser.add_argument("--out", required=True)
    parser.add_argument("--pretrain-sentences", type=int, default=24000)
    parser.add_argument("--per-label", type=int, default=(600, 150, 150), nargs=3, metavar=("TRAIN", "DEV", "TEST"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    sotu = [d for d in read_documents(args.sotu) if d]
    moby = [d for d in read_documents(args.moby_dick) if d]
    half = len(sotu) // 2
    groups = {"moby_dick": moby, "sotu_early": sotu[:half], "sotu_late": sotu[half:]}

    held_out = {}
    for label, docs in groups.items():
        pool = [s for d in docs for s in d]
        held_out[label] = rng.sample(pool, sum(args.per_label))
    held = {s for v in held_out.values() for s in v}

    # Pretraining slice: whole documents (sentences held out removed), mixed sources.
    docs = [d for v in groups.values() for d in v]
    rng.shuffle(docs)
    lines, count = [], 0
    for d in docs:
        kept = [s for s in d if s not in held]
        if not kept:
            continue
        lines.extend(kept + [""])
        count += len(kept)
        if count >= args.pretrain_sentences:
            break
    os.makedirs(os.path.join(args.out, "source_id"), exist_ok=True)
    with lzma.open(os.path.join(args.out, "corpus.txt.xz"), "wt", encoding="utf-8", preset=9) as f:
        f.write("\n".join(lines) + "\n")

    splits = {"train": [], "dev": [], "test": []}
    for label, sents in held_out.items():
        a, b, _ = args.per_label
        for name, part in (("train", sents[:a]), ("dev", sents[a:a + b]), ("test", sents[a + b:])):
            splits[name].extend((s, label) for s in part)
    for name, rows in splits.items():
        rng.shuffle(rows)
        with open(os.path.join(args.out, "source_id", f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for s, label in rows:
                f.write(f"{s.replace(chr(9), ' ')}\t{label}\n")
    print(f"pretraining slice: {count} sentences; classification: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))


if __name__ == "__main__":
    main()
