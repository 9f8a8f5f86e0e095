#!/usr/bin/env python
"""GLUE as distributed -> fine-tuning over several seeds -> dev metrics, medians, submission files.

    python scripts/glue.py run CHECKPOINT CORPUS_DIR GLUE_DIR WORK [--seeds 1,2,3,4,5]
        [--preset electra-small|electra-base|amos-base] [--tasks CoLA,RTE] [--from-mnli]
        [--keep-checkpoints] [-- more fairseq-train arguments, e.g. --fp16]
    python scripts/glue.py check GLUE_DIR          # which tasks are there, are their files sound
    python scripts/glue.py summarize WORK          # tables and submission files from finished runs
    python scripts/glue.py hparams [--preset P]    # the per-task hyperparameter table in use

GLUE_DIR is the benchmark as distributed: one folder per task (CoLA, SST-2, MRPC, STS-B, QQP,
MNLI, QNLI, RTE, WNLI; optionally diagnostic/ for AX) with that task's own TSV columns (CoLA's
train/dev without a header; MNLI with dev_matched/dev_mismatched and test_matched/
test_mismatched). A missing task folder is skipped with a line saying so; a malformed file
stops everything, before any training, with the file, line and column.

For every task and seed: the task's columns are encoded with the pretraining sentencepiece
model and binarized against the pretraining dictionary (WORK/TASK/data), fairseq's
``sentence_prediction`` task fine-tunes CHECKPOINT (STS-B as regression: ``--regression-target
--num-classes 1``) with the task's row of examples/glue_hparams.tsv, and the model at the end
of training (no checkpoint picked on dev) predicts dev and test. WORK/TASK/seedN holds the
training log, the dev predictions, the test predictions and result.json; a finished seed is
never redone, so an interrupted run continues where it stopped.

The summary (WORK/summary.tsv, WORK/summary.md) gives per task the MEDIAN over seeds of each
metric (CoLA Matthews correlation; MRPC and QQP F1 and accuracy; STS-B Pearson and Spearman;
MNLI matched and mismatched accuracy; accuracy elsewhere) and two averages (see AVERAGES).
WORK/submission/ holds the test predictions of each task's median seed in the GLUE
submission format (CoLA.tsv, SST-2.tsv, MRPC.tsv, STS-B.tsv, QQP.tsv, MNLI-m.tsv,
MNLI-mm.tsv, QNLI.tsv, RTE.tsv, WNLI.tsv, AX.tsv: ``index<TAB>prediction`` with GLUE's label
strings).
"""

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
sys.path.insert(0, SCRIPTS)  # output_dir, prepare_classification, also when loaded by path
from output_dir import MARKER, OutputDirError, made_by, output_dir  # noqa: E402

HPARAMS = os.path.join(ROOT, "examples", "glue_hparams.tsv")
WORK_TOOL = "glue"
DATA_TOOL = "glue_prepare"
SEED_TOOL = "glue_seed"
HEAD = "sentence_classification_head"  # fairseq's default --classification-head-name

csv.field_size_limit(sys.maxsize)


class GlueError(Exception):
    """A problem with the inputs or a run; the message names the file (and column) and the fix."""


# --------------------------------------------------------------------------- the tasks

@dataclass(frozen=True)
class Split:
    """One file of a task: ``file`` in the task folder, the fairseq split it becomes, and the
    name it carries in the outputs (a metric suffix for dev files, a submission file for test)."""

    file: str
    split: str
    name: str


@dataclass(frozen=True)
class Task:
    name: str
    text: Tuple            # text column names, or positions for a file without a header
    label: object          # label column name or position
    labels: Optional[Tuple[str, ...]]  # the label set; None: regression (a number)
    metrics: Tuple[str, ...]
    dev: Tuple[Split, ...]
    test: Tuple[Split, ...]
    header: bool = True    # train/dev have a header line (CoLA's do not)
    test_text: Optional[Tuple] = None  # test columns when they differ from train's
    test_index: str = "index"
    positive: str = "1"    # the class F1 is computed for


def _dev(*files):
    return tuple(Split(f, "valid" if i == 0 else f"valid{i}", suffix) for i, (f, suffix) in enumerate(files))


def _test(*files):
    return tuple(Split(f, "test" if i == 0 else f"test{i}", sub) for i, (f, sub) in enumerate(files))


