"""GLUE-shaped folders for tests and CPU-sized end-to-end runs, made from the shipped
source_id sentences (three books). Every file has the columns, header (or none, for CoLA's
train/dev) and label strings of the real GLUE distribution; the labels are learnable from the
text: whether a sentence (or both sentences of a pair) comes from the first book, the book of
the second sentence for MNLI, and for STS-B a score that is high when both come from one book.

    python tests/fake_glue.py OUT [--rows 200]
"""

import argparse
import csv
import os
import random
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "examples" / "data" / "source_id"
TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")


def sentences(split):
    with open(SOURCE / f"{split}.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r["sentence"].replace("\t", " "), r["label"]) for r in rows]


def write(path: Path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if header is not None:
            f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(c) for c in row) + "\n")


def make_fake_glue(out, rows=200, dev_rows=None, test_rows=None, tasks=TASKS, seed=0):
    """Write fake GLUE task folders under ``out``; returns ``out`` as a Path."""
    out = Path(out)
    dev_rows = dev_rows or max(20, rows // 4)
    test_rows = test_rows or max(10, rows // 5)
    rng = random.Random(seed)
    pools = {"train": sentences("train"), "dev": sentences("dev"), "test": sentences("test")}
    books = sorted({label for _, label in pools["train"]})

    def single(split, n):
        return [rng.choice(pools[split]) for _ in range(n)]

    def pairs(split, n):
        out = []
        for _ in range(n):
            a = rng.choice(pools[split])
            same = [s for s in pools[split] if s[1] == a[1]]
            b = rng.choice(same if rng.random() < 0.5 else pools[split])
            out.append((a, b))
        return out

    def yes(book):
        return "1" if book == books[0] else "0"

    def split_sizes():
        return (("train", "train", rows), ("dev", "dev", dev_rows))

    for task in tasks:
        folder = out / task
        if task == "CoLA":
            for file, split, n in split_sizes():
                write(folder / f"{file}.tsv", None,
                      [("gj04", yes(b), "" if yes(b) == "1" else "*", s) for s, b in single(split, n)])
            write(folder / "test.tsv", ("index", "sentence"), [(i, s) for i, (s, _) in enumerate(single("test", test_rows))])
        elif task == "SST-2":
            for file, split, n in split_sizes():
                write(folder / f"{file}.tsv", ("sentence", "label"), [(s, yes(b)) for s, b in single(split, n)])
            write(folder / "test.tsv", ("index", "sentence"), [(i, s) for i, (s, _) in enumerate(single("test", test_rows))])
        elif task == "MRPC":
            header = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
            for file, split, n in split_sizes():
                write(folder / f"{file}.tsv", header,
                      [(int(a[1] == b[1]), 100 + i, 200 + i, a[0], b[0]) for i, (a, b) in enumerate(pairs(split, n))])
            write(folder / "test.tsv", ("index", "#1 ID", "#2 ID", "#1 String", "#2 String"),
                  [(i, 100 + i, 200 + i, a[0], b[0]) for i, (a, b) in enumerate(pairs("test", test_rows))])
        elif task == "STS-B":
            header = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2")
            for file, split, n in split_sizes():
                write(folder / f"{file}.tsv", header + ("score",),
                      [(i, "main-captions", "MSRvid", "2012test", i, "none", "none", a[0], b[0],
                        f"{(4.0 if a[1] == b[1] else 0.5) + rng.random():.3f}")
                       for i, (a, b) in enumerate(pairs(split, n))])
            write(folder / "test.tsv", header, [(i, "main-captions", "MSRvid", "2012test", i, "none", "none", a[0], b[0])
                                                for i, (a, b) in enumerate(pairs("test", test_rows))])
        elif task == "QQP":
            for file, split, n in split_sizes():
                write(folder / f"{file}.tsv", ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                      [(i, 2 * i, 2 * i + 1, a[0], b[0], int(a[1] == b[1])) for i, (a, b) in enumerate(pairs(split, n))])
            write(folder / "test.tsv", ("id", "question1", "question2"),
                  [(i, a[0], b[0]) for i, (a, b) in enumerate(pairs("test", test_rows))])
        elif task == "MNLI":
            nli = dict(zip(books, ("entailment", "neutral", "contradiction")))
            parses = ("sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse", "sentence2_parse")
            lead = ("index", "promptID", "pairID", "genre") + parses + ("sentence1", "sentence2")
            write(folder / "train.tsv", lead + ("label1", "gold_label"),
                  [(i, i, f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a[0], b[0], nli[b[1]], nli[b[1]])
                   for i, (a, b) in enumerate(pairs("train", rows))])
            for kind in ("matched", "mismatched"):
                write(folder / f"dev_{kind}.tsv", lead + ("label1", "label2", "label3", "label4", "label5", "gold_label"),
                      [(i, i, f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a[0], b[0])
                       + (nli[b[1]],) * 6 for i, (a, b) in enumerate(pairs("dev", dev_rows))])
                write(folder / f"test_{kind}.tsv", lead,
                      [(i, i, f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a[0], b[0])
                       for i, (a, b) in enumerate(pairs("test", test_rows))])
            write(out / "diagnostic" / "diagnostic.tsv", ("index", "sentence1", "sentence2"),
                  [(i, a[0], b[0]) for i, (a, b) in enumerate(pairs("test", test_rows))])
        else:  # QNLI, RTE, WNLI
            first, second = ("question", "sentence") if task == "QNLI" else ("sentence1", "sentence2")
            positive, negative = ("1", "0") if task == "WNLI" else ("entailment", "not_entailment")
            for file, split, n in split_sizes():
                write(folder / f"{file}.tsv", ("index", first, second, "label"),
                      [(i, a[0], b[0], positive if a[1] == b[1] else negative) for i, (a, b) in enumerate(pairs(split, n))])
            write(folder / "test.tsv", ("index", first, second),
                  [(i, a[0], b[0]) for i, (a, b) in enumerate(pairs("test", test_rows))])
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    make_fake_glue(args.out, args.rows, tasks=args.tasks.split(","))
    print(f"fake GLUE in {args.out}: {args.tasks}")
