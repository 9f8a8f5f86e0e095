#!/usr/bin/env python
"""Zero-shot BLiMP: score a pretraining checkpoint on minimal pairs, with no training.

    python scripts/blimp.py CHECKPOINT --corpus PREPARED_DIR --blimp DIR_OR_FILES... \
        [--generator] [--no-controls] [--max-pairs N] [--json OUT] [--hf-generator DIR]

CHECKPOINT is an ``amos_rtd`` pretraining checkpoint; PREPARED_DIR the ``--out`` folder of
``scripts/prepare_corpus.py`` it was pretrained on (``spm.model``, ``data-bin/``). ``--blimp``
takes BLiMP's ``.jsonl`` files, or folders of them (the release's ``data/``): one pair per
line with the fields ``sentence_good``, ``sentence_bad``, ``linguistics_term`` and ``UID``.

A sentence is encoded as the pretraining data is (``<s>`` + sentencepiece pieces + ``</s>``)
and scored by:

* ``discriminator`` (always): the sum over its pieces of log P(original) from the RTD head
  (log P(original) = logsigmoid(-logit); a logit > 0 means "replaced"); one forward pass;
* ``generator d<k>`` (``--generator``): the pseudo-log-likelihood (Salazar et al., 2020),
  each piece masked in turn and log p(piece) summed, for every generator depth the checkpoint
  has (AMOS: several depths of one stack, all read from the same pass);
* ``hf generator d<k>`` (``--hf-generator DIR``): the same PLL code through an exported
  generator (``scripts/export_hf.py`` writes DIR/generator/), tokenised by DIR's tokenizer;
  CHECKPOINT may then be left out;
* controls (on by default, ``--no-controls``): ``random ...``, the same architecture from
  random weights (the checkpoint's saved config, ``--seed``, no weights loaded), and
  ``unigram``, the context-free floor: log frequencies summed, counted from
  ``data-bin/train.bin`` (dict.txt's counts are placeholders), add-one smoothed.

``<s>`` and ``</s>`` are left out of every sum: they are never masked or replaced in
pretraining, so their terms judge nothing; the rule is the same for both sentences of a pair
and for every scorer. A pair is right when the good sentence scores higher, a tie counts 1/2
(identical token sequences are scored once, so they tie exactly). Accuracy is given per
paradigm (UID), per phenomenon (linguistics_term: the mean of its paradigms) and overall (the
mean over paradigms, as BLiMP reports it), with the pair counts; printed as a table and
written with ``--json``. ``--max-pairs N`` keeps the first N pairs of each paradigm in file
order (BLiMP's files are in generation order, pairID 0, 1, ...): deterministic, and the same
pairs as ``head -n N``.

Cost, measured on this project's 2-core CPU machine while other training runs kept it busy
(load average 5-6), with one torch thread (the default), on the 27 BLiMP paradigms of
../shared/data/blimp and an ``electra_mini`` checkpoint (discriminator 4 x 128, generator
4 x 32, 4000 pieces; the sentences are 15 tokens long on average):

* discriminator: 775 pairs/s over all 27,000 pairs (35 s), so the full release's 67,000 pairs
  take about 1.5 minutes, plus about 15 s of start-up and encoding;
* generator PLL: 229 pairs/s (2,700 pairs, ``--max-pairs 100``), so 67,000 pairs take about
  5 minutes: each sentence costs one pass per piece. The release's longer sentences (island
  and filler-gap paradigms) cost more, quadratically in their length;
* controls: the random-weights model costs what the model costs; the unigram floor nothing.

Runs varied by up to 2x with the machine's load. With torch's default of 2 threads on the
busy machine the discriminator ran at 206-427 pairs/s and the PLL at 20 pairs/s, hence
``--threads 1`` by default (``--threads 0``: torch's choice, for an idle many-core machine).
Bad input stops with one line starting ``error:`` that names the file and the fix (exit 2).
The BLiMP files are checked before torch and fairseq are imported, so a wrong file is
reported at once.
"""

import argparse
import importlib.util
import json
import logging
import os
import sys
import time
from collections import OrderedDict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

FIELDS = ("sentence_good", "sentence_bad", "linguistics_term", "UID")
FORMAT_HINT = ("BLiMP files hold one JSON object per line with the fields sentence_good, sentence_bad, "
               "linguistics_term and UID (the release's data/*.jsonl)")


class InputError(ValueError):
    """Bad input; the message names the file and the fix."""


# ---------------------------------------------------------------------- BLiMP files


