"""Keep a broken torchaudio from breaking ``import transformers`` model code.

fairseq pulls in torchaudio, and the torchaudio on PyPI can lag behind the installed torch
(its compiled extension then fails to load with ``OSError``). transformers imports
torchaudio whenever the package is *present*, so every ELECTRA import would fail, although
nothing here needs audio. When, and only when, importing torchaudio fails, it is marked as
absent (``sys.modules["torchaudio"] = None``): ``importlib.util.find_spec`` then reports it
missing and transformers skips it (its cached answer is cleared if transformers was imported
first). A working torchaudio is left alone.
"""

import sys


def hide_broken_torchaudio() -> bool:
    """Returns True if torchaudio was present but unimportable and is now hidden."""
    if "torchaudio" in sys.modules:
        return sys.modules["torchaudio"] is None
    try:
        import torchaudio  # noqa: F401
    except ImportError:
        return False  # absent: nothing to hide
    except Exception:  # noqa: BLE001  (OSError from its extension, or a version check)
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]
        sys.modules["torchaudio"] = None
        # transformers caches its answer; forget one given before torchaudio was hidden.
        import_utils = sys.modules.get("transformers.utils.import_utils")
        cached = getattr(import_utils, "is_torchaudio_available", None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
        return True
    return False
