#!/usr/bin/env python
"""Tables and plots for examples/compare.sh: fine-tuning scores per pretraining method.

    python scripts/compare_results.py WORK [--out WORK/results]

Reads ``WORK/finetune/<method>/seed<S>/results.tsv`` (written by examples/finetune_tsv.sh;
``scratch`` is the same architecture from random weights) and the pretraining summaries
``WORK/pretrain-<method>/summary.json`` (scripts/pretraining_summary.py), and writes:

* ``results.tsv``: one row per method and task, mean and sample standard deviation of the
  dev accuracy over the fine-tuning seeds, and the seeds' scores;
* ``results.md``: the same as a Markdown table (``mean ± std``, with each method's average over
  the tasks and its difference to scratch), the majority-class baseline, and the pretraining
  summaries (generator loss next to the unigram model, RTD loss next to the label prior);
* ``dev_scores.png`` (dev accuracy per method and task, error bars = std over seeds) and
  ``pretraining.png`` (training curves of every method), when matplotlib is installed.
"""

import argparse
import csv
import glob
import json
import os
import statistics
import subprocess
import sys

ORDER = ["scratch", "mlm", "electra", "amos", "focal_hardness"]


def read_scores(work):
    """{method: {task: [scores over seeds]}}, {task: majority baseline}."""
    scores, majority = {}, {}
    for path in sorted(glob.glob(os.path.join(work, "finetune", "*", "seed*", "results.tsv"))):
        method = path.split(os.sep)[-3]
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                scores.setdefault(method, {}).setdefault(row["task"], []).append(float(row["dev_accuracy"]))
                majority[row["task"]] = float(row["majority_baseline"])
    if not scores:
        sys.exit(f"error: no {work}/finetune/*/seed*/results.tsv: run examples/compare.sh first")
    return scores, majority


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work")
    parser.add_argument("--out", help="output folder (default WORK/results)")
    args = parser.parse_args()
    out = args.out or os.path.join(args.work, "results")
    os.makedirs(out, exist_ok=True)
    scores, majority = read_scores(args.work)
    methods = [m for m in ORDER if m in scores] + sorted(m for m in scores if m not in ORDER)
    tasks = sorted({t for per_task in scores.values() for t in per_task})

    with open(os.path.join(out, "results.tsv"), "w", encoding="utf-8") as f:
        f.write("method\ttask\tmean\tstd\tseeds\tscores\n")
        for method in methods:
            for task in tasks:
                values = scores[method].get(task, [])
                if values:
                    m, s = mean_std(values)
                    f.write(f"{method}\t{task}\t{m:.2f}\t{s:.2f}\t{len(values)}\t{','.join(map(str, values))}\n")

    def average(method):
        per_task = [statistics.mean(scores[method][t]) for t in tasks if scores[method].get(t)]
        return statistics.mean(per_task) if len(per_task) == len(tasks) else None

    lines = ["| method | " + " | ".join(tasks) + " | average | vs scratch |",
             "|---" * (len(tasks) + 3) + "|"]
    scratch_avg = average("scratch") if "scratch" in scores else None
    for method in methods:
        cells = []
        for task in tasks:
            values = scores[method].get(task, [])
            cells.append("%.1f ± %.1f (n=%d)" % (*mean_std(values), len(values)) if values else "n/a")
        avg = average(method)
        delta = "" if avg is None or scratch_avg is None or method == "scratch" else f"{avg - scratch_avg:+.1f}"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {'n/a' if avg is None else f'{avg:.1f}'} | {delta} |")
    lines.append("| majority class | " + " | ".join(f"{majority[t]:.1f}" for t in tasks) + " | | |")
    summary_lines = []
    for method in methods:
        path = os.path.join(args.work, f"pretrain-{method}", "summary.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                s = json.load(f)
            summary_lines.append(
                f"| {method} | {s['where']} | {s['gen_loss']:.3f} ({s['unigram_loss']:.3f}) | "
                f"{s['gen_acc']:.3f} ({s['unigram_acc']:.3f}) | {s['rtd_loss']:.4f} ({s['rtd_prior_loss'] or float('nan'):.4f}) | "
                f"{s['rtd_acc_replaced']:.3f} | {s['rtd_acc_original'] or float('nan'):.3f} |")
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write("Dev accuracy (%), mean ± sample std over fine-tuning seeds\n\n" + "\n".join(lines) + "\n")
        if summary_lines:
            f.write("\nPretraining, last validation (baseline without context in brackets)\n\n"
                    "| method | where | gen_loss (unigram) | gen_acc (most frequent) | rtd_loss (prior) | "
                    "rtd_acc_replaced | rtd_acc_original |\n|---|---|---|---|---|---|---|\n"
                    + "\n".join(summary_lines) + "\n")
    print(open(os.path.join(out, "results.md"), encoding="utf-8").read())

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install -e .[plot])", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(tasks), 4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        stats = [mean_std(scores[method][t]) if scores[method].get(t) else (float("nan"), 0) for t in tasks]
        ax.bar([j + i * width for j in range(len(tasks))], [m for m, _ in stats], width,
               yerr=[s for _, s in stats], capsize=3, label=method)
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(tasks))])
    ax.set_xticklabels(tasks, fontsize=8)
    ax.set_ylabel("dev accuracy (%)")
    low = min(min(v) for per in scores.values() for v in per.values())
    ax.set_ylim(max(0, low - 10), 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "dev_scores.png"), dpi=120)
    logs = [(m, os.path.join(args.work, f"pretrain-{m}.log")) for m in methods]
    logs = [(m, p) for m, p in logs if os.path.exists(p)]
    if logs:
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "plot_curves.py"),
                        *[p for _, p in logs], "--labels", ",".join(m for m, _ in logs),
                        "--out", os.path.join(out, "pretraining.png")], check=False)


if __name__ == "__main__":
    main()
