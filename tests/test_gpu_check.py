"""benchmarks/gpu_check.py, the check written for the first GPU, run here at its tiny size on
the CPU: every step runs (or is skipped with its reason), and the JSON carries the documented
fields. Also its pieces that need no run: the card-peak table, the log parser, and the model
FLOP count behind its MFU against torch's own FLOP counter."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import ONE_THREAD, ROOT, build_model, random_batch

sys.path.insert(0, str(ROOT))
from benchmarks import gpu_check  # noqa: E402

CRITERIA = {"electra": "electra_tiny", "amos": "amos_tiny", "focal_hardness": "electra_tiny"}
STEPS = (
    ["sdpa_vs_math", "prepare_corpus"]
    + [f"train_{c}_fp16" for c in CRITERIA]
    + ["train_amos_fp32", "train_focal_hardness_fp32", "prepare_classification", "train_electra_fp32",
       "export_hf", "finetune"]
    + [f"train_{c}_amp" for c in CRITERIA]
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--cpu", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
        env={**os.environ, **ONE_THREAD}, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "gpu_check (tiny, cpu" in proc.stdout  # the readable summary
    return json.loads(out.read_text())


def steps_by_name(report):
    return {step["name"]: step for step in report["steps"]}


def test_every_step_ran_or_was_skipped_with_a_reason(report):
    steps = steps_by_name(report)
    assert list(steps) == STEPS
    for name, step in steps.items():
        assert step["status"] in ("ok", "skipped"), (name, step.get("error"), step.get("log_tail"))
        assert step["seconds"] >= 0
        if step["status"] == "skipped":
            assert step["reason"], name
    assert report["status"] == "ok" and report["summary"]["failed"] == []
    assert report["settings"]["mode"] == "tiny" and report["settings"]["device"] == "cpu"


def test_every_criterion_trained_with_a_finite_loss_and_a_throughput(report):
    steps = steps_by_name(report)
    for criterion, arch in CRITERIA.items():
        run = steps[f"train_{criterion}_fp32"]
        assert run["status"] == "ok" and run["arch"] == arch and run["precision"] == "fp32"
        assert run["updates"] == report["settings"]["updates"] == 6
        assert run["loss_finite"] and math.isfinite(run["loss"]) and len(run["losses"]) >= 3
        assert run["tokens_per_s"] > 0 and len(run["wps_per_interval"]) == 3
        assert run["peak_mem_mb"] is None and run["peak_rss_mb"] > 0  # no GPU: the host's figure
        assert run["flops_per_token"] > 0 and run["achieved_tflops"] > 0 and run["parameters"] > 0
        assert run["mfu"] is None and "no GPU" in run["mfu_note"]
        assert run["flops_breakdown"]["uncounted_linear"] == []
        # half precision needs CUDA: skipped, and says so
        for precision in ("fp16", "amp"):
            skipped = steps[f"train_{criterion}_{precision}"]
            assert skipped["status"] == "skipped" and "no CUDA" in skipped["reason"]
    assert steps["train_amos_fp32"]["flops_breakdown"]["generator_depths"] == 3


def test_sdpa_default_kernel_matches_the_math_kernel_on_the_cpu(report):
    sdpa = steps_by_name(report)["sdpa_vs_math"]
    assert sdpa["status"] == "ok" and sdpa["arch"] == "amos_tiny" and sdpa["precisions"] == ["fp32"]
    assert set(sdpa["default_vs_math"]) == {"unpadded/fp32", "padded/fp32"}
    for key, row in sdpa["default_vs_math"].items():
        assert row["rel_pos_grad_rel_diff_vs_math"] < 1e-6, key
        assert row["loss_rel_diff_vs_math"] < 1e-6, key
        assert row["qkv_grad_rel_diff_vs_math"] < 1e-6, key
    assert sdpa["max_rel_pos_grad_rel_diff_default_vs_math"] < 1e-6
    backends = {(c["case"], c["backend"]): c for c in sdpa["comparisons"]}
    assert backends[("unpadded", "math")]["status"] == "ok"
    assert backends[("unpadded", "efficient")]["status"] == "unavailable"  # a CUDA kernel


def test_the_checkpoint_was_exported_and_fine_tuned(report):
    steps = steps_by_name(report)
    export, finetune = steps["export_hf"], steps["finetune"]
    assert export["status"] == "ok" and "model.safetensors" in export["files"]
    assert export["checkpoint"].endswith("checkpoint_fp16.pt") and "fp16" in export["checkpoint_note"]
    assert export["verify"] and max(export["verify"].values()) < 1e-3
    assert steps["prepare_classification"]["num_classes"] == 2
    assert finetune["status"] == "ok" and finetune["updates"] == 2
    assert 0 <= finetune["valid_accuracy"] <= 100 and finetune["generator_dropped"]


def test_the_json_has_the_documented_fields(report):
    doc = gpu_check.__doc__
    assert {"schema", "status", "started", "total_seconds", "settings", "machine", "steps", "summary"} <= set(report)
    assert report["schema"] == gpu_check.SCHEMA
    keys = set(report) | set(report["settings"]) | set(report["machine"]) | set(report["summary"])
    for step in report["steps"]:
        keys |= set(step)
        for row in step.get("comparisons", []):
            keys |= set(row)
        for row in step.get("default_vs_math", {}).values():
            keys |= set(row)
    undocumented = sorted(k for k in keys if k not in doc)
    assert not undocumented, f"fields missing from the docstring's JSON list: {undocumented}"
    for field in ("tokens_per_s", "peak_mem_mb", "loss_finite", "mfu", "flops_per_token", "rel_pos_grad_rel_diff_vs_math"):
        assert field in keys


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 SXM5 80GB", 989.0), ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0),
    ("NVIDIA H100 NVL", None), ("NVIDIA GH200 480GB", None), ("NVIDIA GeForce RTX 4090", None), (None, None),
])
def test_card_peaks(name, peak):
    value, why = gpu_check.peak_tflops(name)
    assert value == peak and why
    assert gpu_check.peak_tflops(name, override=123.0)[0] == 123.0


def test_log_parser_keeps_nan_losses():
    line = ("2026-01-01 00:00:00 | INFO | train_inner | epoch 001:     10 / 99 loss=nan, gen_loss=6.1, "
            "wps=1234.5, wpb=16000, bsz=32, num_updates=10, gb_free=60.2")
    (row,) = gpu_check.parse_log(line, "train_inner")
    assert math.isnan(row["loss"]) and row["wps"] == 1234.5 and row["gb_free"] == 60.2 and row["num_updates"] == 10
    assert gpu_check.parse_log(line, "train") == []


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_model_flops_match_torchs_flop_counter(criterion, one_torch_thread):
    """The MFU's FLOPs per token (counted from the model's layers) against torch's
    FlopCounterMode over one real forward + backward, math attention (counted as matmuls)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from amos_fairseq.criteria.amos import AmosCriterion, AmosCriterionConfig
    from amos_fairseq.criteria.electra import ElectraCriterion, ElectraCriterionConfig
    from amos_fairseq.criteria.focal_hardness import FocalHardnessCriterion, FocalHardnessCriterionConfig

    classes = {"electra": (ElectraCriterion, ElectraCriterionConfig), "amos": (AmosCriterion, AmosCriterionConfig),
               "focal_hardness": (FocalHardnessCriterion, FocalHardnessCriterionConfig)}
    cls, config = classes[criterion]
    torch.manual_seed(0)
    model, task = build_model(CRITERIA[criterion], criterion=criterion, vocab_words=200)
    crit = cls.build_criterion(config(), task)
    net_input, target = random_batch(task, batch=4, length=32, mask_prob=0.15)
    pad = task.dictionary.pad()
    target[:] = torch.where(target.eq(pad), task.dictionary.eos(), target)  # no padding: every row T tokens
    net_input["src_tokens"] = torch.where(net_input["src_tokens"].eq(pad), task.dictionary.eos(),
                                          net_input["src_tokens"])
    net_input["src_lengths"][:] = target.size(1)
    sample = {"net_input": net_input, "target": target, "ntokens": target.numel(), "nsentences": target.size(0)}
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss, sample_size, _ = crit(model, sample)
        (loss / sample_size).backward()
    counted = counter.get_total_flops()
    flops = gpu_check.flop_counts(model, criterion)
    tokens, length = target.numel(), target.size(1)
    masked = int(net_input["masked_tokens"].sum())
    analytic = (tokens * flops["per_token"] + masked * flops["per_masked_token"]
                + tokens * flops["attention_per_token_per_position"] * length)
    assert analytic == pytest.approx(counted, rel=0.01)