NLI2 = ("entailment", "not_entailment")
TASKS: Dict[str, Task] = {t.name: t for t in (
    # CoLA train/dev: source, label, original label, sentence (no header); test: index, sentence
    Task("CoLA", text=(3,), label=1, labels=("0", "1"), metrics=("mcc",), header=False,
         test_text=("sentence",), dev=_dev(("dev.tsv", "")), test=_test(("test.tsv", "CoLA"))),
    Task("SST-2", text=("sentence",), label="label", labels=("0", "1"), metrics=("accuracy",),
         dev=_dev(("dev.tsv", "")), test=_test(("test.tsv", "SST-2"))),
    Task("MRPC", text=("#1 String", "#2 String"), label="Quality", labels=("0", "1"),
         metrics=("f1", "accuracy"), dev=_dev(("dev.tsv", "")), test=_test(("test.tsv", "MRPC"))),
    Task("STS-B", text=("sentence1", "sentence2"), label="score", labels=None,
         metrics=("pearson", "spearman"), dev=_dev(("dev.tsv", "")), test=_test(("test.tsv", "STS-B"))),
    Task("QQP", text=("question1", "question2"), label="is_duplicate", labels=("0", "1"),
         metrics=("f1", "accuracy"), test_index="id", dev=_dev(("dev.tsv", "")),
         test=_test(("test.tsv", "QQP"))),
    Task("MNLI", text=("sentence1", "sentence2"), label="gold_label",
         labels=("contradiction", "entailment", "neutral"), metrics=("accuracy",),
         dev=_dev(("dev_matched.tsv", "m"), ("dev_mismatched.tsv", "mm")),
         test=_test(("test_matched.tsv", "MNLI-m"), ("test_mismatched.tsv", "MNLI-mm"),
                    (os.path.join("..", "diagnostic", "diagnostic.tsv"), "AX"))),
    Task("QNLI", text=("question", "sentence"), label="label", labels=NLI2, metrics=("accuracy",),
         dev=_dev(("dev.tsv", "")), test=_test(("test.tsv", "QNLI"))),
    Task("RTE", text=("sentence1", "sentence2"), label="label", labels=NLI2, metrics=("accuracy",),
         dev=_dev(("dev.tsv", "")), test=_test(("test.tsv", "RTE"))),
    Task("WNLI", text=("sentence1", "sentence2"), label="label", labels=("0", "1"), metrics=("accuracy",),
         dev=_dev(("dev.tsv", "")), test=_test(("test.tsv", "WNLI"))),
)}
FROM_MNLI = ("RTE", "MRPC", "STS-B")  # RoBERTa's intermediate-task trick (optional)


def metric_names(task: Task) -> List[str]:
    """Column names of the task's dev metrics, e.g. ['accuracy_m', 'accuracy_mm'] for MNLI."""
    return [m + (f"_{s.name}" if s.name else "") for s in task.dev for m in task.metrics]


# --------------------------------------------------------------------------- metrics
# Written here (a few lines each) rather than taken from scipy/scikit-learn, which are not
# dependencies of this project; tests/test_glue.py checks them against hand-worked values.

def accuracy(pred: Sequence, gold: Sequence) -> float:
    return sum(p == g for p, g in zip(pred, gold)) / len(gold)


def f1_score(pred: Sequence, gold: Sequence, positive="1") -> float:
    """F1 of the positive class (GLUE's MRPC and QQP: '1', paraphrase / duplicate)."""
    tp = sum(p == positive and g == positive for p, g in zip(pred, gold))
    fp = sum(p == positive and g != positive for p, g in zip(pred, gold))
    fn = sum(p != positive and g == positive for p, g in zip(pred, gold))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews_corrcoef(pred: Sequence, gold: Sequence, positive="1") -> float:
    """Binary Matthews correlation; 0 when a row or column of the confusion table is empty
    (e.g. a classifier that always predicts one class), the usual convention."""
    tp = sum(p == positive and g == positive for p, g in zip(pred, gold))
    tn = sum(p != positive and g != positive for p, g in zip(pred, gold))
    fp = sum(p == positive and g != positive for p, g in zip(pred, gold))
    fn = sum(p != positive and g == positive for p, g in zip(pred, gold))
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0 for a constant input (no correlation can be measured)."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


def average_ranks(values: Sequence[float]) -> List[float]:
    """Ranks 1..n; tied values share the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman correlation: Pearson correlation of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def task_metrics(task: Task, pred: Sequence, gold: Sequence) -> Dict[str, float]:
    """The task's metrics (in %, as GLUE tables print them) for one dev file."""
    out = {}
    for m in task.metrics:
        if m == "accuracy":
            value = accuracy(pred, gold)
        elif m == "f1":
            value = f1_score(pred, gold, task.positive)
        elif m == "mcc":
            value = matthews_corrcoef(pred, gold, task.positive)
        elif m == "pearson":
            value = pearson([float(p) for p in pred], [float(g) for g in gold])
        elif m == "spearman":
            value = spearman([float(p) for p in pred], [float(g) for g in gold])
        else:
            raise ValueError(m)
        out[m] = 100 * value
    return out


def task_score(task: Task, metrics: Dict[str, float]) -> float:
    """One number per task, the GLUE benchmark's rule: the unweighted mean of the task's
    metrics (MRPC, QQP: F1 and accuracy; STS-B: Pearson and Spearman; MNLI: matched and
    mismatched accuracy)."""
    return statistics.mean(metrics[name] for name in metric_names(task))


# The two averages papers print. Each is over the tasks present; the tables say how many.
AVERAGES = {
    # GLUE (Wang et al. 2019): every task, each as task_score above (WNLI included).
    "glue_average": "GLUE rule (Wang et al. 2019): mean over the tasks of each task's mean metric "
                    "(MRPC/QQP mean of F1 and accuracy, STS-B mean of Pearson and Spearman, MNLI mean "
                    "of matched and mismatched), WNLI included",
    # ELECTRA (Clark et al. 2020, section 3.1) and AMOS's dev tables: one metric per task,
    # WNLI left out. Both papers print MNLI as one number; matched accuracy is taken here.
    "paper_average": "ELECTRA/AMOS dev-table rule: CoLA Matthews correlation, STS-B Spearman, accuracy "
                     "for the others (MNLI: matched), over the 8 tasks without WNLI",
}
PAPER_METRIC = {"CoLA": "mcc", "STS-B": "spearman", "MNLI": "accuracy_m", "MRPC": "accuracy",
                "QQP": "accuracy", "SST-2": "accuracy", "QNLI": "accuracy", "RTE": "accuracy"}


