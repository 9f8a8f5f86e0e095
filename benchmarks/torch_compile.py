"""Does ``torch.compile`` pay for our transformer layers on this machine?

Times forward + backward of a ``TransformerStack`` (the layers every discriminator and
generator is built of) eager and with each layer compiled (``nn.Module.compile``, inductor),
side by side in one process: the two alternate step by step, so load from other processes
falls on both alike. One row per dropout rate, since dropout is where eager and compiled
kernels differ most (inductor draws its own random numbers). Sizes default to
``electra_small``'s discriminator at the benchmark batch (32 x 128).

    python benchmarks/torch_compile.py --threads 2 --layers 4 --steps 8

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/torch-compile-cpu``).
The first compiled step (the compilation) is timed separately and left out of the medians.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from amos_fairseq.modules.transformer import TransformerStack  # noqa: E402


def build(args, dropout: float) -> TransformerStack:
    torch.manual_seed(0)
    return TransformerStack(
        args.layers, dim=args.width, num_heads=args.heads, ffn_dim=args.ffn,
        dropout=dropout, attention_dropout=dropout,
    )


def training_step(stack: TransformerStack, x: torch.Tensor) -> None:
    """Forward and backward through the stack; x: [B, T, C]."""
    out, _ = stack(x, None)
    out.float().pow(2).mean().backward()


def measure(args, dropout: float) -> dict:
    eager, compiled = build(args, dropout), build(args, dropout)
    for layer in compiled.layers:
        layer.compile(dynamic=False)
    x = torch.randn(args.batch, args.length, args.width, requires_grad=True)
    start = time.perf_counter()
    training_step(compiled, x)
    compile_s = time.perf_counter() - start
    training_step(eager, x)  # warm-up, not timed
    times = {"eager": [], "compiled": []}
    for _ in range(args.steps):
        for name, stack in (("eager", eager), ("compiled", compiled)):
            start = time.perf_counter()
            training_step(stack, x)
            times[name].append(1000 * (time.perf_counter() - start))
    eager_ms, compiled_ms = statistics.median(times["eager"]), statistics.median(times["compiled"])
    return {
        "dropout": dropout,
        "first_compiled_step_s": round(compile_s, 1),
        "eager_ms": [round(t, 1) for t in times["eager"]],
        "compiled_ms": [round(t, 1) for t in times["compiled"]],
        "eager_median_ms": round(eager_ms, 1),
        "compiled_median_ms": round(compiled_ms, 1),
        "compiled_over_eager": round(compiled_ms / eager_ms, 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--ffn", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.1, 0.0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "torch-compile-cpu"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(args, dropout) for dropout in args.dropout]
    report = {
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "shape": f"{args.layers} layers x {args.width} (FFN {args.ffn}, {args.heads} heads), batch {args.batch} x {args.length}",
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"torch.compile (inductor, each layer compiled) against eager: forward + backward of "
        f"{report['shape']}, torch {report['torch']}, {args.threads} threads, {args.steps} alternating "
        f"steps each; medians.",
        "",
        "| dropout | eager ms | compiled ms | compiled / eager | first compiled step s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dropout']} | {row['eager_median_ms']} | {row['compiled_median_ms']} | "
            f"{row['compiled_over_eager']} | {row['first_compiled_step_s']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
