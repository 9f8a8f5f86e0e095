#!/usr/bin/env python
"""Tables and plots for examples/compare.sh: fine-tuning scores per pretraining method.

    python scripts/compare_results.py WORK [--out WORK/results]

Reads ``WORK/finetune/<method>/seed<S>/results.tsv`` (written by examples/finetune_tsv.sh;
``scratch`` is the same architecture from random weights) and the pretraining summaries
``WORK/pretrain-<method>-seed<S>/summary.json`` (scripts/pretraining_summary.py) and
``.../blimp.json`` (scripts/blimp.py), and writes:

* ``results.tsv``: one row per method, task and split, mean and sample standard deviation
  over the fine-tuning seeds, and the seeds' scores. Split ``dev``: the best epoch's dev
  accuracy; ``test``: the test accuracy at that epoch, where the task has a labelled test set
  (the number not selected on the data it reports);
* ``results.md``: zero-shot BLiMP per method (discriminator, deepest generator, and their
  random-weights and unigram controls) with its differences to ELECTRA and to random weights
  (95% t intervals over pretraining seeds, paired by seed); the fine-tuning scores as Markdown
  tables (``mean ± std``, with each method's average over the tasks and its difference to
  scratch) and their differences to ELECTRA and to scratch (95% t intervals over fine-tuning
  seeds, paired by seed); the majority-class baseline; and the pretraining summaries
  (generator loss next to the unigram model, RTD loss next to the label prior), naming any
  discriminator that ended at its label prior (collapsed);
* ``dev_scores.png`` (dev accuracy per method and task, error bars = std over seeds) and
  ``pretraining.png`` (training curves of every method), when matplotlib is installed.
"""

import argparse
import csv
import glob
import json
import os
import re
import statistics
import subprocess
import sys

ORDER = ["scratch", "mlm", "electra", "amos", "focal_hardness"]


def read_scores(work):
    """{split: {method: {task: [scores over seeds]}}} for split dev (and test where scored),
    {task: majority baseline}."""
    scores, majority = {"dev": {}, "test": {}}, {}
    for path in sorted(glob.glob(os.path.join(work, "finetune", "*", "seed*", "results.tsv"))):
        method = path.split(os.sep)[-3]
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                for split, column in (("dev", "dev_accuracy"), ("test", "test_accuracy")):
                    value = row.get(column) or "n/a"
                    if value != "n/a":
                        scores[split].setdefault(method, {}).setdefault(row["task"], []).append(float(value))
                majority[row["task"]] = float(row["majority_baseline"])
    return scores, majority


def score_table(scores, tasks):
    """Markdown rows: mean ± std (n) per task, the average over tasks, its difference to scratch."""

    def average(method):
        per_task = [statistics.mean(scores[method][t]) for t in tasks if scores[method].get(t)]
        return statistics.mean(per_task) if len(per_task) == len(tasks) else None

    methods = [m for m in ORDER if m in scores] + sorted(m for m in scores if m not in ORDER)
    lines = ["| method | " + " | ".join(tasks) + " | average | vs scratch |",
             "|---" * (len(tasks) + 3) + "|"]
    scratch_avg = average("scratch") if "scratch" in scores else None
    for method in methods:
        cells = []
        for task in tasks:
            values = scores[method].get(task, [])
            if not values:
                cells.append("n/a")
            elif len(values) == 1:  # one seed has no spread to show
                cells.append("%.1f (n=1)" % values[0])
            else:
                cells.append("%.1f ± %.1f (n=%d)" % (*mean_std(values), len(values)))
        avg = average(method)
        delta = "" if avg is None or scratch_avg is None or method == "scratch" else f"{avg - scratch_avg:+.1f}"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {'n/a' if avg is None else f'{avg:.1f}'} | {delta} |")
    return lines