# --------------------------------------------------------------------------- hyperparameters

@dataclass
class HParams:
    lr: float
    batch: int
    epochs: int
    warmup_ratio: float
    weight_decay: float
    adam_betas: str
    clip_norm: float
    source: str = ""
    layerwise_lr_decay: float = 1.0  # ELECTRA's layer-wise decay (1: off)


def load_hparams(path: str = HPARAMS) -> Dict[Tuple[str, str], HParams]:
    """(preset, task) -> HParams from the one table examples/glue_hparams.tsv."""
    table = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            table[row["preset"], row["task"]] = HParams(
                lr=float(row["lr"]), batch=int(row["batch"]), epochs=int(row["epochs"]),
                warmup_ratio=float(row["warmup_ratio"]), weight_decay=float(row["weight_decay"]),
                adam_betas=row["adam_betas"], clip_norm=float(row["clip_norm"]), source=row["source"],
                layerwise_lr_decay=float(row.get("layerwise_lr_decay") or 1.0))
    return table


def default_preset(arch: str) -> str:
    """The preset for an architecture: its paper's base row for *_base, ELECTRA-small else
    (also for the CPU-scale tiny and mini models, which no paper fine-tunes)."""
    if arch and arch.endswith("_base"):
        return "amos-base" if arch.startswith("amos") else "electra-base"
    return "electra-small"


# --------------------------------------------------------------------------- reading GLUE

def _column(header: Optional[List[str]], column, path: str) -> int:
    if isinstance(column, int):
        return column
    if column not in header:
        raise GlueError(f"{path} has no column {column!r} (header: {header}): this is not the file as "
                        "GLUE distributes it; fetch the task again or fix the header")
    return header.index(column)


def read_split(path: str, task: Task, text, label, header: bool, index: Optional[str] = None):
    """Rows of one GLUE file -> (texts [tuples], labels [str] or None, indices [str] or None).

    Checks every row: enough fields for the columns read, a label from the task's label set
    (a number for STS-B); a problem stops with the file, line and column."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as e:
        raise GlueError(f"{path} is not UTF-8 text (byte {e.start}): GLUE files are UTF-8; fetch it again") from None
    names = [h.strip() for h in rows[0]] if header and rows else None
    body = rows[1:] if header else rows
    if not body:
        raise GlueError(f"{path} has no rows: fetch the task again")
    wanted = [(c, _column(names, c, path)) for c in text]
    label_at = _column(names, label, path) if label is not None else None
    index_at = _column(names, index, path) if index is not None else None
    columns = wanted + ([(label, label_at)] if label is not None else []) + ([(index, index_at)] if index else [])
    texts, labels, indices = [], [] if label is not None else None, [] if index else None
    first_line = 2 if header else 1
    for lineno, row in enumerate(body, start=first_line):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        short = [c for c, i in columns if i >= len(row)]
        if short:
            name = short[0] if isinstance(short[0], str) else f"number {short[0] + 1}"
            raise GlueError(f"{path}:{lineno} has {len(row)} fields and no column {name!r}: a missing "
                            "field or a line break inside the text; fix or remove the line")
        texts.append(tuple(row[i].strip() for _, i in wanted))
        if index is not None:
            indices.append(row[index_at].strip())
        if label is not None:
            value = row[label_at].strip()
            name = label if isinstance(label, str) else f"number {label + 1}"
            if task.labels is None:
                try:
                    float(value)
                except ValueError:
                    raise GlueError(f"{path}:{lineno} column {name!r} is {value!r}, not a number: "
                                    f"{task.name} is a regression task; fix the line") from None
            elif value not in task.labels:
                raise GlueError(f"{path}:{lineno} column {name!r} is {value!r}, not one of {list(task.labels)} "
                                f"({task.name}'s labels); fix the line")
            labels.append(value)
    return texts, labels, indices


def read_task(task: Task, folder: str) -> Dict[str, Tuple]:
    """Every file of a task folder -> {fairseq split: (texts, labels, indices, Split)}.
    train.tsv and the dev files are required; test files are read when present."""
    out = {}
    for split in (Split("train.tsv", "train", ""),) + task.dev:
        path = os.path.join(folder, split.file)
        if not os.path.isfile(path):
            raise GlueError(f"{path} does not exist: a GLUE {task.name} folder holds train.tsv and "
                            f"{', '.join(s.file for s in task.dev)}")
        texts, labels, _ = read_split(path, task, task.text, task.label, task.header)
        out[split.split] = (texts, labels, None, split)
    present = [s for s in task.test if os.path.isfile(os.path.normpath(os.path.join(folder, s.file)))]
    for k, split in enumerate(present):
        # fairseq-preprocess numbers the test files it is given test, test1, ...: so do we
        split = Split(split.file, "test" if k == 0 else f"test{k}", split.name)
        path = os.path.normpath(os.path.join(folder, split.file))
        texts, _, indices = read_split(path, task, task.test_text or task.text, None, True, task.test_index)
        out[split.split] = (texts, None, indices, split)
    return out


def discover(glue_dir: str, only: Optional[Sequence[str]] = None, log=print) -> List[str]:
    """Tasks whose folder exists under glue_dir, in GLUE's order; one line for each skipped."""
    if not os.path.isdir(glue_dir):
        raise GlueError(f"{glue_dir} is not a folder: pass the GLUE data folder (one subfolder per task)")
    unknown = [t for t in only or () if t not in TASKS]
    if unknown:
        raise GlueError(f"unknown task {unknown[0]!r}: choose from {', '.join(TASKS)}")
    found = []
    for name in TASKS:
        if only and name not in only:
            continue
        if os.path.isdir(os.path.join(glue_dir, name)):
            found.append(name)
        else:
            log(f"[skip] {name}: no folder {os.path.join(glue_dir, name)}")
    if not found:
        raise GlueError(f"no GLUE task folder in {glue_dir} (expected subfolders named {', '.join(TASKS)})")
    return found


