"""Training-step throughput and peak memory of our criteria side by side with their peers.

One run measures, on the same machine, batch (sequences x tokens) and discriminator size:

- our ``electra``, ``amos`` and ``focal_hardness`` criteria (those registered in this
  checkout), the ``amos`` mask-probability curve, and ``electra`` on the AMOS model with a
  single full-width generator of the deepest AMOS depth (what AMOS costs on top of ELECTRA);
- fairseq's own ``masked_lm`` with a RoBERTa of the discriminator's size (the MLM floor);
- HuggingFace transformers' ELECTRA (generator + discriminator), the peer users would pick;
- the machine's dense matmul rate, so that achieved FLOP/s can be read as a share of it.

Each configuration runs in its own process (``benchmarks/worker.py``) so that its peak
memory is its own; ``--rounds`` repeats the whole set in rotated order and pools the step
times, so that load from other processes on the machine is spread over every configuration.

    python benchmarks/run.py --size small --batch 8x128 --steps 10
    python benchmarks/run.py --size base --batch 32x512 --device cuda --bf16

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/<size>-<device>``).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "worker.py"
USER_DIR = str(ROOT / "amos_fairseq")

SIZES = ("tiny", "small", "base", "large")
# Deepest generator of each amos_<size> architecture (the single-generator comparison).
AMOS_DEEPEST = {"tiny": 3, "small": 8, "base": 8, "large": 8}
# RoBERTa flags of each size's discriminator (fairseq's masked_lm floor).
ROBERTA = {
    "tiny": (2, 64, 256, 2),
    "small": (12, 256, 1024, 4),
    "base": (12, 768, 3072, 12),
    "large": (24, 1024, 4096, 16),
}


def configurations(size: str, mask_probs):
    """name -> spec fields (besides the shared ones)."""

    def ours(arch, criterion, *extra, mask_prob=0.15):
        return {
            "kind": "fairseq",
            "mask_prob": mask_prob,
            "label": f"{arch} / {criterion}" + (" " + " ".join(extra) if extra else ""),
            "fairseq_args": ["--user-dir", USER_DIR, "--task", "amos_rtd", "--arch", arch,
                             "--criterion", criterion, *extra],
        }

    layers, width, ffn, heads = ROBERTA[size]
    deepest = AMOS_DEEPEST[size]
    configs = {
        "electra": ours(f"electra_{size}", "electra"),
        "focal_hardness": ours(f"electra_{size}", "focal_hardness"),
        "amos": ours(f"amos_{size}", "amos"),
        f"electra_d{deepest}": ours(f"amos_{size}", "electra", "--generator-depths", str(deepest)),
        "masked_lm": {
            "kind": "fairseq",
            "mask_prob": 0.15,
            "label": f"fairseq masked_lm, RoBERTa {layers}x{width}",
            "fairseq_args": ["--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta",
                             "--encoder-layers", str(layers), "--encoder-embed-dim", str(width),
                             "--encoder-ffn-embed-dim", str(ffn), "--encoder-attention-heads", str(heads),
                             "--dropout", "0.1", "--attention-dropout", "0.1"],
        },
        "hf_electra": {
            "kind": "hf_electra",
            "mask_prob": 0.15,
            "arch": f"electra_{size}",
            "label": f"transformers ELECTRA, electra_{size} sizes, generator head at masked positions",
        },
        "hf_electra_stock": {
            "kind": "hf_electra",
            "mask_prob": 0.15,
            "arch": f"electra_{size}",
            "masked_only": False,
            "label": f"transformers ELECTRA, electra_{size} sizes, stock ElectraForMaskedLM(labels=...)",
        },
    }
    for p in mask_probs:
        if abs(p - 0.15) > 1e-9:
            configs[f"amos_mp{p:g}"] = ours(f"amos_{size}", "amos", mask_prob=p)
    configs["matmul"] = {"kind": "matmul", "label": "dense matmul 2048^3"}
    return configs


def machine_info(device: str) -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    try:
        from importlib.metadata import version

        info["transformers"] = version("transformers")
    except Exception:
        pass
    return info


def run_worker(spec: dict, timeout: int) -> dict:
    proc = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(spec)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=str(ROOT),
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCHMARK_RESULT "):
            return json.loads(line[len("BENCHMARK_RESULT "):])
    return {"name": spec["name"], "error": f"worker exited {proc.returncode}: {proc.stdout[-2000:]}"}


def summarise(runs, batch, length) -> dict:
    """Pool the rounds of one configuration into medians."""
    first = runs[0]
    out = {k: first[k] for k in ("name", "kind") if k in first}
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        out["error"] = errors[0]
        return out
    if "skipped" in first:
        out["skipped"] = first["skipped"]
        return out
    out["matmul_flops"] = statistics.median(r["matmul_flops"] for r in runs)
    if first["kind"] == "matmul":
        return out
    times = [t for r in runs for t in r["step_times"]]
    step = statistics.median(times)
    out.update(
        step_time_s=step,
        step_time_iqr_s=_iqr(times),
        tokens_per_s=batch * length / step,
        peak_mem_mb=statistics.median(r["peak_mem_mb"] for r in runs),
        parameters=first["parameters"],
        step_flops=first["step_flops"],
        achieved_flops=first["step_flops"] / step,
        loss=first["loss"],
        step_times=times,
    )
    out["matmul_share"] = out["achieved_flops"] / out["matmul_flops"]
    return out


def _iqr(values):
    if len(values) < 4:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def ratios(results: dict, mask_probs) -> dict:
    def ratio(a, b, key):
        ra, rb = results.get(a, {}), results.get(b, {})
        if key in ra and key in rb:
            return ra[key] / rb[key]
        return None

    deepest = next((k for k in results if k.startswith("electra_d")), None)
    out = {
        "electra_vs_hf_electra": {
            "step_time": ratio("electra", "hf_electra", "step_time_s"),
            "peak_mem": ratio("electra", "hf_electra", "peak_mem_mb"),
            "target": "step_time <= 0.8 and peak_mem <= 0.8",
        },
        "electra_vs_hf_electra_stock": {
            "step_time": ratio("electra", "hf_electra_stock", "step_time_s"),
            "peak_mem": ratio("electra", "hf_electra_stock", "peak_mem_mb"),
        },
        "electra_vs_masked_lm": {
            "step_time": ratio("electra", "masked_lm", "step_time_s"),
            "peak_mem": ratio("electra", "masked_lm", "peak_mem_mb"),
        },
        "focal_hardness_vs_electra": {
            "step_time": ratio("focal_hardness", "electra", "step_time_s"),
            "peak_mem": ratio("focal_hardness", "electra", "peak_mem_mb"),
            "target": "step_time <= 1.05",
        },
    }
    if deepest:
        out[f"amos_vs_{deepest}"] = {
            "step_time": ratio("amos", deepest, "step_time_s"),
            "peak_mem": ratio("amos", deepest, "peak_mem_mb"),
            "target": "step_time <= 1.10 and peak_mem <= 1.1",
        }
    curve = {}
    for p in mask_probs:
        name = "amos" if abs(p - 0.15) < 1e-9 else f"amos_mp{p:g}"
        curve[f"{p:g}"] = ratio(name, "amos", "step_time_s")
    out["amos_mask_prob_curve_step_time"] = curve
    return out


def fmt(value, spec="{:.0f}"):
    return "-" if value is None else spec.format(value)


def markdown(report: dict) -> str:
    s = report["settings"]
    m = report["machine"]
    lines = [
        f"Batch {s['batch']} x {s['length']} tokens, size `{s['size']}`, vocabulary {s['vocab_size']}, "
        f"device {s['device']} ({m.get('gpu') or m.get('cpu', '?')}, {s['threads'] or m['torch_threads']} torch threads), "
        f"precision {s['precision']}, {s['steps']} timed steps x {s['rounds']} round(s) after "
        f"{s['warmup']} warm-up, torch {m['torch']}"
        + (f", transformers {m['transformers']}" if "transformers" in m else "") + ".",
        "",
        "| configuration | what | tokens/s | step ms (median) | peak mem MiB | GFLOP/step | GFLOP/s | share of matmul rate | time vs electra |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    results = report["results"]
    base = results.get("electra", {}).get("step_time_s")
    for name, r in results.items():
        label = report["labels"].get(name, "")
        if "error" in r or "skipped" in r:
            why = r.get("skipped") or "failed: " + r["error"].strip().splitlines()[-1][:120]
            lines.append(f"| {name} | {label} | {why} | | | | | | |")
            continue
        if r["kind"] == "matmul":
            lines.append(f"| {name} | {label} | | | | | {r['matmul_flops'] / 1e9:.1f} | 100% | |")
            continue
        lines.append(
            f"| {name} | {label} | {r['tokens_per_s']:.0f} | {1000 * r['step_time_s']:.0f} "
            f"| {r['peak_mem_mb']:.0f} | {r['step_flops'] / 1e9:.1f} | {r['achieved_flops'] / 1e9:.1f} "
            f"| {100 * r['matmul_share']:.0f}% | {fmt(r['step_time_s'] / base if base else None, '{:.2f}')} |"
        )
    lines += ["", "Ratios (same run):", ""]
    for key, value in report["ratios"].items():
        if isinstance(value, dict) and "step_time" in value:
            target = f" (target: {value['target']})" if "target" in value else ""
            lines.append(
                f"- {key}: step time {fmt(value['step_time'], '{:.2f}')}x, "
                f"peak memory {fmt(value['peak_mem'], '{:.2f}')}x{target}"
            )
        else:
            curve = ", ".join(f"{p}: {fmt(v, '{:.2f}')}x" for p, v in value.items())
            lines.append(f"- {key} (relative to mask-prob 0.15): {curve} (target: 0.3 <= 1.25x)")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="small", help="architecture size (electra_<size>, amos_<size>)")
    parser.add_argument("--batch", default="8x128", help="SEQUENCESxTOKENS per step, e.g. 8x128")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole set, rotating the order")
    parser.add_argument("--vocab-size", type=int, default=30522, help="vocabulary, <mask> included (BERT's 30522)")
    parser.add_argument("--mask-probs", default="0.15,0.2,0.3,0.4", help="mask-prob curve for amos")
    parser.add_argument("--only", default="", help="comma-separated configuration names (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="autocast to fp16 with loss scaling (cuda)")
    precision.add_argument("--bf16", action="store_true", help="autocast to bf16 (cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: torch's default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per worker process")
    parser.add_argument("--out", default=None, help="output path without suffix (default benchmarks/results/<size>-<device>)")
    args = parser.parse_args(argv)
    try:
        args.batch_size, args.length = (int(v) for v in args.batch.lower().split("x"))
    except ValueError:
        parser.error(f"--batch must look like 8x128 (sequences x tokens), got {args.batch!r}")
    if (args.fp16 or args.bf16) and not args.device.startswith("cuda"):
        parser.error("--fp16/--bf16 need --device cuda (fairseq offers no reduced precision on CPU)")
    args.mask_probs = [float(p) for p in args.mask_probs.split(",") if p]
    return args


def main(argv=None):
    args = parse_args(argv)
    precision = "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32"
    configs = configurations(args.size, args.mask_probs)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in configs]
        if unknown:
            sys.exit(f"--only names unknown configurations {unknown}; choose from {sorted(configs)}")
        configs = {n: configs[n] for n in configs if n in wanted}
    shared = dict(
        batch=args.batch_size, length=args.length, steps=args.steps, warmup=args.warmup,
        vocab_size=args.vocab_size, device=args.device, precision=precision, seed=args.seed,
        threads=args.threads,
    )
    if not args.threads and hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1):
        print(f"warning: load average {os.getloadavg()[0]:.1f} exceeds {os.cpu_count()} cores; "
              "multi-threaded steps then slow down by orders of magnitude (threads spin-wait "
              "for each other): consider --threads 1", flush=True)
    names = list(configs)
    runs = {name: [] for name in names}
    started = time.time()
    for round_index in range(args.rounds):
        # Rotate the order so that no configuration always runs first or last.
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            spec = {**shared, **configs[name], "name": name}
            t0 = time.time()
            result = run_worker(spec, args.timeout)
            runs[name].append(result)
            status = result.get("error", "").splitlines()[-1:] or result.get("skipped") or (
                f"{1000 * statistics.median(result['step_times']):.0f} ms/step" if "step_times" in result else "ok"
            )
            print(f"[round {round_index + 1}/{args.rounds}] {name}: {status} ({time.time() - t0:.0f} s)", flush=True)
    results = {name: summarise(runs[name], args.batch_size, args.length) for name in names}
    report = {
        "settings": {
            "size": args.size, "batch": args.batch_size, "length": args.length, "steps": args.steps,
            "warmup": args.warmup, "rounds": args.rounds, "vocab_size": args.vocab_size,
            "device": args.device, "precision": precision, "mask_probs": args.mask_probs,
            "threads": args.threads,
            "optimizer": "torch.optim.AdamW (foreach), grad-norm clip 1.0, for every configuration",
            "peak_mem": "GPU: torch.cuda.max_memory_allocated; CPU: peak RSS growth over the post-import baseline",
            "wall_s": time.time() - started,
        },
        "machine": machine_info(args.device),
        "labels": {name: configs[name]["label"] for name in names},
        "results": results,
        "ratios": ratios(results, args.mask_probs),
    }
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"{args.size}-{args.device.split(':')[0]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return report


if __name__ == "__main__":
    main()
