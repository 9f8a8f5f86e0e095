#!/usr/bin/env python
"""Export an amos_rtd pretraining checkpoint to a HuggingFace transformers directory.

    python scripts/export_hf.py CHECKPOINT --out DIR [--data DATA_BIN] [--spm spm.model]
        [--generator-depth K | --no-generator] [--no-verify] [--force]

DIR gets the discriminator (config.json, model.safetensors) and a tokenizer that gives the
fairseq pipeline's ids; DIR/generator the depth-K generator (default: the deepest trained
depth). ELECTRA-shaped models (absolute positions, post-LN) become stock
``ElectraForPreTraining`` / ``ElectraForMaskedLM``; models with a relative position bias
(``--rel-pos-bins`` > 0, the amos_* default) or pre-LN layers (``--encoder-normalize-before``)
become ``AmosElectraForPreTraining`` / ``AmosElectraForMaskedLM``, whose modeling file is
written into each folder: load those with ``AutoModel...from_pretrained(DIR,
trust_remote_code=True)``. DIR appears only once the export is complete (and verified);
``--force`` replaces a DIR of an earlier export, never another folder. Needs ``pip install -e .[hf]``.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also when loaded by path

from output_dir import OutputDirError, check_output_dir, output_dir  # noqa: E402  (scripts/)

TOOL = "export_hf"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="fairseq checkpoint of `fairseq-train --task amos_rtd`")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--data", help="pretraining data directory with dict.txt (default: the one in the checkpoint)")
    parser.add_argument("--spm", help="sentencepiece model (default: spm.model in --data or its parent)")
    parser.add_argument("--generator-depth", type=int,
                        help="which of the trained generator depths to export (default: the deepest; "
                             "AMOS models train several, e.g. 4,6,8, and one folder holds one)")
    parser.add_argument("--no-generator", action="store_true", help="export the discriminator only")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip loading the export back and comparing it with the fairseq model")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that an earlier export made (never another folder)")
    args = parser.parse_args(argv)

    inputs = [args.checkpoint, args.data, args.spm]
    try:
        check_output_dir(args.out, TOOL, args.force, inputs)
        from amos_fairseq.export import ExportError, export_pretrained
    except (OutputDirError, ImportError) as e:
        sys.exit(f"error: {e}")

    start = time.time()
    try:
        # Written to a temporary folder that replaces --out when complete and verified.
        with output_dir(args.out, TOOL, args.force, inputs) as tmp:
            result = export_pretrained(
                args.checkpoint,
                tmp,
                data=args.data,
                spm_model=args.spm,
                generator=not args.no_generator,
                generator_depth=args.generator_depth,
                verify=not args.no_verify,
            )
    except ExportError as e:  # TokenizerExportError is one too
        sys.exit(f"error: {e}")
    print(f"[export] discriminator ({result.model_class}) + tokenizer: {args.out}")
    if result.generator_dir:
        print(f"[export] generator depth {result.generator_depth} of {result.trained_depths} "
              f"({result.generator_class}): {os.path.join(args.out, os.path.basename(result.generator_dir))}")
    if result.remote_code:
        print("[export] the folders carry their modeling code: load them with trust_remote_code=True")
    for name, diff in result.max_abs_diff.items():
        print(f"[verify] max |hf - fairseq| {name}: {diff:.2e}")
    print(f"[done] {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