def pretraining_runs(work, method, suffix):
    """Paths of METHOD's pretraining runs' files, in seed order: WORK/pretrain-METHOD-seedS/
    summary.json (suffix "summary.json") or WORK/pretrain-METHOD-seedS.log (suffix ".log")."""
    sep = os.sep if suffix == "summary.json" else ""
    return sorted(glob.glob(os.path.join(work, f"pretrain-{method}-seed*") + sep + suffix),
                  key=lambda p: int(re.search(r"-seed(\d+)", p).group(1)))


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# Student's t quantile t(0.975, df): the half-width of a 95% interval is t * std / sqrt(n).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df):
    """t(0.975, df), from the table (the next smaller df listed: a slightly wider interval)."""
    return _T975[max(d for d in _T975 if d <= df)] if df < 30 else 1.96 if df > 120 else _T975[30]


def mean_ci(values):
    """(mean, half-width of the 95% t interval) of ``values``; the half-width is None for one value."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, None
    return mean, t975(len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5


def format_ci(values, digits=1):
    """'+1.2 [-0.3, +2.7] (n=3)': mean and 95% interval of differences."""
    mean, half = mean_ci(values)
    if half is None:
        return f"{mean:+.{digits}f} (n=1)"
    return f"{mean:+.{digits}f} [{mean - half:+.{digits}f}, {mean + half:+.{digits}f}] (n={len(values)})"


def paired_differences(a, b):
    """[a[k] - b[k]] over the keys (seeds) both have, in key order."""
    return [a[k] - b[k] for k in sorted(set(a) & set(b))]


def read_seed_scores(work, split):
    """{arm: {task: {fine-tuning seed: score}}} of ``split`` (dev or test)."""
    column = f"{split}_accuracy"
    out = {}
    for path in glob.glob(os.path.join(work, "finetune", "*", "seed*", "results.tsv")):
        arm, seed = path.split(os.sep)[-3], int(path.split(os.sep)[-2][len("seed"):])
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                value = row.get(column) or "n/a"
                if value != "n/a":
                    out.setdefault(arm, {}).setdefault(row["task"], {})[seed] = float(value)
    return out


def difference_table(per_seed, tasks, references=("electra", "scratch")):
    """Markdown rows: each method's score minus a reference's, per task and averaged over
    the tasks, mean and 95% interval over the fine-tuning seeds the two share (fine-tuning
    seed i of every arm starts from the same pretraining seed, so the differences pair)."""
    lines = ["| method | vs | " + " | ".join(tasks) + " | average |", "|---" * (len(tasks) + 3) + "|"]
    methods = [m for m in ORDER if m in per_seed and m != "scratch"] + sorted(
        m for m in per_seed if m not in ORDER)
    for reference in references:
        if reference not in per_seed:
            continue
        for method in methods:
            if method == reference:
                continue
            cells, averages = [], {}
            for task in tasks:
                diffs = paired_differences(per_seed[method].get(task, {}), per_seed[reference].get(task, {}))
                cells.append(format_ci(diffs) if diffs else "n/a")
                for seed in set(per_seed[method].get(task, {})) & set(per_seed[reference].get(task, {})):
                    averages.setdefault(seed, []).append(per_seed[method][task][seed] - per_seed[reference][task][seed])
            full = [statistics.mean(v) for v in averages.values() if len(v) == len(tasks)]
            lines.append(f"| {method} | {reference} | " + " | ".join(cells) + f" | {format_ci(full) if full else 'n/a'} |")
    return lines


def differences_section(work, split):
    """The Markdown of ``split``'s differences to ELECTRA and to scratch ('' without them)."""
    per_seed = read_seed_scores(work, split)
    tasks = sorted({t for per_task in per_seed.values() for t in per_task})
    if not tasks or not any(r in per_seed for r in ("electra", "scratch")):
        return ""
    return (f"\nDifferences in {split} accuracy (points), mean [95% t interval] over fine-tuning seeds, "
            "paired by seed (fine-tuning seed i starts from pretraining seed i of PRETRAIN_SEEDS, cycling)\n\n"
            + "\n".join(difference_table(per_seed, tasks)) + "\n")


def read_blimp(work):
    """{method: {pretraining seed: blimp.json}} from WORK/pretrain-METHOD-seedS/blimp.json."""
    out = {}
    for path in glob.glob(os.path.join(work, "pretrain-*-seed*", "blimp.json")):
        run = os.path.basename(os.path.dirname(path))[len("pretrain-"):]
        method, seed = re.match(r"(.+)-seed(\d+)$", run).groups()
        with open(path, encoding="utf-8") as f:
            out.setdefault(method, {})[int(seed)] = json.load(f)
    return out


