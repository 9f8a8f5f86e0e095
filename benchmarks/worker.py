"""Run one benchmark configuration in this process and print one JSON line.

Called by ``benchmarks/run.py`` once per configuration (and round), each in its own
process, so that peak memory belongs to that configuration alone. Not meant to be run by
hand, but it can be: ``python benchmarks/worker.py '<spec json>'``.

A spec names a ``kind``:

- ``fairseq``: task, model and criterion built through fairseq's options, tasks and
  registries from ``fairseq_args`` (our criteria with ``--user-dir amos_fairseq``, or
  fairseq's own ``masked_lm``); a step is ``criterion(model, sample)`` -> backward ->
  clip -> optimizer step.
- ``hf_electra``: HuggingFace transformers' ELECTRA generator + discriminator
  (``benchmarks/hf_electra.py``).
- ``matmul``: the dense matmul rate alone.

Every kind reports step times (seconds), peak memory, the matmul FLOPs of one step counted by
``torch.utils.flop_counter`` and the machine's dense matmul rate measured right after the
timed steps.
"""

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.batches import make_batch  # noqa: E402


# ---------------------------------------------------------------------- measurement helpers


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """High-water mark of the resident set size of this process, in MiB (ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 8) -> float:
    """Median FLOP/s of a square [size x size] @ [size x size] matmul on this device."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return 2 * size**3 / times[len(times) // 2]


def _register_cpu_attention_flops() -> None:
    """torch's FlopCounterMode counts SDPA on CUDA kernels but not the CPU flash kernel,
    which is what runs here; give it the same formulas."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    forward_op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward_op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward_op is None or forward_op.default in fc.flop_registry:
        return

    @fc.register_flop_formula(forward_op)
    def _forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query_shape, key_shape, value_shape)

    @fc.register_flop_formula(backward_op)
    def _backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def count_flops(step) -> int:
    """Matmul-class FLOPs (linear, bmm, attention) of one call of ``step``, forward + backward."""
    from torch.utils.flop_counter import FlopCounterMode

    _register_cpu_attention_flops()
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


# ---------------------------------------------------------------------- synthetic batches


def write_dictionary(directory: Path, vocab_size: int) -> None:
    """A dict.txt whose Dictionary, with the 4 specials and the task's <mask>, has exactly
    ``vocab_size`` entries."""
    with open(directory / "dict.txt", "w") as f:
        for i in range(vocab_size - 5):
            f.write(f"w{i} {vocab_size - i}\n")


def fairseq_sample(tokens, selected, mask_idx: int, pad_idx: int, task_name: str, device: str):
    """The sample dict each task's collater would give for this batch."""
    src = tokens.masked_fill(selected, mask_idx)
    if task_name == "masked_lm":
        # fairseq's masked_lm target holds the original token at masked positions, pad elsewhere.
        net_input = {"src_tokens": src, "src_lengths": torch.full((tokens.size(0),), tokens.size(1))}
        target = tokens.masked_fill(~selected, pad_idx)
    else:
        from amos_fairseq.modules.positions import collate_positions

        net_input = {
            "src_tokens": src,
            "src_lengths": torch.full((tokens.size(0),), tokens.size(1)),
            "masked_tokens": selected,
            "positions": collate_positions(list(selected)),  # as the amos_rtd collater gives them
        }
        target = tokens
    sample = {
        "id": torch.arange(tokens.size(0)),
        "net_input": net_input,
        "target": target,
        "nsentences": tokens.size(0),
        "ntokens": tokens.numel(),
    }
    from fairseq import utils

    return utils.move_to_cuda(sample) if device.startswith("cuda") else sample


# ---------------------------------------------------------------------- step builders


