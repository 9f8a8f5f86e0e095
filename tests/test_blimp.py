"""Zero-shot BLiMP (scripts/blimp.py, amos_fairseq/evaluation/blimp.py): the tie rule, the
RTD sign convention on hand-set weights, the PLL against an exported generator and against
masking by hand, the unigram floor by hand, aggregation, and every refusal through the CLI."""

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ONE_THREAD, ROOT, build_model, fairseq_train

from amos_fairseq.evaluation import blimp as lib  # noqa: E402

SCRIPT = ROOT / "scripts" / "blimp.py"
SHARED_BLIMP = ROOT.parent / "shared" / "data" / "blimp"
_spec = importlib.util.spec_from_file_location("blimp_script", SCRIPT)
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """Every test of this module runs torch on one thread."""


def pair(good, bad, uid, term="phenomenon_x", **extra):
    return dict(sentence_good=good, sentence_bad=bad, linguistics_term=term, UID=uid, **extra)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD})


@pytest.fixture(scope="module")
def checkpoint(data_bin, tmp_path_factory):
    """A real AMOS pretraining checkpoint with three generator depths (1, 2, 3)."""
    save = tmp_path_factory.mktemp("blimp_ckpt")
    fairseq_train(data_bin, save, "--arch", "amos_tiny", "--criterion", "amos", "--max-update", "3",
                  "--total-num-update", "3", env=ONE_THREAD)
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def loaded(checkpoint, tiny_corpus):
    model, task, cfg = lib.load_pretraining_model(str(checkpoint), str(tiny_corpus))
    _, spm_model = lib.corpus_paths(str(tiny_corpus))
    return model, task, lib.FairseqEncoder(spm_model, task.source_dictionary)


SENTENCES = ["The cats sleep.", "The cat sleeps.", "Whom did the dog chase?",
             "These children have eaten the bread that was on the table near the window."]


# ---------------------------------------------------------------------- the tie rule, aggregation


def test_a_constant_scorer_lands_at_exactly_half(tmp_path):
    rows = [pair(f"good {i}", f"bad {i}", "p1") for i in range(3)] + [pair("good", "bad", "p2", "phenomenon_y")]
    pairs = cli.read_blimp([write_jsonl(tmp_path / "set.jsonl", rows)])
    n = len(pairs)
    report = cli.aggregate(pairs, {"constant": cli.pair_outcomes([-3.25] * n, [-3.25] * n)})
    assert report["overall"]["accuracy"]["constant"] == 0.5
    assert all(p["accuracy"]["constant"] == 0.5 for p in report["paradigms"].values())
    assert all(p["accuracy"]["constant"] == 0.5 for p in report["phenomena"].values())
    assert cli.pair_outcomes([1.0, 0.0, 2.0], [0.0, 1.0, 2.0]) == [1.0, 0.0, 0.5]
    # Identical token sequences are scored once, so two sentences that encode alike tie exactly.
    distinct, where = lib.unique_sequences([[0, 5, 6, 2], [0, 7, 2], [0, 5, 6, 2]])
    assert len(distinct) == 2 and where[0] == where[2] != where[1]


def test_aggregation_per_paradigm_phenomenon_and_overall(tmp_path):
    # Two files; paradigm a (4 pairs) and b (2 pairs) are phenomenon x, c (1 pair) is y.
    first = write_jsonl(tmp_path / "one.jsonl", [pair("a1+", "a1-", "a"), pair("b1+", "b1-", "b"),
                                                  pair("a2+", "a2-", "a"), pair("a3+", "a3-", "a"),
                                                  pair("b2+", "b2-", "b"), pair("a4+", "a4-", "a")])
    second = write_jsonl(tmp_path / "two.jsonl", [pair("c1+", "c1-", "c", "phenomenon_y")])
    pairs = cli.read_blimp([first, second])
    assert [p["uid"] for p in pairs] == ["a", "b", "a", "a", "b", "a", "c"]
    # a: right, right, wrong, tie -> 0.625; b: right, wrong -> 0.5; c: right -> 1
    wanted = {"a1": 1, "a2": 1, "a3": 0, "a4": 0.5, "b1": 1, "b2": 0, "c1": 1}
    scores = {1: (1.0, 0.0), 0: (0.0, 1.0), 0.5: (0.5, 0.5)}  # outcome -> (good, bad) scores
    good, bad = zip(*(scores[wanted[p["good"][:2]]] for p in pairs))
    report = cli.aggregate(pairs, {"s": cli.pair_outcomes(good, bad)})
    paradigms = {uid: (row["pairs"], row["accuracy"]["s"]) for uid, row in report["paradigms"].items()}
    assert paradigms == {"a": (4, 0.625), "b": (2, 0.5), "c": (1, 1.0)}
    x, y = report["phenomena"]["phenomenon_x"], report["phenomena"]["phenomenon_y"]
    assert (x["paradigms"], x["pairs"]) == (2, 6)
    assert x["accuracy"]["s"] == pytest.approx((0.625 + 0.5) / 2)  # the mean of its paradigms, not of pairs
    assert y["accuracy"]["s"] == 1.0
    overall = report["overall"]
    assert (overall["paradigms"], overall["pairs"]) == (3, 7)
    assert overall["accuracy"]["s"] == pytest.approx((0.625 + 0.5 + 1.0) / 3)
    table = cli.format_table(report, ["s"])
    assert "3 paradigms, 7 pairs" in table and "62.5" in table and "56.2" in table
    # --max-pairs keeps the first N of each paradigm in file order
    assert [p["good"] for p in cli.read_blimp([first, second], max_pairs=2)] == ["a1+", "b1+", "a2+", "b2+", "c1+"]
    clash = write_jsonl(tmp_path / "clash.jsonl", [pair("x", "y", "a", "phenomenon_z")])
    with pytest.raises(cli.InputError, match="each UID belongs to one linguistics_term"):
        cli.read_blimp([first, clash])


