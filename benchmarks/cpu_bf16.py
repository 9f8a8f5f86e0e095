"""--cpu-bf16 against fp32 on this CPU: training step time and the loss curve of a short run.

Both runs start from the same weights and read the same batches of the shipped corpus with
the same masks and Gumbel noise; the CPU-scale model (``electra_mini``, batch 32 x 128 tokens,
Adam at lr 2e-3 after 20 warm-up steps). Reported: the bf16/fp32 time of one 512 x 512 matrix
product (what ``--cpu-bf16`` measures to decide), the median step time of each run and their
ratio, and the loss every 10 steps side by side.

    python benchmarks/cpu_bf16.py [--steps 100] [--threads 1]   # writes benchmarks/results/cpu-bf16.json
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare(workdir: Path) -> Path:
    out = workdir / "corpus"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_corpus.py"), str(ROOT / "examples" / "data" / "corpus.txt.xz"),
                    "--out", str(out), "--vocab-size", "4000", "--valid-lines", "100"],
                   check=True, capture_output=True, text=True)
    return out / "data-bin"


def build(data_bin: Path, arch: str, criterion_name: str):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = [str(data_bin), "--user-dir", str(ROOT / "amos_fairseq"), "--task", "amos_rtd", "--arch", arch,
            "--criterion", criterion_name, "--tokens-per-sample", "128", "--dropout", "0", "--attention-dropout", "0"]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), input_args=argv))
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    return cfg, task


def batches(task, count: int, batch_size: int):
    dataset = task.dataset("train")
    iterator = task.get_batch_iterator(dataset, max_sentences=batch_size, seed=1).next_epoch_itr(shuffle=True)
    out = []
    for sample in iterator:
        if len(out) == count:
            break
        out.append(sample)
    return out


def run(cfg, task, samples, bf16: bool, lr: float, warmup: int):
    """Losses and step seconds of len(samples) Adam steps from seed-0 weights."""
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    model.cpu_bf16 = bf16
    model.train()
    criterion = task.build_criterion(cfg.criterion)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)
    losses, seconds = [], []
    for step, sample in enumerate(samples):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        torch.manual_seed(1000 + step)  # the same Gumbel noise in both runs
        start = time.perf_counter()
        loss, sample_size, _ = criterion(model, sample)
        optimizer.zero_grad(set_to_none=True)
        (loss / sample_size).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        seconds.append(time.perf_counter() - start)
        losses.append(float(loss) / float(sample_size))
    return losses, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch", default="electra_mini")
    parser.add_argument("--criterion", default="electra")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu-bf16.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import amos_fairseq  # noqa: F401
    from amos_fairseq.cpu_bf16 import bf16_matmul_speed

    fp32_product, bf16_product = bf16_matmul_speed()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, task = build(prepare(Path(tmp)), args.arch, args.criterion)
        samples = batches(task, args.steps, 32)
        runs = {name: run(cfg, task, samples, bf16, lr=2e-3, warmup=20)
                for name, bf16 in (("fp32", False), ("bf16", True))}
    skip = min(5, args.steps // 5)  # first steps: allocation, kernel selection
    step = {name: statistics.median(seconds[skip:]) for name, (_, seconds) in runs.items()}
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    result = {
        "machine": {"cpu": platform.processor() or capabilities.get("cpu_name"), "threads": args.threads,
                    "avx512_bf16": capabilities.get("avx512_bf16"), "amx_bf16": capabilities.get("amx_bf16"),
                    "torch": torch.__version__},
        "product_512": {"fp32_s": fp32_product, "bf16_s": bf16_product, "bf16_over_fp32": bf16_product / fp32_product},
        "model": {"arch": args.arch, "criterion": args.criterion, "batch": "32 x 128 tokens", "steps": args.steps},
        "median_step_s": step,
        "bf16_over_fp32_step": step["bf16"] / step["fp32"],
        "loss_every_10_steps": {name: [round(v, 4) for v in losses[::10]] for name, (losses, _) in runs.items()},
        "final_loss_mean_last_10": {name: statistics.mean(losses[-10:]) for name, (losses, _) in runs.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