# --------------------------------------------------------------------------- preparing

def prepare_task(task: Task, rows: Dict[str, Tuple], corpus_dir: str, out: str, checkpoint=None) -> dict:
    """Encode and binarize a task read by read_task into ``out`` (fairseq's sentence_prediction
    layout). Gold dev labels and test indices go beside it as text; meta.json describes it."""
    import sentencepiece as spm

    from prepare_classification import PrepareError, binarize, check_vocabulary

    spm_model, dict_path = os.path.join(corpus_dir, "spm.model"), os.path.join(corpus_dir, "dict.txt")
    for path in (spm_model, dict_path):
        if not os.path.isfile(path):
            raise GlueError(f"{path} does not exist: pass the corpus folder written by scripts/prepare_corpus.py")
    try:
        check_vocabulary(dict_path, spm_model, checkpoint)
    except PrepareError as e:
        raise GlueError(str(e)) from None
    sp = spm.SentencePieceProcessor(model_file=spm_model)
    pair = len(task.text) == 2
    try:
        with output_dir(out, DATA_TOOL, force=True) as tmp:
            raw = os.path.join(tmp, "raw")
            os.makedirs(raw)
            prefixes: Dict[str, Dict[str, List[str]]] = {}  # folder -> flag split -> raw files
            for split, (texts, labels, indices, spec) in rows.items():
                flag = split.rstrip("0123456789")  # valid1 is the second --validpref
                for col in range(len(task.text)):
                    path = os.path.join(raw, f"input{col}.{split}")
                    with open(path, "w", encoding="utf-8") as f:
                        f.writelines(" ".join(sp.encode(t[col], out_type=str)) + "\n" for t in texts)
                    prefixes.setdefault(f"input{col}", {}).setdefault(flag, []).append(path)
                if labels is not None:
                    os.makedirs(os.path.join(tmp, "gold"), exist_ok=True)
                    with open(os.path.join(tmp, "gold", f"{split}.txt"), "w", encoding="utf-8") as f:
                        f.writelines(label + "\n" for label in labels)
                    if task.labels is None:  # regression: sentence_prediction reads label/SPLIT.label
                        os.makedirs(os.path.join(tmp, "label"), exist_ok=True)
                        with open(os.path.join(tmp, "label", f"{split}.label"), "w", encoding="utf-8") as f:
                            f.writelines(label + "\n" for label in labels)
                    else:
                        path = os.path.join(raw, f"label.{split}")
                        with open(path, "w", encoding="utf-8") as f:
                            f.writelines(label + "\n" for label in labels)
                        prefixes.setdefault("label", {}).setdefault(flag, []).append(path)
                if indices is not None:
                    os.makedirs(os.path.join(tmp, "index"), exist_ok=True)
                    with open(os.path.join(tmp, "index", f"{split}.txt"), "w", encoding="utf-8") as f:
                        f.writelines(i + "\n" for i in indices)
            label_dict = os.path.join(raw, "label.dict.txt")
            if task.labels is not None:
                # The task's label set in a fixed order, so every seed and every GLUE copy maps
                # class k to the same label (counts from train, all at least 1).
                counts = {label: max(1, rows["train"][1].count(label)) for label in task.labels}
                with open(label_dict, "w", encoding="utf-8") as f:
                    f.writelines(f"{label} {counts[label]}\n" for label in task.labels)
            for folder, by_flag in prefixes.items():
                for flag, files in by_flag.items():
                    # valid, valid1, ...: fairseq-preprocess numbers comma-separated prefixes
                    files.sort(key=lambda p: p.rsplit(".", 1)[1])
                try:
                    binarize({flag: ",".join(files) for flag, files in by_flag.items()},
                             label_dict if folder == "label" else dict_path, os.path.join(tmp, folder), 1)
                except PrepareError as e:
                    raise GlueError(str(e)) from None
                log_file = os.path.join(tmp, folder, "preprocess.log")
                if os.path.exists(log_file):
                    os.remove(log_file)
            shutil.rmtree(raw)
            meta = {
                "task": task.name,
                "labels": list(task.labels) if task.labels else None,
                "num_classes": len(task.labels) if task.labels else 1,
                "regression": task.labels is None,
                "pair": pair,
                "rows": {split: len(r[0]) for split, r in rows.items()},
                "files": {split: r[3].file for split, r in rows.items()},
                "names": {split: r[3].name for split, r in rows.items()},
            }
            with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2)
    except OutputDirError as e:
        raise GlueError(str(e)) from None
    return meta