# ---------------------------------------------------------------------- the discriminator


def hand_set_discriminator(flagged: int):
    """electra_tiny whose RTD logit is large for token ``flagged`` only: the residual branches
    and positions are zeroed, so each feature is the normalised token embedding; only the
    flagged token's embedding has a component along dimension 0, which the head reads."""
    model, task = build_model("electra_tiny", vocab_words=20)
    model.eval()
    with torch.no_grad():
        d = model.discriminator
        d.embeddings.position_embeddings.weight.zero_()
        for layer in d.stack.layers:
            for linear in (layer.out_proj, layer.fc2):
                linear.weight.zero_()
                linear.bias.zero_()
        table = model.token_embeddings.weight
        table[:, 0] = 0.0
        table[flagged] = 0.0
        table[flagged, 0] = 1.0  # normalised: about +7.9 on dimension 0
        head = model.rtd_head
        head.dense.weight.copy_(torch.eye(head.dense.weight.size(0)))
        head.dense.bias.zero_()
        head.out.weight.zero_()
        head.out.weight[0, 0] = 4.0
        head.out.bias.fill_(-8.0)
    return model, task


def test_discriminator_prefers_the_sentence_without_the_flagged_token():
    flagged = 10
    model, task = hand_set_discriminator(flagged)
    d = task.source_dictionary
    good = [d.bos(), 5, 6, 7, 8, d.eos()]
    bad = [d.bos(), 5, flagged, 7, 8, d.eos()]
    longer = [d.bos()] + [5, 6, 7, 8, 9, 11] * 3 + [d.eos()]  # padding in the same batch
    with torch.no_grad():
        logits = model.rtd_head(model.extract_features(torch.tensor([bad])))[0]
    assert logits[2] > 20 and (logits[[1, 3, 4]] < -5).all()  # the hand-set head flags one token
    scores = lib.discriminator_scores(model, [good, bad, longer])
    assert scores[0] > -0.01  # every piece looks original
    # log P(original) = logsigmoid(-logit): the flagged piece costs about its logit
    assert scores[1] == pytest.approx(scores[0] + float(torch.nn.functional.logsigmoid(-logits[2])), abs=1e-3)
    assert scores[1] < -20
    assert cli.pair_outcomes([scores[0]], [scores[1]]) == [1.0]
    alone = lib.discriminator_scores(model, [bad])
    assert alone[0] == pytest.approx(scores[1], abs=1e-4)  # the padded batch changes nothing


def test_sign_convention_and_that_only_pieces_count():
    """Every logit +5 ("replaced"): each piece adds logsigmoid(-5) = -5.0067; <s> and </s> add nothing."""
    model, task = build_model("electra_tiny", vocab_words=20)
    model.eval()
    with torch.no_grad():
        model.rtd_head.out.weight.zero_()
        model.rtd_head.out.bias.fill_(5.0)
    d = task.source_dictionary
    sequences = [[d.bos(), 5, 6, d.eos()], [d.bos(), 5, 6, 7, 8, 9, d.eos()]]
    scores = lib.discriminator_scores(model, sequences)
    per_piece = math.log(1 / (1 + math.exp(5.0)))
    assert scores == pytest.approx([2 * per_piece, 5 * per_piece], abs=1e-9)


# ---------------------------------------------------------------------- the generator


