"""Export pretrained amos/electra models to HuggingFace transformers (``pip install -e .[hf]``).

ELECTRA-shaped models become stock ``Electra*`` classes; models with a relative position bias
or pre-LN layers become the AMOS-ELECTRA family of ``hf_modeling_amos`` (remote code).

Not imported by ``--user-dir amos_fairseq``: transformers is an optional dependency.
"""

from ._compat import hide_broken_torchaudio

hide_broken_torchaudio()

from .electra import ExportError, needs_amos_electra  # noqa: E402  (after the torchaudio fix)
from .hf import ExportResult, export_pretrained, load_pretraining_model  # noqa: E402
from .tokenizer import TokenizerExportError, export_tokenizer, fairseq_ids  # noqa: E402

__all__ = [
    "hide_broken_torchaudio",
    "ExportError",
    "ExportResult",
    "TokenizerExportError",
    "export_pretrained",
    "export_tokenizer",
    "fairseq_ids",
    "load_pretraining_model",
    "needs_amos_electra",
]