# --------------------------------------------------------------------------- fine-tuning

def optimizer_flags(hp: HParams) -> List[str]:
    """Adam; with layer-wise decay the plug-in's scaled_adam, which applies the model's
    per-layer scales (amos_fairseq/optim/scaled_adam.py)."""
    if hp.layerwise_lr_decay == 1.0:
        return ["--optimizer", "adam"]
    return ["--optimizer", "scaled_adam", "--layerwise-lr-decay", str(hp.layerwise_lr_decay)]


def finetune_command(data: str, meta: dict, hp: HParams, save_dir: str, seed: int, arch: str,
                     max_positions: int, restore: Optional[str], extra: Sequence[str] = ()) -> List[str]:
    """The fairseq-train command for one task and seed: sentence_prediction from ``restore``,
    linear warm-up over ``warmup_ratio`` of the updates then linear decay to 0, no validation
    during training (the model at the end is evaluated), only the last checkpoint kept."""
    updates = math.ceil(meta["rows"]["train"] / hp.batch) * hp.epochs
    warmup = max(1, int(updates * hp.warmup_ratio))
    cmd = [
        sys.executable, "-m", "fairseq_cli.train", data, "--user-dir", os.path.join(ROOT, "amos_fairseq"),
        "--task", "sentence_prediction_by_length", "--criterion", "sentence_prediction", "--arch", arch,
        "--num-classes", str(meta["num_classes"]), "--init-token", "0", "--separator-token", "2",
        "--max-positions", str(max_positions), "--shorten-method", "truncate",
        "--dropout", "0.1", "--attention-dropout", "0.1",
        *optimizer_flags(hp), "--adam-betas", hp.adam_betas, "--adam-eps", "1e-6",
        "--weight-decay", str(hp.weight_decay), "--clip-norm", str(hp.clip_norm),
        "--lr", str(hp.lr), "--lr-scheduler", "polynomial_decay", "--warmup-updates", str(warmup),
        "--total-num-update", str(updates), "--max-update", str(updates), "--max-epoch", str(hp.epochs),
        "--batch-size", str(hp.batch), "--required-batch-size-multiple", "1", "--seed", str(seed),
        "--disable-validation", "--no-epoch-checkpoints", "--no-save-optimizer-state",
        "--save-dir", save_dir, "--log-format", "simple", "--log-interval", "50", "--num-workers", "0",
    ]
    if meta["regression"]:
        cmd.append("--regression-target")
    if restore:
        cmd += ["--restore-file", restore, "--reset-optimizer", "--reset-dataloader", "--reset-meters"]
    return cmd + list(extra)


def predict(data: str, checkpoint: str, splits: Sequence[str], batch_size: int = 64) -> Dict[str, list]:
    """Predictions of a fine-tuned checkpoint for fairseq splits of ``data``, in file order:
    label strings for classification, numbers for regression."""
    import logging

    import torch
    from fairseq import checkpoint_utils

    logging.getLogger("fairseq").setLevel(logging.WARNING)  # one line per dataset otherwise
    sys.path.insert(0, ROOT)
    import amos_fairseq  # noqa: F401  (registers the model before the checkpoint is read)

    overrides = {"data": data, "user_dir": os.path.join(ROOT, "amos_fairseq")}
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides=overrides)
    model = models[0].eval()
    head = getattr(cfg.criterion, "classification_head_name", HEAD) or HEAD
    regression = bool(getattr(cfg.criterion, "regression_target", False))
    out = {}
    for split in splits:
        task.load_dataset(split)
        dataset = task.dataset(split)
        iterator = task.get_batch_iterator(dataset, max_sentences=batch_size, ignore_invalid_inputs=False,
                                           max_positions=None).next_epoch_itr(shuffle=False)
        preds = [None] * len(dataset)
        with torch.no_grad():
            for sample in iterator:
                logits, _ = model(**sample["net_input"], features_only=True, classification_head_name=head)
                for i, row in zip(sample["id"].tolist(), logits.float()):
                    if regression:
                        preds[i] = row[0].item()
                    else:
                        preds[i] = task.label_dictionary[row.argmax().item() + task.label_dictionary.nspecial]
        out[split] = preds
    return out


def submission_value(task: Task, value) -> str:
    """A prediction as GLUE's server reads it: the label string, or for STS-B a score clipped
    to the 0-5 range of the task's labels."""
    if task.labels is None:
        return f"{min(5.0, max(0.0, float(value))):.3f}"
    return str(value)