def blimp_overall(result, scorer):
    """Overall accuracy (%) of ``scorer`` ('discriminator', 'generator': the deepest depth,
    'random discriminator', 'random generator', 'unigram') in a blimp.json, or None."""
    accuracy = result["overall"]["accuracy"]
    if scorer in ("generator", "random generator"):
        prefix = scorer + " d"
        depths = [int(name[len(prefix):]) for name in accuracy if name.startswith(prefix)]
        scorer = f"{prefix}{max(depths)}" if depths else None
    return None if scorer not in accuracy else 100.0 * accuracy[scorer]


def blimp_tables(blimp):
    """Markdown: BLiMP overall per method (mean ± std over pretraining seeds) beside its
    controls, and the differences to ELECTRA and to random weights with 95% intervals over
    pretraining seeds (paired by seed)."""
    methods = [m for m in ORDER if m in blimp] + sorted(m for m in blimp if m not in ORDER)
    scorers = ["discriminator", "generator", "random discriminator", "random generator", "unigram"]
    lines = ["| method | pretraining seeds | " + " | ".join(scorers) + " |", "|---" * (len(scorers) + 2) + "|"]
    per_seed = {}
    for method in methods:
        cells = []
        for scorer in scorers:
            values = {seed: blimp_overall(r, scorer) for seed, r in blimp[method].items()}
            values = {k: v for k, v in values.items() if v is not None}
            per_seed[(method, scorer)] = values
            if not values:
                cells.append("n/a")
            else:
                m, sd = mean_std(list(values.values()))
                cells.append(f"{m:.1f}" + (f" ± {sd:.1f}" if len(values) > 1 else ""))
        lines.append(f"| {method} | {len(blimp[method])} | " + " | ".join(cells) + " |")
    diff = ["| method | scorer | vs ELECTRA | vs random weights |", "|---|---|---|---|"]
    for method in methods:
        for scorer in ("discriminator", "generator"):
            own = per_seed.get((method, scorer), {})
            if not own:
                continue
            electra = per_seed.get(("electra", scorer), {})
            vs_electra = format_ci(paired_differences(own, electra)) if electra and method != "electra" else ""
            random = per_seed.get((method, "random " + scorer), {})
            vs_random = format_ci(paired_differences(own, random)) if random else "n/a"
            diff.append(f"| {method} | {scorer} | {vs_electra} | {vs_random} |")
    return lines, diff


