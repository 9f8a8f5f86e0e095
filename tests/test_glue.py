"""GLUE as distributed (scripts/glue.py, examples/glue.sh): every task's columns and labels,
metrics against hand-worked values, malformed and missing folders, medians over seeds,
the averages, the submission format, and a tiny end-to-end run with the regression head."""

import csv
import importlib.util
import json
import math
import os
import subprocess

import pytest
import torch

from conftest import ONE_THREAD, ROOT, fairseq_train
from fake_glue import make_fake_glue

spec = importlib.util.spec_from_file_location("glue_script", ROOT / "scripts" / "glue.py")
glue = importlib.util.module_from_spec(spec)
spec.loader.exec_module(glue)


# --------------------------------------------------------------------------- metrics

PRED = ["1", "1", "0", "0", "1", "0"]
GOLD = ["1", "0", "0", "0", "1", "1"]  # tp 2, fp 1, tn 2, fn 1


def test_classification_metrics_by_hand():
    assert glue.accuracy(PRED, GOLD) == pytest.approx(4 / 6)
    assert glue.f1_score(PRED, GOLD) == pytest.approx(2 / 3)  # P = R = 2/3
    assert glue.matthews_corrcoef(PRED, GOLD) == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert glue.matthews_corrcoef(["0"] * 6, GOLD) == 0.0  # one class only: 0, not a division by zero
    assert glue.f1_score(["0"] * 6, GOLD) == 0.0
    assert glue.matthews_corrcoef(GOLD, GOLD) == pytest.approx(1.0)
    assert glue.matthews_corrcoef([("0" if g == "1" else "1") for g in GOLD], GOLD) == pytest.approx(-1.0)


def test_correlations_by_hand():
    # dx = -1.5 -0.5 0.5 1.5, dy = -3 -1 0 4: sxy 11, sxx 5, syy 26
    assert glue.pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(5 * 26))
    assert glue.average_ranks([10, 20, 20, 20, 5]) == [2, 4, 4, 4, 1]
    # ranks x 1 2.5 2.5 4, y 1 3 2 4: sxy 4.5, sxx 4.5, syy 5
    assert glue.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert glue.spearman([1, 5, 7, 100], [0, 1, 2, 3]) == pytest.approx(1.0)  # monotone, not linear
    assert glue.pearson([3, 3, 3], [1, 2, 3]) == 0.0  # a constant prediction


def test_metrics_agree_with_scipy_and_sklearn_where_installed():
    stats = pytest.importorskip("scipy.stats")
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 6, (200,), generator=g).float().tolist()  # many ties
    y = [v + float(n) for v, n in zip(x, torch.randn(200, generator=g).tolist())]
    assert glue.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert glue.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    p = [str(int(v > 2)) for v in y]
    t = [str(int(v > 2)) for v in x]
    assert glue.matthews_corrcoef(p, t) == pytest.approx(metrics.matthews_corrcoef(t, p))
    assert glue.f1_score(p, t) == pytest.approx(metrics.f1_score(t, p, pos_label="1"))


def test_task_metrics_and_scores():
    mrpc, stsb, mnli = glue.TASKS["MRPC"], glue.TASKS["STS-B"], glue.TASKS["MNLI"]
    m = glue.task_metrics(mrpc, PRED, GOLD)
    assert m == pytest.approx({"f1": 100 * 2 / 3, "accuracy": 100 * 4 / 6})
    assert glue.task_score(mrpc, m) == pytest.approx(100 * (2 / 3 + 4 / 6) / 2)
    s = glue.task_metrics(stsb, [1.0, 2.0, 3.0, 4.0], ["2", "4", "5", "9"])
    assert s["pearson"] == pytest.approx(100 * 11 / math.sqrt(130)) and s["spearman"] == pytest.approx(100.0)
    assert glue.metric_names(mnli) == ["accuracy_m", "accuracy_mm"]
    assert glue.task_score(mnli, {"accuracy_m": 80, "accuracy_mm": 70}) == 75
    assert glue.metric_names(glue.TASKS["CoLA"]) == ["mcc"]


# --------------------------------------------------------------------------- reading GLUE

