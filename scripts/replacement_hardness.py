#!/usr/bin/env python
"""How hard are a sampler's replacements for one fixed discriminator?

    python scripts/replacement_hardness.py CHECKPOINT DATA_BIN [--passes 3] [--json OUT]

The training logs compare methods by ``rtd_acc_replaced``, but each method also trains its
own discriminator, so a lower accuracy there can mean harder replacements or a weaker
discriminator. This script holds the discriminator fixed: it loads one pretraining
checkpoint, masks the validation set once (the task's masking, the same positions for
every sampler) and lets several samplers fill the masked positions from the checkpoint's
own generator. For each sampler it reports, over the replaced tokens (those differing from
the original):

- ``error_replaced``: share the discriminator calls original (logit <= 0), 1 - rtd_acc_replaced;
- ``prob_error_replaced``: mean discriminator probability of "original" on them;
- ``replace_rate``: share of masked positions whose sample differs from the original;
- for the hardness proposal, the importance weights' effective sample size per position.

Samplers, by the checkpoint's criterion:

- every checkpoint: ``generator`` (the deepest generator's softmax, ELECTRA's sampler);
- ``focal_hardness``: ``hardness`` (p * (h + eps)^alpha at the criterion's alpha, its
  warm-up finished), the sampler it trains with;
- ``amos``: ``mixture`` (the learned per-token mixture), ``uniform`` (the same depths mixed
  equally) and ``depth<k>`` (each depth alone).

A sampler that makes harder replacements gives a higher error_replaced for the same
discriminator. Each pass draws new samples (seeded); the spread over passes is reported.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load(checkpoint: str, data: str):
    """-> (task, model in eval mode, criterion config) of a pretraining checkpoint."""
    from fairseq import checkpoint_utils, tasks, utils

    utils.import_user_module(argparse.Namespace(user_dir=str(ROOT / "amos_fairseq")))
    if not Path(checkpoint).is_file():
        sys.exit(f"error: checkpoint {checkpoint} does not exist")
    if not (Path(data) / "dict.txt").is_file():
        sys.exit(f"error: {data} is not a fairseq-preprocess output folder (no dict.txt): pass the data-bin the model was pretrained on")
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = state["cfg"]
    if cfg.task._name != "amos_rtd":
        sys.exit(f"error: {checkpoint} is a {cfg.task._name} checkpoint; pass a pretraining (amos_rtd) checkpoint")
    cfg.task.data = data
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model, from_checkpoint=True)
    model.load_state_dict(state["model"])
    model.eval()
    return task, model, cfg.criterion


def samplers(task, model, criterion_cfg):
    """name -> sampler(model, generated) -> Replacement, for this checkpoint's criterion.

    The trained method's own sampler is its criterion's ``sample``, rebuilt from the
    checkpoint's config (focal_hardness at the end of its alpha ramp)."""
    from amos_fairseq.criteria import amos as amos_criterion
    from amos_fairseq.criteria.sampling import gumbel_max
    from amos_fairseq.models.amos import Replacement

    def generator(model, generated):  # ELECTRA's sampler
        return Replacement(tokens=gumbel_max(generated.logits[-1].detach(), exclude=model.unplaceable_index))

    found = {"generator": generator}
    if criterion_cfg._name == "focal_hardness":
        criterion = task.build_criterion(criterion_cfg)
        criterion.set_num_updates(criterion.hardness_warmup_updates)
        found[f"hardness (alpha {criterion.current_alpha:g})"] = criterion.sample
    elif criterion_cfg._name == "amos" and getattr(model, "mixture_scorer", None) is not None:
        found["mixture"] = task.build_criterion(criterion_cfg).sample

        def fixed_mixture(weights):  # weights [K], the same at every masked position
            def sample(model, generated):
                rows = weights.to(generated.logits[0].device).expand(generated.logits[0].shape[0], -1)
                return Replacement(tokens=gumbel_max(amos_criterion.mixed_logits(model, generated, rows)))

            return sample

        depths = model.generator.depths
        found["uniform"] = fixed_mixture(torch.full((len(depths),), 1.0 / len(depths)))
        for k, depth in enumerate(depths):
            found[f"depth{depth}"] = fixed_mixture(torch.eye(len(depths))[k])
    return found