def test_pll_is_each_piece_masked_in_turn_for_every_depth(loaded, tiny_corpus):
    import sentencepiece as spm

    from amos_fairseq.export import fairseq_ids

    model, task, encode = loaded
    ids = encode(SENTENCES)
    processor = spm.SentencePieceProcessor(model_file=str(tiny_corpus / "spm.model"))
    assert ids == [fairseq_ids(s, processor, task.source_dictionary) for s in SENTENCES]
    scores = lib.pll_scores(lib.FairseqGeneratorLogProbs(model), ids, task.mask_idx, batch_tokens=64)
    assert list(scores) == ["generator d1", "generator d2", "generator d3"]
    sentence = ids[2]
    for depth in (1, 3):
        total = 0.0
        with torch.no_grad():
            for p in range(1, len(sentence) - 1):
                masked = torch.tensor([sentence])
                masked[0, p] = task.mask_idx
                _, (hidden,) = model.generator.encoder(masked, collect={depth})
                total += model.generator.lm_head(hidden)[0, p].log_softmax(-1)[sentence[p]].item()
        assert scores[f"generator d{depth}"][2] == pytest.approx(total, abs=1e-4)


def test_exported_generator_gives_the_same_pll(checkpoint, data_bin, loaded, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from amos_fairseq.export import export_pretrained

    model, task, encode = loaded
    result = export_pretrained(str(checkpoint), str(tmp_path / "hf"), data=str(data_bin))
    assert result.generator_depth == 3
    hf = lib.load_hf_generator(str(tmp_path / "hf"))  # DIR: its generator/ is found
    hf_ids = lib.HFEncoder(hf["tokenizer"])(SENTENCES)
    ids = encode(SENTENCES)
    assert hf_ids == ids and hf["mask"] == task.mask_idx
    theirs = lib.pll_scores(lib.HFMaskedLMLogProbs(hf["model"], "hf"), hf_ids, hf["mask"], batch_tokens=64)["hf"]
    ours = lib.pll_scores(lib.FairseqGeneratorLogProbs(model), ids, task.mask_idx)["generator d3"]
    assert np.all(ours < 0)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4)
    shutil.rmtree(tmp_path / "hf" / "generator")  # left: the discriminator, which is no masked LM
    with pytest.raises(lib.BlimpError, match="not a masked LM"):
        lib.load_hf_generator(str(tmp_path / "hf"))


# ---------------------------------------------------------------------- the unigram floor


def test_unigram_floor_by_hand(tmp_path):
    from fairseq.data import Dictionary, indexed_dataset

    data_bin = tmp_path / "data-bin"
    data_bin.mkdir()
    # dict.txt's counts are placeholders (prepare_corpus.py writes descending ranks): ignored
    (data_bin / "dict.txt").write_text("a 1\nb 1000\nc 5\nd 99\n", encoding="utf-8")
    d = Dictionary.load(str(data_bin / "dict.txt"))
    a, b, c, dd = (d.index(s) for s in "abcd")
    builder = indexed_dataset.make_builder(str(data_bin / "train.bin"), impl="mmap", vocab_size=len(d))
    for sentence in ([a, a, b, d.eos()], [a, c, d.unk(), d.eos()]):
        builder.add_item(torch.IntTensor(sentence))
    builder.finalize(str(data_bin / "train.idx"))
    d.add_symbol("<mask>")
    counts = lib.token_counts(str(data_bin), d)
    assert counts.tolist() == [0, 0, 2, 1, 3, 1, 1, 0, 0]  # <s> <pad> </s> <unk> a b c d <mask>
    log_p = lib.unigram_log_probs(counts, d)
    # add-one over <unk> a b c d: counts 1+1, 3+1, 1+1, 1+1, 0+1 -> total 11
    expected = {d.unk(): 2 / 11, a: 4 / 11, b: 2 / 11, c: 2 / 11, dd: 1 / 11}
    for token, p in expected.items():
        assert log_p[token] == pytest.approx(math.log(p))
    scores = lib.unigram_scores(log_p, [[d.bos(), a, dd, d.eos()], [d.bos(), b, b, b, d.eos()]])
    assert scores == pytest.approx([math.log(4 / 11) + math.log(1 / 11), 3 * math.log(2 / 11)])


# ---------------------------------------------------------------------- the command line


def test_command_line_table_and_json(checkpoint, tiny_corpus, tmp_path):
    blimp = tmp_path / "blimp"
    blimp.mkdir()
    write_jsonl(blimp / "agreement.jsonl", [
        pair("The cat sleeps.", "The cat sleep.", "agreement_1", "agreement"),
        pair("The dogs bark.", "The dogs barks.", "agreement_1", "agreement"),
        pair("These dogs bark.", "This dogs bark.", "agreement_1", "agreement"),
    ])
    # a paradigm whose two sentences are the same: every scorer must land at exactly 50%
    write_jsonl(blimp / "same.jsonl", [pair("A whale.", "A whale.", "identical", "control"),
                                       pair("The sea is wide.", "The sea is wide.", "identical", "control")])
    (blimp / "notes.txt").write_text("not read: only .jsonl files of a folder are")
    out = tmp_path / "result.json"
    proc = run_cli(checkpoint, "--corpus", tiny_corpus, "--blimp", blimp, "--generator", "--max-pairs", "2",
                   "--json", out)
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = json.loads(out.read_text())
    names = ["discriminator", "generator d1", "generator d2", "generator d3", "random discriminator",
             "random generator d1", "random generator d2", "random generator d3", "unigram"]
    assert result["scorers"] == names
    assert result["controls"] == names[4:]
    assert result["overall"]["pairs"] == 4 and result["paradigms"]["agreement_1"]["pairs"] == 2
    assert all(result["paradigms"]["identical"]["accuracy"][n] == 0.5 for n in names)
    assert set(result["speed"]) >= {"discriminator", "generator", "unigram"}
    assert "2 paradigms, 4 pairs" in proc.stdout and "  agreement_1" in proc.stdout


