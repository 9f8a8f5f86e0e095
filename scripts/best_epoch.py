#!/usr/bin/env python
"""The best dev epoch of a fairseq sentence_prediction log, and the test score at that epoch.

    python scripts/best_epoch.py TRAIN_LOG [--metric accuracy]

Reads the lines that fairseq writes after every epoch, one per subset (``valid on 'valid'
subset``, and ``valid on 'test' subset`` when training ran with ``--valid-subset
valid,test``), and prints ``DEV TEST``: the highest dev score (the first
epoch that reaches it) and the test score of that same epoch (``n/a`` without a test
subset). Selecting the epoch on dev and reporting test there gives a number that was not
chosen on the data it reports; the dev maximum over epochs is optimistic, and more so for
noisier runs. Exits 1 when the log has no dev score.
"""

import argparse
import re
import sys

LINE = re.compile(r"\| valid on '(?P<subset>[^']+)' subset .*?\| {metric} (?P<score>[0-9.]+)")


def best_epoch(lines, metric="accuracy"):
    """(best dev score, test score at that epoch or None); None for a log without dev scores."""
    pattern = re.compile(LINE.pattern.replace("{metric}", re.escape(metric)))
    scores = {"valid": [], "test": []}  # per epoch, in log order; other subsets are ignored
    for line in lines:
        match = pattern.search(line)
        if match and match["subset"] in scores:
            scores[match["subset"]].append(float(match["score"]))
    dev, test = scores["valid"], scores["test"]
    if not dev:
        return None
    best = max(range(len(dev)), key=lambda i: (dev[i], -i))  # highest, then earliest
    return dev[best], (test[best] if len(test) == len(dev) else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--metric", default="accuracy")
    args = parser.parse_args()
    with open(args.log, encoding="utf-8", errors="replace") as f:
        result = best_epoch(f, args.metric)
    if result is None:
        sys.exit(f"error: no line with {args.metric} on the 'valid' subset in {args.log}")
    dev, test = result
    print(dev, "n/a" if test is None else test)


if __name__ == "__main__":
    main()