def evaluate(task, model, sampler, subset: str, seed: int, batch_size: int) -> dict:
    """Sums over one pass of ``subset`` with replacements from ``sampler``."""
    torch.manual_seed(seed)
    iterator = task.get_batch_iterator(
        dataset=task.dataset(subset), max_sentences=batch_size, seed=1, epoch=1
    ).next_epoch_itr(shuffle=False)
    sums = dict(masked=0, replaced=0, error=0, prob_error=0.0, iw=0.0, iw_sq=0.0, iw_n=0)
    drawn = []  # the Replacement of the current batch, for its importance weights

    def recording_sampler(model, generated):
        drawn.append(sampler(model, generated))
        return drawn[-1]

    with torch.no_grad():
        for sample in iterator:
            drawn.clear()
            out = model(**sample["net_input"], sampler=recording_sampler)
            non_pad_index = out.positions["non_pad_index"]
            labels = out.disc_tokens.ne(sample["target"]).flatten().index_select(0, non_pad_index)
            logits = out.rtd_logits.float()[labels]  # at the replaced tokens
            sums["masked"] += int(sample["net_input"]["masked_tokens"].sum())
            sums["replaced"] += int(labels.sum())
            sums["error"] += int((logits <= 0).sum())
            sums["prob_error"] += float(torch.sigmoid(-logits).sum())
            log_importance = (drawn[0].extras or {}).get("log_importance")
            if log_importance is not None:
                weights = log_importance.float().exp()
                sums["iw"] += float(weights.sum())
                sums["iw_sq"] += float(weights.pow(2).sum())
                sums["iw_n"] += weights.numel()
    return sums


def summarise(passes):
    """Per-pass sums -> mean and sd over passes of each rate; ESS where there are weights."""
    per_pass = {
        "error_replaced": [p["error"] / max(p["replaced"], 1) for p in passes],
        "prob_error_replaced": [p["prob_error"] / max(p["replaced"], 1) for p in passes],
        "replace_rate": [p["replaced"] / max(p["masked"], 1) for p in passes],
    }
    row = {}
    for name, values in per_pass.items():
        row[name] = statistics.mean(values)
        row[name + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    row["replaced_tokens_per_pass"] = round(statistics.mean(p["replaced"] for p in passes))
    if passes[0]["iw_n"]:
        # ESS of the raw weights p/q per position: (sum w)^2 / sum w^2 / n
        row["iw_ess"] = statistics.mean(p["iw"] ** 2 / max(p["iw_sq"], 1e-12) / p["iw_n"] for p in passes)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("data", help="the data-bin the checkpoint was pretrained on")
    parser.add_argument("--subset", default="valid")
    parser.add_argument("--passes", type=int, default=3, help="passes over the subset per sampler (new samples each)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="also write the table here as JSON")
    args = parser.parse_args()
    if args.passes < 1:
        sys.exit("error: --passes must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    task, model, criterion_cfg = load(args.checkpoint, args.data)
    task.load_dataset(args.subset)
    rows = {}
    for name, sampler in samplers(task, model, criterion_cfg).items():
        passes = [evaluate(task, model, sampler, args.subset, seed, args.batch_size) for seed in range(args.passes)]
        rows[name] = summarise(passes)
    print(f"{args.checkpoint} ({criterion_cfg._name}), {args.subset}, {args.passes} passes; mean (sd over passes)")
    print(f"{'sampler':22s} {'error on replaced':>20s} {'P(original) on replaced':>24s} {'replace rate':>14s} {'ESS':>6s}")
    for name, row in rows.items():
        ess = f"{row['iw_ess']:.3f}" if "iw_ess" in row else ""
        print(
            f"{name:22s} {row['error_replaced']:>12.4f} ({row['error_replaced_sd']:.4f}) "
            f"{row['prob_error_replaced']:>15.4f} ({row['prob_error_replaced_sd']:.4f}) "
            f"{row['replace_rate']:>14.4f} {ess:>6s}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"checkpoint": args.checkpoint, "criterion": criterion_cfg._name, "subset": args.subset,
                        "passes": args.passes, "samplers": rows}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
