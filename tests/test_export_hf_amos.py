"""Export of models stock ELECTRA cannot hold (relative position bias, pre-LN) as AMOS-ELECTRA:
exact against fairseq, loadable without amos-fairseq, fine-tunable with its task heads."""

import filecmp
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here loads from local directories
transformers = pytest.importorskip("transformers")

from conftest import ONE_THREAD, ROOT, fairseq_train  # noqa: E402
from test_export_hf import OOV_LINES, _save_like_fairseq, corpus_lines  # noqa: E402

from amos_fairseq.export import ExportError, export_pretrained, load_pretraining_model  # noqa: E402
from amos_fairseq.export.amos_electra import MODELING_FILE, MODELING_SOURCE  # noqa: E402
from amos_fairseq.export.electra import fairseq_generator  # noqa: E402

EXPORT = ROOT / "scripts" / "export_hf.py"
EXACT = 1e-5  # float tolerance only; on the CPU the measured difference is 0


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """Every test of this module runs torch on one thread."""


@pytest.fixture(scope="module")
def amos_checkpoint(data_bin, tmp_path_factory):
    """3 updates of amos_tiny: relative position bias (32 buckets), post-LN, generator depths
    1,2,3, the AMOS criterion. The bias starts from the locality prior (--rel-pos-init local):
    from normal(0, 0.02) three updates leave it too small to change the outputs by more than
    ~4e-6, and the comparison could not tell a lost bias from a kept one."""
    save = tmp_path_factory.mktemp("amos_ckpt")
    fairseq_train(data_bin, save, "--arch", "amos_tiny", "--criterion", "amos", "--rel-pos-init", "local",
                  "--max-update", "3", "--total-num-update", "3", env=ONE_THREAD)
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def pre_ln_checkpoint(data_bin, tmp_path_factory):
    """3 updates of a pre-LN amos_tiny with the bias (locality prior, as above) and a 32-dim
    token table (so both networks, width 64, have the embedding projection)."""
    save = tmp_path_factory.mktemp("pre_ln_ckpt")
    fairseq_train(data_bin, save, "--arch", "amos_tiny", "--criterion", "amos", "--encoder-normalize-before",
                  "--token-embed-dim", "32", "--rel-pos-init", "local", "--max-update", "3",
                  "--total-num-update", "3", env=ONE_THREAD)
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def amos_exported(amos_checkpoint, data_bin, tmp_path_factory):
    """amos_checkpoint exported through the script, generator at the default depth."""
    out = tmp_path_factory.mktemp("amos_hf") / "model"
    proc = subprocess.run(
        [sys.executable, str(EXPORT), str(amos_checkpoint), "--out", str(out), "--data", str(data_bin)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
        env={**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD},
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    return out, proc.stdout


def _compare_on_sentences(hf_dir, gen_dir, checkpoint, data_bin, depth):
    """Max |hf - fairseq| on held-out corpus sentences (right-padded batch): discriminator
    hidden states and RTD logits, and the depth-``depth`` generator's hidden states and MLM
    logits with 15% of the tokens masked. Also the hidden states with the relative position
    bias zeroed, to show that the comparison sees the bias."""
    from transformers import AutoTokenizer

    from amos_fairseq.export.hf_modeling_amos import AmosElectraForMaskedLM, AmosElectraForPreTraining

    model, _, task = load_pretraining_model(str(checkpoint), str(data_bin))
    dictionary = task.source_dictionary
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True, trust_remote_code=True)
    batch = tokenizer(corpus_lines(5000, 5016) + OOV_LINES[:3], padding=True, truncation=True, max_length=64,
                      return_tensors="pt")
    ids, real = batch["input_ids"], batch["attention_mask"].bool()
    assert ids.size(1) > 20 and (~real).any(), "want long, right-padded rows"
    diffs = {}
    disc = AmosElectraForPreTraining.from_pretrained(hf_dir, local_files_only=True).eval()
    with torch.no_grad():
        out = disc(**batch, output_hidden_states=True)
        features = model.extract_features(ids)
        rtd = model.rtd_head(features)
        diffs["hidden"] = (out.hidden_states[-1] - features)[real].abs().max().item()
        diffs["rtd_logits"] = (out.logits - rtd)[real].abs().max().item()
        disc.amos.relative_position_bias.bias.weight.zero_()
        without = disc(**batch, output_hidden_states=True).hidden_states[-1]
        diffs["hidden_without_bias"] = (without - features)[real].abs().max().item()

    masked = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(0)) < 0.15) & ids.ge(dictionary.nspecial)
    masked_ids = ids.masked_fill(masked, tokenizer.mask_token_id)
    gen = AmosElectraForMaskedLM.from_pretrained(gen_dir, local_files_only=True).eval()
    assert gen.config.num_hidden_layers == depth
    with torch.no_grad():
        out = gen(input_ids=masked_ids, attention_mask=batch["attention_mask"], output_hidden_states=True)
        hidden, logits = fairseq_generator(model, masked_ids, depth)
        diffs["generator_hidden"] = (out.hidden_states[-1] - hidden)[real].abs().max().item()
        diffs["generator_mlm_logits"] = (out.logits - logits)[real].abs().max().item()
    return diffs


