#!/usr/bin/env python
"""The GPU check: one script that a machine with one NVIDIA GPU runs once, in under 8 minutes.

No GPU had run this code when it was written. Run it from the repository root on a machine with
one GPU (the venv needs a CUDA build of torch)::

    .venv/bin/python benchmarks/gpu_check.py --out $OUT/gpu_check.json

It writes the JSON described below (rewritten after every step, so a check cut short still
leaves what it measured) and prints a short summary table; it exits 0 whenever the JSON was
written, and the JSON's ``status`` says whether every step passed. What it measures:

1. **Pretraining through the real fairseq-train**: every criterion at base size (``electra``
   on ``electra_base``, ``amos`` on ``amos_base``, ``focal_hardness`` on ``electra_base``),
   each with ``--fp16`` (``--fp16-init-scale 128``, as examples/pretrain.sh) and with ``--amp``:
   30 updates of 32 sequences x 512 tokens (``--tokens-per-sample 512 --sample-break-mode
   complete --batch-size 32``; 32 x 512 is pretrain.sh's per-GPU batch for ELECTRA-base),
   log interval 10, ``--distributed-world-size 1``, each method's optimiser settings of
   examples/pretrain.sh (Adam betas, ``--leave-unmasked-prob``, peak lr with 10 warm-up
   updates), on the shipped corpus (``examples/data/corpus.txt.xz``: 24k lines, about 830k
   tokens at 8000 sentencepiece pieces, prepared here by ``scripts/prepare_corpus.py``; 30
   updates read about 960 of its ~1700 blocks, so no run crosses an epoch). Per run: tokens/s
   (the median of fairseq's logged ``wps`` over the log intervals after the first, which holds
   the warm-up), the loss (and whether every logged loss is finite), peak GPU memory, the
   model FLOPs per token and the MFU against the card's dense fp16/bf16 peak.
2. **The relative position bias's gradient, SDPA's default kernel against the math kernel**:
   ``amos_base`` (the archs with a relative position bias; ``electra_*`` have none), batch
   8 x 512, dropout 0, one forward/backward of the discriminator and its RTD head under fp32,
   fp16 and bf16 autocast, without padding (the bias reaches SDPA as [1, H, T, T], broadcast
   over the batch) and with padding ([B, H, T, T]); with the default backend and under each of
   ``sdpa_kernel(SDPBackend.MATH / EFFICIENT_ATTENTION / CUDNN_ATTENTION / FLASH_ATTENTION)``.
   Reported: the relative L2 difference of the bias parameter's gradient, of the loss and of
   layer 0's qkv gradient against the math kernel in the same precision; every backend's error
   against fp32 math; the aten attention ops the default backend ran. The step fails when the
   default kernel's bias gradient is more than 5x (and 1e-2) further from fp32 math than the
   math kernel's in the same precision: a wrong gradient, not rounding.
3. **The fp16 run's checkpoint on a CPU**: the ``electra --fp16`` run's ``checkpoint_last.pt``,
   in subprocesses with ``CUDA_VISIBLE_DEVICES=""``: exported by ``scripts/export_hf.py``
   (which verifies the export against the fairseq model), and fine-tuned for 2 updates
   (batch 8) with ``--task sentence_prediction --restore-file ... --reset-optimizer`` on the
   first 64/32 train/dev rows of ``examples/data/tasks/election_tweets_2016``, made into
   fairseq's layout by ``scripts/prepare_classification.py``.

Every step runs in its own process (a crash, a hang or a CUDA error costs that step only; its
last log lines are kept), is timed, and has a time cap; the whole check has a budget
(``--budget``, default 420 s) after which the remaining steps are recorded as skipped. Order:
the SDPA check (it times nothing) beside the corpus preparation (CPU); the three ``--fp16``
runs, one at a time; the export beside the classification data (both CPU); the fine-tuning;
the three ``--amp`` runs. On a GPU it needs at most the budget plus about 10 s of start-up,
under 8 minutes: that is a budget, not a measured time (no GPU has run it; the expected time is
5-6 minutes, mostly fairseq's start-up of each run).

**Peak GPU memory** is read inside each training process: the training runs through
fairseq-train's own ``cli_main`` in a small wrapper process (this script with ``--child
train``) that reports ``torch.cuda.max_memory_allocated`` and ``..._reserved`` at exit.
fairseq resets the peak after every update (to log ``gb_free``); the wrapper keeps the running
maximum across those resets. That is the allocator's peak over the whole run (weights, fp32
master copy, Adam state, activations, temporaries, checkpoint saving), without the CUDA
context (a few hundred MiB more in ``nvidia-smi``) and without fragmentation; reserved
includes the allocator's cache. fairseq's own ``gb_free`` (total minus the last interval's
peak) is recorded beside it as a cross-check.

**MFU** = model FLOPs per token x tokens/s / the card's peak. FLOPs per real (non-pad) token,
forward + backward, are counted from the trained model's own layers: 6 x the weights of every
linear layer that runs on every token (discriminator and generator stacks, embedding
projection, RTD head; 4 x for the qkv weights of a generator layer whose input is detached at
a stop-gradient block boundary), plus mask-prob x the work at masked positions (6 x the MLM
head and its tied V x E output, once per generator depth; AMOS's mixture scorer and the
2 x V x E ``grad @ E^T`` of its straight-through sample; 6 x the focal-hardness head's dense
layer and 2 x its output layer, which scores every candidate without gradient), plus attention,
12 x layers x width x the mean sequence length (fairseq's ``wpb / bsz``) for each stack.
Embedding lookups, LayerNorm, softmax and the optimizer are not counted (the usual MFU
convention). This count agrees with ``torch.utils.flop_counter`` over a real training step to
0.1% (tests/test_gpu_check.py at tiny size; electra_small and amos_small checked the same way).
Card peaks (dense fp16/bf16 tensor-core TFLOP/s, no sparsity), by
``torch.cuda.get_device_name()``: H100 SXM ("H100 80GB HBM3", "H100 SXM5") 989, H100 PCIe 756,
H200 989, A100 312; any other card (H100 NVL, GH200, ...) gets ``mfu: null`` and the reason;
``--peak-tflops`` supplies a peak.

**Without CUDA** (or with ``--tiny``; ``--cpu`` hides a GPU) it runs the same steps at the
tiny size: ``electra_tiny``/``amos_tiny``, 6 updates of 8 x 64 tokens (log interval 2) on the
corpus's first 1000 lines with 800 pieces, SDPA at 4 x 64, fine-tuning on 32/16 rows. On a CPU
the training is fp32: fairseq's ``--fp16`` needs CUDA (the project stops it on a CPU with a
clear message) and ``--amp`` is fairseq's CUDA autocast, so the fp16/amp steps are recorded as
skipped with that reason and one fp32 run per criterion stands in; the electra run's process
also writes its checkpoint as an ``--fp16`` GPU run saves it (half weights, ``fp16`` in the
saved config; as tests/test_portable_checkpoints.py does), and that copy is exported and
fine-tuned, so the CPU run takes the same loading path. Its throughput numbers mean nothing,
so there the amos and focal_hardness runs and the classification data are made beside the
electra -> export -> fine-tune chain (``--serial``: one at a time). Measured on a 2-core CPU
shared with other jobs (load average 5-6), one thread (``OMP_NUM_THREADS=1``): 65-80 s in
all; tests/test_gpu_check.py runs it.

Options: ``--out PATH`` (required), ``--tiny``, ``--cpu``, ``--budget S``, ``--updates N``,
``--log-interval N``, ``--batch SEQxTOK``, ``--vocab-size V``, ``--peak-tflops T``,
``--work DIR`` (default: a temporary folder, removed at the end unless ``--keep-work``),
``--serial``.

The JSON (``--out``):

- ``schema``: "amos-fairseq gpu_check 1"; ``status``: "ok" when every step ran and passed
  (the CPU's skipped fp16/amp steps allowed), "failed" when a step failed, else "incomplete";
  ``started``, ``total_seconds``
- ``settings``: mode ("gpu" | "tiny"), device ("cuda" | "cpu"), budget_s, updates,
  log_interval, batch, tokens_per_sample, vocab_size, mask_prob, precisions, archs
  (criterion -> arch), sdpa (arch, batch, length), finetune (train_rows, dev_rows, batch,
  updates), work_dir
- ``machine``: platform, python, torch, torch_threads, cuda_available, cuda_version,
  cudnn_version, gpu_name, gpu_capability, gpu_total_memory_mb, cpu, cpu_count, nvidia_smi (its
  one-line query, or null), peak_tflops and peak_tflops_source (or null and the reason)
- ``steps``: the ordered list of steps. Each has ``name``, ``kind`` (prepare | train | sdpa |
  export | finetune), ``status`` (ok | failed | skipped), ``seconds``, and ``reason`` (skipped)
  or ``error`` and ``log_tail`` (failed). Then by kind:

  - prepare (prepare_corpus): corpus, corpus_lines, vocab_size, train_tokens;
    (prepare_classification): task, train_rows, dev_rows, num_classes, out
  - train: criterion, arch, precision, command, updates, tokens_per_s, tokens_per_s_source,
    wps_per_interval, loss (the last logged), losses, loss_finite, overflow_skips (fp16 updates
    skipped for overflow), loss_scale, peak_mem_mb (GPU allocator peak; null on a CPU),
    peak_reserved_mb, peak_rss_mb (the training process's host memory), memory_source,
    fairseq_gb_free_min, parameters, mean_seq_len, flops_per_token, flops_breakdown (per_token,
    per_masked_token, attention_per_token_per_position, tied_mlm_output_per_masked_token,
    straight_through_per_masked_token, generator_depths, uncounted_linear, parameters),
    achieved_tflops, mfu (0-1, or null), mfu_note, checkpoint (path, or null), fp16_copy (CPU:
    the checkpoint rewritten as an fp16 GPU run saves it)
  - sdpa: arch, batch, length, device, precisions; comparisons (one per case x precision x
    backend: case, precision, backend, status (ok | not finite | unavailable | no gradient),
    error, kernel_ops, warnings, loss, rel_pos_grad_rel_diff_vs_math, loss_rel_diff_vs_math,
    qkv_grad_rel_diff_vs_math, rel_pos_grad_rel_err_vs_fp32_math); default_vs_math
    ("case/precision" -> the default backend's three differences, its kernel_ops,
    rel_pos_grad_rel_err_vs_fp32_math and math_rel_pos_grad_rel_err_vs_fp32_math, the math
    kernel's own); max_rel_pos_grad_rel_diff_default_vs_math
  - export: checkpoint, checkpoint_note, out, command, files, verify (name -> max
    |hf - fairseq| reported by export_hf.py)
  - finetune: checkpoint, data, command, updates, valid_accuracy, valid_loss,
    generator_dropped (the pretraining-only tensors were dropped on load, as intended)
- ``summary``: ok, failed, skipped (lists of step names)
"""

