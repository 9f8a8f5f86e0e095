"""How far the AMOS mixture's gradient moves with half-precision weights, and what forming
d/d relaxed = grad @ E^T in fp32 costs.

The mixture scorer's gradient reaches it through the soft sample's backward, which centres
grad @ E^T per row (soft * (g - <g, soft>)) and so cancels most of its magnitude: rounding
that [M, V] product to half precision before the centring is amplified in the result. This
script takes one batch, the same Gumbel noise, and one model, and compares the gradients
of every parameter under fp16 and bf16 weights against the fp32 weights' gradients, with
the product formed in the weights' dtype (before) and in fp32 (now). Then it times that
product both ways at base size on this machine and gives its share of a base-size step's
FLOPs (a GPU's timing is for benchmarks/gpu_check.py).

    python benchmarks/mixture_grad_precision.py     # writes benchmarks/results/mixture-grad-precision.json
"""

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def gradients(model, criterion, sample, seed=0):
    """{parameter name: gradient as fp64} of one training step, Gumbel noise from ``seed``."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss, _, _ = criterion(model, sample)
    loss.backward()
    return {n: p.grad.double().clone() for n, p in model.named_parameters() if p.grad is not None}


def relative_error(g, ref):
    return float((g - ref).norm() / ref.norm().clamp(min=1e-30))


def cosine(g, ref):
    return float(torch.nn.functional.cosine_similarity(g.flatten(), ref.flatten(), dim=0))


def compare(model32, criterion, sample, dtype):
    """Errors against fp32 of the mixture scorer's gradient and the worst other parameter's,
    with the product formed in ``dtype`` (before) and in fp32 (now)."""
    from amos_fairseq.modules import straight_through

    reference = gradients(model32, criterion, sample)
    model = copy.deepcopy(model32).to(dtype)
    out, runs = {}, {}
    for label, product_dtype in (("product in weights' dtype (before)", None), ("product in fp32 (now)", torch.float32)):
        straight_through.RELAXED_GRADIENT_DTYPE = product_dtype
        got = runs[label] = gradients(model, criterion, sample)
        mixture = [n for n in got if n.startswith("mixture_scorer.")]
        others = [n for n in got if not n.startswith("mixture_scorer.")]
        worst = max(others, key=lambda n: relative_error(got[n], reference[n]))
        out[label] = {
            "mixture_scorer_relative_error": max(relative_error(got[n], reference[n]) for n in mixture),
            "mixture_scorer_cosine": min(cosine(got[n], reference[n]) for n in mixture),
            "worst_other_parameter": worst,
            "worst_other_relative_error": relative_error(got[worst], reference[worst]),
        }
    straight_through.RELAXED_GRADIENT_DTYPE = torch.float32
    before, now = runs.values()
    # What the product's precision alone changes, with everything else in the same low precision.
    out["mixture_scorer_change_before_to_now"] = max(
        relative_error(before[n], now[n]) for n in now if n.startswith("mixture_scorer."))
    return out


def time_product(m, e, v, dtype, repeats):
    """Median seconds of grad [m, e] @ table [v, e]^T in ``dtype`` inputs with the product in
    that dtype, and with the inputs cast to fp32 first (what the backward does now)."""
    g = torch.randn(m, e).to(dtype)
    table = torch.randn(v, e).to(dtype)

    def median(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    low = median(lambda: g @ table.t())
    full = median(lambda: g.float() @ table.float().t())
    return low, full


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="amos_small")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mixture-grad-precision.json"))
    args = parser.parse_args(argv)

    import amos_fairseq  # noqa: F401
    from amos_fairseq.criteria.amos import AmosCriterion, AmosCriterionConfig
    from conftest import build_model, random_batch

    torch.manual_seed(0)
    model, task = build_model(args.arch, criterion="amos", vocab_words=args.vocab)
    criterion = AmosCriterion.build_criterion(AmosCriterionConfig(), task)
    net_input, target = random_batch(task, batch=args.batch, length=args.length, mask_prob=0.15)
    sample = {"net_input": net_input, "target": target,
              "ntokens": int(target.ne(task.dictionary.pad()).sum()), "nsentences": target.size(0)}

    result = {
        "what": "relative error ||g - g_fp32|| / ||g_fp32|| of one step's gradients, same batch and Gumbel noise",
        "model": {"arch": args.arch, "vocab": len(task.dictionary), "batch": args.batch, "length": args.length,
                  "masked": int(net_input["masked_tokens"].sum())},
        "errors": {str(d).replace("torch.", ""): compare(model, criterion, sample, d)
                   for d in (torch.float16, torch.bfloat16)},
    }
    # Base size (ELECTRA-base / AMOS-base): 32 x 512 tokens, 15% masked, width 768, 30522 pieces.
    m, e, v = int(0.15 * 32 * 510), 768, 30522
    flops_product = 2 * m * e * v
    # A base step: about 6 x parameters x tokens (forward + backward) for a 110M discriminator
    # and AMOS's 8-layer, 768-wide generator stack (about 57M more).
    flops_step = 6 * (110e6 + 57e6) * 32 * 512
    timing = {}
    for dtype in (torch.bfloat16, torch.float16):
        low, full = time_product(m, e, v, dtype, args.repeats)
        timing[str(dtype).replace("torch.", "")] = {"product_in_dtype_s": low, "product_in_fp32_s": full,
                                                    "ratio": full / low}
    result["cost"] = {
        "shape": {"M": m, "E": e, "V": v},
        "share_of_base_step_flops": flops_product / flops_step,
        "cpu_median_seconds": timing,
        "note": "CPU timings only; on a GPU half/bf16 values are exact in TF32, which the fp32 product "
                "is allowed to use, so it runs on tensor cores",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
