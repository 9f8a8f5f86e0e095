"""Write a tool's output folder so that nothing the tool did not make is ever lost.

    with output_dir(args.out, tool="prepare_corpus", force=args.force, inputs=args.inputs) as tmp:
        ...  # write everything under tmp
    # success: tmp is renamed to args.out (replacing the previous output of the same tool);
    # any error or Ctrl-C: tmp is removed and args.out is exactly as it was.

Rules, checked before anything is written:

- an existing non-empty ``out`` is refused without ``--force``;
- with ``--force`` it is replaced only if it holds the marker file that this same tool wrote
  into its output (a folder the tool made), never a folder of the user's own;
- an input inside ``out`` is refused (replacing ``out`` would delete it).

The new output is built in a hidden sibling folder of ``out`` (same file system, so the final
rename is atomic), and the marker is written last.
"""

import os
import shutil
import tempfile
from contextlib import contextmanager

MARKER = ".amos-fairseq-output"


class OutputDirError(Exception):
    """An output folder that must not be written or replaced; the message names the fix."""


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def made_by(folder: str) -> str:
    """Name of the tool whose marker ``folder`` holds ('' if none)."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def check_output_dir(out: str, tool: str, force: bool, inputs=()) -> None:
    """Raise OutputDirError if writing ``out`` could destroy something (rules above)."""
    for path in inputs:
        if path and _inside(path, out):
            raise OutputDirError(
                f"input {path} lies inside the output folder {out}, which is written anew: "
                "choose another --out (or move the input out of it)"
            )
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out) or os.path.islink(out):
        raise OutputDirError(f"{out} exists and is not a folder: choose another --out")
    if not os.listdir(out):
        return  # an empty folder: nothing to lose
    if not force:
        raise OutputDirError(f"{out} exists; choose another --out or pass --force to replace it")
    owner = made_by(out)
    if owner != tool:
        made = f"was made by {owner}" if owner else f"holds no {MARKER} marker"
        raise OutputDirError(
            f"--force replaces only a folder that {tool} made, and {out} {made}: choose "
            "another --out, or move or delete that folder yourself"
        )


@contextmanager
def output_dir(out: str, tool: str, force: bool = False, inputs=()):
    """Yield a fresh temporary folder; on success it becomes ``out`` (see the module doc)."""
    check_output_dir(out, tool, force, inputs)
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-", dir=parent)
    try:
        yield tmp
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            f.write(tool + "\n")
        if os.path.lexists(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
            os.rename(out, os.path.join(old, "previous"))
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