def test_gpu_mode_command_lines_parse(tmp_path, monkeypatch):
    """The GPU mode cannot run here: its base-size fairseq-train command lines are built as on
    an H100 and parsed by fairseq's own parser (flags, precision, shapes)."""
    from fairseq import options

    commands = []

    def not_run(cmd, timeout, env=None):
        commands.append([str(c) for c in cmd])
        raise gpu_check.StepFailed("not run here")

    monkeypatch.setattr(gpu_check, "run_proc", not_run)
    args = gpu_check.parse_args(["--out", str(tmp_path / "gpu_check.json")])
    args.child_env, args.work = {}, tmp_path
    machine = {"cuda_available": True, "gpu_name": "NVIDIA H100 80GB HBM3"}
    mode, precisions = gpu_check.configure(args, machine)
    assert mode == "gpu" and precisions == ["fp16", "amp"] and args.peak == 989.0
    check = gpu_check.Check(args)
    check.data_bin = tmp_path / "data-bin"
    for criterion in CRITERIA:
        for precision in precisions:
            with pytest.raises(gpu_check.StepFailed):
                check.train({}, criterion, args.archs[criterion], precision, criterion == "electra")
            cmd = commands[-1]
            assert cmd[2:4] == ["--child", "train"]
            parsed = options.parse_args_and_arch(options.get_training_parser(), input_args=cmd[4:])
            assert parsed.arch == f"{gpu_check.METHODS[criterion][0]}_base" and parsed.criterion == criterion
            assert (parsed.batch_size, parsed.tokens_per_sample, parsed.max_update) == (32, 512, 30)
            assert parsed.fp16 == (precision == "fp16") and parsed.amp == (precision == "amp")
            assert parsed.distributed_world_size == 1 and parsed.log_interval == 10
            assert parsed.no_save == (criterion != "electra")
    check.checkpoint, check.classification = tmp_path / "checkpoint_last.pt", (tmp_path / "classification", 2)
    with pytest.raises(gpu_check.StepFailed):
        check.finetune({})
    assert commands[-1][1:3] == ["-m", "fairseq_cli.train"]
    parsed = options.parse_args_and_arch(options.get_training_parser(), input_args=commands[-1][3:])
    assert parsed.task == "sentence_prediction" and parsed.arch == "electra_base" and parsed.max_update == 2
    assert parsed.restore_file == str(tmp_path / "checkpoint_last.pt") and parsed.num_classes == 2
    with pytest.raises(gpu_check.StepFailed):
        check.sdpa({})
    assert commands[-1][2:] == ["--child", "sdpa", "--arch", "amos_base", "--batch", "8", "--length", "512",
                                "--vocab-size", "8000"]
