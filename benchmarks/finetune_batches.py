"""GLUE fine-tuning batches: fairseq's ``sentence_prediction`` (shuffle-only order) against
``sentence_prediction_by_length`` (length first), on one task of the GLUE folder.

Both tasks fine-tune the same checkpoint with glue.py's command (ELECTRA-Small's recipe) for
the same number of updates, alternating runs; reported per task: the padding fraction of an
epoch's batches, the median seconds per update over the runs (the first log interval, with
start-up, excluded) and their ratio.

    python benchmarks/finetune_batches.py CHECKPOINT CORPUS_DIR GLUE_DIR [--task STS-B]
        [--updates 200] [--repeats 2]          # writes benchmarks/results/finetune-batches.json
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import glue  # noqa: E402

TASKS = ("sentence_prediction", "sentence_prediction_by_length")


def padding_fraction(cmd, task_name):
    """Fraction of the positions in one training epoch's batches that are padding."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import amos_fairseq  # noqa: F401

    argv = list(cmd[cmd.index("fairseq_cli.train") + 1:])
    argv[argv.index("--task") + 1] = task_name
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    task = tasks.setup_task(convert_namespace_to_omegaconf(args).task)
    task.load_dataset("train")
    iterator = task.get_batch_iterator(task.dataset("train"), max_sentences=args.batch_size, seed=1,
                                       max_positions=args.max_positions)
    pad = task.source_dictionary.pad()
    total = padded = 0
    for batch in iterator.next_epoch_itr(shuffle=True):
        tokens = batch["net_input"]["src_tokens"]
        total += tokens.numel()
        padded += (tokens == pad).sum().item()
    return padded / total


def seconds_per_update(cmd, task_name, updates):
    """Median seconds per update from fairseq's train_inner lines (first interval excluded)."""
    cmd = list(cmd)
    cmd[cmd.index("--task") + 1] = task_name
    cmd += ["--max-update", str(updates), "--no-save", "--log-interval", "25"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"error: fine-tuning with {task_name} failed:\n{(out.stdout + out.stderr)[-2000:]}")
    rates = [float(m) for m in re.findall(r"train_inner .* ups=([\d.]+)", out.stdout + out.stderr)]
    return statistics.median(1 / r for r in rates[1:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("corpus_dir")
    p.add_argument("glue_dir")
    p.add_argument("--task", default="STS-B")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "finetune-batches.json"))
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    task = glue.TASKS[args.task]
    rows = glue.read_task(task, os.path.join(args.glue_dir, args.task))
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        meta = glue.prepare_task(task, rows, args.corpus_dir, data, args.checkpoint)
        hp = glue.load_hparams()["electra-small", args.task]
        arch = glue.checkpoint_model_field(args.checkpoint, "arch")
        max_positions = glue.checkpoint_model_field(args.checkpoint, "max_positions")
        cmd = glue.finetune_command(data, meta, hp, os.path.join(tmp, "ckpt"), 1, arch, max_positions,
                                    args.checkpoint)
        result = {"task": args.task, "train_rows": meta["rows"]["train"], "batch": hp.batch,
                  "updates_per_run": args.updates, "repeats": args.repeats,
                  "threads": os.environ["OMP_NUM_THREADS"], "cpu": platform.processor() or platform.machine(),
                  "date": time.strftime("%Y-%m-%d"), "runs": {}}
        for name in TASKS:
            result["runs"][name] = {"padding_fraction": padding_fraction(cmd, name), "seconds_per_update": []}
        for _ in range(args.repeats):
            for name in TASKS:
                result["runs"][name]["seconds_per_update"].append(seconds_per_update(cmd, name, args.updates))
    for name in TASKS:
        run = result["runs"][name]
        run["median_seconds_per_update"] = statistics.median(run["seconds_per_update"])
    plain, by_length = (result["runs"][n]["median_seconds_per_update"] for n in TASKS)
    result["speedup_by_length"] = plain / by_length
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name in TASKS:
        run = result["runs"][name]
        print(f"{name:32s} padding {run['padding_fraction']:.1%}  {run['median_seconds_per_update']:.3f} s/update")
    print(f"by length: {result['speedup_by_length']:.2f}x faster per update; written to {args.out}")


if __name__ == "__main__":
    main()
