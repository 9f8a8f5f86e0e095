"""scripts/prepare_classification.py, scripts/prepare_corpus.py and scripts/plot_curves.py:
the layout they write, that ids round-trip through the pretraining vocabulary, and that each
bad input stops with a message naming the fix."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
SOURCE_ID = ROOT / "examples" / "data" / "source_id"


def run_script(name, *args):
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT))


def write_task(folder: Path, splits: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in splits.items():
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


PAIRS = {
    "train": ["sentence1\tsentence2\tlabel", "The whale rose.\tA whale came up.\tyes",
              "Congress met.\tThe sea was calm.\tno", "Ahab spoke.\tThe captain talked.\tyes"],
    "dev": ["sentence1\tsentence2\tlabel", "The ship sailed.\tTaxes were raised.\tno"],
    "test": ["sentence1\tsentence2", "The crew slept.\tSailors rested."],
}


def test_single_sentences_round_trip_through_the_pretraining_vocabulary(tiny_corpus, tmp_path):
    from fairseq.data import Dictionary, data_utils
    import sentencepiece as spm

    out = tmp_path / "source_id"
    proc = run_script("prepare_classification.py", SOURCE_ID, "--corpus-dir", tiny_corpus, "--out", out)
    assert proc.returncode == 0, proc.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["labels"] == ["moby_dick", "sotu_early", "sotu_late"] and meta["num_classes"] == 3
    assert meta["rows"] == {"train": 1800, "valid": 450, "test": 450}
    assert not (out / "input1").exists() and not meta["pair"]
    # The binarized ids are the sentencepiece pieces of each sentence in the pretraining dict.
    vocab = Dictionary.load(str(out / "input0" / "dict.txt"))
    assert (out / "input0" / "dict.txt").read_text() == (tiny_corpus / "dict.txt").read_text()
    sp = spm.SentencePieceProcessor(model_file=str(tiny_corpus / "spm.model"))
    sentences = [l.split("\t")[0] for l in (SOURCE_ID / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    ids = data_utils.load_indexed_dataset(str(out / "input0" / "valid"), vocab)
    for i in (0, 17, 449):
        expected = [vocab.index(p) for p in sp.encode(sentences[i], out_type=str)] + [vocab.eos()]
        assert ids[i].tolist() == expected
    # Labels: index in label/dict.txt after fairseq's 4 special symbols, in meta's order.
    labels = Dictionary.load(str(out / "label" / "dict.txt"))
    gold = [l.split("\t")[1] for l in (SOURCE_ID / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    label_ids = data_utils.load_indexed_dataset(str(out / "label" / "valid"), labels)
    assert [meta["labels"][int(label_ids[i][0]) - labels.nspecial] for i in range(5)] == gold[:5]
    # Majority baseline from train's most frequent label on dev (balanced: one third).
    assert meta["dev_majority_accuracy"] == pytest.approx(gold.count(meta["majority_label"]) / len(gold))

    # An existing output is refused without --force, replaced with it.
    again = run_script("prepare_classification.py", SOURCE_ID, "--corpus-dir", tiny_corpus, "--out", out)
    assert again.returncode != 0 and "exists" in again.stdout and "--force" in again.stdout
    forced = run_script("prepare_classification.py", SOURCE_ID, "--corpus-dir", tiny_corpus, "--out", out, "--force")
    assert forced.returncode == 0, forced.stdout


def test_sentence_pairs_write_input1_and_allow_an_unlabelled_test(tiny_corpus, tmp_path):
    task = write_task(tmp_path / "pairs", PAIRS)
    out = tmp_path / "pairs-bin"
    proc = run_script("prepare_classification.py", task, "--corpus-dir", tiny_corpus, "--out", out)
    assert proc.returncode == 0, proc.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["pair"] and meta["text_columns"] == ["sentence1", "sentence2"] and meta["labels"] == ["no", "yes"]
    for split in ("train", "valid", "test"):
        assert (out / "input0" / f"{split}.bin").exists() and (out / "input1" / f"{split}.bin").exists()
    assert not (out / "label" / "test.bin").exists()  # the test split had no labels


@pytest.mark.parametrize("case, splits, message", [
    ("unknown dev label",
     {"train": ["sentence\tlabel", "a b\tx", "c d\ty"], "dev": ["sentence\tlabel", "e f\tz"]},
     "dev.tsv has labels not in train.tsv: ['z']"),
    ("missing label column",
     {"train": ["sentence\tlabel", "a b\tx", "c d\ty"], "dev": ["sentence", "e f"]},
     "has no 'label' column"),
    ("dev lacks a text column",
     {"train": ["sentence1\tsentence2\tlabel", "a\tb\tx", "c\td\ty"], "dev": ["sentence1\tlabel", "e\tx"]},
     "has no column 'sentence2'"),
    ("row with a missing field",
     {"train": ["sentence\tlabel", "a b\tx", "c d"], "dev": ["sentence\tlabel", "e f\tx"]},
     "train.tsv:3 has 1 fields but the header has 2"),
    ("three text columns",
     {"train": ["a\tb\tc\tlabel", "1\t2\t3\tx"], "dev": ["a\tb\tc\tlabel", "1\t2\t3\tx"]},
     "choose them with --text-columns"),
    ("a single label",
     {"train": ["sentence\tlabel", "a b\tx", "c d\tx"], "dev": ["sentence\tlabel", "e f\tx"]},
     "classification needs at least two"),
    ("no dev split",
     {"train": ["sentence\tlabel", "a b\tx", "c d\ty"]},
     "dev.tsv does not exist"),
])
def test_bad_task_files_name_the_problem(tiny_corpus, tmp_path, case, splits, message):
    task = write_task(tmp_path / "task", splits)
    out = tmp_path / "out"
    proc = run_script("prepare_classification.py", task, "--corpus-dir", tiny_corpus, "--out", out)
    assert proc.returncode != 0, case
    assert message in proc.stdout, proc.stdout
    assert not out.exists(), "nothing is written before the inputs are validated"


def test_vocabulary_mismatches_are_refused(tiny_corpus, tmp_path):
    task = SOURCE_ID
    vocab = sum(1 for _ in open(tiny_corpus / "dict.txt")) + 4  # fairseq's specials
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    # A checkpoint's token embedding matrix: dict + <mask> rows when it fits.
    torch.save({"model": {"token_embeddings.weight": torch.zeros(vocab + 1, 4)}}, good)
    torch.save({"model": {"token_embeddings.weight": torch.zeros(vocab + 101, 4)}}, bad)
    proc = run_script("prepare_classification.py", task, "--corpus-dir", tiny_corpus, "--checkpoint", bad,
                      "--out", tmp_path / "o1")
    assert proc.returncode != 0
    assert f"has {vocab + 101} token embeddings but" in proc.stdout and "--corpus-dir" in proc.stdout
    proc = run_script("prepare_classification.py", task, "--corpus-dir", tiny_corpus, "--checkpoint", good,
                      "--out", tmp_path / "o2")
    assert proc.returncode == 0, proc.stdout

    # A dict.txt from another corpus than the sentencepiece model.
    other = tmp_path / "dict.txt"
    other.write_text("".join(f"w{i} 1\n" for i in range(50)))
    proc = run_script("prepare_classification.py", task, "--spm-model", tiny_corpus / "spm.model",
                      "--dict", other, "--out", tmp_path / "o3")
    assert proc.returncode != 0 and "come from different corpora" in proc.stdout
    proc = run_script("prepare_classification.py", task, "--out", tmp_path / "o4")
    assert proc.returncode != 0 and "--corpus-dir DIR" in proc.stdout


def last_line(proc):
    return [line for line in proc.stdout.strip().splitlines() if line.strip()][-1]


def tree(folder: Path):
    """{relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prepare_corpus_bad_inputs_stop_before_writing(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("some words here and there\n" * 40)
    cases = [
        ([tmp_path / "missing.txt"], "input", "does not exist"),
        ([text, "--valid-lines", "-3"], "--valid-lines", "must be at least 1"),
        ([text, "--valid-lines", "40"], "--valid-lines 40", "pass a smaller --valid-lines"),
        ([text, "--vocab-size", "5000", "--valid-lines", "5"], "--vocab-size 5000", "pass a smaller --vocab-size"),
    ]
    for args, names, fix in cases:
        proc = run_script("prepare_corpus.py", *args, "--out", tmp_path / "c")
        assert proc.returncode != 0, args
        assert names in last_line(proc) and fix in last_line(proc), proc.stdout[-2000:]
        assert "Traceback" not in proc.stdout, proc.stdout[-2000:]
        assert not (tmp_path / "c").exists(), "a failed run leaves no partial folder"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"], "no temporary folder left behind"


def test_prepare_corpus_replaces_only_its_own_output(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("".join(f"line {i} of some words about whales and ships\n" for i in range(60)))
    # A folder of the user's own is never replaced, with or without --force.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for force in ([], ["--force"]):
        proc = run_script("prepare_corpus.py", text, "--out", mine, "--vocab-size", "40", "--valid-lines", "5", *force)
        assert proc.returncode != 0 and ("pass --force" in proc.stdout if not force else "made" in last_line(proc))
    assert tree(mine) == {"notes.txt": b"keep me"}
    # Its own output: replaced with --force; a failing --force run leaves it as it was.
    out = tmp_path / "out"
    assert run_script("prepare_corpus.py", text, "--out", out, "--vocab-size", "40", "--valid-lines", "5").returncode == 0
    before = tree(out)
    assert "spm.model" in before and "data-bin/train.bin" in before
    proc = run_script("prepare_corpus.py", text, "--out", out, "--vocab-size", "4000", "--valid-lines", "5", "--force")
    assert proc.returncode != 0 and "pass a smaller --vocab-size" in last_line(proc)
    assert tree(out) == before
    proc = run_script("prepare_corpus.py", text, "--out", out, "--vocab-size", "38", "--valid-lines", "5", "--force")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert tree(out)["spm.model"] != before["spm.model"]
    # An input inside --out would be deleted by replacing it: refused.
    inner = out / "corpus.txt"
    inner.write_text(text.read_text())
    proc = run_script("prepare_corpus.py", inner, "--out", out, "--vocab-size", "40", "--valid-lines", "5", "--force")
    assert proc.returncode != 0 and "lies inside the output folder" in last_line(proc)
    assert inner.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out", "t.txt"]


def test_prepare_classification_never_overwrites_its_inputs(tiny_corpus, tmp_path):
    task = write_task(tmp_path / "task", {"train": ["sentence\tlabel", "a b\tx", "c d\ty"],
                                          "dev": ["sentence\tlabel", "e f\tx"]})
    before = tree(task)
    for out in (task, tmp_path):
        proc = run_script("prepare_classification.py", task, "--corpus-dir", tiny_corpus, "--out", out, "--force")
        assert proc.returncode != 0 and "lies inside the output folder" in last_line(proc), proc.stdout
    assert tree(task) == before


def test_tsv_encodings(tiny_corpus, tmp_path):
    """A byte-order mark is not part of the header; text that is not UTF-8 is named."""
    task = tmp_path / "task"
    task.mkdir()
    (task / "train.tsv").write_bytes("\ufeffsentence\tlabel\na b\tx\nc d\ty\n".encode("utf-8"))
    (task / "dev.tsv").write_bytes("sentence\tlabel\nthe caf\u00e9\tx\n".encode("latin-1"))
    proc = run_script("prepare_classification.py", task, "--corpus-dir", tiny_corpus, "--out", tmp_path / "o")
    assert proc.returncode != 0 and "dev.tsv is not UTF-8 text" in last_line(proc) and "iconv" in last_line(proc)
    (task / "dev.tsv").write_text("sentence\tlabel\nthe caf\u00e9\tx\n", encoding="utf-8")
    proc = run_script("prepare_classification.py", task, "--corpus-dir", tiny_corpus, "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stdout
    assert json.loads((tmp_path / "o" / "meta.json").read_text())["text_columns"] == ["sentence"]


def test_plot_curves_from_a_log_file_and_its_errors(tmp_path):
    pytest.importorskip("matplotlib")
    log = tmp_path / "train.log"
    lines = []
    for step in (5, 10, 15):
        lines.append(
            f"2026-01-01 00:00:00 | INFO | train_inner | epoch 001:  {step} / 99 loss=30.1, gen_loss={7 - step / 10}, "
            f"gen_loss_d1=7.1, gen_loss_d2=7.0, rtd_loss=0.5, replace_rate=0.99, rtd_acc_replaced=0.1, "
            f"rtd_acc_original=0.9, mix_w_d1=0.3, mix_w_d2=0.7, num_updates={step}, lr=0.001")
    log.write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(SCRIPTS))
    try:
        import plot_curves
    finally:
        sys.path.pop(0)
    series = plot_curves.read_log_file(str(log), "train_inner")
    assert series["gen_loss"] == [(5, 6.5), (10, 6.0), (15, 5.5)]
    assert series["mix_w_d2"][0] == (5, 0.7)
    generator_panel = plot_curves.PANELS[0][1]
    assert plot_curves.panel_tags(series, generator_panel) == ["gen_loss_d1", "gen_loss_d2"]  # not their sum
    assert plot_curves.panel_tags({"gen_loss": [], "rtd_loss": []}, generator_panel) == ["gen_loss"]
    out = tmp_path / "curves.png"
    proc = run_script("plot_curves.py", log, "--out", out)
    assert proc.returncode == 0, proc.stdout
    assert "mixture weight per depth" in proc.stdout and out.read_bytes()[:4] == b"\x89PNG"

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_script("plot_curves.py", empty, "--out", tmp_path / "x.png")
    assert proc.returncode != 0 and "no tensorboard event files" in proc.stdout
    not_fairseq = tmp_path / "other.log"
    not_fairseq.write_text("hello\n")
    proc = run_script("plot_curves.py", not_fairseq, "--out", tmp_path / "x.png")
    assert proc.returncode != 0 and "--log-format simple" in proc.stdout