def test_amos_tiny_exports_exactly(amos_exported, amos_checkpoint, data_bin):
    out, log = amos_exported
    config = json.loads((out / "config.json").read_text())
    generator = json.loads((out / "generator" / "config.json").read_text())
    assert config["architectures"] == ["AmosElectraForPreTraining"]
    assert generator["architectures"] == ["AmosElectraForMaskedLM"]
    for cfg, folder in ((config, out), (generator, out / "generator")):
        assert cfg["model_type"] == "amos_electra" and cfg["relative_attention_num_buckets"] == 32
        assert cfg["pre_layer_norm"] is False
        assert cfg["auto_map"]["AutoModel"] == "modeling_amos_electra.AmosElectraModel"
        assert filecmp.cmp(folder / MODELING_FILE, MODELING_SOURCE, shallow=False)
    assert generator["num_hidden_layers"] == 3, "default: the deepest trained depth"
    assert "generator depth 3 of [1, 2, 3]" in log and "trust_remote_code=True" in log
    verified = dict(re.findall(r"\[verify\] max \|hf - fairseq\| (\w+): (\S+)", log))
    assert len(verified) == 4 and all(float(v) <= EXACT for v in verified.values()), verified

    diffs = _compare_on_sentences(out, out / "generator", amos_checkpoint, data_bin, depth=3)
    print("amos_tiny max |hf - fairseq|:", diffs)
    assert diffs.pop("hidden_without_bias") > 1e-2, "the relative position bias must matter"
    assert max(diffs.values()) <= EXACT, diffs


def test_tokenizer_gives_fairseq_ids(amos_exported, amos_checkpoint, data_bin, tiny_corpus):
    """The same tokenizer export as for ELECTRA (tests/test_export_hf.py checks it in depth),
    here loaded from a folder whose config.json needs trust_remote_code."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    from amos_fairseq.export import fairseq_ids

    out, _ = amos_exported
    _, _, task = load_pretraining_model(str(amos_checkpoint), str(data_bin))
    processor = spm.SentencePieceProcessor(model_file=str(tiny_corpus / "spm.model"))
    lines = corpus_lines(5000, 6000) + OOV_LINES
    for folder in (out, out / "generator"):
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=True)
        got = tokenizer(lines)["input_ids"]
        assert got == [fairseq_ids(line, processor, task.source_dictionary) for line in lines]


def test_pre_ln_exports_exactly(pre_ln_checkpoint, data_bin, tmp_path):
    result = export_pretrained(str(pre_ln_checkpoint), str(tmp_path / "out"), data=str(data_bin), generator_depth=2)
    assert (result.model_class, result.generator_class, result.generator_depth) == (
        "AmosElectraForPreTraining", "AmosElectraForMaskedLM", 2)
    assert result.remote_code and max(result.max_abs_diff.values()) <= EXACT, result.max_abs_diff
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["pre_layer_norm"] is True and (config["embedding_size"], config["hidden_size"]) == (32, 64)

    diffs = _compare_on_sentences(result.out_dir, result.generator_dir, pre_ln_checkpoint, data_bin, depth=2)
    print("pre-LN max |hf - fairseq|:", diffs)
    assert diffs.pop("hidden_without_bias") > 1e-2, "the relative position bias must matter"
    assert max(diffs.values()) <= EXACT, diffs


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("projection", [False, True], ids=["same_dim", "projection"])
def test_every_variant_matches_fairseq(data_bin, tmp_path, pre_ln, bias, projection):
    """Every combination, built in process with randomised weights (so that LayerNorms,
    biases and the position bias are far from their initial values); ELECTRA-shaped models
    go to stock ELECTRA, the others to AMOS-ELECTRA; all at float tolerance."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    extra = ["--rel-pos-bins", "32" if bias else "0", "--token-embed-dim", "32" if projection else "64"]
    if pre_ln:
        extra.append("--encoder-normalize-before")
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(data_bin), "--user-dir", str(ROOT / "amos_fairseq"), "--task", "amos_rtd", "--arch", "amos_tiny",
        "--criterion", "amos", "--tokens-per-sample", "64", "--generator-depths", "1,2", *extra,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(0)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    path = tmp_path / "model.pt"
    _save_like_fairseq(model, cfg, path)

    with pytest.raises(ExportError, match=r"--generator-depth 3 is not one of the trained depths \[1, 2\]"):
        export_pretrained(str(path), str(tmp_path / "bad"), data=str(data_bin), generator_depth=3)
    result = export_pretrained(str(path), str(tmp_path / "out"), data=str(data_bin), generator_depth=1)
    stock = not (pre_ln or bias)
    assert result.model_class == ("ElectraForPreTraining" if stock else "AmosElectraForPreTraining")
    assert result.remote_code is not stock
    assert (tmp_path / "out" / MODELING_FILE).is_file() is not stock
    assert set(result.max_abs_diff) == {"discriminator_hidden", "discriminator_rtd_logits", "generator_hidden",
                                        "generator_mlm_logits"}
    print(result.model_class, result.max_abs_diff)
    assert max(result.max_abs_diff.values()) <= EXACT, result.max_abs_diff


