#!/usr/bin/env python
"""Turn an MLM-only run into a checkpoint whose discriminator is the trained masked LM.

    python scripts/mlm_as_discriminator.py MLM_CHECKPOINT OUT.pt

The MLM-only baseline of examples/compare.sh trains, with ``--rtd-weight 0``, a generator
built exactly like the discriminator (same width, heads, FFN and depth as
``--encoder-*``): a BERT-style masked LM of the discriminator's size. This script copies
that network's encoder (``generator.encoder.*``: position embeddings, embedding LayerNorm,
relative position bias, layers) over ``discriminator.*``, so that fine-tuning (which keeps
the discriminator and drops the generator) starts from the masked LM, as BERT's fine-tuning
drops its MLM head. The token embeddings are shared already. Everything else in the
checkpoint is kept; OUT is written atomically and never over MLM_CHECKPOINT.
"""

import argparse
import os
import sys

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args()
    if os.path.abspath(args.checkpoint) == os.path.abspath(args.out):
        sys.exit("error: OUT must differ from MLM_CHECKPOINT (the original is kept)")
    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file
        sys.exit(f"error: cannot read {args.checkpoint} as a fairseq checkpoint: {e}")
    model = state.get("model") if isinstance(state, dict) else None
    if not model or not any(k.startswith("generator.encoder.") for k in model):
        sys.exit(f"error: {args.checkpoint} has no generator: pass a pretraining (amos_rtd) checkpoint")
    source = {k[len("generator.encoder."):]: v for k, v in model.items() if k.startswith("generator.encoder.")}
    target = {k[len("discriminator."):]: v for k, v in model.items() if k.startswith("discriminator.")}
    mismatch = sorted(k for k in target if k not in source or source[k].shape != target[k].shape)
    if mismatch:
        sys.exit(
            f"error: the generator is not built like the discriminator ({len(mismatch)} tensors differ, "
            f"e.g. {mismatch[0]}): train the MLM-only run with --generator-embed-dim, "
            "--generator-ffn-embed-dim, --generator-attention-heads and --generator-depths equal to "
            "the discriminator's --encoder-embed-dim, --encoder-ffn-embed-dim, "
            "--encoder-attention-heads and --encoder-layers"
        )
    for key in target:
        model["discriminator." + key] = source[key].clone()
    tmp = args.out + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, args.out)
    print(f"[done] {args.out}: discriminator <- generator encoder ({len(target)} tensors)")


if __name__ == "__main__":
    main()
