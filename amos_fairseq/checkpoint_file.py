"""Whether a file is a complete torch checkpoint, checked before a run or an export starts.

``torch.save`` writes a zip archive whose directory sits at the end of the file, so a file cut
short by a kill or a full disk is no longer a readable zip: the check costs one read of that
directory, not a load. A file that is not a zip at all (torch's legacy format) is loaded once.
"""

import os
import zipfile


class CheckpointFileError(ValueError):
    """A checkpoint path that does not exist or does not hold a complete checkpoint."""


def check_checkpoint_file(path: str, flag: str) -> None:
    """Raise CheckpointFileError naming ``flag`` unless ``path`` is a complete checkpoint."""
    if not os.path.isfile(path):
        raise CheckpointFileError(f"{flag} {path} does not exist: give the path of a checkpoint file")
    problem = None
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                if not any(name.endswith("data.pkl") for name in archive.namelist()):
                    problem = "a zip archive without torch's data.pkl"
        except (zipfile.BadZipFile, OSError) as e:
            problem = str(e)
    else:
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # truncated pickles raise EOFError, UnpicklingError, RuntimeError...
            problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    if problem:
        raise CheckpointFileError(
            f"{flag} {path} is not a complete checkpoint ({problem}); a run killed while saving "
            "or a full disk leaves such files: use another checkpoint of the run (checkpoint_best.pt "
            "or an interval checkpoint)"
        )