import argparse
import contextlib
import json
import lzma
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
USER_DIR = str(ROOT / "amos_fairseq")
CORPUS = ROOT / "examples" / "data" / "corpus.txt.xz"
TASK = ROOT / "examples" / "data" / "tasks" / "election_tweets_2016"
SCHEMA = "amos-fairseq gpu_check 1"
RESULT_MARK = "GPU_CHECK_RESULT "
MAX_POSITIONS = 512  # every arch's default --max-positions (the fine-tuning run must name it)
MASK_PROB = 0.15

# criterion -> (arch family, Adam betas, --leave-unmasked-prob, lr at base size): examples/pretrain.sh
METHODS = {
    "electra": ("electra", "(0.9,0.999)", 0.15, 2e-4),
    "amos": ("amos", "(0.9,0.98)", 0.0, 5e-4),
    "focal_hardness": ("electra", "(0.9,0.999)", 0.15, 2e-4),
}

# Dense fp16/bf16 tensor-core peaks (TFLOP/s, no sparsity), matched on torch.cuda.get_device_name().
PEAKS = [
    (r"\bH100\b.*\bPCIe\b", 756.0, "H100 PCIe: 756 TFLOP/s dense fp16/bf16"),
    (r"\bH100\b.*\b(SXM\d?|HBM3)\b", 989.0, "H100 SXM: 989 TFLOP/s dense fp16/bf16"),
    (r"^(NVIDIA )?H200\b(?!.*NVL)", 989.0, "H200 (SXM): 989 TFLOP/s dense fp16/bf16"),
    (r"\bA100\b", 312.0, "A100: 312 TFLOP/s dense fp16/bf16"),
]

SIZES = {
    "gpu": dict(size="base", batch=32, length=512, updates=30, log_interval=10, vocab=8000,
                corpus_lines=None, valid_lines=500, lr=None, warmup=10, num_workers=2,
                sdpa_batch=8, sdpa_length=512, ft_train_rows=64, ft_dev_rows=32, ft_batch=8),
    "tiny": dict(size="tiny", batch=8, length=64, updates=6, log_interval=2, vocab=800,
                 corpus_lines=1000, valid_lines=100, lr=1e-3, warmup=2, num_workers=0,
                 sdpa_batch=4, sdpa_length=64, ft_train_rows=32, ft_dev_rows=16, ft_batch=8),
}


# ====================================================================== small helpers


class StepFailed(Exception):
    def __init__(self, message, tail=""):
        super().__init__(message)
        self.tail = tail


class StepSkipped(Exception):
    pass


def tail_lines(text, n=15):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return "\n".join(lines[-n:])


