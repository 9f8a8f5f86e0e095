"""Count the operations of one training step that would make a GPU wait for the host.

On a GPU, reading a device tensor on the host (``.item()``, ``bool(t)``, ``if t.any():``),
``nonzero``, boolean-mask indexing and ``masked_select`` (whose output size depends on the
data) block the host until the queue has drained: the next kernels cannot be queued ahead.
The same operations run on CPU, where a ``TorchDispatchMode`` sees every aten call, so the
count is exact on any machine.

Counted: one training step of model + criterion (forward and backward; fairseq's logging,
which reads the summed log on the host once per update, and the optimizer are not part of
it), per criterion, with the ``amos_rtd`` collater's index tensors (what training uses) and
without them (what the model computes itself from the boolean masks).

    python benchmarks/host_syncs.py              # writes benchmarks/results/host-syncs.{json,md}
"""

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_ALWAYS = {"nonzero", "_local_scalar_dense", "masked_select", "is_nonzero", "equal", "unique_consecutive",
           "_unique2", "unique_dim", "masked_scatter", "masked_scatter_"}
_BOOL_INDEXED = {"index", "index_put", "index_put_", "_index_put_impl_"}


class HostSyncCounter(TorchDispatchMode):
    """Counts, by aten op name, the calls that synchronise a GPU with the host: ``nonzero``,
    reads of a scalar on the host (``_local_scalar_dense``, ``is_nonzero``, ``equal``),
    ``masked_select``/``masked_scatter``, ``unique``, and indexing with a boolean mask."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _ALWAYS:
            self.counts[name] += 1
        elif name in _BOOL_INDEXED:
            indices = args[1] if len(args) > 1 else ()
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ()):
                self.counts[f"{name} (boolean mask)"] += 1
        return func(*args, **(kwargs or {}))


def count_step(criterion, model, sample) -> collections.Counter:
    """Host syncs of criterion(model, sample) and its backward pass."""
    with HostSyncCounter() as counter:
        loss, sample_size, _ = criterion(model, sample)
        loss.backward()
    return counter.counts


def build(criterion_name: str, arch: str, batch: int, length: int, vocab_size: int, workdir: Path):
    """(model, criterion, sample with positions, sample without) built through fairseq's
    registries, as benchmarks/worker.py builds them."""
    from benchmarks.batches import make_batch
    from benchmarks.worker import fairseq_sample, write_dictionary
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    write_dictionary(workdir, vocab_size)
    argv = [str(workdir), "--user-dir", str(ROOT / "amos_fairseq"), "--task", "amos_rtd", "--arch", arch,
            "--criterion", criterion_name, "--tokens-per-sample", str(length)]
    args = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    model.train()
    tokens, selected = make_batch(batch, length, vocab_size, 0.15, seed=1)
    with_positions = fairseq_sample(tokens, selected, task.mask_idx, task.source_dictionary.pad(), "amos_rtd", "cpu")
    without = dict(with_positions, net_input=dict(with_positions["net_input"]))
    del without["net_input"]["positions"]
    return model, criterion, with_positions, without


def measure(arch: str = "tiny", batch: int = 4, length: int = 32, vocab_size: int = 300) -> dict:
    results = {}
    for criterion_name, arch_name in (("electra", f"electra_{arch}"), ("amos", f"amos_{arch}"),
                                      ("focal_hardness", f"electra_{arch}")):
        with tempfile.TemporaryDirectory() as tmp:
            model, criterion, sample, without = build(criterion_name, arch_name, batch, length, vocab_size, Path(tmp))
        results[criterion_name] = {
            "arch": arch_name,
            "with_collater_positions": dict(count_step(criterion, model, sample)),
            "from_masks": dict(count_step(criterion, model, without)),
        }
    return results


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "Operations that would synchronise a GPU with the host in one training step (model + "
        "criterion, forward and backward), counted on CPU by `benchmarks/host_syncs.py`.",
        "",
        "| criterion | with the collater's positions (training) | from the boolean masks |",
        "|---|---|---|",
    ]

    def describe(counts):
        total = sum(counts.values())
        return f"{total}" + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")" if counts else "")

    for name, row in results.items():
        lines.append(f"| {name} | {describe(row['with_collater_positions'])} | {describe(row['from_masks'])} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "host-syncs"))
    args = parser.parse_args(argv)
    results = measure()
    write(results, Path(args.out))
    print(Path(args.out).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
