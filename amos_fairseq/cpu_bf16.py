"""Training on the CPU under bfloat16 autocast, where the CPU has fast bf16 matrix products.

Some CPUs multiply bf16 matrices several times faster than fp32 (AMX tiles; some AMD EPYC
with avx512_bf16); on others bf16 has no fast kernel and the same product is slower (on
the 2-core Intel Xeon these docs were measured on, which reports avx512_bf16 but has no
AMX: a 512 x 512 product 2.0x slower, a training step 1.87x, benchmarks/results/cpu-bf16.json).
A CPU flag does not tell which, so ``--cpu-bf16`` measures it: one bf16 and one fp32 product
of 512 x 512 matrices, a few times each, on the threads training will use.

Under ``--cpu-bf16`` the model's training forward passes run under
``torch.autocast("cpu", dtype=torch.bfloat16)``: matrix products in bf16, while the weights,
their gradients and the optimizer state stay fp32, and the vocabulary-wide sampling (softmax,
Gumbel, the AMOS mixture) runs with autocast off, in fp32 as on GPUs; the criteria compute
their losses in fp32. Validation and any model rebuilt from a checkpoint run in fp32.
"""

import logging
import statistics
import time

import torch

logger = logging.getLogger(__name__)

CHOICES = ("off", "on", "auto")
# bf16 counts as fast when its product takes at most this share of the fp32 product's time.
FAST_ENOUGH = 0.8


def bf16_matmul_speed(size: int = 512, repeats: int = 5):
    """(fp32 seconds, bf16 seconds): medians of one [size, size] x [size, size] product."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # first call: kernel selection, allocation
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            x @ y
            samples.append(time.perf_counter() - start)
        times[dtype] = statistics.median(samples)
    return times[torch.float32], times[torch.bfloat16]


class CpuBf16Error(ValueError):
    """--cpu-bf16 on where bf16 would slow training down."""


def resolve_cpu_bf16(mode: str, measure=bf16_matmul_speed) -> bool:
    """Whether training runs its forward passes under CPU bf16 autocast.

    ``off``: never. ``on``: yes if this CPU's bf16 products are fast, else stop with the
    measurement. ``auto``: yes if fast, else fp32 with one log line.
    """
    if mode not in CHOICES:
        raise CpuBf16Error(f"--cpu-bf16 must be one of {', '.join(CHOICES)}, got {mode!r}")
    if mode == "off":
        return False
    fp32, bf16 = measure()
    ratio = bf16 / fp32
    fast = ratio <= FAST_ENOUGH
    what = (f"a 512x512 bf16 product takes {1e3 * bf16:.2f} ms against {1e3 * fp32:.2f} ms in fp32 "
            f"({ratio:.2f}x) on this CPU")
    if fast:
        logger.info("--cpu-bf16 %s: training forward passes under CPU bf16 autocast (%s)", mode, what)
        return True
    if mode == "on":
        raise CpuBf16Error(
            f"--cpu-bf16 on: {what}, so bf16 would slow training down (this CPU has no fast bf16 "
            "kernel, e.g. no AMX): use --cpu-bf16 auto (falls back to fp32) or leave it off"
        )
    logger.info("--cpu-bf16 auto: fp32, since %s", what)
    return False
