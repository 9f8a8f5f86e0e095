"""Export pretrained amos/electra models to HuggingFace transformers (``pip install -e .[hf]``).

Not imported by ``--user-dir amos_fairseq``: transformers is an optional dependency.
"""

from ._compat import hide_broken_torchaudio

hide_broken_torchaudio()

from .electra import ExportError, check_exportable  # noqa: E402  (after the torchaudio fix)
from .hf import ExportResult, export_pretrained, load_pretraining_model  # noqa: E402
from .tokenizer import TokenizerExportError, export_tokenizer, fairseq_ids  # noqa: E402

__all__ = [
    "hide_broken_torchaudio",
    "ExportError",
    "ExportResult",
    "TokenizerExportError",
    "check_exportable",
    "export_pretrained",
    "export_tokenizer",
    "fairseq_ids",
    "load_pretraining_model",
]