# Runs in a fresh interpreter (python -I, a temporary cwd) where amos_fairseq and fairseq cannot
# be imported, as on a machine with only torch and transformers (torchaudio, which fairseq pulls
# in, is hidden too). Prints one JSON line of results.
FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    for name in ("amos_fairseq", "fairseq", "torchaudio"):
        sys.modules[name] = None  # import fails, importlib.util.find_spec says absent
    try:
        import amos_fairseq  # noqa: F401
        raise SystemExit("amos_fairseq is importable")
    except ImportError:
        pass
    import torch
    from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining,
                              AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                              AutoModelForTokenClassification, AutoTokenizer)

    torch.manual_seed(0)
    torch.set_num_threads(1)
    folder, generator, reference, tuned = sys.argv[1:5]
    ref = torch.load(reference)
    report = {"modules": sorted(n for n in sys.modules if n.split(".")[0] in ("amos_fairseq", "fairseq")
                                and sys.modules[n] is not None)}
    load = dict(local_files_only=True, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, **load)
    report["config"] = type(AutoConfig.from_pretrained(folder, **load)).__name__
    batch = tokenizer(["The whale surfaced near the ship.", "Call me Ishmael."], padding=True, return_tensors="pt")
    report["ids_match"] = batch["input_ids"].tolist() == ref["ids"].tolist()
    with torch.no_grad():
        base = AutoModel.from_pretrained(folder, **load).eval()
        report["AutoModel"] = type(base).__name__
        out = base(**batch, output_hidden_states=True, output_attentions=True)
        real = batch["attention_mask"].bool()
        report["hidden_diff"] = (out.last_hidden_state - ref["hidden"])[real].abs().max().item()
        report["n_hidden_states"] = len(out.hidden_states)
        report["attention_shape"] = list(out.attentions[0].shape)
        pre = AutoModelForPreTraining.from_pretrained(folder, **load).eval()
        report["AutoModelForPreTraining"] = type(pre).__name__
        report["rtd_diff"] = (pre(**batch).logits - ref["rtd"])[real].abs().max().item()
        mlm = AutoModelForMaskedLM.from_pretrained(generator, **load).eval()
        report["AutoModelForMaskedLM"] = type(mlm).__name__
        report["mlm_diff"] = (mlm(**batch).logits - ref["mlm"])[real].abs().max().item()

    def one_step(model, **labels):
        # AdamW over all parameters; one step from the exported weights
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss = model(**batch, **labels).loss
        loss.backward()
        optimizer.step()
        changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
        return {"loss": loss.item(), "changed": len(changed), "params": len(before),
                "encoder_changed": any(n.startswith("amos.layers.0.") for n in changed)}

    seq = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3, **load)
    report["AutoModelForSequenceClassification"] = type(seq).__name__
    report["seq_step"] = one_step(seq, labels=torch.tensor([0, 2]))
    qa = AutoModelForQuestionAnswering.from_pretrained(folder, **load)
    report["AutoModelForQuestionAnswering"] = type(qa).__name__
    report["qa_step"] = one_step(qa, start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([3, 4]))
    tok = AutoModelForTokenClassification.from_pretrained(folder, num_labels=5, **load)
    report["AutoModelForTokenClassification"] = type(tok).__name__
    report["tok_step"] = one_step(tok, labels=torch.randint(0, 5, batch["input_ids"].shape))

    # A fine-tuned model saves and loads back as itself (the modeling file travels along).
    seq.eval()
    with torch.no_grad():
        logits = seq(**batch).logits
    seq.save_pretrained(tuned)
    tokenizer.save_pretrained(tuned)
    again = AutoModelForSequenceClassification.from_pretrained(tuned, **load).eval()
    with torch.no_grad():
        report["reload_diff"] = (again(**batch).logits - logits).abs().max().item()
    report["modules_after"] = sorted(n for n in sys.modules if n.split(".")[0] in ("amos_fairseq", "fairseq")
                                     and sys.modules[n] is not None)
    print("RESULT " + json.dumps(report))