def write_submission(path: str, indices: Sequence[str], values: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("index\tprediction\n")
        f.writelines(f"{i}\t{v}\n" for i, v in zip(indices, values))


def evaluate_seed(task: Task, data: str, checkpoint: str, out: str) -> dict:
    """Dev metrics and test predictions of one fine-tuned model, written into ``out``."""
    with open(os.path.join(data, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    splits = [s for s in meta["rows"] if s != "train"]
    preds = predict(data, checkpoint, splits)
    metrics = {}
    for split in splits:
        values = [submission_value(task, p) if task.labels is None else p for p in preds[split]]
        name = meta["names"][split]
        if split.startswith("valid"):
            with open(os.path.join(data, "gold", f"{split}.txt"), encoding="utf-8") as f:
                gold = [line.rstrip("\n") for line in f]
            raw = preds[split]
            for m, v in task_metrics(task, raw, gold).items():
                metrics[m + (f"_{name}" if name else "")] = v
            with open(os.path.join(out, f"dev_predictions{'_' + name if name else ''}.tsv"), "w",
                      encoding="utf-8") as f:
                f.write("prediction\tgold\n")
                f.writelines(f"{p}\t{g}\n" for p, g in zip(values, gold))
        else:
            with open(os.path.join(data, "index", f"{split}.txt"), encoding="utf-8") as f:
                indices = [line.rstrip("\n") for line in f]
            os.makedirs(os.path.join(out, "test"), exist_ok=True)
            write_submission(os.path.join(out, "test", f"{name}.tsv"), indices,
                             [submission_value(task, p) for p in preds[split]])
    return metrics


# --------------------------------------------------------------------------- the whole run

@dataclass
class RunConfig:
    checkpoint: str
    corpus_dir: str
    glue_dir: str
    work: str
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    preset: Optional[str] = None
    tasks: Optional[List[str]] = None
    from_mnli: bool = False
    keep_checkpoints: bool = False
    extra: List[str] = field(default_factory=list)
    layerwise_lr_decay: Optional[float] = None  # overrides the preset's
    from_scratch: bool = False  # the checkpoint's architecture from random weights


def checkpoint_model_field(checkpoint: str, name: str):
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as e:
        raise GlueError(f"{checkpoint} is not a complete checkpoint ({type(e).__name__}): use another one") from None
    model = state["cfg"]["model"] if state.get("cfg") is not None else state["args"]
    return model.get(name) if isinstance(model, dict) else getattr(model, name, None)


def claim_work(work: str) -> None:
    """WORK is this tool's: new, empty, or an earlier run of it (continued, never erased)."""
    if os.path.exists(work) and not os.path.isdir(work):
        raise GlueError(f"{work} exists and is not a folder: choose another WORK")
    if os.path.isdir(work) and os.listdir(work) and made_by(work) != WORK_TOOL:
        raise GlueError(f"{work} exists and was not made by {WORK_TOOL} (no {WORK_TOOL} marker {MARKER} in it): "
                        "choose another WORK, or move that folder away")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, MARKER), "w", encoding="utf-8") as f:
        f.write(WORK_TOOL + "\n")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median_seed(task: Task, results: Dict[int, dict]) -> int:
    """The seed whose task score is the median (the upper middle one for an even count)."""
    ranked = sorted(results, key=lambda s: (task_score(task, results[s]["metrics"]), s))
    return ranked[len(ranked) // 2]


def run(cfg: RunConfig) -> dict:
    for path, what in ((cfg.checkpoint, "checkpoint"), (os.path.join(cfg.corpus_dir, "spm.model"), "spm.model")):
        if not os.path.isfile(path):
            raise GlueError(f"{what} {path} does not exist" + (
                ": pass the --out folder of scripts/prepare_corpus.py as CORPUS_DIR" if what == "spm.model" else ""))
    names = discover(cfg.glue_dir, cfg.tasks, log=lambda m: print(m, file=sys.stderr))
    # Read and check every task before any training: a malformed file stops the run here.
    rows = {name: read_task(TASKS[name], os.path.join(cfg.glue_dir, name)) for name in names}
    arch = checkpoint_model_field(cfg.checkpoint, "arch")
    max_positions = checkpoint_model_field(cfg.checkpoint, "max_positions")
    preset = cfg.preset or default_preset(arch)
    table = load_hparams()
    if not any(p == preset for p, _ in table):
        raise GlueError(f"no preset {preset!r} in {HPARAMS}: choose one of {sorted({p for p, _ in table})}")
    claim_work(cfg.work)
    with open(os.path.join(cfg.work, "run.json"), "w", encoding="utf-8") as f:
        json.dump({"checkpoint": os.path.abspath(cfg.checkpoint), "preset": preset, "seeds": cfg.seeds,
                   "from_mnli": cfg.from_mnli, "layerwise_lr_decay": cfg.layerwise_lr_decay,
                   "from_scratch": cfg.from_scratch,
                   "extra": cfg.extra}, f, indent=2)
    if cfg.from_mnli and "MNLI" in names:
        names = ["MNLI"] + [n for n in names if n != "MNLI"]  # the others may start from it
    mnli_checkpoint = None
    for name in names:
        task = TASKS[name]
        hp = table[preset, name]
        if cfg.layerwise_lr_decay is not None:
            hp = dataclasses.replace(hp, layerwise_lr_decay=cfg.layerwise_lr_decay)
        data = os.path.join(cfg.work, name, "data")
        log(f"[{name}] preparing {os.path.join(cfg.glue_dir, name)} -> {data}")
        meta = prepare_task(task, rows.pop(name), cfg.corpus_dir, data, cfg.checkpoint)
        restore = None if cfg.from_scratch else cfg.checkpoint
        if cfg.from_mnli and name in FROM_MNLI:
            if mnli_checkpoint is None:
                raise GlueError(f"--from-mnli: {name} starts from the MNLI model, but MNLI was not run "
                                "(no MNLI folder, or --tasks without it)")
            restore = mnli_checkpoint
        for seed in cfg.seeds:
            seed_dir = os.path.join(cfg.work, name, f"seed{seed}")
            if os.path.isfile(os.path.join(seed_dir, "result.json")):
                log(f"[{name}] seed {seed}: done earlier ({seed_dir})")
                continue
            start = time.time()
            with output_dir(seed_dir, SEED_TOOL, force=True) as tmp:
                save = os.path.join(tmp, "checkpoints")
                cmd = finetune_command(data, meta, hp, save, seed, arch, max_positions, restore, cfg.extra)
                log(f"[{name}] seed {seed}: fine-tuning from {restore or 'random weights'} (lr {hp.lr}, batch {hp.batch}, "
                    f"{hp.epochs} epochs, warm-up {hp.warmup_ratio}, layer-wise lr decay {hp.layerwise_lr_decay})")
                with open(os.path.join(tmp, "train.log"), "w", encoding="utf-8") as logf:
                    proc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
                if proc.returncode != 0:
                    with open(os.path.join(tmp, "train.log"), encoding="utf-8") as logf:
                        tail = logf.read()[-3000:]
                    raise GlueError(f"fine-tuning {name} seed {seed} failed ({proc.returncode}):\n{tail}")
                metrics = evaluate_seed(task, data, os.path.join(save, "checkpoint_last.pt"), tmp)
                keep = cfg.keep_checkpoints or (name == "MNLI" and cfg.from_mnli)
                if not keep:
                    shutil.rmtree(save)
                result = {"task": name, "seed": seed, "metrics": metrics, "seconds": time.time() - start,
                          "preset": preset, "restore": restore, "hparams": hp.__dict__}
                with open(os.path.join(tmp, "result.json"), "w", encoding="utf-8") as f:
                    json.dump(result, f, indent=2)
            log(f"[{name}] seed {seed}: " + ", ".join(f"{k} {v:.1f}" for k, v in metrics.items())
                + f" ({time.time() - start:.0f} s)")
        if name == "MNLI" and cfg.from_mnli:
            results = load_results(cfg.work).get("MNLI", {})
            best = median_seed(task, results)
            mnli_checkpoint = os.path.join(cfg.work, "MNLI", f"seed{best}", "checkpoints", "checkpoint_last.pt")
            if not os.path.isfile(mnli_checkpoint):
                raise GlueError(f"--from-mnli needs {mnli_checkpoint}, removed by an earlier run without "
                                "--from-mnli: remove WORK/MNLI/seed* to fine-tune MNLI again")
            if not cfg.keep_checkpoints:
                for seed in results:
                    if seed != best:
                        shutil.rmtree(os.path.join(cfg.work, "MNLI", f"seed{seed}", "checkpoints"), ignore_errors=True)
    return summarize(cfg.work)


# --------------------------------------------------------------------------- the summary

def load_results(work: str) -> Dict[str, Dict[int, dict]]:
    out: Dict[str, Dict[int, dict]] = {}
    for name in TASKS:
        folder = os.path.join(work, name)
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry, "result.json")
            if entry.startswith("seed") and os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    result = json.load(f)
                out.setdefault(name, {})[result["seed"]] = result
    return out


def summary_rows(results: Dict[str, Dict[int, dict]]):
    """Per task: median over seeds of every metric, the task score, the seeds and minutes."""
    rows = []
    for name, by_seed in results.items():
        task = TASKS[name]
        medians = {m: statistics.median(r["metrics"][m] for r in by_seed.values()) for m in metric_names(task)}
        rows.append({
            "task": name, "metrics": medians, "score": task_score(task, medians),
            "paper_metric": medians.get(PAPER_METRIC.get(name, ""), None),
            "seeds": len(by_seed), "median_seed": median_seed(task, by_seed),
            "minutes": sum(r["seconds"] for r in by_seed.values()) / 60,
            "spread": [task_score(task, by_seed[s]["metrics"]) for s in sorted(by_seed)],
        })
    return rows


def averages(rows) -> Dict[str, Tuple[Optional[float], int]]:
    glue = [r["score"] for r in rows]
    paper = [r["paper_metric"] for r in rows if r["task"] in PAPER_METRIC]
    return {"glue_average": (statistics.mean(glue) if glue else None, len(glue)),
            "paper_average": (statistics.mean(paper) if paper else None, len(paper))}


def summarize(work: str) -> dict:
    """summary.tsv, summary.md, runs.tsv and submission/ from the finished seeds in WORK."""
    results = load_results(work)
    if not results:
        raise GlueError(f"no finished run in {work} (no TASK/seedN/result.json)")
    rows = summary_rows(results)
    avg = averages(rows)
    with open(os.path.join(work, "summary.tsv"), "w", encoding="utf-8") as f:
        f.write("task\tmetric\tmedian\tseeds\tmedian_seed\tminutes\n")
        for r in rows:
            for m, v in r["metrics"].items():
                f.write(f"{r['task']}\t{m}\t{v:.2f}\t{r['seeds']}\t{r['median_seed']}\t{r['minutes']:.2f}\n")
            if len(r["metrics"]) > 1:
                f.write(f"{r['task']}\tscore\t{r['score']:.2f}\t{r['seeds']}\t{r['median_seed']}\t{r['minutes']:.2f}\n")
        for key, (value, n) in avg.items():
            if value is not None:
                f.write(f"AVERAGE\t{key}\t{value:.2f}\t{n}\t\t\n")
    with open(os.path.join(work, "runs.tsv"), "w", encoding="utf-8") as f:
        f.write("task\tseed\tmetric\tvalue\tseconds\n")
        for name, by_seed in results.items():
            for seed in sorted(by_seed):
                for m, v in by_seed[seed]["metrics"].items():
                    f.write(f"{name}\t{seed}\t{m}\t{v:.2f}\t{by_seed[seed]['seconds']:.1f}\n")
    lines = ["| task | metric | median | task score | seeds (scores) | minutes |", "|---|---|---|---|---|---|"]
    for r in rows:
        metric = " / ".join(r["metrics"])
        value = " / ".join(f"{v:.1f}" for v in r["metrics"].values())
        spread = ", ".join(f"{s:.1f}" for s in r["spread"])
        lines.append(f"| {r['task']} | {metric} | {value} | {r['score']:.1f} | {r['seeds']} ({spread}) | {r['minutes']:.1f} |")
    lines.append("")
    for key, (value, n) in avg.items():
        if value is not None:
            lines.append(f"**{key}** {value:.1f} over {n} task{'s' if n != 1 else ''}: {AVERAGES[key]}.")
            lines.append("")
    lines.append("Medians over fine-tuning seeds of each metric (in %), each from the model at the end "
                 "of fine-tuning; test predictions in submission/ come from each task's median seed.")
    with open(os.path.join(work, "summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    # Submission files: the median seed's test predictions, under GLUE's file names.
    submission = os.path.join(work, "submission")
    os.makedirs(submission, exist_ok=True)
    written = []
    for r in rows:
        test = os.path.join(work, r["task"], f"seed{r['median_seed']}", "test")
        if os.path.isdir(test):
            for name in sorted(os.listdir(test)):
                shutil.copyfile(os.path.join(test, name), os.path.join(submission, name))
                written.append(name)
    return {"rows": rows, "averages": avg, "submission": written}


# --------------------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="prepare, fine-tune every task over the seeds, summarize")
    p.add_argument("checkpoint")
    p.add_argument("corpus_dir")
    p.add_argument("glue_dir")
    p.add_argument("work")
    p.add_argument("--seeds", default="1,2,3,4,5", help="fine-tuning seeds (AMOS: median of 5; ELECTRA: of 10)")
    p.add_argument("--preset", help="rows of examples/glue_hparams.tsv (default: from the checkpoint's arch)")
    p.add_argument("--tasks", help="comma-separated subset, e.g. CoLA,RTE (default: every folder found)")
    p.add_argument("--from-mnli", action="store_true", help="start RTE, MRPC and STS-B from the median MNLI model")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep every fine-tuned checkpoint")
    p.add_argument("--layerwise-lr-decay", type=float,
                   help="override the preset's layer-wise learning-rate decay (1: off; ELECTRA: 0.8)")
    p.add_argument("--from-scratch", action="store_true",
                   help="the checkpoint's architecture and vocabulary from random weights (the control)")
    p = sub.add_parser("check", help="list the task folders found and check their files")
    p.add_argument("glue_dir")
    p = sub.add_parser("summarize", help="tables and submission files from WORK's finished runs")
    p.add_argument("work")
    p = sub.add_parser("hparams", help="print the hyperparameter table")
    p.add_argument("--preset")
    argv = list(sys.argv[1:] if argv is None else argv)
    # After "--": more fairseq-train arguments for `run` (e.g. --fp16), passed on as they are.
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        if args.command == "run":
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            result = run(RunConfig(args.checkpoint, args.corpus_dir, args.glue_dir, args.work, seeds, args.preset,
                                   args.tasks.split(",") if args.tasks else None, args.from_mnli,
                                   args.keep_checkpoints, extra, args.layerwise_lr_decay, args.from_scratch))
            print_summary(args.work, result)
        elif args.command == "check":
            for name in discover(args.glue_dir, log=lambda m: print(m, file=sys.stderr)):
                rows = read_task(TASKS[name], os.path.join(args.glue_dir, name))
                print(name + "\t" + " ".join(f"{s}={len(r[0])}" for s, r in rows.items()))
        elif args.command == "summarize":
            print_summary(args.work, summarize(args.work))
        elif args.command == "hparams":
            with open(HPARAMS, encoding="utf-8") as f:
                for line in f:
                    if args.preset is None or line.startswith("preset\t") or line.startswith(args.preset + "\t"):
                        print(line.rstrip("\n"))
    except GlueError as e:
        sys.exit(f"error: {e}")


def print_summary(work: str, result: dict) -> None:
    with open(os.path.join(work, "summary.md"), encoding="utf-8") as f:
        print(f.read())
    if result["submission"]:
        print(f"submission files in {os.path.join(work, 'submission')}: {', '.join(result['submission'])}")


if __name__ == "__main__":
    main()
