#!/usr/bin/env python
"""Plot pretraining curves from ``--tensorboard-logdir`` folders or fairseq log files.

    python scripts/plot_curves.py RUN [RUN ...] --out curves.png [--split train_inner]

Each RUN is either a tensorboard log directory (the folder given to
``--tensorboard-logdir``; its ``train_inner/`` subfolder is read, or the folder itself if it
holds event files) or a text file with fairseq's ``--log-format simple`` output. Several runs
are drawn into the same panels, labelled by their path (or ``--labels``).

Panels, each drawn when some run logged it:

* generator loss (``gen_loss``; for amos ``gen_loss_d*`` per depth instead of their sum)
* RTD loss (``rtd_loss``)
* replace rate (share of masked positions whose placed token differs from the original)
  and the discriminator's accuracy on replaced / original tokens
* amos mixture weights per depth (``mix_w_d*``)

Needs matplotlib (``pip install -e .[plot]``). Event files are read with the protobuf
definitions shipped by tensorboardX, so tensorboard itself is not needed.
"""

import argparse
import glob
import os
import re
import struct
import sys
from collections import defaultdict

PANELS = [
    ("generator loss", re.compile(r"^gen_loss(_d\d+)?$")),
    ("RTD loss", re.compile(r"^rtd_loss$")),
    ("replace rate / RTD accuracy", re.compile(r"^(replace_rate|rtd_acc_replaced|rtd_acc_original)$")),
    ("mixture weight per depth (amos)", re.compile(r"^mix_w_d\d+$")),
]

_LOG_METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)(?:=| )(-?\d+(?:\.\d+)?(?:e-?\d+)?)(?=[,| ]|$)")


def read_event_file(path):
    """Scalars of one tensorboard event file: tag -> [(step, value)].

    The file is a sequence of TFRecords: uint64 length, uint32 crc, payload, uint32 crc.
    """
    from tensorboardX.proto.event_pb2 import Event

    series = defaultdict(list)
    with open(path, "rb") as f:
        while True:
            header = f.read(8)
            if len(header) < 8:
                break
            (length,) = struct.unpack("<Q", header)
            f.read(4)
            payload = f.read(length)
            f.read(4)
            if len(payload) < length:
                break  # a file still being written
            event = Event()
            event.ParseFromString(payload)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    series[value.tag].append((event.step, value.simple_value))
    return series


def read_tensorboard_dir(path, split):
    folder = os.path.join(path, split) if os.path.isdir(os.path.join(path, split)) else path
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    if not files:
        raise SystemExit(
            f"error: no tensorboard event files in {folder!r}: pass the folder given to "
            "--tensorboard-logdir (install tensorboardX, or fairseq ignores that flag silently)"
        )
    series = defaultdict(list)
    for path in files:
        for tag, points in read_event_file(path).items():
            series[tag].extend(points)
    return {tag: sorted(points) for tag, points in series.items()}


def read_log_file(path, split):
    """Scalars from fairseq's simple log lines of ``split``; the step is num_updates."""
    series = defaultdict(list)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if f"| {split} |" not in line:
                continue
            row = dict((k, float(v)) for k, v in _LOG_METRIC.findall(line.split(f"| {split} |", 1)[1]))
            if "num_updates" not in row:
                continue
            for tag, value in row.items():
                series[tag].append((int(row["num_updates"]), value))
    if not series:
        raise SystemExit(f"error: no '| {split} |' lines with num_updates in {path!r}: is it a fairseq log "
                         "written with --log-format simple?")
    return dict(series)


def read_run(path, split):
    if os.path.isdir(path):
        return read_tensorboard_dir(path, split)
    if os.path.isfile(path):
        return read_log_file(path, split)
    raise SystemExit(f"error: {path!r} is neither a tensorboard log directory nor a log file")


def panel_tags(series, pattern):
    """The tags of one run drawn in a panel. A run with per-depth generator losses (amos) logs
    ``gen_loss`` as their sum, on another scale: its depths are drawn, not the sum."""
    tags = sorted(t for t in series if pattern.match(t))
    if any(t.startswith("gen_loss_d") for t in tags):
        return [t for t in tags if t != "gen_loss"]
    return tags


def plot(runs, labels, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(title, pattern) for title, pattern in PANELS if any(
        pattern.match(tag) for series in runs for tag in series)]
    if not panels:
        raise SystemExit("error: none of the runs logged gen_loss, rtd_loss, replace_rate or mix_w_d*: "
                         "are these pretraining (amos_rtd) logs?")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (title, pattern) in zip(axes[0], panels):
        for r, (series, label) in enumerate(zip(runs, labels)):
            for tag in panel_tags(series, pattern):
                steps, values = zip(*series[tag])
                ax.plot(steps, values, styles[r % len(styles)], label=f"{label}: {tag}" if len(runs) > 1 else tag)
        ax.set_title(title)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return [title for title, _ in panels]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="tensorboard log directories or fairseq log files")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--split", default="train_inner", help="train_inner (default), train or valid")
    parser.add_argument("--labels", help="comma-separated names for the runs")
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else args.runs
    if len(labels) != len(args.runs):
        raise SystemExit(f"error: --labels names {len(labels)} runs but {len(args.runs)} were given")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("error: matplotlib is not installed: pip install -e '.[plot]' "
                         "(or EXTRAS=test,plot bash scripts/setup_env.sh)")
    runs = [read_run(path, args.split) for path in args.runs]
    titles = plot(runs, labels, args.out)
    print(f"[done] {args.out}: {', '.join(titles)}", file=sys.stderr)


if __name__ == "__main__":
    main()