def at_label_prior(summary, method):
    """A trained discriminator that ended where it started: loss at the label prior (within
    0.001 nats) and no replaced token caught. An MLM-only run (``rtd_trained`` false; in a
    summary written before that field, compare.sh's method ``mlm``) trains none."""
    prior = summary.get("rtd_prior_loss")
    return (summary.get("rtd_trained", method != "mlm") and prior is not None
            and summary["rtd_loss"] >= prior - 0.001 and summary["rtd_acc_replaced"] < 0.005)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work")
    parser.add_argument("--out", help="output folder (default WORK/results)")
    args = parser.parse_args()
    out = args.out or os.path.join(args.work, "results")
    os.makedirs(out, exist_ok=True)
    all_scores, majority = read_scores(args.work)
    scores = all_scores["dev"]
    methods = [m for m in ORDER if m in scores] + sorted(m for m in scores if m not in ORDER)
    tasks = sorted({t for per_task in scores.values() for t in per_task})

    with open(os.path.join(out, "results.tsv"), "w", encoding="utf-8") as f:
        f.write("method\ttask\tsplit\tmean\tstd\tseeds\tscores\n")
        for split, per_method in all_scores.items():
            for method in methods:
                for task in tasks:
                    values = per_method.get(method, {}).get(task, [])
                    if values:
                        m, s = mean_std(values)
                        f.write(f"{method}\t{task}\t{split}\t{m:.2f}\t{s:.2f}\t{len(values)}\t"
                                f"{','.join(map(str, values))}\n")

    lines = score_table(scores, tasks)
    lines.append("| majority class | " + " | ".join(f"{majority[t]:.1f}" for t in tasks) + " | | |")
    test_tasks = sorted({t for per_task in all_scores["test"].values() for t in per_task})
    test_lines = score_table(all_scores["test"], test_tasks) if test_tasks else []
    summary_lines, at_prior = [], []
    pretrained = {re.match(r"pretrain-(.+)-seed\d+$", os.path.basename(d)).group(1)
                  for d in glob.glob(os.path.join(args.work, "pretrain-*-seed*")) if os.path.isdir(d)}
    for method in [m for m in ORDER if m in pretrained] + sorted(pretrained - set(ORDER)):
        for path in pretraining_runs(args.work, method, "summary.json"):
            with open(path, encoding="utf-8") as f:
                s = json.load(f)
            run = os.path.basename(os.path.dirname(path))[len("pretrain-"):]
            collapsed = at_label_prior(s, method)
            if collapsed:
                at_prior.append(run)
            summary_lines.append(
                f"| {run} | {s['where']} | {s['gen_loss']:.3f} ({s['unigram_loss']:.3f}) | "
                f"{s['gen_acc']:.3f} ({s['unigram_acc']:.3f}) | {s['rtd_loss']:.4f} ({s['rtd_prior_loss'] or float('nan'):.4f})"
                f"{' **at its prior**' if collapsed else ''} | "
                f"{s['rtd_acc_replaced']:.3f} | {s['rtd_acc_original'] or float('nan'):.3f} |")
    blimp = read_blimp(args.work)
    if not scores and not blimp and not summary_lines:
        sys.exit(f"error: nothing finished in {args.work} (no pretraining summary.json, blimp.json or "
                 "finetune/*/seed*/results.tsv): run examples/compare.sh first")
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        if blimp:
            overall, diff = blimp_tables(blimp)
            f.write("Zero-shot BLiMP, overall accuracy (%; the mean over paradigms; scripts/blimp.py), "
                    "mean ± sample std over pretraining seeds; generator: the deepest depth's "
                    "pseudo-log-likelihood; random: the same architecture from random weights; "
                    "unigram: log frequencies of the training data\n\n" + "\n".join(overall) + "\n\n"
                    "Differences in BLiMP points, mean [95% t interval] over pretraining seeds, paired by seed\n\n"
                    + "\n".join(diff) + "\n\n")
        if scores:
            f.write("Dev accuracy (%) of the best epoch, mean ± sample std over fine-tuning seeds\n\n"
                    + "\n".join(lines) + "\n")
            f.write(differences_section(args.work, "dev"))
        else:
            f.write("Fine-tuning: no run has finished yet (WORK/finetune/*/seed*/results.tsv)\n")
        if test_lines:
            f.write("\nTest accuracy (%) at the epoch chosen on dev, mean ± sample std over fine-tuning "
                    "seeds\n\n" + "\n".join(test_lines) + "\n")
            f.write(differences_section(args.work, "test"))
        if summary_lines:
            f.write("\nPretraining, last validation (baseline without context in brackets)\n\n"
                    "| method | where | gen_loss (unigram) | gen_acc (most frequent) | rtd_loss (prior) | "
                    "rtd_acc_replaced | rtd_acc_original |\n|---|---|---|---|---|---|---|\n"
                    + "\n".join(summary_lines) + "\n")
            if at_prior:
                f.write(f"\nDiscriminator at its label prior after pretraining (collapsed: it catches no "
                        f"replaced token; docs/cpu-scale.md, 'Why the RTD head starts at its label prior'): "
                        f"{', '.join(at_prior)}. Its fine-tuning and BLiMP scores are in the tables above, "
                        f"counted like every other seed.\n")
    print(open(os.path.join(out, "results.md"), encoding="utf-8").read())

    if not scores:
        return
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
    logs = [(os.path.basename(p)[len("pretrain-"):-len(".log")], p)
            for m in methods for p in pretraining_runs(args.work, m, ".log")]
    if logs:
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "plot_curves.py"),
                        *[p for _, p in logs], "--labels", ",".join(m for m, _ in logs),
                        "--out", os.path.join(out, "pretraining.png")], check=False)


if __name__ == "__main__":
    main()