@pytest.fixture(scope="module")
def bad_inputs(checkpoint, tiny_corpus, tmp_path_factory):
    """Every refusal, one CLI run each, run side by side: case -> (args, expected text)."""
    tmp = tmp_path_factory.mktemp("bad_blimp")
    good = write_jsonl(tmp / "good.jsonl", [pair("The cat sleeps.", "The cat sleep.", "p")])
    tsv = tmp / "pairs.tsv.jsonl"
    tsv.write_text("sentence_good\tsentence_bad\nThe cat sleeps.\tThe cat sleep.\n", encoding="utf-8")
    missing = tmp / "missing.jsonl"
    rows = [pair("A b.", "B a.", "p"), {"sentence_good": "A b.", "sentence_bad": "B a.", "linguistics_term": "x"}]
    write_jsonl(missing, rows)
    empty = tmp / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    not_checkpoint = tmp / "notes.pt"
    not_checkpoint.write_text("these are my notes, not a checkpoint\n")
    # What sentence_prediction saves: its task in cfg, the pretraining-only tensors dropped.
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["cfg"]["task"]["_name"] = "sentence_prediction"
    state["model"] = {k: v for k, v in state["model"].items()
                      if not k.startswith(("generator.", "rtd_head.", "mixture_scorer."))}
    fine_tuned = tmp / "fine_tuned.pt"
    torch.save(state, fine_tuned)
    other_corpus = tmp / "other_corpus"
    (other_corpus / "data-bin").mkdir(parents=True)
    shutil.copy(tiny_corpus / "spm.model", other_corpus / "spm.model")
    lines = (tiny_corpus / "data-bin" / "dict.txt").read_text(encoding="utf-8").splitlines()[:100]
    (other_corpus / "data-bin" / "dict.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = ["--corpus", tiny_corpus]
    cases = {
        "not json lines": ([checkpoint, *corpus, "--blimp", tsv], f"{tsv}:1 is not JSON"),
        "missing field": ([checkpoint, *corpus, "--blimp", missing], f"{missing}:2 has no field 'UID'"),
        "empty file": ([checkpoint, *corpus, "--blimp", empty], f"{empty} is empty"),
        "not a checkpoint": ([not_checkpoint, *corpus, "--blimp", good],
                             f"CHECKPOINT {not_checkpoint} is not a readable torch checkpoint"),
        "fine-tuned checkpoint": ([fine_tuned, *corpus, "--blimp", good],
                                  "was trained with --task sentence_prediction, not amos_rtd"),
        "dictionary mismatch": ([checkpoint, "--corpus", other_corpus, "--blimp", good],
                                f"has 801 token embeddings but {other_corpus / 'data-bin' / 'dict.txt'} gives 105"),
    }
    running = {name: subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                                      env={**os.environ, **ONE_THREAD})
               for name, (args, _) in cases.items()}
    return {name: (proc.communicate()[0], proc.returncode, cases[name][1]) for name, proc in running.items()}


@pytest.mark.parametrize("case", ["not json lines", "missing field", "empty file", "not a checkpoint",
                                  "fine-tuned checkpoint", "dictionary mismatch"])
def test_bad_input_stops_with_one_line(bad_inputs, case):
    output, returncode, expected = bad_inputs[case]
    assert returncode == 2, output[-2000:]
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output[-2000:]
    assert expected in lines[0]


def test_shared_blimp_subset_reads_as_the_release(tmp_path):
    if not SHARED_BLIMP.is_dir():
        pytest.skip(f"{SHARED_BLIMP} is not here")
    pairs = cli.read_blimp([SHARED_BLIMP], max_pairs=3)
    report = cli.aggregate(pairs, {"c": cli.pair_outcomes([0.0] * len(pairs), [0.0] * len(pairs))})
    n = len(list(SHARED_BLIMP.glob("*.jsonl")))
    assert report["overall"]["paradigms"] == n and report["overall"]["pairs"] == 3 * n
    assert report["overall"]["accuracy"]["c"] == 0.5