# The columns GLUE distributes, stated independently of scripts/glue.py: (first text, second
# text, label) by header name; CoLA's train/dev have no header (label 2nd, sentence 4th field).
COLUMNS = {
    "SST-2": ("sentence", None, "label"), "MRPC": ("#1 String", "#2 String", "Quality"),
    "STS-B": ("sentence1", "sentence2", "score"), "QQP": ("question1", "question2", "is_duplicate"),
    "MNLI": ("sentence1", "sentence2", "gold_label"), "QNLI": ("question", "sentence", "label"),
    "RTE": ("sentence1", "sentence2", "label"), "WNLI": ("sentence1", "sentence2", "label"),
}
LABELS = {"CoLA": {"0", "1"}, "SST-2": {"0", "1"}, "MRPC": {"0", "1"}, "QQP": {"0", "1"}, "WNLI": {"0", "1"},
          "MNLI": {"entailment", "neutral", "contradiction"}, "QNLI": {"entailment", "not_entailment"},
          "RTE": {"entailment", "not_entailment"}}


def dict_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def fake_glue(tmp_path_factory):
    return make_fake_glue(tmp_path_factory.mktemp("glue") / "glue", rows=40, dev_rows=12, test_rows=8)


@pytest.mark.parametrize("name", list(glue.TASKS))
def test_every_task_reads_its_own_columns(fake_glue, name):
    task, folder = glue.TASKS[name], fake_glue / name
    rows = glue.read_task(task, str(folder))
    texts, labels, _, _ = rows["train"]
    if name == "CoLA":
        fields = [line.split("\t") for line in (folder / "train.tsv").read_text(encoding="utf-8").splitlines()]
        assert texts == [(f[3],) for f in fields] and labels == [f[1] for f in fields]
    else:
        first, second, label = COLUMNS[name]
        expected = dict_rows(folder / "train.tsv")
        assert texts == [(r[first],) + ((r[second],) if second else ()) for r in expected]
        assert labels == [r[label] for r in expected]
    if name == "STS-B":
        assert task.labels is None and all(0 <= float(v) <= 5 for v in labels)
    else:
        assert set(labels) <= LABELS[name] and set(task.labels) == LABELS[name]
    dev = ["valid", "valid1"] if name == "MNLI" else ["valid"]
    test = ["test", "test1", "test2"] if name == "MNLI" else ["test"]  # MNLI: m, mm and the AX diagnostic
    assert [s for s in rows if s != "train"] == dev + test
    index_column = "id" if name == "QQP" else "index"
    test_rows = dict_rows(folder / ("test_matched.tsv" if name == "MNLI" else "test.tsv"))
    assert rows["test"][2] == [r[index_column] for r in test_rows]
    assert len(rows["test"][0][0]) == len(texts[0])  # the same number of text columns


def test_missing_tasks_are_skipped_with_a_line(tmp_path):
    make_fake_glue(tmp_path / "g", rows=20, tasks=("RTE", "CoLA"))
    lines = []
    assert glue.discover(str(tmp_path / "g"), log=lines.append) == ["CoLA", "RTE"]
    assert len(lines) == 7 and all(line.startswith("[skip] ") and "no folder" in line for line in lines)
    with pytest.raises(glue.GlueError, match="unknown task 'COLA'"):
        glue.discover(str(tmp_path / "g"), ["COLA"])


@pytest.mark.parametrize("name, file, edit, message", [
    ("MNLI", "dev_mismatched.tsv", lambda t: t.replace("gold_label", "goldlabel", 1),
     r"dev_mismatched.tsv has no column 'gold_label'"),
    ("MRPC", "train.tsv", lambda t: t.replace("#2 String", "String2", 1), r"train.tsv has no column '#2 String'"),
    ("RTE", "dev.tsv", lambda t: t.replace("\tentailment\n", "\tentails\n", 1),
     r"dev.tsv:\d+ column 'label' is 'entails', not one of \['entailment', 'not_entailment'\]"),
    ("STS-B", "train.tsv", lambda t: t.rsplit("\t", 1)[0] + "\tfive\n", r"train.tsv:41 column 'score' is 'five', not a number"),
    ("CoLA", "train.tsv", lambda t: "gj04\t1\n" + t,
     r"train.tsv:1 has 2 fields and no column 'number 4'"),
    ("QQP", "test.tsv", lambda t: t.replace("id\t", "qid\t", 1), r"test.tsv has no column 'id'"),
])
def test_malformed_files_stop_naming_file_and_column(tmp_path, name, file, edit, message):
    make_fake_glue(tmp_path, rows=40, dev_rows=12, test_rows=8, tasks=(name,))
    path = tmp_path / name / file
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(glue.GlueError, match=message):
        glue.read_task(glue.TASKS[name], str(tmp_path / name))
    # The command line says it as one error line, before any training.
    with pytest.raises(SystemExit) as exit_info:
        glue.main(["check", str(tmp_path)])
    assert str(exit_info.value).startswith("error: ") and str(path) in str(exit_info.value)