def run_proc(cmd, timeout, env=None):
    """Run ``cmd`` (stdout+stderr together) in its own process group; on timeout the whole
    group (dataloader workers, preprocess pools) is killed. Returns (returncode, output)."""
    proc = subprocess.Popen(
        [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=str(ROOT), env={**os.environ, **(env or {})}, start_new_session=True,
    )
    _LIVE.add(proc)
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        raise StepFailed(f"timed out after {timeout:.0f} s (the step's cap or the check's budget)", tail_lines(out))
    finally:
        _LIVE.discard(proc)
    return proc.returncode, out


_LIVE = set()  # the subprocesses running now (each leads its own process group)


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def child_result(output):
    """The JSON a ``--child`` process printed after RESULT_MARK (the last one), or None."""
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    return None


_METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)(?:=| )(-?(?:\d+(?:\.\d+)?(?:e[-+]?\d+)?|nan|inf))(?=[,| ]|$)")


def parse_log(text, kind):
    """Metric rows (name -> float) of fairseq's simple log lines ``| kind |`` (train_inner,
    train, valid); nan/inf are kept as floats."""
    rows = []
    for line in text.splitlines():
        if f"| {kind} |" in line:
            body = line.split(f"| {kind} |", 1)[1]
            rows.append({k: float(v) for k, v in _METRIC.findall(body)})
    return rows


def rel_diff(a, b):
    """||a - b|| / ||b|| (L2) for tensors; |a - b| / |b| for numbers."""
    import torch

    if isinstance(a, torch.Tensor):
        denom = b.norm().item()
        return (a - b).norm().item() / denom if denom > 0 else float((a - b).norm().item())
    return abs(a - b) / abs(b) if b else abs(a - b)


def peak_tflops(gpu_name, override=None):
    if override:
        return override, f"--peak-tflops {override}"
    if not gpu_name:
        return None, "no GPU: MFU is measured against a GPU's peak"
    for pattern, value, label in PEAKS:
        if re.search(pattern, gpu_name):
            return value, label
    return None, f"unknown card {gpu_name!r}: no dense fp16/bf16 peak in the table; pass --peak-tflops"


def write_json(path, report):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    os.replace(tmp, path)


# ====================================================================== children (own processes)


def child_info(argv):
    """Machine facts that need torch (kept out of the parent so it holds no CUDA context)."""
    import torch

    info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
            "cuda_version": torch.version.cuda, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_name=torch.cuda.get_device_name(0), gpu_capability=list(torch.cuda.get_device_capability(0)),
                    gpu_total_memory_mb=round(props.total_memory / 2**20),
                    cudnn_version=torch.backends.cudnn.version())
    print(RESULT_MARK + json.dumps(info), flush=True)