""")


def test_loads_and_fine_tunes_without_amos_fairseq(amos_exported, amos_checkpoint, data_bin, tmp_path):
    from transformers import AutoTokenizer

    out, _ = amos_exported
    model, _, _ = load_pretraining_model(str(amos_checkpoint), str(data_bin))
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True, trust_remote_code=True)
    batch = tokenizer(["The whale surfaced near the ship.", "Call me Ishmael."], padding=True, return_tensors="pt")
    ids = batch["input_ids"]
    assert ids.eq(tokenizer.pad_token_id).any()
    with torch.no_grad():
        hidden = model.extract_features(ids)
        _, mlm = fairseq_generator(model, ids, 3)
        reference = {"ids": ids, "hidden": hidden, "rtd": model.rtd_head(hidden), "mlm": mlm}
    torch.save(reference, tmp_path / "reference.pt")
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS)
    work = tmp_path / "cwd"
    work.mkdir()
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-I", str(script), str(out), str(out / "generator"), str(tmp_path / "reference.pt"),
         str(tmp_path / "tuned")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(work),
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
             "HF_MODULES_CACHE": str(tmp_path / "modules"), **ONE_THREAD},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-4000:]
    report = json.loads(lines[-1][len("RESULT "):])
    print(f"fresh process ({time.time() - start:.1f}s):", report)
    assert report["modules"] == report["modules_after"] == []
    assert report["config"] == "AmosElectraConfig" and report["ids_match"]
    for auto, name in (("AutoModel", "AmosElectraModel"), ("AutoModelForPreTraining", "AmosElectraForPreTraining"),
                       ("AutoModelForMaskedLM", "AmosElectraForMaskedLM"),
                       ("AutoModelForSequenceClassification", "AmosElectraForSequenceClassification"),
                       ("AutoModelForQuestionAnswering", "AmosElectraForQuestionAnswering"),
                       ("AutoModelForTokenClassification", "AmosElectraForTokenClassification")):
        assert report[auto] == name
    assert max(report["hidden_diff"], report["rtd_diff"], report["mlm_diff"]) <= EXACT, report
    assert report["n_hidden_states"] == 3 and report["attention_shape"] == [2, 2, ids.size(1), ids.size(1)]
    for step in ("seq_step", "qa_step", "tok_step"):
        result = report[step]
        assert 0 < result["loss"] < 100, (step, result)  # finite
        assert result["changed"] == result["params"] and result["encoder_changed"], (step, result)
    assert report["reload_diff"] == 0.0


def test_transformers_trainer_fine_tunes_the_export(amos_exported, tmp_path):
    """transformers' own training loop (Trainer) runs on the exported AMOS-ELECTRA classes."""
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    out, _ = amos_exported
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        out, num_labels=2, local_files_only=True, trust_remote_code=True)
    texts = ["The whale surfaced near the ship.", "Call me Ishmael.", "The union is strong.", "Taxes rose."] * 2
    rows = [dict(tokenizer(t), labels=i % 2) for i, t in enumerate(texts)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=3, per_device_train_batch_size=4,
                             learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer))
    result = trainer.train()
    assert result.global_step == 3 and math.isfinite(result.training_loss)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert any("classifier" in n for n in changed) and any("encoder" in n or "layer" in n for n in changed), changed
