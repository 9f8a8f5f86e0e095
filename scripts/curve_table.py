#!/usr/bin/env python
"""The compute curve's table and plot (examples/compute_curve.sh): what the encoder knows at
each kept checkpoint, against tokens seen.

    python scripts/curve_table.py WORK          # writes WORK/curve.md, WORK/curve.png

Reads WORK/run.log (tokens per update), WORK/eval/<update>/blimp.json (scripts/blimp.py) and
WORK/eval/<update>/finetune-seed<S>/results.tsv against WORK/eval/scratch/finetune-seed<S>/
(examples/finetune_tsv.sh). Per checkpoint: tokens seen, BLiMP overall of the discriminator
and the generator beside random weights and the unigram floor, and per task the gain over
random weights in test accuracy (dev where a task has no labelled test set): mean and 95% t
interval over the fine-tuning seeds, paired by seed.
"""

import argparse
import csv
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_results import blimp_overall, format_ci, paired_differences  # noqa: E402


def tokens_per_update(log_path):
    """{update: cumulative tokens} from the train_inner lines' wpb (words per batch)."""
    points, total, last = {}, 0.0, 0
    pattern = re.compile(r"train_inner .*?wpb=([\d.]+).*?num_updates=(\d+)")
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = pattern.search(line)
            if m:
                wpb, n = float(m.group(1)), int(m.group(2))
                if n <= last:  # a resumed run logs again from its checkpoint: keep the first pass
                    continue
                total += wpb * (n - last)
                last = n
                points[n] = total
    return points


def tokens_at(points, update):
    """Tokens seen by ``update`` (interpolated between logged points)."""
    if not points:
        return None
    below = [n for n in points if n <= update]
    if not below:
        return points[min(points)] * update / min(points)
    n = max(below)
    return points[n] * update / n


def scores(folder):
    """{task: score} from finetune_tsv.sh's results.tsv: test accuracy, else dev."""
    out = {}
    path = os.path.join(folder, "results.tsv")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                value = row.get("test_accuracy") if row.get("test_accuracy") not in (None, "", "n/a") else row["dev_accuracy"]
                out[row["task"]] = float(value)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work")
    args = parser.parse_args(argv)
    points = tokens_per_update(os.path.join(args.work, "run.log")) if os.path.isfile(os.path.join(args.work, "run.log")) else {}
    scratch = {int(re.search(r"seed(\d+)$", d).group(1)): scores(d)
               for d in glob.glob(os.path.join(args.work, "eval", "scratch", "finetune-seed*")) if os.path.isdir(d)}
    updates = sorted(int(os.path.basename(d)) for d in glob.glob(os.path.join(args.work, "eval", "*"))
                     if os.path.basename(d).isdigit())
    if not updates:
        sys.exit(f"error: nothing evaluated under {args.work}/eval: run examples/compute_curve.sh first")
    tasks = sorted({t for s in scratch.values() for t in s})
    header = ["update", "tokens seen", "BLiMP disc", "BLiMP gen", "random disc", "random gen", "unigram"] + \
             [f"{t}: gain over scratch" for t in tasks]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    rows = []
    for n in updates:
        folder = os.path.join(args.work, "eval", str(n))
        cells = [str(n)]
        tokens = tokens_at(points, n)
        cells.append("n/a" if tokens is None else f"{tokens / 1e6:.1f}M")
        blimp_path = os.path.join(folder, "blimp.json")
        blimp = None
        if os.path.isfile(blimp_path):
            with open(blimp_path, encoding="utf-8") as f:
                blimp = json.load(f)
        for scorer in ("discriminator", "generator", "random discriminator", "random generator", "unigram"):
            value = blimp_overall(blimp, scorer) if blimp else None
            cells.append("n/a" if value is None else f"{value:.1f}")
        pretrained = {int(re.search(r"seed(\d+)$", d).group(1)): scores(d)
                      for d in glob.glob(os.path.join(folder, "finetune-seed*")) if os.path.isdir(d)}
        gains = {}
        for task in tasks:
            diffs = paired_differences({s: v[task] for s, v in pretrained.items() if task in v},
                                       {s: v[task] for s, v in scratch.items() if task in v})
            gains[task] = diffs
            cells.append(format_ci(diffs) if diffs else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
        rows.append((n, tokens, blimp, gains))
    text = ("Compute curve: BLiMP overall (%) and the fine-tuning gain over random weights (test accuracy "
            "points, dev where a task has no test labels; mean [95% t interval] over fine-tuning seeds, "
            "paired by seed)\n\n" + "\n".join(lines) + "\n")
    with open(os.path.join(args.work, "curve.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install -e .[plot])", file=sys.stderr)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [t / 1e6 if t else n for n, t, _, _ in rows]
    for scorer in ("discriminator", "generator", "random discriminator", "unigram"):
        ys = [blimp_overall(b, scorer) if b else None for _, _, b, _ in rows]
        if any(y is not None for y in ys):
            left.plot([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None], "o-", label=scorer)
    left.set_xscale("log"); left.set_xlabel("tokens seen (M)"); left.set_ylabel("BLiMP overall (%)"); left.legend(fontsize=8)
    for task in tasks:
        ys = [statistics.mean(g[task]) if g.get(task) else None for _, _, _, g in rows]
        if any(y is not None for y in ys):
            right.plot([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None], "o-", label=task)
    right.axhline(0, color="grey", lw=0.8)
    right.set_xscale("log"); right.set_xlabel("tokens seen (M)"); right.set_ylabel("gain over random weights (points)")
    if tasks:
        right.legend(fontsize=8)
    for ax in (left, right):  # one tick per kept checkpoint, the same span on both panels
        ax.set_xlim(min(xs) / 1.25, max(xs) * 1.25)
        ax.set_xticks(xs, [f"{x:.3g}" for x in xs])
        ax.minorticks_off()
    fig.tight_layout()
    fig.savefig(os.path.join(args.work, "curve.png"), dpi=120)


if __name__ == "__main__":
    main()
