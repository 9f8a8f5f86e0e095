"""Checks of the ``amos`` model's own options, made before the model is built.

Sizes that cannot build a working model (a generator depth beyond its stack, a width that
does not split into its heads, an odd number of relative-position buckets) stop here with a
``ModelConfigError`` that names the flag and the fix, instead of failing later inside a layer.
"""

from typing import List


class ModelConfigError(ValueError):
    """Model options that cannot work together; raised before any checkpoint is touched."""


def parse_depths(spec) -> List[int]:
    """'4,6,8' -> [4, 6, 8] with a clear error for anything else."""
    try:
        depths = [int(d) for d in str(spec).replace(" ", "").split(",") if d != ""]
    except ValueError:
        raise ModelConfigError(f"--generator-depths must be comma-separated integers like 4,6,8, got {spec!r}")
    if not depths:
        raise ModelConfigError("--generator-depths is empty: name at least one depth, e.g. --generator-depths 12")
    if any(d < 1 for d in depths):
        raise ModelConfigError(f"--generator-depths must be positive, got {spec!r}")
    if len(set(depths)) != len(depths):
        raise ModelConfigError(f"--generator-depths lists a depth twice: {spec!r}")
    return sorted(depths)


def validate_args(args) -> None:
    """Stop on sizes that cannot build a working model, naming the flag and the fix."""
    depths = parse_depths(args.generator_depths)
    layers = getattr(args, "generator_layers", None)
    if layers is not None:
        if max(depths) > layers:
            raise ModelConfigError(
                f"--generator-depths {args.generator_depths} asks for depth {max(depths)} but "
                f"--generator-layers is {layers}: lower the depth or raise --generator-layers"
            )
        if layers > max(depths):
            raise ModelConfigError(
                f"--generator-layers {layers} is deeper than the deepest head "
                f"(--generator-depths {args.generator_depths}): layers above it would never "
                "train; drop --generator-layers or add that depth"
            )
    for width, heads, flag in (
        (args.encoder_embed_dim, args.encoder_attention_heads, "--encoder"),
        (args.generator_embed_dim, args.generator_attention_heads, "--generator"),
    ):
        if width % heads:
            raise ModelConfigError(
                f"{flag}-embed-dim {width} is not divisible by {flag}-attention-heads {heads}"
            )
    if args.rel_pos_bins and (args.rel_pos_bins < 4 or args.rel_pos_bins % 2):
        raise ModelConfigError(f"--rel-pos-bins must be 0 (off) or an even number >= 4, got {args.rel_pos_bins}")