# --------------------------------------------------------------------------- settings

def test_hyperparameter_table_is_complete_and_sourced():
    table = glue.load_hparams()
    presets = {p for p, _ in table}
    assert presets == {"electra-small", "electra-base", "amos-base"}
    for preset in presets:
        for name in glue.TASKS:
            hp = table[preset, name]
            assert hp.lr > 0 and hp.batch > 0 and hp.epochs > 0 and 0 < hp.warmup_ratio < 1 and hp.source
    assert table["electra-base", "RTE"].epochs == 10 and table["electra-base", "MNLI"].epochs == 3
    assert (table["electra-small", "CoLA"].lr, table["electra-base", "CoLA"].lr) == (3e-4, 1e-4)
    assert glue.default_preset("amos_base") == "amos-base" and glue.default_preset("electra_base") == "electra-base"
    assert glue.default_preset("electra_tiny") == "electra-small"
    assert table["electra-small", "SST-2"].layerwise_lr_decay == 0.8 == table["electra-base", "RTE"].layerwise_lr_decay
    assert table["amos-base", "RTE"].layerwise_lr_decay == 1.0


def test_regression_and_classification_commands():
    hp = glue.load_hparams()["electra-small", "STS-B"]
    meta = {"rows": {"train": 200}, "num_classes": 1, "regression": True}
    cmd = glue.finetune_command("data", meta, hp, "save", 3, "electra_tiny", 512, "ckpt.pt")
    flag = lambda name: cmd[cmd.index(name) + 1]  # noqa: E731
    assert "--regression-target" in cmd and flag("--num-classes") == "1"
    assert flag("--total-num-update") == "70" and flag("--warmup-updates") == "7"  # 7 batches x 10 epochs, 10%
    assert flag("--lr") == "0.0003" and flag("--seed") == "3" and flag("--restore-file") == "ckpt.pt"
    assert flag("--optimizer") == "scaled_adam" and flag("--layerwise-lr-decay") == "0.8"  # ELECTRA's decay
    meta = {"rows": {"train": 200}, "num_classes": 3, "regression": False}
    cmd = glue.finetune_command("data", meta, glue.load_hparams()["amos-base", "MNLI"], "save", 1, "amos_base", 512, None)
    assert "--regression-target" not in cmd and "--restore-file" not in cmd and cmd[cmd.index("--num-classes") + 1] == "3"
    assert cmd[cmd.index("--optimizer") + 1] == "adam" and "--layerwise-lr-decay" not in cmd  # AMOS: none


def test_submission_values():
    stsb, rte = glue.TASKS["STS-B"], glue.TASKS["RTE"]
    assert [glue.submission_value(stsb, v) for v in (5.7, -0.2, 3.14159)] == ["5.000", "0.000", "3.142"]
    assert glue.submission_value(rte, "not_entailment") == "not_entailment"


# --------------------------------------------------------------------------- medians and summary

def fake_results(work, task, per_seed, tests=()):
    """result.json (and test predictions) for each seed, as run() leaves them."""
    for seed, metrics in per_seed.items():
        folder = work / task / f"seed{seed}"
        (folder / "test").mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps({"task": task, "seed": seed, "metrics": metrics, "seconds": 60}))
        for name in tests:
            glue.write_submission(str(folder / "test" / name), ["0", "1"], [f"seed{seed}", f"seed{seed}"])


