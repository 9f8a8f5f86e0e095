"""The exported tokenizer: sentencepiece pieces -> fairseq dictionary ids, exactly.

fairseq's pipeline (``scripts/prepare_corpus.py`` + ``fairseq-preprocess`` + the task) turns a
line into ids in three steps:

1. ``spm.encode(line, out_type=str)``: sentencepiece *pieces* (strings; a run of characters
   the sentencepiece model does not know comes out as its surface string),
2. ``Dictionary.encode_line``: each piece -> its dict.txt index, or ``<unk>`` (3) when the
   dictionary lacks it, plus ``</s>`` (2) at the end of the line,
3. the task prepends ``<s>`` (0); ``<mask>`` is the last dictionary symbol.

transformers' ``BartphoTokenizer`` does exactly this: it runs the sentencepiece model to
pieces, looks every piece up in a fairseq ``dict.txt`` (falling back to ``<unk>`` for pieces
the dictionary lacks), numbers the symbols the way ``fairseq.data.Dictionary`` does (``<s>
<pad> </s> <unk>``, then the dict.txt lines, then ``<mask>``) and builds ``<s> X </s>``
(pairs ``<s> A </s></s> B </s>``, fairseq's ``sentence_prediction`` with ``</s>`` as
separator). No vocabulary rows are added and no ids are remapped, so the model's embedding
table is exported as it is. It is a sentencepiece-backed ("slow") tokenizer: loading it
needs the ``sentencepiece`` package, which this project depends on anyway.

One documented difference: like every transformers tokenizer it reads the literal strings of
its special tokens (``<s>``, ``</s>``, ``<pad>``, ``<unk>``, ``<mask>``) in the input as those
tokens (which is how ``fill-mask`` finds ``<mask>``); fairseq would encode such text as
ordinary pieces.
"""

import os
import shutil
from typing import List

from fairseq.data import Dictionary

# File names BartphoTokenizer expects (the sentencepiece model keeps its own type, unigram or
# bpe, whatever the name says).
SPM_FILE = "sentencepiece.bpe.model"
DICT_FILE = "dict.txt"
MASK = "<mask>"


class TokenizerExportError(ValueError):
    """The sentencepiece model and the dictionary cannot give the checkpoint's ids."""


def fairseq_ids(line: str, spm_processor, dictionary: Dictionary) -> List[int]:
    """The ids fairseq trains on for one line: ``<s>`` + pieces -> dictionary + ``</s>``.

    This is the reference the exported tokenizer is checked against (prepare_corpus.py strips
    the line and encodes it with sentencepiece; fairseq-preprocess looks the pieces up).
    """
    pieces = " ".join(spm_processor.encode(line.strip(), out_type=str))
    ids = dictionary.encode_line(pieces, add_if_not_exist=False, append_eos=True).tolist()
    return [dictionary.bos()] + ids


def write_dictionary(dictionary: Dictionary, path: str) -> None:
    """dict.txt of the corpus symbols in index order: everything after fairseq's specials,
    without the task's ``<mask>`` (the tokenizer appends that itself)."""
    symbols = dictionary.symbols[dictionary.nspecial:]
    if symbols and symbols[-1] == MASK:
        symbols = symbols[:-1]
    if MASK in symbols:
        raise TokenizerExportError(
            f"{MASK} is not the last dictionary symbol: this dictionary was not made by the "
            "amos_rtd task (which appends <mask> after the corpus symbols)"
        )
    with open(path, "w", encoding="utf-8") as f:
        for symbol in symbols:
            f.write(f"{symbol} {dictionary.count[dictionary.index(symbol)]}\n")


def export_tokenizer(spm_model: str, dictionary: Dictionary, out_dir: str, max_length: int):
    """Write a tokenizer for ``dictionary`` (with ``<mask>`` last, as the task has it) into
    ``out_dir`` and return it loaded back with ``AutoTokenizer`` (offline).

    Raises ``TokenizerExportError`` if the loaded tokenizer does not number every dictionary
    symbol as fairseq does (e.g. a dict.txt that repeats a special symbol).
    """
    from transformers import AutoTokenizer, BartphoTokenizer

    if not os.path.isfile(spm_model):
        raise TokenizerExportError(
            f"sentencepiece model {spm_model!r} not found: pass --spm with the spm.model that "
            "scripts/prepare_corpus.py wrote for this corpus"
        )
    for i, special in enumerate(("<s>", "<pad>", "</s>", "<unk>")):
        if dictionary[i] != special:
            raise TokenizerExportError(f"dictionary index {i} is {dictionary[i]!r}, expected fairseq's {special}")
    os.makedirs(out_dir, exist_ok=True)
    spm_path = os.path.join(out_dir, SPM_FILE)
    dict_path = os.path.join(out_dir, DICT_FILE)
    shutil.copyfile(spm_model, spm_path)
    write_dictionary(dictionary, dict_path)
    has_mask = dictionary.symbols[-1] == MASK
    tokenizer = BartphoTokenizer(spm_path, dict_path, model_max_length=max_length)
    tokenizer.save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    expected = len(dictionary) if has_mask else len(dictionary) + 1
    if len(tokenizer) != expected:
        raise TokenizerExportError(
            f"the exported tokenizer has {len(tokenizer)} ids but the dictionary has {expected} "
            "(with <mask>): does dict.txt repeat a symbol or contain a special symbol?"
        )
    vocab = tokenizer.get_vocab()
    wrong = [(s, i, vocab.get(s)) for i, s in enumerate(dictionary.symbols) if vocab.get(s) != i]
    if wrong:
        raise TokenizerExportError(f"tokenizer ids differ from the dictionary's, e.g. (symbol, fairseq, hf): {wrong[:5]}")
    return tokenizer
