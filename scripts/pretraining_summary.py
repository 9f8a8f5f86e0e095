#!/usr/bin/env python
"""Did pretraining learn anything? Its last metrics next to the baselines that need no context.

    python scripts/pretraining_summary.py DATA_BIN TRAIN_LOG [--json OUT]

DATA_BIN is the ``fairseq-preprocess`` directory the run trained on (``dict.txt``,
``train``/``valid``); TRAIN_LOG is the run's ``--log-format simple`` output. The last
validation line is used (the last ``train_inner`` line when the run did not validate).

Two baselines, each the best a model can do without reading the context:

* generator: a unigram model with the training split's token frequencies, scored on the
  validation split's real tokens (``<s>``, ``</s>``, padding excluded, as they are never
  masked): its cross-entropy in nats next to ``gen_loss``, and the accuracy of always
  guessing the most frequent token next to ``gen_acc``. With several generator depths (amos) the logged ``gen_loss`` is their (weighted) sum, so
  each depth's own ``gen_loss_d<k>`` is reported and the deepest one (whose accuracy is
  ``gen_acc``) is the generator compared with the unigram model;
* discriminator: the label prior, i.e. always answering the same probability, whose loss is
  ``rtd_prior_loss`` (logged by every criterion); ``rtd_acc_replaced`` of the prior is 0. A run
  whose logged ``rtd_weight_effective`` is 0 (``--rtd-weight 0``, the MLM-only model) trains no
  discriminator, and the verdict says so instead of calling it collapsed.

Prints a short table and a one-line verdict; ``--json`` also writes the numbers.
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np

_METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)(?:=| )(-?\d+(?:\.\d+)?(?:e-?\d+)?)(?=[,| ]|$)")


def last_metrics(log_path):
    """(kind, metrics dict) of the last '| valid |' line, else the last '| train_inner |' line."""
    found = {}
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            for kind in ("valid", "train_inner"):
                if f"| {kind} |" in line:
                    body = line.split(f"| {kind} |", 1)[1]
                    found[kind] = {k: float(v) for k, v in _METRIC.findall(body)}
    for kind in ("valid", "train_inner"):
        if kind in found:
            return kind, found[kind]
    sys.exit(f"error: {log_path} has no '| valid |' or '| train_inner |' line: is it a fairseq-train log?")


def unigram_baseline(data_bin):
    """Train-split unigram scored on the valid split: (cross-entropy nats, most-frequent accuracy)."""
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(os.path.join(data_bin, "dict.txt"))
    specials = {dictionary.bos(), dictionary.eos(), dictionary.pad(), dictionary.unk()}

    def counts(split):
        dataset = data_utils.load_indexed_dataset(os.path.join(data_bin, split), dictionary)
        if dataset is None:
            sys.exit(f"error: no {split} split in {data_bin}: pass the data-bin directory the run trained on")
        total = np.zeros(len(dictionary), dtype=np.int64)
        chunk, held = [], 0
        for i in range(len(dataset)):
            # one vocabulary-sized bincount per ~1M tokens, not per sentence
            chunk.append(dataset[i].numpy())
            held += len(chunk[-1])
            if held >= 1_000_000 or i == len(dataset) - 1:
                total += np.bincount(np.concatenate(chunk), minlength=len(dictionary))
                chunk, held = [], 0
        total[list(specials)] = 0
        return total

    train, valid = counts("train"), counts("valid")
    real = np.ones(len(dictionary), dtype=bool)
    real[list(specials)] = False
    # add-one smoothing over the real tokens, so that one unseen in train has a finite cost
    prob = (train[real] + 1) / (train[real] + 1).sum()
    cross_entropy = float(-(valid[real] * np.log(prob)).sum() / valid.sum())
    accuracy = float(valid[int(train.argmax())] / valid.sum())
    return cross_entropy, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_bin")
    parser.add_argument("log")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    kind, m = last_metrics(args.log)
    unigram_loss, unigram_acc = unigram_baseline(args.data_bin)
    gen_loss, gen_acc = m.get("gen_loss"), m.get("gen_acc")
    depths = sorted(int(key[len("gen_loss_d"):]) for key in m if re.fullmatch(r"gen_loss_d\d+", key))
    if depths:  # the logged gen_loss sums the depths' losses: compare one generator, the deepest
        gen_loss = m[f"gen_loss_d{depths[-1]}"]
    rtd_loss, prior = m.get("rtd_loss"), m.get("rtd_prior_loss")
    caught, kept = m.get("rtd_acc_replaced", 0.0), m.get("rtd_acc_original")
    if gen_loss is None or rtd_loss is None:
        sys.exit(f"error: the last {kind} line of {args.log} has no gen_loss/rtd_loss: not an amos_rtd run?")

    # Margins that noise on a few hundred valid sentences does not reach.
    generator_learned = gen_loss < unigram_loss - 0.1
    discriminator_learned = prior is not None and rtd_loss < prior - 0.01 and caught > 0.05
    where = f"{kind}, update {int(m.get('num_updates', 0))}"
    print(f"pretraining summary ({where}); both baselines ignore the context:")
    name = f"generator d{depths[-1]}" if depths else "generator"
    print(f"  {name:14s} loss {gen_loss:.3f} nats  (unigram model {unigram_loss:.3f})   "
          f"accuracy {gen_acc:.3f}  (most frequent token {unigram_acc:.3f})")
    for depth in depths[:-1]:
        print(f"  {f'generator d{depth}':14s} loss {m[f'gen_loss_d{depth}']:.3f} nats"
              + (f"                           accuracy {m[f'gen_acc_d{depth}']:.3f}" if f"gen_acc_d{depth}" in m else ""))
    prior_text = f"{prior:.4f}" if prior is not None else "n/a"
    kept_text = f"{kept:.3f}" if kept is not None else "n/a"
    print(f"  discriminator  loss {rtd_loss:.4f}       (label prior {prior_text})      "
          f"replaced tokens caught {caught:.3f} (prior 0), originals kept {kept_text} (prior 1)")
    rtd_untrained = m.get("rtd_weight_effective") == 0  # --rtd-weight 0: the MLM-only run
    if rtd_untrained:
        verdict = (("the generator uses the context" if generator_learned else "NOTHING LEARNED YET: the generator "
                    "is at the unigram level")
                   + "; the RTD loss has weight 0 (an MLM-only run): the discriminator was not trained, "
                   "its label-prior level is expected (scripts/mlm_as_discriminator.py makes the masked LM the encoder)")
    elif generator_learned and discriminator_learned:
        verdict = "both networks use the context: the generator beats the unigram model, the discriminator the prior"
    elif generator_learned and prior is not None and rtd_loss < prior - 0.005:
        verdict = (f"the generator uses the context; the discriminator is only starting: its loss is "
                   f"{prior - rtd_loss:.4f} below the prior, but it catches {caught:.1%} of the replaced tokens")
    elif generator_learned:
        verdict = ("the generator uses the context, the discriminator is still at its label prior (if it stays "
                   "there it has collapsed: docs/cpu-scale.md, --rtd-bias-init prior)")
    elif discriminator_learned:
        verdict = "the discriminator beats its prior, but the generator is at the unigram level"
    else:
        verdict = "NOTHING LEARNED YET: both networks are at their context-free baselines"
    print(f"  verdict: {verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(where=where, gen_loss=gen_loss, unigram_loss=unigram_loss, gen_acc=gen_acc,
                           unigram_acc=unigram_acc, rtd_loss=rtd_loss, rtd_prior_loss=prior,
                           rtd_acc_replaced=caught, rtd_acc_original=kept,
                           generator_learned=generator_learned, discriminator_learned=discriminator_learned,
                           rtd_trained=not rtd_untrained,
                           **({"generator_depth": depths[-1],
                               "gen_loss_per_depth": {d: m[f"gen_loss_d{d}"] for d in depths}} if depths else {})),
                      f, indent=1)


if __name__ == "__main__":
    main()
