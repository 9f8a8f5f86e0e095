"""Export to HuggingFace transformers: exact models, exact tokenizer, refusals, fine-tuning."""

import csv
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here loads from local directories
transformers = pytest.importorskip("transformers")

from conftest import CORPUS, ONE_THREAD, ROOT, fairseq_train  # noqa: E402

from amos_fairseq.export import (  # noqa: E402  (hides a broken torchaudio before model imports)
    ExportError,
    export_pretrained,
    export_tokenizer,
    fairseq_ids,
    load_pretraining_model,
)

EXPORT = ROOT / "scripts" / "export_hf.py"
ATOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """Every test of this module runs torch on one thread."""


def corpus_lines(start, stop):
    with lzma.open(CORPUS, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for i, line in enumerate(f) if start <= i < stop]


# Lines with characters the 800-piece sentencepiece model has never seen (accents, Greek,
# CJK, emoji, symbols), unusual whitespace, and edge cases of the pipeline.
OOV_LINES = [
    "Café au lait, naïve façade, jalapeño — “quoted” ‘text’ … ½ × 3² ≥ 9.",
    "Ωμέγα and δέλτα; Москва; 日本語のテキスト; 한국어; עברית; العربية 😀🚢🐋",
    "The whale ∑∫∂ ≈ ∞ and ¿qué? ¡sí! ß Æ Ø Å œ ŀ",
    "  leading   and   repeated   spaces  ",
    "\ttabs\tinside\tthe line\t",
    "no\u00a0break\u3000ideographic\u2009thin spaces",
    "zero\u200bwidth and soft\u00adhyphen and control\x1cchars",
    "",
    "▁ a literal meta symbol ▁▁ and ▁the",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ ①②③ ﬁ ligature",
]


@pytest.fixture(scope="module")
def checkpoint(data_bin, tmp_path_factory):
    """A real pretraining checkpoint: 5 updates of electra_tiny with a 32-dim token table
    (so the discriminator, width 64, has the embedding projection)."""
    save = tmp_path_factory.mktemp("export_ckpt")
    fairseq_train(
        data_bin, save, "--arch", "electra_tiny", "--criterion", "electra", "--token-embed-dim", "32",
        "--max-update", "5", "--total-num-update", "5", env=ONE_THREAD,
    )
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def exported(checkpoint, data_bin, tmp_path_factory):
    """The checkpoint exported once through the script (the round trip users run)."""
    out = tmp_path_factory.mktemp("hf") / "model"
    start = time.time()
    proc = subprocess.run(
        [sys.executable, str(EXPORT), str(checkpoint), "--out", str(out), "--data", str(data_bin)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
        env={**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD},
    )
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stdout[-4000:]
    return out, proc.stdout, elapsed


@pytest.fixture(scope="module")
def fairseq_model(checkpoint, data_bin):
    model, args, task = load_pretraining_model(str(checkpoint), str(data_bin))
    return model, task.source_dictionary


@pytest.fixture(scope="module")
def spm_processor(tiny_corpus):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(tiny_corpus / "spm.model"))


def test_script_round_trip(exported):
    out, log, elapsed = exported
    # Interpreter start-up and imports of fairseq and transformers dominate.
    assert elapsed < 90, f"export took {elapsed:.1f}s"
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "dict.txt",
                 "sentencepiece.bpe.model", "generator/config.json", "generator/model.safetensors"):
        assert (out / name).is_file(), name
    verified = dict(re.findall(r"\[verify\] max \|hf - fairseq\| (\w+): (\S+)", log))
    assert set(verified) == {"discriminator_hidden", "discriminator_rtd_logits", "generator_hidden",
                             "generator_mlm_logits"}, log
    assert all(float(v) <= ATOL for v in verified.values()), verified
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["ElectraForPreTraining"]
    # ELECTRA-shaped: stock transformers classes, no modeling code to trust
    assert "auto_map" not in config and not list(out.rglob("*.py"))
    assert config["layer_norm_eps"] == 1e-5 and config["hidden_act"] == "gelu"
    assert (config["embedding_size"], config["hidden_size"], config["num_hidden_layers"]) == (32, 64, 2)
    generator = json.loads((out / "generator" / "config.json").read_text())
    assert generator["architectures"] == ["ElectraForMaskedLM"]
    assert (generator["hidden_size"], generator["num_hidden_layers"]) == (32, 2)
    assert config["vocab_size"] == generator["vocab_size"] == 801  # 4 specials + 796 pieces + <mask>