def blimp_files(paths):
    """Files named, and the *.jsonl files of folders named, in a stable order."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith(".jsonl"))
            if not found:
                raise InputError(f"--blimp {path} holds no .jsonl files: pass BLiMP's data/ folder or its .jsonl files")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise InputError(f"--blimp {path} does not exist: pass BLiMP's data/ folder or its .jsonl files")
    return files


def read_blimp_file(path):
    """The pairs of one BLiMP .jsonl file: dicts with good, bad, uid, phenomenon, where."""
    pairs = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}): {FORMAT_HINT}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if number == 1 and _is_one_json_document(lines):
                raise InputError(f"{path} is one JSON document, not JSON lines: write one pair per line "
                                 f"(e.g. jq -c '.[]' {path}); {FORMAT_HINT}") from None
            raise InputError(f"{path}:{number} is not JSON ({e.msg}): {FORMAT_HINT}") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number} is a JSON {type(row).__name__}, not an object: {FORMAT_HINT}")
        for field in FIELDS:
            if field not in row:
                raise InputError(f"{path}:{number} has no field {field!r}: {FORMAT_HINT}")
            if not isinstance(row[field], str) or not row[field].strip():
                raise InputError(f"{path}:{number} field {field!r} is {'empty' if isinstance(row[field], str) else 'not text'}: "
                                 f"every pair needs two non-empty sentences, a linguistics_term and a UID")
        pairs.append(dict(good=row["sentence_good"], bad=row["sentence_bad"], uid=row["UID"],
                          phenomenon=row["linguistics_term"], where=f"{path}:{number}"))
    if not pairs:
        raise InputError(f"{path} is empty: {FORMAT_HINT}")
    return pairs


def _is_one_json_document(lines):
    try:
        json.loads("\n".join(lines))
        return True
    except json.JSONDecodeError:
        return False


def read_blimp(paths, max_pairs=None):
    """Every pair of the files/folders in ``paths``; with ``max_pairs`` the first N of each
    paradigm (UID) in file order. A UID filed under two phenomena is refused."""
    pairs, kept, phenomenon = [], {}, {}
    for path in blimp_files(paths):
        for pair in read_blimp_file(path):
            uid = pair["uid"]
            if phenomenon.setdefault(uid, (pair["phenomenon"], pair["where"]))[0] != pair["phenomenon"]:
                first, where = phenomenon[uid]
                raise InputError(f"{pair['where']} files paradigm {uid!r} under {pair['phenomenon']!r} but {where} under "
                                 f"{first!r}: each UID belongs to one linguistics_term; fix the file")
            if max_pairs is not None and kept.get(uid, 0) >= max_pairs:
                continue
            kept[uid] = kept.get(uid, 0) + 1
            pairs.append(pair)
    return pairs


# ---------------------------------------------------------------------- accuracy


def pair_outcomes(good, bad):
    """1 where the good sentence scores higher, 0 where lower, 1/2 for a tie."""
    return [1.0 if g > b else 0.5 if g == b else 0.0 for g, b in zip(good, bad)]


def aggregate(pairs, outcomes):
    """Accuracy per paradigm, per phenomenon (mean of its paradigms) and overall (mean over
    paradigms), for every scorer of ``outcomes`` (name -> one outcome per pair)."""
    names = list(outcomes)
    by_uid = OrderedDict()
    for i, pair in enumerate(pairs):
        by_uid.setdefault(pair["uid"], (pair["phenomenon"], []))[1].append(i)
    paradigms = OrderedDict()
    for uid, (phenomenon, rows) in sorted(by_uid.items(), key=lambda kv: (kv[1][0], kv[0])):
        paradigms[uid] = dict(phenomenon=phenomenon, pairs=len(rows),
                              accuracy={n: sum(outcomes[n][i] for i in rows) / len(rows) for n in names})
    phenomena = OrderedDict()
    for uid, row in paradigms.items():
        phenomena.setdefault(row["phenomenon"], []).append(row)

    def mean_of(rows):
        return dict(paradigms=len(rows), pairs=sum(r["pairs"] for r in rows),
                    accuracy={n: sum(r["accuracy"][n] for r in rows) / len(rows) for n in names})

    return dict(overall=mean_of(list(paradigms.values())),
                phenomena=OrderedDict((p, mean_of(rows)) for p, rows in phenomena.items()),
                paradigms=paradigms)


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_table(report, names, controls=()):
    """The accuracies (%) as text: overall, then each phenomenon followed by its paradigms."""
    overall = report["overall"]
    rows = [("overall", overall)]
    for phenomenon, row in report["phenomena"].items():
        rows.append((phenomenon, row))
        rows += [("  " + uid, p) for uid, p in report["paradigms"].items() if p["phenomenon"] == phenomenon]
    label = max(len(r[0]) for r in rows)
    widths = [max(len(n), 5) for n in names]
    lines = [f"BLiMP zero-shot accuracy (%): {plural(overall['paradigms'], 'paradigm')}, "
             f"{plural(overall['pairs'], 'pair')}; "
             "overall and phenomena are means over paradigms; a tie counts 1/2"]
    if controls:
        lines.append("controls: " + ", ".join(controls))
    lines.append(f"{'':{label}}  {'pairs':>6}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths)))
    for name, row in rows:
        lines.append(f"{name:{label}}  {row['pairs']:>6}  "
                     + "  ".join(f"{100 * row['accuracy'][n]:>{w}.1f}" for n, w in zip(names, widths)))
    return "\n".join(lines)


# ---------------------------------------------------------------------- scoring


def scorers():
    """``amos_fairseq/evaluation/blimp.py``, loaded from its file. Imported through the package
    it would import fairseq first (``amos_fairseq/__init__.py`` registers the plug-in), seconds
    before a wrong checkpoint or corpus could be reported; the module itself imports fairseq
    only once those checks have passed."""
    name = "amos_fairseq_blimp_scorers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "amos_fairseq", "evaluation", "blimp.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def log(message):
    print(f"[blimp] {message}", file=sys.stderr, flush=True)


def score(args, pairs):
    """name -> one score per pair (good, bad), name -> seconds; and facts for the report."""
    import numpy as np
    import torch

    lib = scorers()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    model = task = cfg = dictionary = data_bin = None
    if args.checkpoint:
        model, task, cfg = lib.load_pretraining_model(args.checkpoint, args.corpus, device)
        dictionary = task.source_dictionary
        data_bin, spm_model = lib.corpus_paths(args.corpus)
        encode = lib.FairseqEncoder(spm_model, dictionary)
        max_positions = model.max_positions()
    hf = None
    if args.hf_generator:
        hf = lib.load_hf_generator(args.hf_generator, device)
        if model is None:
            encode = lib.HFEncoder(hf["tokenizer"])
            max_positions = hf["model"].config.max_position_embeddings
        elif hf["model"].config.vocab_size != len(dictionary):
            raise lib.BlimpError(f"--hf-generator {args.hf_generator} has {hf['model'].config.vocab_size} ids but the "
                                 f"checkpoint's dictionary {len(dictionary)}: pass the export of this checkpoint")
    if args.controls and args.corpus and data_bin is None:
        data_bin, _ = lib.corpus_paths(args.corpus)
        dictionary = lib.load_dictionary(data_bin)
        lib.check_hf_vocabulary(hf["tokenizer"], dictionary, hf["folder"], data_bin)

    start = time.time()
    texts = list(OrderedDict.fromkeys(s for p in pairs for s in (p["good"], p["bad"])))
    ids = dict(zip(texts, encode(texts)))
    for pair in pairs:
        for side in ("good", "bad"):
            if len(ids[pair[side]]) > max_positions:
                raise lib.BlimpError(f"{pair['where']}: sentence_{side} is {len(ids[pair[side]])} tokens, more than the "
                                     f"model's {max_positions} positions; leave that pair out")
    sequences, where = lib.unique_sequences([ids[t] for t in texts])
    index = {t: where[i] for i, t in enumerate(texts)}
    unk = encode.dictionary.unk() if hasattr(encode, "dictionary") else hf["tokenizer"].unk_token_id
    facts = dict(sentences=len(texts), distinct_token_sequences=len(sequences),
                 sentences_with_unk=sum(unk in ids[t][1:-1] for t in texts),
                 encode_seconds=round(time.time() - start, 2))

    scores, seconds = OrderedDict(), OrderedDict()

    def timed(what, fn):
        log(f"{what}: {len(sequences)} sentences ...")
        t = time.time()
        result = fn()
        seconds[what] = time.time() - t
        log(f"{what}: {seconds[what]:.1f}s")
        return result

    batch = args.batch_tokens
    if model is not None:
        scores["discriminator"] = timed("discriminator", lambda: lib.discriminator_scores(model, sequences, batch, device))
        if args.generator:
            generator = lib.FairseqGeneratorLogProbs(model)
            scores.update(timed("generator", lambda: lib.pll_scores(generator, sequences, task.mask_idx, batch, device)))
    if hf is not None:
        hf_scorer = lib.HFMaskedLMLogProbs(hf["model"], f"hf generator d{hf['model'].config.num_hidden_layers}")
        scores.update(timed("hf generator", lambda: lib.pll_scores(hf_scorer, sequences, hf["mask"], batch, device)))
    controls = []
    if args.controls:
        if model is not None:
            random_model = lib.random_weights_model(cfg, task, args.seed, device)
            scores["random discriminator"] = timed(
                "random discriminator", lambda: lib.discriminator_scores(random_model, sequences, batch, device))
            controls.append("random discriminator")
            if args.generator:
                generator = lib.FairseqGeneratorLogProbs(random_model, prefix="random ")
                scores.update(timed("random generator",
                                    lambda: lib.pll_scores(generator, sequences, task.mask_idx, batch, device)))
                controls += generator.names
        elif hf is not None:
            random_hf = lib.random_hf_generator(hf["folder"], args.seed, device)
            scorer = lib.HFMaskedLMLogProbs(random_hf, "random " + hf_scorer.names[0])
            scores.update(timed("random hf generator",
                                lambda: lib.pll_scores(scorer, sequences, hf["mask"], batch, device)))
            controls += scorer.names
        if data_bin is not None:
            log_p = lib.unigram_log_probs(lib.token_counts(data_bin, dictionary), dictionary)
            scores["unigram"] = timed("unigram", lambda: lib.unigram_scores(log_p, sequences))
            controls.append("unigram")
        else:
            log("no --corpus: the unigram control is left out")
    per_pair = OrderedDict()
    for name, values in scores.items():
        values = np.asarray(values)
        per_pair[name] = ([float(values[index[p["good"]]]) for p in pairs], [float(values[index[p["bad"]]]) for p in pairs])
    return per_pair, seconds, controls, facts


# ---------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="pretraining checkpoint (fairseq-train --task amos_rtd)")
    parser.add_argument("--corpus", help="prepare_corpus.py --out folder the checkpoint was pretrained on "
                                         "(spm.model, data-bin/)")
    parser.add_argument("--blimp", nargs="+", required=True, metavar="DIR_OR_FILE",
                        help="BLiMP .jsonl files, or folders of them")
    parser.add_argument("--generator", action="store_true",
                        help="also score with the generator's pseudo-log-likelihood, every depth")
    parser.add_argument("--hf-generator", metavar="DIR",
                        help="also score with an exported generator (export_hf.py's DIR or DIR/generator)")
    parser.add_argument("--controls", action=argparse.BooleanOptionalAction, default=True,
                        help="random-weights and unigram controls in the same table (default: on)")
    parser.add_argument("--max-pairs", type=int, metavar="N", help="the first N pairs of each paradigm (file order)")
    parser.add_argument("--json", metavar="OUT", help="also write the accuracies and speeds here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-weights control (default 0)")
    parser.add_argument("--batch-tokens", type=int, default=8192,
                        help="padded tokens per forward pass (PLL: one row per masked piece)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, see above; 0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where there is a GPU")
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.hf_generator:
        raise InputError("nothing to score: pass CHECKPOINT (with --corpus) or --hf-generator DIR")
    if args.checkpoint and not args.corpus:
        raise InputError(f"CHECKPOINT {args.checkpoint} needs --corpus: the prepare_corpus.py folder it was "
                         "pretrained on (its sentencepiece model and dictionary give the token ids)")
    if args.max_pairs is not None and args.max_pairs < 1:
        raise InputError(f"--max-pairs {args.max_pairs}: give at least 1 pair per paradigm")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise InputError(f"--json {args.json}: its folder does not exist; create it or write elsewhere")
    if args.batch_tokens < 1:
        raise InputError(f"--batch-tokens {args.batch_tokens}: give a positive number of tokens")
    return args


def run(argv=None):
    args = parse_args(argv)
    pairs = read_blimp(args.blimp, args.max_pairs)  # before the slow imports: a bad file fails at once
    try:
        per_pair, seconds, controls, facts = score(args, pairs)
    except scorers().BlimpError as e:
        raise InputError(str(e)) from None
    outcomes = OrderedDict((name, pair_outcomes(good, bad)) for name, (good, bad) in per_pair.items())
    names = list(outcomes)
    report = aggregate(pairs, outcomes)
    print(format_table(report, names, controls))
    speed = OrderedDict()
    for what, s in seconds.items():
        speed[what] = dict(seconds=round(s, 2), pairs_per_s=round(len(pairs) / max(s, 1e-9), 1))
    print("speed: " + ", ".join(f"{w} {v['pairs_per_s']:.0f} pairs/s" for w, v in speed.items())
          + f" ({len(pairs)} pairs, {facts['distinct_token_sequences']} distinct sentences)")
    if facts["sentences_with_unk"]:
        print(f"note: {facts['sentences_with_unk']} of {facts['sentences']} sentences hold pieces the dictionary "
              "lacks (scored as <unk>)")
    if args.json:
        result = dict(
            checkpoint=args.checkpoint, hf_generator=args.hf_generator, corpus=args.corpus, blimp=args.blimp,
            max_pairs=args.max_pairs, sample="all pairs" if args.max_pairs is None else
            f"the first {args.max_pairs} pairs of each paradigm in file order",
            tokens_counted="the pieces between <s> and </s> (specials excluded), for every scorer",
            tie="counts 1/2", scorers=names, controls=controls, speed=speed, **facts, **report,
        )
        tmp = args.json + ".partial"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, args.json)
    return report


def main(argv=None):
    # fairseq's import configures the root logger at DEBUG (basicConfig) unless it already
    # has a handler: give it one first, so that only warnings and this script's lines print.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight-loading bar
    try:
        run(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
