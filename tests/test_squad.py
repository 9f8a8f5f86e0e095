"""SQuAD through the HuggingFace export (scripts/squad.py): the official EM/F1 definitions
and the v2.0 no-answer threshold against hand-worked cases, character offsets from the
exported sentencepiece tokenizer, windows and answer positions, post-processing, and a round
trip: tiny checkpoint -> export -> a few QA training steps -> predictions and EM/F1."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from conftest import ONE_THREAD, ROOT, fairseq_train  # noqa: E402

spec = importlib.util.spec_from_file_location("squad_script", ROOT / "scripts" / "squad.py")
squad = importlib.util.module_from_spec(spec)
spec.loader.exec_module(squad)


# --------------------------------------------------------------------------- metrics by hand

def test_normalisation():
    assert squad.normalize_answer("The  Cat, sat!") == "cat sat"
    assert squad.normalize_answer("An apple a day") == "apple day"
    assert squad.normalize_answer("theatre (Anthem)") == "theatre anthem"  # articles only as words
    assert squad.normalize_answer("U.S.-based") == "usbased"  # punctuation removed, not replaced
    assert squad.normalize_answer("  the  ") == ""


def test_exact_match_and_f1_by_hand():
    assert squad.exact_match("the cat sat on mat", "A cat sat on the mat.") == 1.0
    assert squad.f1("cat sat", "the cat sat down") == pytest.approx(0.8)  # P 1, R 2/3
    assert squad.f1("x x y", "x y y") == pytest.approx(2 / 3)  # bags: x and y once in common
    assert squad.f1("dog", "cat") == 0.0
    assert squad.f1("", "") == 1.0 and squad.f1("x", "") == 0.0 and squad.f1("", "x") == 0.0
    assert squad.exact_match("", "") == 1.0


def example(qid, answers, context="ctx"):
    return {"id": qid, "question": "q", "context": context, "answers": [{"text": a, "answer_start": 0} for a in answers],
            "is_impossible": not answers}


def test_evaluate_takes_the_best_gold_answer_and_counts_missing_as_zero():
    examples = [example("a", ["Denver Broncos", "The Broncos"]), example("b", ["1990s"]), example("c", ["red"])]
    result = squad.evaluate(examples, {"a": "broncos", "b": "the 1990s era"})
    # a: EM 1 (matches "The Broncos"); b: EM 0, F1 2*(1/2*1)/(1/2+1) = 2/3; c: missing, 0
    assert result["exact"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert result["total"] == 3 and result["missing_predictions"] == 1
    assert "HasAns_exact" not in result  # v1.1: every question has an answer


def test_v2_no_answer_scores_and_best_threshold_by_hand():
    examples = [example("q1", ["alpha"]), example("q2", ["beta gamma"]), example("q3", []), example("q4", [])]
    preds = {"q1": "alpha", "q2": "gamma", "q3": "x", "q4": ""}
    result = squad.evaluate(examples, preds)
    # exact: q1 1, q2 0, q3 0, q4 1; f1: q1 1, q2 2/3, q3 0, q4 1
    assert result["exact"] == 50 and result["f1"] == pytest.approx(100 * (2 + 2 / 3) / 4)
    assert (result["HasAns_exact"], result["NoAns_exact"], result["HasAns_total"]) == (50, 50, 2)
    assert result["NoAns_f1"] == 50 and result["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    # Threshold sweep with every question answered (a no-answer question loses 1 when answered):
    # start 2 (all unanswered), q1 (0.1) +1 -> 3, q3 (0.3) -1 -> 2, q2 (0.8) +2/3, q4 (0.9) -1.
    spans = {"q1": "alpha", "q2": "gamma", "q3": "x", "q4": "y"}
    na = {"q1": 0.1, "q2": 0.8, "q3": 0.3, "q4": 0.9}
    best = squad.evaluate(examples, spans, na)
    assert (best["best_exact"], best["best_exact_thresh"]) == (75, 0.1)
    assert (best["best_f1"], best["best_f1_thresh"]) == (75, 0.1)
    # Applied at threshold 0.5: q2 and q4 become no-answer (q2 wrong, q4 right).
    applied = squad.evaluate(examples, spans, na, na_threshold=0.5)
    assert applied["exact"] == 50  # q1 1, q2 0, q3 0, q4 1


# --------------------------------------------------------------------------- a tiny exported model

def pretrain_and_export(data_bin, save, arch, criterion, updates):
    """A tiny pretraining run of ``updates`` updates, exported without its generator -> the
    HF folder."""
    fairseq_train(data_bin, save, "--arch", arch, "--criterion", criterion,
                  "--max-update", str(updates), "--total-num-update", str(updates), env=ONE_THREAD)
    out = save / "hf"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_hf.py"), str(save / "checkpoint_last.pt"),
                           "--out", str(out), "--data", str(data_bin), "--no-generator", "--no-verify"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                          env={**os.environ, **ONE_THREAD})
    assert proc.returncode == 0, proc.stdout[-3000:]
    return out


@pytest.fixture(scope="module")
def exported(data_bin, tmp_path_factory):
    return pretrain_and_export(data_bin, tmp_path_factory.mktemp("squad_ckpt"), "electra_tiny", "electra", 5)


@pytest.fixture(scope="module")
def tokenizer(exported):
    import amos_fairseq.export  # noqa: F401
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(exported, local_files_only=True)


def test_offsets_from_the_sentencepiece_model(tokenizer):
    # The exported tokenizer is sentencepiece-backed ("slow"): no offset mapping from it.
    assert not tokenizer.is_fast
    assert "offset_mapping" not in tokenizer("The whale.", return_offsets_mapping=True)
    text = "The  whale, café ½ in 1851:\tMoby-Dick 😀 ends."
    ids, offsets = squad.token_offsets(tokenizer, text)
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(offsets) == len(ids)
    assert all(0 <= s <= e <= len(text) for s, e in offsets)
    assert all(a[1] <= b[0] for a, b in zip(offsets, offsets[1:]))  # in order, no overlap
    assert all(not text[s:e][:1].isspace() for s, e in offsets)  # no leading whitespace
    pieces = tokenizer.convert_ids_to_tokens(ids)
    # Pieces of plain ASCII text are that text at their offsets (others went through the
    # model's NFKC normalisation: '½' is read as '1⁄2', its span is the '½').
    for piece, (s, e), i in zip(pieces, offsets, ids):
        if text[s:e] and text[s:e].isascii() and i != tokenizer.unk_token_id:
            assert text[s:e] == piece.lstrip("▁"), (piece, text[s:e])
    words = [text[s:e] for s, e in offsets]
    assert "".join(words).replace(" ", "") == "".join(text.split()).replace(" ", "")  # covers the text


def test_windows_and_answer_positions(tokenizer):
    context = " ".join(f"word{i} is here." for i in range(60))
    answer = "word42 is here"
    start = context.index(answer)
    ex = {"id": "x", "question": "Where is word42?", "context": context, "is_impossible": False,
          "answers": [{"text": answer, "answer_start": start}]}
    features = squad.make_features([ex], tokenizer, max_length=64, doc_stride=24, max_query_length=8, training=True)
    assert len(features) > 3 and all(len(f.input_ids) <= 64 for f in features)
    holding = [f for f in features if f.start > 0]
    assert holding, "some window holds the answer"
    for f in holding:
        assert context[f.offsets[f.start][0]:f.offsets[f.end][1]] == answer
        assert f.input_ids[0] == tokenizer.cls_token_id
    assert any(f.start == 0 and f.end == 0 for f in features)  # windows without it point at <s>
    # Consecutive windows start doc_stride tokens apart (so they overlap when room > stride).
    first = [next(o for o in f.offsets if o is not None) for f in features]
    assert all(a[0] < b[0] for a, b in zip(first, first[1:]))
    # Unanswerable questions point at <s> everywhere.
    ex2 = dict(ex, id="y", answers=[], is_impossible=True)
    assert all((f.start, f.end) == (0, 0) for f in squad.make_features([ex2], tokenizer, 64, 24, 8, training=True))


def test_postprocess_spans_length_limit_and_null(tokenizer):
    ex = {"id": "x", "question": "q?", "context": "alpha beta gamma delta", "answers": [], "is_impossible": False}
    (feature,) = squad.make_features([ex], tokenizer, max_length=64)
    context = [p for p, o in enumerate(feature.offsets) if o is not None]
    # words may be several pieces: the span from the first piece of "beta" to the last of "delta"
    beta = next(p for p in context if feature.offsets[p][0] == ex["context"].index("beta"))
    delta = next(p for p in context if feature.offsets[p][1] == len(ex["context"]))
    n = len(feature.input_ids)
    start, end = [0.0] * n, [0.0] * n
    start[beta], end[delta] = 5.0, 5.0
    start[0], end[0] = 1.0, 1.0
    preds, odds, spans = squad.postprocess([ex], [feature], [start], [end])
    assert preds["x"] == "beta gamma delta" and odds["x"] == pytest.approx(2.0 - 10.0)
    # a limit of 1 token excludes the long span; the best one-token span is taken instead
    preds, _, _ = squad.postprocess([ex], [feature], [start], [end], max_answer_length=1)
    assert preds["x"] in {ex["context"][slice(*feature.offsets[p])] for p in (beta, delta)}
    # v2: a null score above the best span's gives no answer, the span stays in best_spans
    start[0], end[0] = 6.0, 6.0
    preds, odds, spans = squad.postprocess([ex], [feature], [start], [end], version_2=True)
    assert preds["x"] == "" and odds["x"] == pytest.approx(2.0) and spans["x"] == "beta gamma delta"
    preds, _, _ = squad.postprocess([ex], [feature], [start], [end], version_2=True, null_threshold=3.0)
    assert preds["x"] == "beta gamma delta"


def squad_file(path, v2, n=12):
    """SQuAD-format questions over shipped sentences: the answer is a phrase of the context."""
    with open(ROOT / "examples" / "data" / "source_id" / "dev.tsv", encoding="utf-8") as f:
        lines = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    data = []
    for i in range(n):
        context = " ".join(lines[3 * i:3 * i + 3])
        words = lines[3 * i + 1].split()
        answer = " ".join(words[1:3])
        qas = [{"id": f"a{i}", "question": f"What comes after {words[0]}?",
                "answers": [{"text": answer, "answer_start": context.index(answer, len(lines[3 * i]))}]}]
        if v2:
            qas[0]["is_impossible"] = False
            qas.append({"id": f"n{i}", "question": "Who wrote it?", "answers": [], "is_impossible": True})
        data.append({"title": str(i), "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "v2.0" if v2 else "1.1", "data": data}), encoding="utf-8")
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_through_the_export(exported, tmp_path, version, monkeypatch, capsys):
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    import torch

    torch.set_num_threads(1)
    data = squad_file(tmp_path / "squad.json", v2=version == 2)
    out = tmp_path / "out"
    squad.main(["train", str(exported), "--train", str(data), "--dev", str(data), "--out", str(out),
                "--version", str(version), "--max-steps", "6", "--batch", "8", "--lr", "1e-3",
                "--max-length", "96", "--doc-stride", "32"])
    result = json.loads((out / "eval.json").read_text())
    examples = squad.load_squad(str(data))
    assert result["total"] == len(examples) and result["missing_predictions"] == 0
    assert 0 <= result["exact"] <= result["f1"] <= 100
    preds = json.loads((out / "predictions.json").read_text())
    assert set(preds) == {ex["id"] for ex in examples}
    contexts = {ex["id"]: ex["context"] for ex in examples}
    assert all(p in contexts[q] for q, p in preds.items())  # spans of the context
    if version == 2:
        assert "best_f1_thresh" in result and "NoAns_total" in result
    run = json.loads((out / "run.json").read_text())
    assert run["history"][-1]["step"] == 6
    # The fine-tuned model predicts the same again, and `eval` agrees with eval.json.
    again = tmp_path / "again"
    squad.main(["predict", str(out / "model"), "--data", str(data), "--out", str(again), "--version", str(version),
                "--max-length", "96", "--doc-stride", "32"])
    assert json.loads((again / "predictions.json").read_text()) == preds
    capsys.readouterr()
    squad.main(["eval", str(data), str(again / "predictions.json")])
    assert json.loads(capsys.readouterr().out)["exact"] == result["exact"]
    # Output folders follow the project's rule: never over a folder the script did not make.
    with pytest.raises(SystemExit) as exit_info:
        squad.main(["predict", str(out / "model"), "--data", str(data), "--out", str(again)])
    assert "pass --force" in str(exit_info.value)


def test_amos_export_fine_tunes_through_its_own_modeling_code(data_bin, tmp_path, monkeypatch):
    """An amos_tiny model (relative position bias) exports with its modeling code and trains
    on SQuAD through the Auto classes with --trust-remote-code."""
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    model = pretrain_and_export(data_bin, tmp_path / "amos_ckpt", "amos_tiny", "amos", 3)
    data = squad_file(tmp_path / "squad.json", v2=False)
    out = tmp_path / "out"
    squad.main(["train", str(model), "--train", str(data), "--dev", str(data), "--out", str(out),
                "--version", "1", "--max-steps", "3", "--batch", "8", "--lr", "1e-3",
                "--max-length", "96", "--doc-stride", "32", "--trust-remote-code"])
    result = json.loads((out / "eval.json").read_text())
    assert result["total"] == len(squad.load_squad(str(data))) and result["missing_predictions"] == 0
    assert json.loads((out / "run.json").read_text())["history"][-1]["step"] == 3


def test_clear_errors(exported, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "abc", "qas": [
        {"id": "1", "question": "q", "answers": [{"text": "xyz", "answer_start": 0}]}]}]}]}))
    with pytest.raises(squad.SquadError, match="answer 'xyz' is not at character 0"):
        squad.load_squad(str(bad))
    bad.write_text(json.dumps({"data": [{"context": "abc"}]}))
    with pytest.raises(squad.SquadError, match="not in SQuAD format"):
        squad.load_squad(str(bad))
    v2 = squad_file(tmp_path / "v2.json", v2=True, n=2)
    with pytest.raises(SystemExit) as exit_info:
        squad.main(["train", str(exported), "--train", str(v2), "--out", str(tmp_path / "o"), "--max-steps", "1"])
    assert "pass --version 2" in str(exit_info.value) and not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as exit_info:
        squad.main(["train", str(exported), "--train", str(v2), "--out", str(tmp_path / "o"), "--version", "2",
                    "--max-length", "4096"])
    assert "exceeds the model's 512 positions" in str(exit_info.value)