def test_force_replaces_only_an_earlier_export(exported, checkpoint, data_bin, tmp_path):
    out, _, _ = exported
    files = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    for path in files:  # the temporary build folder's name never reaches the export
        if path.suffix in (".json", ".txt"):
            assert ".partial-" not in (out / path).read_text(encoding="utf-8"), path

    def export(target, *extra):
        return subprocess.run(
            [sys.executable, str(EXPORT), str(checkpoint), "--out", str(target), "--data", str(data_bin),
             "--no-verify", "--no-generator", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
            env={**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD},
        )

    again = tmp_path / "again"
    shutil.copytree(out, again)
    proc = export(again)
    assert proc.returncode != 0 and "pass --force" in proc.stdout.strip().splitlines()[-1]
    proc = export(again, "--force")
    assert proc.returncode == 0, proc.stdout[-3000:]
    # The generator of the earlier export is gone, not left stale beside the new files.
    assert not (again / "generator").exists() and (again / "config.json").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    proc = export(mine, "--force")
    assert proc.returncode != 0 and "replaces only a folder that export_hf made" in proc.stdout
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    proc = subprocess.run([sys.executable, str(EXPORT), str(truncated), "--out", str(tmp_path / "t")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT))
    assert proc.returncode != 0 and "is not a complete checkpoint" in proc.stdout.strip().splitlines()[-1]
    assert not (tmp_path / "t").exists()


def test_discriminator_matches_fairseq_on_real_sentences(exported, fairseq_model):
    from transformers import AutoTokenizer, ElectraForPreTraining

    out, _, _ = exported
    model, dictionary = fairseq_model
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    hf = ElectraForPreTraining.from_pretrained(out, local_files_only=True).eval()
    assert hasattr(hf.electra, "embeddings_project")  # 32 -> 64
    sentences = corpus_lines(5000, 5024) + OOV_LINES[:3]
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=64, return_tensors="pt")
    ids, real = batch["input_ids"], batch["attention_mask"].bool()
    assert ids.size(1) > 20 and (~real).any(), "want long, right-padded rows"
    assert torch.equal(real, ids.ne(dictionary.pad()))
    with torch.no_grad():
        out_hf = hf(**batch, output_hidden_states=True)
        features = model.extract_features(ids)
        rtd = model.rtd_head(features)
    hidden = out_hf.hidden_states[-1]
    assert features[real].std() > 0.5  # post-LN features, not a degenerate comparison
    assert (hidden - features)[real].abs().max() < ATOL
    assert (out_hf.logits - rtd)[real].abs().max() < ATOL
    # The same sentences alone (no padding in the batch) give the same features.
    single = tokenizer(sentences[0], return_tensors="pt")
    with torch.no_grad():
        alone = hf(**single, output_hidden_states=True).hidden_states[-1][0]
    n = single["input_ids"].size(1)
    assert (alone - hidden[0, :n]).abs().max() < ATOL