def test_median_over_seeds_averages_and_submission(tmp_path):
    work = tmp_path / "work"
    fake_results(work, "MRPC", {1: {"f1": 80, "accuracy": 70}, 2: {"f1": 90, "accuracy": 75},
                                3: {"f1": 85, "accuracy": 60}}, tests=("MRPC.tsv",))
    fake_results(work, "CoLA", {1: {"mcc": 30}, 2: {"mcc": 50}, 3: {"mcc": 40}, 4: {"mcc": 10}}, tests=("CoLA.tsv",))
    fake_results(work, "MNLI", {1: {"accuracy_m": 80, "accuracy_mm": 78}}, tests=("MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"))
    fake_results(work, "WNLI", {1: {"accuracy": 56}})
    result = glue.summarize(str(work))
    rows = {r["task"]: r for r in result["rows"]}
    # Each metric's own median; the submission from the seed whose task score is the median
    # (MRPC scores 75, 82.5, 72.5 -> seed 1; CoLA 30 50 40 10, even count -> upper middle 40, seed 3).
    assert rows["MRPC"]["metrics"] == {"f1": 85, "accuracy": 70} and rows["MRPC"]["median_seed"] == 1
    assert rows["CoLA"]["metrics"] == {"mcc": 35} and rows["CoLA"]["median_seed"] == 3
    assert rows["MRPC"]["score"] == 77.5 and rows["MNLI"]["score"] == 79
    # GLUE rule: mean of task scores, WNLI included; paper rule: MRPC accuracy, MNLI-m, no WNLI.
    assert result["averages"]["glue_average"] == (pytest.approx((77.5 + 35 + 79 + 56) / 4), 4)
    assert result["averages"]["paper_average"] == (pytest.approx((70 + 35 + 80) / 3), 3)
    submission = work / "submission"
    assert sorted(os.listdir(submission)) == ["AX.tsv", "CoLA.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "MRPC.tsv"]
    assert (submission / "MRPC.tsv").read_text() == "index\tprediction\n0\tseed1\n1\tseed1\n"
    assert (submission / "CoLA.tsv").read_text().splitlines()[1] == "0\tseed3"
    summary = (work / "summary.tsv").read_text().splitlines()
    assert "MRPC\tf1\t85.00\t3\t1\t3.00" in summary and "AVERAGE\tglue_average\t61.88\t4\t\t" in summary
    assert "| MRPC | f1 / accuracy | 85.0 / 70.0 | 77.5 | 3 (75.0, 82.5, 72.5) | 3.0 |" in (work / "summary.md").read_text()


def test_recipe_refuses_a_folder_it_did_not_make(tmp_path, tiny_corpus):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    checkpoint = tmp_path / "c.pt"
    checkpoint.write_bytes(b"not read before the folder check")
    proc = subprocess.run(["bash", str(ROOT / "examples" / "glue.sh"), str(checkpoint), str(tiny_corpus),
                           str(tmp_path), str(mine)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "SKIP_SETUP": "1"})
    assert proc.returncode == 2 and "was not made by glue" in proc.stdout, proc.stdout
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def tiny_checkpoint(data_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("glue_ckpt")
    fairseq_train(data_bin, save, "--arch", "electra_tiny", "--criterion", "electra",
                  "--max-update", "5", "--total-num-update", "5", env=ONE_THREAD)
    return save / "checkpoint_last.pt"


def test_tiny_end_to_end(tiny_checkpoint, tiny_corpus, tmp_path, monkeypatch):
    """STS-B (regression, one output) and MNLI (two dev files, three test files), one seed of
    3 updates each (medians over seeds: test above): dev metrics, submission files in GLUE's
    format, and a rerun that reuses the finished seeds."""
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    glue_dir = make_fake_glue(tmp_path / "glue", rows=48, dev_rows=16, test_rows=8, tasks=("STS-B", "MNLI"))
    work = tmp_path / "work"
    cfg = glue.RunConfig(str(tiny_checkpoint), str(tiny_corpus), str(glue_dir), str(work), seeds=[1],
                         keep_checkpoints=True, extra=["--max-update", "3"])
    result = glue.run(cfg)
    rows = {r["task"]: r for r in result["rows"]}
    assert set(rows) == {"STS-B", "MNLI"} and all(r["seeds"] == 1 for r in rows.values())
    assert set(rows["STS-B"]["metrics"]) == {"pearson", "spearman"}
    assert set(rows["MNLI"]["metrics"]) == {"accuracy_m", "accuracy_mm"}
    assert all(-100 <= v <= 100 for r in rows.values() for v in r["metrics"].values())
    # The regression head has one output, and its dev predictions are numbers.
    state = torch.load(work / "STS-B" / "seed1" / "checkpoints" / "checkpoint_last.pt", map_location="cpu",
                       weights_only=False)
    assert state["model"]["classification_heads.sentence_classification_head.out_proj.weight"].shape[0] == 1
    dev = dict_rows(work / "STS-B" / "seed1" / "dev_predictions.tsv")
    assert len(dev) == 16 and all(0 <= float(r["prediction"]) <= 5 for r in dev)
    assert [r["gold"] for r in dev] == [r["score"] for r in dict_rows(glue_dir / "STS-B" / "dev.tsv")]
    # Submission files: GLUE's names, one row per test row with its index, GLUE's label strings.
    submission = work / "submission"
    assert sorted(os.listdir(submission)) == ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "STS-B.tsv"]
    for name in os.listdir(submission):
        lines = (submission / name).read_text().splitlines()
        assert lines[0] == "index\tprediction" and [line.split("\t")[0] for line in lines[1:]] == [str(i) for i in range(8)]
        values = [line.split("\t")[1] for line in lines[1:]]
        if name == "STS-B.tsv":
            assert all(0 <= float(v) <= 5 for v in values)
        else:
            assert set(values) <= {"entailment", "neutral", "contradiction"}
    assert "glue_average" in (work / "summary.md").read_text()
    # A second run reuses the finished seeds instead of training again.
    again = glue.run(cfg)
    assert [r["metrics"] for r in again["rows"]] == [r["metrics"] for r in result["rows"]]


def test_rte_starts_from_the_mnli_model(tiny_checkpoint, tiny_corpus, tmp_path, monkeypatch):
    """--from-mnli: RTE fine-tunes from MNLI's checkpoint, whose 3-class head is dropped for
    RTE's 2 classes, with MNLI's encoder weights as the start."""
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    glue_dir = make_fake_glue(tmp_path / "glue", rows=32, dev_rows=8, test_rows=4, tasks=("MNLI", "RTE"))
    work = tmp_path / "work"
    cfg = glue.RunConfig(str(tiny_checkpoint), str(tiny_corpus), str(glue_dir), str(work), seeds=[1],
                         from_mnli=True, extra=["--max-update", "3"])
    glue.run(cfg)
    mnli = work / "MNLI" / "seed1" / "checkpoints" / "checkpoint_last.pt"
    assert mnli.is_file()  # kept: the other tasks start from it
    rte = json.loads((work / "RTE" / "seed1" / "result.json").read_text())
    assert os.path.samefile(rte["restore"], mnli)
    log = (work / "RTE" / "seed1" / "train.log").read_text()
    assert "another shape (3 classes) than this run's (2)" in log


def test_from_scratch_starts_from_random_weights(tiny_checkpoint, tiny_corpus, tmp_path, monkeypatch):
    """--from-scratch (the control): the checkpoint only names the architecture; fairseq-train
    gets no --restore-file and starts from random weights, and run.json says so."""
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    glue_dir = make_fake_glue(tmp_path / "glue", rows=32, dev_rows=8, test_rows=4, tasks=("RTE",))
    work = tmp_path / "work"
    glue.run(glue.RunConfig(str(tiny_checkpoint), str(tiny_corpus), str(glue_dir), str(work), seeds=[1],
                            from_scratch=True, extra=["--max-update", "3"]))
    result = json.loads((work / "RTE" / "seed1" / "result.json").read_text())
    assert result["restore"] is None
    log = (work / "RTE" / "seed1" / "train.log").read_text()
    assert "No existing checkpoint found" in log and str(tiny_checkpoint) not in log
    assert json.loads((work / "run.json").read_text())["from_scratch"] is True