def build_fairseq_step(spec, workdir: Path):
    """(step(), params, notes) for a task/model/criterion built through fairseq's registries."""
    from fairseq import options, tasks
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    write_dictionary(workdir, spec["vocab_size"])
    batch, length = spec["batch"], spec["length"]
    argv = [str(workdir), "--tokens-per-sample", str(length), "--mask-prob", str(spec["mask_prob"]),
            "--seed", str(spec["seed"]), *spec["fairseq_args"]]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=argv)
    if args.criterion not in CRITERION_REGISTRY:
        return None, None, f"criterion {args.criterion!r} is not registered in this checkout"
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    device = spec["device"]
    model.to(device)
    criterion.to(device)
    model.train()
    tokens, selected = make_batch(batch, length, spec["vocab_size"], spec["mask_prob"], spec["seed"])
    dictionary = task.source_dictionary
    if len(dictionary) != spec["vocab_size"]:
        raise RuntimeError(f"dictionary has {len(dictionary)} entries, expected {spec['vocab_size']}")
    sample = fairseq_sample(tokens, selected, task.mask_idx, dictionary.pad(), args.task, device)
    params = [p for p in model.parameters() if p.requires_grad]

    def forward_backward(autocast):
        with autocast():
            loss, sample_size, _ = criterion(model, sample)
        # fairseq's trainer divides the gradients by the summed sample_size.
        return loss / sample_size

    return forward_backward, params, None


def build_step(spec, workdir: Path):
    device = spec["device"]
    if spec["kind"] == "fairseq":
        forward_backward, params, skipped = build_fairseq_step(spec, workdir)
    elif spec["kind"] == "hf_electra":
        from benchmarks.hf_electra import build_hf_electra_step

        forward_backward, params, skipped = build_hf_electra_step(spec)
    else:
        raise ValueError(f"unknown kind {spec['kind']!r}")
    if skipped:
        return None, None, skipped
    # The same optimizer and clipping for every configuration: the comparison is of the
    # model and objective, not of optimizer implementations.
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01, foreach=True)
    precision = spec.get("precision", "fp32")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def autocast():
        if dtype is None:
            return torch.autocast(device_type="cpu", enabled=False)
        return torch.autocast(device_type=device.split(":")[0], dtype=dtype)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = forward_backward(autocast)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return loss

    return step, params, None


# ---------------------------------------------------------------------- main


def run(spec) -> dict:
    torch.manual_seed(spec["seed"])
    device = spec["device"]
    result = {"name": spec["name"], "kind": spec["kind"], "threads": torch.get_num_threads()}
    matmul_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(spec.get("precision"), torch.float32)
    if spec["kind"] == "matmul":
        result["matmul_flops"] = matmul_rate(device, matmul_dtype)
        return result
    # Imports first, so that the memory baseline holds the libraries but nothing of the model.
    if spec["kind"] == "fairseq":
        import fairseq.options  # noqa: F401
    else:
        import amos_fairseq  # noqa: F401  (the peer takes our architectures' sizes)

        try:
            from benchmarks.hf_electra import import_transformers

            import_transformers()
        except ImportError:
            pass  # reported as skipped by the step builder
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_baseline = current_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        step, params, skipped = build_step(spec, Path(tmp))
    if skipped:
        result["skipped"] = skipped
        return result
    result["parameters"] = sum(p.numel() for p in params)
    for _ in range(spec["warmup"]):
        step()
    synchronize(device)
    times = []
    for _ in range(spec["steps"]):
        synchronize(device)
        start = time.perf_counter()
        loss = step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    result["step_times"] = times
    result["loss"] = float(loss.detach())
    # Peak memory of training: parameters, gradients, optimizer state, activations and
    # temporaries. On CPU the growth of the process's peak RSS over the baseline taken after
    # the imports (allocator caching included); on a GPU what torch allocated at most.
    if device.startswith("cuda"):
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mem_mb"] = peak_rss_mb() - rss_baseline
        result["rss_baseline_mb"] = rss_baseline
    result["matmul_flops"] = matmul_rate(device, matmul_dtype)
    result["step_flops"] = count_flops(step)
    return result


def main():
    spec = json.loads(sys.argv[1])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    result = run(spec)
    print("BENCHMARK_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