def test_generator_matches_fairseq(exported, fairseq_model):
    from transformers import AutoTokenizer, ElectraForMaskedLM

    from amos_fairseq.export.electra import fairseq_generator

    out, _, _ = exported
    model, dictionary = fairseq_model
    tokenizer = AutoTokenizer.from_pretrained(out / "generator", local_files_only=True)
    hf = ElectraForMaskedLM.from_pretrained(out / "generator", local_files_only=True).eval()
    assert hf.generator_lm_head.weight.data_ptr() == hf.electra.embeddings.word_embeddings.weight.data_ptr()
    batch = tokenizer(corpus_lines(6000, 6016), padding=True, return_tensors="pt")
    ids, real = batch["input_ids"].clone(), batch["attention_mask"].bool()
    g = torch.Generator().manual_seed(0)
    masked = (torch.rand(ids.shape, generator=g) < 0.15) & ids.ge(dictionary.nspecial)
    ids[masked] = tokenizer.mask_token_id
    assert tokenizer.mask_token_id == dictionary.index("<mask>") == len(dictionary) - 1
    with torch.no_grad():
        logits = hf(input_ids=ids, attention_mask=batch["attention_mask"]).logits
        _, reference = fairseq_generator(model, ids, depth=2)
    assert (logits - reference)[real].abs().max() < ATOL


def test_tokenizer_gives_fairseq_ids(exported, tiny_corpus, spm_processor):
    from fairseq.data import Dictionary
    from transformers import AutoTokenizer

    out, _, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    dictionary = Dictionary.load(str(tiny_corpus / "dict.txt"))
    dictionary.add_symbol("<mask>")
    lines = corpus_lines(3000, 8000) + OOV_LINES  # 5000 real lines the tokenizer was not trained on
    got = tokenizer(lines)["input_ids"]
    mismatches = [(line, g, fairseq_ids(line, spm_processor, dictionary))
                  for line, g in zip(lines, got) if g != fairseq_ids(line, spm_processor, dictionary)]
    assert not mismatches, mismatches[:3]
    unk = dictionary.unk()
    with_unk = [line for line, g in zip(lines, got) if unk in g]
    assert sum(line in OOV_LINES for line in with_unk) >= 4, "the OOV lines must exercise <unk>"
    assert got[lines.index("")] == [0, 2]
    # Pairs follow fairseq's sentence_prediction with </s> as separator.
    pair = tokenizer("first part", "second part")["input_ids"]
    a, b = fairseq_ids("first part", spm_processor, dictionary), fairseq_ids("second part", spm_processor, dictionary)
    assert pair == a + [dictionary.eos()] + b[1:]


def test_tokenizer_reproduces_the_binarized_corpus(exported, tiny_corpus):
    """Ground truth from fairseq-preprocess itself: every line of the prepared slice is a
    sequence of data-bin's train or valid split (which hold it without the task's <s>)."""
    from fairseq.data import Dictionary, data_utils
    from transformers import AutoTokenizer

    out, _, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    dictionary = Dictionary.load(str(tiny_corpus / "dict.txt"))
    binarized = set()
    for split in ("train", "valid"):
        data = data_utils.load_indexed_dataset(str(tiny_corpus / "data-bin" / split), dictionary)
        binarized.update(tuple(data[i].tolist()) for i in range(len(data)))
    lines = [line for line in corpus_lines(0, 3000) if line.strip()]
    encoded = tokenizer(lines)["input_ids"]
    assert all(ids[0] == dictionary.bos() for ids in encoded)
    missing = [line for line, ids in zip(lines, encoded) if tuple(ids[1:]) not in binarized]
    assert not missing, missing[:3]