def flop_counts(model, criterion):
    """Matmul FLOPs of one training step, forward + backward, from the model's own layers:
    per real token, per masked token, and the attention coefficient (x mean sequence length)."""
    import torch.nn as nn

    depths = len(model.generator.depths)
    every = masked = 0
    uncounted = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        n = module.weight.numel()
        if name.startswith(("discriminator.", "generator.encoder.", "rtd_head.")):
            every += 6 * n
        elif name.startswith(("generator.lm_head.", "mixture_scorer.")):
            masked += 6 * depths * n  # one MLM head call (and mixture score) per depth
        elif name == "hardness_head.dense":
            masked += 6 * n
        elif name == "hardness_head.out":
            masked += 2 * n  # every candidate's logit, forward only (no gradient)
        else:
            uncounted.append(name)
    # A layer whose input is detached (the shared-depth generator's stop-gradient at block
    # boundaries) computes no input gradient for its first product: 4, not 6, x its qkv weights.
    layers = model.generator.encoder.stack.layers
    detached = sum(layers[i].qkv_proj.weight.numel() for i in model.generator.detach_before if i < len(layers))
    every -= 2 * detached
    vocab, embed = model.token_embeddings.weight.shape
    tied_output = 6 * depths * vocab * embed  # MLM logits: x @ E^T, forward and backward
    masked += tied_output
    straight_through = 2 * vocab * embed if criterion == "amos" else 0  # grad @ E^T
    masked += straight_through
    attention = 0
    for encoder in (model.discriminator, model.generator.encoder):
        layers = encoder.stack.layers
        attention += 12 * len(layers) * layers[0].qkv_proj.in_features
    return {
        "per_token": every, "per_masked_token": masked, "attention_per_token_per_position": attention,
        "tied_mlm_output_per_masked_token": tied_output, "straight_through_per_masked_token": straight_through,
        "generator_depths": depths, "uncounted_linear": uncounted,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def child_train(argv):
    """fairseq-train's own cli_main, reporting peak memory and the model's FLOP counts at exit."""
    import atexit
    import resource

    import torch

    peak = {"allocated": 0, "reserved": 0}
    cuda = torch.cuda.is_available()
    if cuda:
        # fairseq calls torch.cuda.reset_peak_memory_stats() after every update (for gb_free):
        # keep the running maximum across those resets.
        original_reset = torch.cuda.reset_peak_memory_stats

        def reset_keeping_peak(device=None):
            peak["allocated"] = max(peak["allocated"], torch.cuda.max_memory_allocated(device))
            peak["reserved"] = max(peak["reserved"], torch.cuda.max_memory_reserved(device))
            original_reset(device)

        torch.cuda.reset_peak_memory_stats = reset_keeping_peak

    # fairseq_cli.train configures logging (the "| train_inner |" lines) when imported: first.
    from fairseq_cli.train import cli_main
    import fairseq.trainer

    captured = {}
    original_init = fairseq.trainer.Trainer.__init__

    def init(self, cfg, task, model, criterion, *args, **kwargs):
        captured.update(model=model, criterion=getattr(cfg.criterion, "_name", None), save_dir=cfg.checkpoint.save_dir)
        original_init(self, cfg, task, model, criterion, *args, **kwargs)

    fairseq.trainer.Trainer.__init__ = init

    def report():
        out = {"cuda": cuda, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if cuda and torch.cuda.is_initialized():
            out["peak_mem_mb"] = max(peak["allocated"], torch.cuda.max_memory_allocated()) / 2**20
            out["peak_reserved_mb"] = max(peak["reserved"], torch.cuda.max_memory_reserved()) / 2**20
            out["gpu_total_memory_mb"] = torch.cuda.get_device_properties(0).total_memory / 2**20
        if "model" in captured:
            try:
                out["flops"] = flop_counts(captured["model"], captured["criterion"])
            except Exception as e:  # the memory figures still count
                out["flops_error"] = f"{type(e).__name__}: {e}"
        print(RESULT_MARK + json.dumps(out), flush=True)

    atexit.register(report)
    sys.argv = ["fairseq-train", *argv]
    cli_main()
    copy = os.environ.get("GPU_CHECK_FP16_COPY")
    if copy:  # torch is loaded here already: the tiny CPU run's stand-in for an --fp16 checkpoint
        as_saved_by_a_gpu_run(os.path.join(captured["save_dir"], "checkpoint_last.pt"), copy)


def child_sdpa(argv):
    """Gradient of the relative position bias under each SDPA backend, against the math kernel."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--vocab-size", type=int, required=True)
    args = parser.parse_args(argv)

    import warnings

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(ROOT))
    from benchmarks.worker import write_dictionary
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        write_dictionary(Path(tmp), args.vocab_size)
        parsed = options.parse_args_and_arch(options.get_training_parser(), input_args=[
            tmp, "--user-dir", USER_DIR, "--task", "amos_rtd", "--arch", args.arch, "--criterion", "amos",
            "--tokens-per-sample", str(args.length), "--dropout", "0", "--attention-dropout", "0", "--seed", "1"])
        cfg = convert_namespace_to_omegaconf(parsed)
        task = tasks.setup_task(cfg.task)
        torch.manual_seed(1)
        model = task.build_model(cfg.model)
    bias_module = model.discriminator.relative_position_bias
    if bias_module is None:
        raise SystemExit(f"{args.arch} has no relative position bias (--rel-pos-bins 0)")
    model.to(device).train()
    rel_pos = bias_module.bias.weight
    qkv = model.discriminator.stack.layers[0].qkv_proj.weight

    gen = torch.Generator().manual_seed(1)
    dictionary = task.source_dictionary
    tokens = torch.randint(dictionary.nspecial, len(dictionary) - 1, (args.batch, args.length), generator=gen)
    tokens[:, 0] = dictionary.bos()
    tokens[:, -1] = dictionary.eos()
    padded_tokens = tokens.clone()
    for row in range(1, args.batch):  # row 0 full, the others end early
        end = args.length - row * args.length // (2 * args.batch) - 1
        padded_tokens[row, end] = dictionary.eos()
        padded_tokens[row, end + 1:] = dictionary.pad()
    labels = (torch.rand(args.batch * args.length, generator=gen) < MASK_PROB).float()
    cases = {"unpadded": (tokens.to(device), False), "padded": (padded_tokens.to(device), True)}
    labels = labels.to(device)

    def forward_backward(tokens, padded, dtype, backend):
        model.zero_grad(set_to_none=True)
        context = sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()
        autocast = torch.autocast(device, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with warnings.catch_warnings(record=True) as caught, profile(activities=[ProfilerActivity.CPU]) as prof:
            warnings.simplefilter("always")
            with context, autocast:
                features, _ = model.discriminator(tokens, padded=padded)
                logits = model.rtd_head(features.flatten(0, 1))
                keep = tokens.flatten().ne(dictionary.pad()).float()
                loss = (F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none") * keep).sum() / keep.sum()
            loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        ops = sorted({e.name for e in prof.events() if "attention" in e.name or "scaled_dot" in e.name})
        messages = sorted({str(w.message).splitlines()[0][:200] for w in caught if "attention" in str(w.message).lower()
                           or "kernel" in str(w.message).lower()})
        if rel_pos.grad is None or qkv.grad is None:
            raise RuntimeError("no gradient reached the relative position bias (or layer 0's qkv)")
        return {"loss": loss.item(), "rel_pos": rel_pos.grad.detach().float().clone(),
                "qkv": qkv.grad.detach().float().clone(), "ops": ops, "warnings": messages}

    dtypes = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    precisions = ["fp32", "fp16", "bf16"] if device == "cuda" else ["fp32"]
    backends = {"default": None, "math": SDPBackend.MATH, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}
    comparisons, headline = [], {}
    for case, (case_tokens, padded) in cases.items():
        reference = forward_backward(case_tokens, padded, None, SDPBackend.MATH)  # fp32 math
        for precision in precisions:
            runs = {}
            for name, backend in backends.items():
                try:
                    runs[name] = forward_backward(case_tokens, padded, dtypes[precision], backend)
                except Exception as e:  # a backend that cannot run this call (e.g. flash with a bias)
                    runs[name] = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"}
            math_run = runs["math"]
            for name, run in runs.items():
                row = {"case": case, "precision": precision, "backend": name}
                if "error" in run:
                    row.update(status="no gradient" if "no gradient" in run["error"] else "unavailable",
                               error=run["error"])
                    comparisons.append(row)
                    continue
                finite = math.isfinite(run["loss"]) and bool(torch.isfinite(run["rel_pos"]).all())
                row.update(status="ok" if finite else "not finite", kernel_ops=run["ops"], warnings=run["warnings"],
                           loss=run["loss"],
                           rel_pos_grad_rel_err_vs_fp32_math=rel_diff(run["rel_pos"], reference["rel_pos"]))
                if "error" not in math_run and name != "math":
                    row.update(rel_pos_grad_rel_diff_vs_math=rel_diff(run["rel_pos"], math_run["rel_pos"]),
                               loss_rel_diff_vs_math=rel_diff(run["loss"], math_run["loss"]),
                               qkv_grad_rel_diff_vs_math=rel_diff(run["qkv"], math_run["qkv"]))
                    if name == "default":
                        headline[f"{case}/{precision}"] = {
                            **{k: row[k] for k in ("rel_pos_grad_rel_diff_vs_math", "loss_rel_diff_vs_math",
                                                   "qkv_grad_rel_diff_vs_math", "kernel_ops")},
                            "rel_pos_grad_rel_err_vs_fp32_math": row["rel_pos_grad_rel_err_vs_fp32_math"],
                            "math_rel_pos_grad_rel_err_vs_fp32_math": rel_diff(math_run["rel_pos"], reference["rel_pos"]),
                        }
                comparisons.append(row)
    diffs = [v["rel_pos_grad_rel_diff_vs_math"] for v in headline.values()]
    result = {
        "arch": args.arch, "batch": args.batch, "length": args.length, "device": device,
        "precisions": precisions, "comparisons": comparisons, "default_vs_math": headline,
        "max_rel_pos_grad_rel_diff_default_vs_math": max(diffs) if diffs else None,
    }
    print(RESULT_MARK + json.dumps(result), flush=True)


def as_saved_by_a_gpu_run(src, dst):
    """``src`` rewritten as an --fp16 GPU run saves it: fp16 in the saved config (common and
    the model's namespace) and half weights (tests/test_portable_checkpoints.py uses it too)."""
    import torch

    state = torch.load(src, map_location="cpu", weights_only=False)
    state["cfg"]["common"]["fp16"] = True
    model_cfg = state["cfg"]["model"]
    if isinstance(model_cfg, dict) or hasattr(model_cfg, "keys"):
        model_cfg["fp16"] = True
    else:
        model_cfg.fp16 = True
    state["model"] = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, dst)


CHILDREN = {"info": child_info, "train": child_train, "sdpa": child_sdpa}


# ====================================================================== the steps


class Check:
    def __init__(self, args, started=None):
        self.args = args
        self.started = started or time.time()
        self.deadline = self.started + args.budget
        self.report = {"schema": SCHEMA, "status": "running",
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": []}
        self.data_bin = self.corpus_dir = self.checkpoint = self.classification = None
        self.lock = threading.RLock()

    def remaining(self):
        return self.deadline - time.time()

    def save(self):
        with self.lock:
            self.report["total_seconds"] = round(time.time() - self.started, 1)
            write_json(self.args.out, self.report)

    def step(self, name, kind, fn, *fn_args, needs=None, background=False, **fields):
        """Run ``fn(entry, *fn_args)`` as one recorded step. ``background=True`` starts it in a
        thread (its work is a subprocess) and returns a handle for ``join``: only for steps that
        time nothing themselves, next to steps that time nothing either."""
        entry = {"name": name, "kind": kind, "status": None, "seconds": 0.0, **fields}
        with self.lock:
            self.report["steps"].append(entry)
        if background:
            entry["status"] = "running"
            private = dict(entry)
            thread = threading.Thread(target=self._execute, args=(private, fn, fn_args, needs), daemon=True)
            thread.start()
            return entry, private, thread
        self._execute(entry, fn, fn_args, needs)
        self._finish(entry)
        return entry

    def join(self, handle):
        entry, private, thread = handle
        thread.join()
        with self.lock:
            entry.update(private)
        self._finish(entry)
        return entry

    def _execute(self, entry, fn, fn_args, needs):
        start = time.time()
        try:
            if needs:
                raise StepSkipped(needs)
            if self.remaining() < 5:
                raise StepSkipped(f"the time budget of {self.args.budget:.0f} s was spent")
            fn(entry, *fn_args)
            entry["status"] = "ok"
        except StepSkipped as e:
            entry.update(status="skipped", reason=str(e))
        except StepFailed as e:
            entry.update(status="failed", error=str(e), log_tail=e.tail)
        except Exception as e:
            entry.update(status="failed", error=f"{type(e).__name__}: {e}", log_tail=tail_lines(traceback.format_exc()))
        entry["seconds"] = round(time.time() - start, 2)

    def _finish(self, entry):
        detail = entry.get("reason") or entry.get("error") or ""
        print(f"[gpu_check {time.time() - self.started:5.0f}s] {entry['name']}: {entry['status']} "
              f"({entry['seconds']:.1f} s)" + (f": {detail.splitlines()[0][:160]}" if detail else ""), flush=True)
        self.save()

    def timeout(self, cap):
        """Seconds a subprocess may run: the step's cap, within what is left of the budget."""
        return max(1.0, min(cap, self.remaining()))

    # ------------------------------------------------------------------ prepare

    def prepare_corpus(self, entry):
        size = self.args.sizes
        text = CORPUS
        if size["corpus_lines"]:
            text = self.args.work / "corpus-slice.txt"
            with lzma.open(CORPUS, "rt", encoding="utf-8") as src, open(text, "w", encoding="utf-8") as dst:
                for i, line in enumerate(src):
                    if i >= size["corpus_lines"]:
                        break
                    dst.write(line)
        out = self.args.work / "corpus"
        cmd = [sys.executable, ROOT / "scripts" / "prepare_corpus.py", text, "--out", out, "--vocab-size",
               self.args.vocab_size, "--valid-lines", size["valid_lines"], "--workers", min(8, os.cpu_count() or 1),
               "--force"]
        rc, output = run_proc(cmd, self.timeout(CAPS["prepare_corpus"]))
        if rc != 0 or not (out / "data-bin" / "train.bin").is_file():
            raise StepFailed(f"prepare_corpus.py exited {rc}", tail_lines(output))
        match = re.search(r"train\.spm: \d+ sents, (\d+) tokens", output)
        entry.update(corpus=str(CORPUS.relative_to(ROOT)), corpus_lines=size["corpus_lines"] or "all",
                     vocab_size=self.args.vocab_size, train_tokens=int(match.group(1)) if match else None)
        self.corpus_dir, self.data_bin = out, out / "data-bin"

    # ------------------------------------------------------------------ training

    def train(self, entry, criterion, arch, precision, save):
        args, size = self.args, self.args.sizes
        _, betas, leave_unmasked, base_lr = METHODS[criterion]
        save_dir = args.work / f"checkpoints-{criterion}-{precision}"
        fairseq_args = [
            self.data_bin, "--user-dir", USER_DIR, "--task", "amos_rtd", "--arch", arch, "--criterion", criterion,
            "--tokens-per-sample", args.length, "--sample-break-mode", "complete", "--mask-prob", MASK_PROB,
            "--leave-unmasked-prob", leave_unmasked, "--batch-size", args.batch_size, "--update-freq", 1,
            "--optimizer", "adam", "--adam-betas", betas, "--adam-eps", "1e-6", "--weight-decay", "0.01",
            "--clip-norm", "1.0", "--lr", size["lr"] or base_lr, "--lr-scheduler", "polynomial_decay",
            "--warmup-updates", min(size["warmup"], max(1, args.updates // 3)), "--total-num-update", args.updates,
            "--max-update", args.updates, "--seed", 1, "--num-workers", size["num_workers"],
            "--log-format", "simple", "--log-interval", args.log_interval, "--disable-validation",
            "--distributed-world-size", 1,
        ]
        fairseq_args += {"fp16": ["--fp16", "--fp16-init-scale", 128], "amp": ["--amp"], "fp32": []}[precision]
        if save:
            fairseq_args += ["--save-dir", save_dir, "--no-epoch-checkpoints", "--save-interval", 1000]
        else:
            fairseq_args += ["--no-save"]
        cmd = [sys.executable, SCRIPT, "--child", "train", *fairseq_args]
        entry["command"] = "fairseq-train " + " ".join(str(a) for a in fairseq_args)
        shutil.rmtree(save_dir, ignore_errors=True)  # fairseq would resume from an earlier checkpoint_last.pt
        env = dict(self.args.child_env)
        if save and self.args.device != "cuda":
            env["GPU_CHECK_FP16_COPY"] = str(self.args.work / "checkpoint_fp16.pt")
            entry["fp16_copy"] = env["GPU_CHECK_FP16_COPY"]
        rc, output = run_proc(cmd, self.timeout(CAPS["train"]), env=env)
        inner, final = parse_log(output, "train_inner"), parse_log(output, "train")
        result = child_result(output) or {}
        if rc != 0:
            raise StepFailed(f"fairseq-train exited {rc}", tail_lines(output))
        if not inner:
            raise StepFailed("fairseq-train logged no train_inner line", tail_lines(output))
        wps = [row["wps"] for row in inner if "wps" in row]
        timed = wps[1:] if len(wps) > 1 else wps
        losses = [row["loss"] for row in inner + final if "loss" in row]
        entry.update(
            updates=int(max(row.get("num_updates", 0) for row in inner + final)),
            tokens_per_s=statistics.median(timed) if timed else None,
            tokens_per_s_source=("median of fairseq's wps over log intervals 2..%d (interval 1: warm-up)" % len(wps)
                                 if len(wps) > 1 else "fairseq's wps of the only log interval (includes warm-up)"),
            wps_per_interval=wps,
            loss=losses[-1] if losses else None, losses=losses,
            loss_finite=bool(losses) and all(math.isfinite(v) for v in losses),
            overflow_skips=output.count("gradient overflow detected"),
            loss_scale=next((row["loss_scale"] for row in reversed(inner + final) if "loss_scale" in row), None),
            peak_mem_mb=result.get("peak_mem_mb"), peak_reserved_mb=result.get("peak_reserved_mb"),
            peak_rss_mb=result.get("peak_rss_mb"),
            memory_source=("torch.cuda.max_memory_allocated in the training process, kept across fairseq's "
                           "per-update resets" if result.get("cuda") else
                           "no GPU: peak_rss_mb is the training process's peak resident set"),
            fairseq_gb_free_min=min((row["gb_free"] for row in inner if "gb_free" in row), default=None),
            checkpoint=str(save_dir / "checkpoint_last.pt") if save else None,
        )
        flops = result.get("flops")
        wpb = statistics.median(row["wpb"] for row in inner if "wpb" in row)
        bsz = statistics.median(row["bsz"] for row in inner if "bsz" in row)
        entry["mean_seq_len"] = wpb / bsz
        if flops:
            per_token = (flops["per_token"] + MASK_PROB * flops["per_masked_token"]
                         + flops["attention_per_token_per_position"] * entry["mean_seq_len"])
            entry.update(parameters=flops["parameters"], flops_per_token=per_token, flops_breakdown=flops)
            if entry["tokens_per_s"]:
                entry["achieved_tflops"] = per_token * entry["tokens_per_s"] / 1e12
        else:
            entry["flops_error"] = result.get("flops_error", "the training process reported no model")
        peak, why = args.peak, args.peak_reason
        if entry.get("achieved_tflops") is not None and peak and args.device == "cuda":
            entry.update(mfu=entry["achieved_tflops"] / peak, mfu_note=f"against {why}")
        else:
            entry.update(mfu=None, mfu_note=why if args.device == "cuda" else "no GPU: MFU is measured against a GPU's peak")
        if save and not (save_dir / "checkpoint_last.pt").is_file():
            raise StepFailed("no checkpoint_last.pt was saved", tail_lines(output))
        if save:
            self.checkpoint = save_dir / "checkpoint_last.pt"
        if entry["updates"] < args.updates:
            raise StepFailed(f"stopped after {entry['updates']} of {args.updates} updates", tail_lines(output))
        if not entry["loss_finite"]:
            raise StepFailed(f"the loss is not finite: {losses}", tail_lines(output))

    # ------------------------------------------------------------------ SDPA

    def sdpa(self, entry):
        size = self.args.sizes
        cmd = [sys.executable, SCRIPT, "--child", "sdpa", "--arch", f"amos_{size['size']}",
               "--batch", size["sdpa_batch"], "--length", size["sdpa_length"], "--vocab-size", self.args.vocab_size]
        rc, output = run_proc(cmd, self.timeout(CAPS["sdpa"]), env=self.args.child_env)
        result = child_result(output)
        if rc != 0 or result is None:
            raise StepFailed(f"the SDPA check exited {rc}", tail_lines(output))
        entry.update(result)
        if not result["default_vs_math"]:
            raise StepFailed("neither the default nor the math kernel ran", tail_lines(output))
        # The default kernel's gradient should be about as close to fp32 math as the math kernel's
        # own in the same precision: far worse (and not tiny) means a wrong gradient, not rounding.
        bad = [f"{key}: rel-pos grad {v['rel_pos_grad_rel_err_vs_fp32_math']:.2e} from fp32 math against the math "
               f"kernel's {v['math_rel_pos_grad_rel_err_vs_fp32_math']:.2e}"
               for key, v in result["default_vs_math"].items()
               if v["rel_pos_grad_rel_err_vs_fp32_math"] > max(1e-2, 5 * v["math_rel_pos_grad_rel_err_vs_fp32_math"])]
        if bad:
            raise StepFailed("the default SDPA kernel's relative position bias gradient is off: " + "; ".join(bad))

    # ------------------------------------------------------------------ the checkpoint on a CPU

    def export(self, entry):
        checkpoint = self.checkpoint
        entry["checkpoint_note"] = "the electra --fp16 run's checkpoint_last.pt"
        if self.args.device != "cuda":
            portable = self.args.work / "checkpoint_fp16.pt"
            if not portable.is_file():
                raise StepFailed(f"the electra run wrote no {portable.name} (its checkpoint as an fp16 GPU run saves it)")
            checkpoint = self.checkpoint = portable
            entry["checkpoint_note"] = ("no GPU: the electra fp32 run's checkpoint_last.pt, rewritten by its training "
                                        "process as an --fp16 GPU run saves it (half weights, fp16 in its config)")
        out = self.args.work / "hf"
        cmd = [sys.executable, ROOT / "scripts" / "export_hf.py", checkpoint, "--out", out, "--data", self.data_bin,
               "--force"]
        entry.update(checkpoint=str(checkpoint), out=str(out), command="export_hf.py " + " ".join(map(str, cmd[2:])))
        rc, output = run_proc(cmd, self.timeout(CAPS["export"]), env=CPU_ENV)
        if rc != 0:
            raise StepFailed(f"export_hf.py exited {rc}", tail_lines(output))
        entry["verify"] = {m.group(1): float(m.group(2)) for m in
                           re.finditer(r"\[verify\] max \|hf - fairseq\| (\S+): (\S+)", output)}
        entry["files"] = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        if "model.safetensors" not in entry["files"]:
            raise StepFailed("the export wrote no model.safetensors", tail_lines(output))

    def prepare_classification(self, entry, checkpoint):
        """A small slice of a shipped task -> fairseq's sentence_prediction layout."""
        size = self.args.sizes
        task = self.args.work / "task"
        task.mkdir(exist_ok=True)
        rows = {"train": size["ft_train_rows"], "dev": size["ft_dev_rows"]}
        for split, n in rows.items():
            lines = (TASK / f"{split}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
            (task / f"{split}.tsv").write_text("".join(lines[: n + 1]), encoding="utf-8")
        data = self.args.work / "classification"
        cmd = [sys.executable, ROOT / "scripts" / "prepare_classification.py", task, "--corpus-dir", self.corpus_dir,
               "--out", data, "--force"] + (["--checkpoint", checkpoint] if checkpoint else [])
        rc, output = run_proc(cmd, self.timeout(CAPS["prepare_classification"]), env=CPU_ENV)
        if rc != 0:
            raise StepFailed(f"prepare_classification.py exited {rc}", tail_lines(output))
        meta = json.loads((data / "meta.json").read_text())
        entry.update(task=f"{TASK.relative_to(ROOT)} (first rows)", train_rows=rows["train"], dev_rows=rows["dev"],
                     num_classes=meta["num_classes"], out=str(data))
        self.classification = (data, meta["num_classes"])

    def finetune(self, entry):
        size = self.args.sizes
        data, num_classes = self.classification
        entry.update(checkpoint=str(self.checkpoint), data=str(data))
        updates = 2
        fairseq_args = [
            data, "--user-dir", USER_DIR, "--task", "sentence_prediction", "--criterion", "sentence_prediction",
            "--arch", self.args.archs["electra"], "--num-classes", num_classes, "--init-token", 0,
            "--separator-token", 2, "--max-positions", MAX_POSITIONS, "--shorten-method", "truncate",
            "--restore-file", self.checkpoint, "--reset-optimizer", "--reset-dataloader", "--reset-meters",
            "--dropout", "0.1", "--attention-dropout", "0.1", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
            "--adam-eps", "1e-6", "--weight-decay", "0.01", "--clip-norm", "1.0", "--lr", "1e-5",
            "--lr-scheduler", "polynomial_decay", "--warmup-updates", 1, "--total-num-update", updates,
            "--max-update", updates, "--batch-size", size["ft_batch"], "--seed", 1,
            "--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric", "--no-save",
            "--log-format", "simple", "--log-interval", 1, "--num-workers", 0,
        ]
        entry["command"] = "fairseq-train " + " ".join(map(str, fairseq_args))
        rc, output = run_proc([sys.executable, "-m", "fairseq_cli.train", *fairseq_args],
                              self.timeout(CAPS["finetune"]), env=CPU_ENV)
        if rc != 0:
            raise StepFailed(f"fine-tuning exited {rc}", tail_lines(output))
        inner, valid = parse_log(output, "train_inner") + parse_log(output, "train"), parse_log(output, "valid")
        entry.update(updates=int(max((row.get("num_updates", 0) for row in inner), default=0)),
                     valid_accuracy=valid[-1].get("accuracy") if valid else None,
                     valid_loss=valid[-1].get("loss") if valid else None,
                     generator_dropped=bool(re.search(r"dropped \d+ pretraining-only tensors of generator", output)))
        if entry["updates"] < updates:
            raise StepFailed(f"fine-tuning stopped after {entry['updates']} of {updates} updates", tail_lines(output))
        if not valid:
            raise StepFailed("fine-tuning logged no validation", tail_lines(output))


CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
# Longest a step's subprocess may run (seconds), within what is left of the budget.
CAPS = {"prepare_corpus": 180, "train": 180, "sdpa": 150, "export": 150, "prepare_classification": 120,
        "finetune": 150}


# ====================================================================== main


def nvidia_smi():
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        return proc.stdout.strip() or proc.stderr.strip()
    except Exception as e:
        return f"{type(e).__name__}: {e}"


def machine_info(env):
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    rc, output = run_proc([sys.executable, SCRIPT, "--child", "info"], 120, env=env)
    facts = child_result(output)
    if rc != 0 or facts is None:
        raise SystemExit(f"error: torch could not be imported ({sys.executable}):\n{tail_lines(output)}")
    info.update(facts)
    info["nvidia_smi"] = nvidia_smi()
    return info


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (benchmarks/gpu_check.py) for what is measured.")
    parser.add_argument("--out", required=True, help="JSON file to write (rewritten after every step)")
    parser.add_argument("--tiny", action="store_true", help="tiny archs and shapes (automatic without CUDA)")
    parser.add_argument("--cpu", action="store_true", help="hide the GPU (CUDA_VISIBLE_DEVICES=''): implies --tiny")
    parser.add_argument("--budget", type=float, default=420, help="seconds for all steps; later ones are skipped")
    parser.add_argument("--updates", type=int, help="updates per training run (30; tiny 6)")
    parser.add_argument("--log-interval", type=int, help="fairseq's log interval (10; tiny 2)")
    parser.add_argument("--batch", help="SEQxTOK per update (32x512; tiny 8x64)")
    parser.add_argument("--vocab-size", type=int, help="sentencepiece pieces (8000; tiny 800)")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense fp16/bf16 peak, for a card not in the table")
    parser.add_argument("--work", help="working folder (default: a temporary one)")
    parser.add_argument("--keep-work", action="store_true", help="keep the working folder (checkpoints, data)")
    parser.add_argument("--serial", action="store_true",
                        help="without a GPU too, run every step alone (by default the tiny amos and "
                             "focal_hardness runs train beside the electra -> export -> fine-tune chain)")
    return parser.parse_args(argv)


def summary_text(report):
    s, m = report["settings"], report["machine"]
    lines = [
        f"gpu_check ({s['mode']}, {s['device']}: {m.get('gpu_name') or m.get('cpu') or '?'}; "
        f"peak {m.get('peak_tflops') or '-'} TFLOP/s) status {report['status']}, "
        f"{report['total_seconds']:.0f} s of a {s['budget_s']:.0f} s budget",
        f"{'step':<28} {'status':<8} {'s':>6} {'tokens/s':>10} {'peak MiB':>9} {'loss':>8} {'TFLOP/s':>8} {'MFU':>6}",
    ]
    for step in report["steps"]:
        row = f"{step['name']:<28} {step['status']:<8} {step['seconds']:>6.1f}"
        if step["kind"] == "train" and step["status"] != "skipped" and step.get("tokens_per_s") is not None:
            mem = step.get("peak_mem_mb") if step.get("peak_mem_mb") is not None else step.get("peak_rss_mb")
            row += (f" {step['tokens_per_s']:>10.0f} {'-' if mem is None else str(round(mem)):>9}"
                    f" {step['loss'] if step.get('loss') is not None else float('nan'):>8.3f}"
                    f" {step.get('achieved_tflops') or 0:>8.2f}"
                    f" {('%.1f%%' % (100 * step['mfu'])) if step.get('mfu') is not None else '-':>6}")
        elif step["kind"] == "sdpa" and step["status"] == "ok":
            row += "  default vs math, rel-pos grad: " + ", ".join(
                f"{k} {v['rel_pos_grad_rel_diff_vs_math']:.1e}" for k, v in step["default_vs_math"].items())
        elif step["kind"] == "export" and step["status"] == "ok":
            row += "  verify max|hf-fairseq| " + ", ".join(f"{k} {v:.1e}" for k, v in step["verify"].items())
        elif step["kind"] == "finetune" and step["status"] == "ok":
            row += f"  {step['updates']} updates, valid accuracy {step['valid_accuracy']}"
        if step["status"] != "ok":
            why = step.get("reason") or step.get("error") or ""
            row += "  " + why.splitlines()[0][:110]
        lines.append(row)
    if s["device"] != "cuda":
        lines.append("(no GPU: peak MiB is the training process's peak RSS; fp32 training, --fp16/--amp skipped)")
    return "\n".join(lines)


def configure(args, machine):
    """Sizes, precisions and the card's peak from the machine: (mode, training precisions)."""
    args.device = "cuda" if machine["cuda_available"] else "cpu"
    mode = "gpu" if args.device == "cuda" and not args.tiny else "tiny"
    args.sizes = SIZES[mode]
    args.updates = args.updates or args.sizes["updates"]
    args.log_interval = args.log_interval or args.sizes["log_interval"]
    args.vocab_size = args.vocab_size or args.sizes["vocab"]
    args.batch_size, args.length = args.sizes["batch"], args.sizes["length"]
    if args.batch:
        try:
            args.batch_size, args.length = (int(v) for v in args.batch.lower().split("x"))
        except ValueError:
            raise SystemExit(f"error: --batch must look like 32x512 (sequences x tokens), got {args.batch!r}")
    args.peak, args.peak_reason = peak_tflops(machine.get("gpu_name"), args.peak_tflops)
    machine.update(peak_tflops=args.peak, peak_tflops_source=args.peak_reason)
    args.archs = {c: f"{METHODS[c][0]}_{args.sizes['size']}" for c in METHODS}
    return mode, (["fp16", "amp"] if args.device == "cuda" else ["fp32"])


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return CHILDREN[argv[1]](argv[2:])
    args = parse_args(argv)
    args.child_env = {"CUDA_VISIBLE_DEVICES": ""} if args.cpu else {}
    started = time.time()
    machine = machine_info(args.child_env)
    mode, precisions = configure(args, machine)
    temporary = args.work is None
    args.work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check-")).resolve()
    args.work.mkdir(parents=True, exist_ok=True)

    check = Check(args, started)
    check.report.update(settings={
        "mode": mode, "device": args.device, "budget_s": args.budget, "updates": args.updates,
        "log_interval": args.log_interval, "batch": args.batch_size, "tokens_per_sample": args.length,
        "vocab_size": args.vocab_size, "mask_prob": MASK_PROB, "precisions": precisions, "archs": args.archs,
        "sdpa": {"arch": f"amos_{args.sizes['size']}", "batch": args.sizes["sdpa_batch"],
                 "length": args.sizes["sdpa_length"]},
        "finetune": {"train_rows": args.sizes["ft_train_rows"], "dev_rows": args.sizes["ft_dev_rows"],
                     "batch": args.sizes["ft_batch"], "updates": 2},
        "work_dir": str(args.work),
    }, machine=machine)
    check.save()
    print(f"[gpu_check] {mode} mode on {args.device} ({machine.get('gpu_name') or machine.get('cpu')}), "
          f"budget {args.budget:.0f} s, work {args.work}", flush=True)

    no_cuda = ("no CUDA: fairseq's --fp16 needs a GPU (the project stops it on a CPU) and --amp is CUDA "
               "autocast; the fp32 run of this criterion stands in")
    try:
        # The SDPA check times nothing: it runs while the corpus is prepared (CPU work).
        sdpa = check.step("sdpa_vs_math", "sdpa", check.sdpa, background=True)
        corpus = check.step("prepare_corpus", "prepare", check.prepare_corpus)
        check.join(sdpa)
        no_data = None if corpus["status"] == "ok" else "needs the prepared corpus (prepare_corpus did not run)"

        def train(criterion, precision, save=False, background=False):
            arch = args.archs[criterion]
            name = f"train_{criterion}_{precision}"
            if precision not in precisions:
                return check.step(name, "train", None, needs=no_cuda, criterion=criterion, arch=arch,
                                  precision=precision)
            return check.step(name, "train", check.train, criterion, arch, precision, save, needs=no_data,
                              background=background, criterion=criterion, arch=arch, precision=precision)

        first = precisions[0]
        if first != "fp16":
            for criterion in METHODS:
                train(criterion, "fp16")
        # On a GPU the runs go one at a time: their throughput is the measurement. Without one
        # (tiny, fp32), amos and focal_hardness train beside the electra -> export -> fine-tune chain.
        side_by_side = args.device != "cuda" and not args.serial
        pending = [train(c, first, background=True) for c in METHODS if c != "electra"] if side_by_side else []
        classification = None
        if side_by_side:  # (without --checkpoint: it only checks the vocabulary against it)
            classification = check.step("prepare_classification", "prepare", check.prepare_classification,
                                        None, needs=no_data, background=True)
        train("electra", first, save=True)
        if not side_by_side:
            for criterion in METHODS:
                if criterion != "electra":
                    train(criterion, first)
        # Export and the classification data: both CPU-only, side by side.
        no_checkpoint = (None if check.checkpoint is not None else
                         f"needs the checkpoint of train_electra_{first}, which did not run to the end")
        if classification is None:
            classification = check.step("prepare_classification", "prepare", check.prepare_classification,
                                        check.checkpoint, needs=no_data, background=True)
        exported = check.step("export_hf", "export", check.export, needs=no_checkpoint)
        classification = check.join(classification)
        check.step("finetune", "finetune", check.finetune,
                   needs=no_checkpoint or (None if exported["status"] == "ok" else "needs the export step's checkpoint")
                   or (None if classification["status"] == "ok" else "needs the classification data"))
        for handle in pending:
            check.join(handle)
        for criterion in METHODS:
            train(criterion, "amp")
    finally:
        for proc in list(_LIVE):  # interrupted: stop what this check started
            kill_group(proc)
        steps = check.report["steps"]
        summary = {status: [s["name"] for s in steps if s["status"] == status] for status in ("ok", "failed", "skipped")}
        check.report["summary"] = summary
        expected_skip = [s for s in steps if s["status"] == "skipped" and s["reason"] == no_cuda]
        if summary["failed"]:
            check.report["status"] = "failed"
        elif len(summary["skipped"]) > len(expected_skip):
            check.report["status"] = "incomplete"
        else:
            check.report["status"] = "ok"
        check.save()
        if temporary and not args.keep_work:
            shutil.rmtree(args.work, ignore_errors=True)
    print(summary_text(check.report), flush=True)
    print(f"[gpu_check] wrote {args.out}", flush=True)
    return check.report


if __name__ == "__main__":
    main()