def test_pieces_missing_from_the_dictionary_become_unk(tiny_corpus, spm_processor, tmp_path):
    """A dict.txt without some sentencepiece pieces (e.g. made by fairseq-preprocess with a
    threshold): those pieces must become <unk>, exactly as fairseq-preprocess maps them."""
    from fairseq.data import Dictionary

    kept = tmp_path / "dict.txt"
    with open(tiny_corpus / "dict.txt", encoding="utf-8") as src, open(kept, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i % 5 != 1:  # drop every fifth piece, frequent ones included
                dst.write(line)
    dictionary = Dictionary.load(str(kept))
    dictionary.add_symbol("<mask>")
    tokenizer = export_tokenizer(str(tiny_corpus / "spm.model"), dictionary, str(tmp_path / "tok"), max_length=512)
    lines = corpus_lines(8000, 9000)
    got = tokenizer(lines)["input_ids"]
    assert got == [fairseq_ids(line, spm_processor, dictionary) for line in lines]
    full = Dictionary.load(str(tiny_corpus / "dict.txt"))
    full_unk = sum(fairseq_ids(line, spm_processor, full).count(3) for line in lines)
    assert sum(ids.count(dictionary.unk()) for ids in got) > full_unk + 100
    assert len(tokenizer) == len(dictionary)


def test_sequence_classification_fine_tunes(exported):
    from transformers import AutoTokenizer, ElectraForSequenceClassification

    out, _, _ = exported
    with open(ROOT / "examples" / "data" / "source_id" / "train.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:96]
    labels = sorted({r["label"] for r in rows})
    assert len(labels) == 3
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    torch.manual_seed(0)
    model = ElectraForSequenceClassification.from_pretrained(out, num_labels=3, local_files_only=True)
    batch = tokenizer([r["sentence"] for r in rows], padding=True, truncation=True, max_length=64,
                      return_tensors="pt")
    y = torch.tensor([labels.index(r["label"]) for r in rows])

    def full_loss():
        model.eval()
        with torch.no_grad():
            return model(**batch, labels=y).loss.item()

    before = full_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(80):  # 40 left the loss near the bar (0.56-0.85 of 1.10 across seeds)
        model.train()
        idx = torch.arange(16) + (step * 16) % 96
        loss = model(input_ids=batch["input_ids"][idx], attention_mask=batch["attention_mask"][idx],
                     labels=y[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = full_loss()
    assert after < 0.7 * before, (before, after)


def _save_like_fairseq(model, cfg, path):
    """What fairseq's checkpoint_utils.save_state writes, for a model built in-process."""
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    checkpoint_utils.torch_persistent_save({
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "optimizer_history": [{"criterion_name": "ElectraCriterion", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "extra_state": {},
    }, str(path))


def test_amos_generator_of_any_trained_depth(data_bin, tmp_path):
    """amos_tiny with absolute positions: three generators (depths 1,2,3) share layers; the
    depth-2 one exports as a 2-layer ElectraForMaskedLM with the shared head."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from transformers import ElectraForMaskedLM

    from amos_fairseq.export.electra import fairseq_generator

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data_bin), "--user-dir", str(ROOT / "amos_fairseq"), "--task", "amos_rtd", "--arch", "amos_tiny",
        "--criterion", "electra", "--rel-pos-bins", "0", "--tokens-per-sample", "64", "--seed", "3",
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(3)
    model = task.build_model(cfg.model)
    assert model.generator.depths == [1, 2, 3]
    path = tmp_path / "amos.pt"
    _save_like_fairseq(model, cfg, path)

    with pytest.raises(ExportError, match="--generator-depth 4"):
        export_pretrained(str(path), str(tmp_path / "bad"), data=str(data_bin), generator_depth=4)
    result = export_pretrained(str(path), str(tmp_path / "out"), data=str(data_bin), generator_depth=2)
    assert result.generator_depth == 2 and max(result.max_abs_diff.values()) <= ATOL

    hf = ElectraForMaskedLM.from_pretrained(result.generator_dir, local_files_only=True).eval()
    assert hf.config.num_hidden_layers == 2
    tokens = torch.randint(4, len(task.source_dictionary) - 1, (2, 30), generator=torch.Generator().manual_seed(0))
    tokens[:, 0], tokens[:, -1] = 0, 2
    with torch.no_grad():
        logits = hf(input_ids=tokens).logits
        _, depth2 = fairseq_generator(model.eval(), tokens, depth=2)
        _, depth3 = fairseq_generator(model, tokens, depth=3)
    assert (logits - depth2).abs().max() < ATOL
    assert (logits - depth3).abs().max() > 1e-2  # a different generator: the depth matters
