"""The ``amos_rtd`` task: binarized text -> token blocks -> masked generator input.

Batches carry everything every replacement strategy needs::

    net_input.src_tokens     [B, T] long  generator input (selected positions mostly <mask>)
    net_input.src_lengths    [B]    long
    net_input.masked_tokens  [B, T] bool  positions the generator fills in
    net_input.positions      dict         the same as index tensors, and whether any
                                          sequence is padded (modules/positions.py)
    target                   [B, T] long  the whole original sequence (pad where padded)
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np
from fairseq import utils
from fairseq.data import (
    BaseWrapperDataset,
    Dictionary,
    IdDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    PrependTokenDataset,
    RightPadDataset,
    SortDataset,
    TokenBlockDataset,
    data_utils,
)
from fairseq.data.shorten_dataset import maybe_shorten_dataset
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from ..modules.positions import collate_positions
from .line_pieces import LinePiecesDataset, describe_served_tokens, token_count
from .masking import RTDMaskingDataset

logger = logging.getLogger(__name__)

SAMPLE_BREAK_MODE_CHOICES = ChoiceEnum(["none", "complete", "complete_doc", "eos"])
SHORTEN_METHOD_CHOICES = ChoiceEnum(["none", "truncate", "random_crop"])

# How many tokens of each split are scanned to catch a dictionary from another corpus.
_VOCAB_CHECK_TOKENS = 10_000_000


class DataConfigError(ValueError):
    """Bad data or data options; raised before any model or checkpoint is touched."""


@dataclass
class AmosRTDConfig(FairseqDataclass):
    data: str = field(
        default=MISSING,
        metadata={
            "help": "data directory made by fairseq-preprocess --only-source "
            "(dict.txt, train.bin/.idx, valid.bin/.idx); several shards joined with ':' "
            "are used one per epoch"
        },
    )
    sample_break_mode: SAMPLE_BREAK_MODE_CHOICES = field(
        default="complete",
        metadata={
            "help": "none: fill each block with tokens-per-sample tokens; complete: whole "
            "lines up to the block size; complete_doc: same, never crossing documents (blank "
            "lines); eos: one line per block. In the last three a line longer than a block is "
            "split into equal pieces first, so no token is dropped"
        },
    )
    tokens_per_sample: int = field(
        default=512, metadata={"help": "block length in tokens, <s> included"}
    )
    mask_prob: float = field(
        default=0.15, metadata={"help": "share of real tokens the generator replaces"}
    )
    leave_unmasked_prob: float = field(
        default=0.0,
        metadata={
            "help": "share of selected positions left unchanged in the generator input "
            "(ELECTRA's recipe uses 0.15)"
        },
    )
    random_token_prob: float = field(
        default=0.0,
        metadata={"help": "share of selected positions given a random token in the generator input"},
    )
    shorten_method: SHORTEN_METHOD_CHOICES = field(
        default="none", metadata={"help": "shorten over-long input sequences"}
    )
    shorten_data_split_list: str = field(
        default="", metadata={"help": "comma-separated splits to shorten (default: all)"}
    )
    seed: int = II("common.seed")


@register_task("amos_rtd", dataclass=AmosRTDConfig)
class AmosRTDTask(FairseqTask):
    """Replaced-token-detection pretraining (ELECTRA, AMOS, focal-hardness)."""

    cfg: AmosRTDConfig

    def __init__(self, cfg: AmosRTDConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        # Added after the corpus symbols, like fairseq's masked_lm, so that data ids keep
        # their meaning; the model's vocabulary is len(dictionary) including <mask>.
        self.mask_idx = dictionary.add_symbol("<mask>")

    @classmethod
    def setup_task(cls, cfg: AmosRTDConfig, **kwargs):
        validate_masking(cfg)
        paths = utils.split_paths(cfg.data)
        if not paths or not all(paths):
            raise DataConfigError(
                "no data directory given: pass the folder made by "
                "`fairseq-preprocess --only-source --destdir DIR` as the first argument"
            )
        for path in paths:
            if not os.path.isdir(path):
                raise DataConfigError(
                    f"data directory {path!r} does not exist: pass the --destdir of "
                    "`fairseq-preprocess --only-source`"
                )
        dict_path = os.path.join(paths[0], "dict.txt")
        if not os.path.isfile(dict_path):
            raise DataConfigError(
                f"data directory {paths[0]!r} has no dict.txt: it is empty or not made by "
                "fairseq-preprocess; run `fairseq-preprocess --only-source --srcdict "
                f"dict.txt --trainpref ... --destdir {paths[0]}`"
            )
        dictionary = Dictionary.load(dict_path)
        for path in paths[1:]:
            # Shards are used one per epoch with the first shard's dictionary.
            other = os.path.join(path, "dict.txt")
            if os.path.isfile(other) and Dictionary.load(other).symbols != dictionary.symbols:
                raise DataConfigError(
                    f"{other} differs from {dict_path}: every data shard must be binarized with "
                    "the same dictionary (fairseq-preprocess --srcdict with the first shard's dict.txt)"
                )
        if "<mask>" in dictionary.indices:
            raise DataConfigError(
                f"{dict_path} already contains <mask>; the task adds it itself. Remove the "
                "line from dict.txt (and binarize again if ids shifted)"
            )
        logger.info("dictionary: %d types (+ <mask>)", len(dictionary))
        # Checked here, not only when a split is loaded: fairseq loads the training data
        # after the checkpoint, and a mismatch must stop the run before that.
        for path in paths:
            for split in ("train", "valid"):
                data = data_utils.load_indexed_dataset(os.path.join(path, split), dictionary)
                if data is not None:
                    check_vocabulary(data, len(dictionary) - 1, os.path.join(path, split))
        return cls(cfg, dictionary)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        paths = utils.split_paths(self.cfg.data)
        data_path = paths[(epoch - 1) % len(paths)]
        split_path = os.path.join(data_path, split)
        dataset = data_utils.load_indexed_dataset(split_path, self.source_dictionary, combine=combine)
        if dataset is None:
            raise DataConfigError(
                f"split {split!r} not found in {data_path!r} (expected {split}.bin and "
                f"{split}.idx): binarize it with `fairseq-preprocess --only-source "
                f"--{'train' if split == 'train' else 'valid'}pref ...`, or choose other "
                "splits with --valid-subset"
            )
        check_vocabulary(dataset, self.mask_idx - 1, split_path)
        data_tokens = token_count(dataset.sizes)
        dataset = maybe_shorten_dataset(
            dataset,
            split,
            self.cfg.shorten_data_split_list,
            self.cfg.shorten_method,
            self.cfg.tokens_per_sample,
            self.cfg.seed,
        )
        # Blocks leave one slot for the <s> that stands for the whole sequence.
        block_len = self.cfg.tokens_per_sample - 1
        num_long_lines = boundary_lines = 0
        if self.cfg.sample_break_mode != "none":
            # Sentence-preserving modes would emit an over-long line whole; it becomes
            # several pieces instead, so every token still reaches a block.
            dataset = LinePiecesDataset(dataset, block_len)
            num_long_lines = dataset.num_long_lines
        if self.cfg.sample_break_mode == "complete_doc":
            # fairseq's document separator: an empty line, i.e. a lone </s>
            boundary_lines = int((np.asarray(dataset.sizes) == 1).sum())
        dataset = TokenBlockDataset(
            dataset,
            dataset.sizes,
            block_len,
            pad=self.source_dictionary.pad(),
            eos=self.source_dictionary.eos(),
            break_mode=self.cfg.sample_break_mode,
        )
        logger.info(
            describe_served_tokens(
                split_path,
                data_tokens,
                token_count(dataset.sizes),
                num_long_lines,
                block_len,
                dropped_because=f"--shorten-method {self.cfg.shorten_method}",
                boundary_lines=boundary_lines,
            )
        )
        dataset = PrependTokenDataset(dataset, self.source_dictionary.bos())
        logger.info("loaded %d blocks from %s", len(dataset), split_path)

        def masking(view):
            return RTDMaskingDataset(
                dataset,
                self.source_dictionary,
                self.mask_idx,
                view=view,
                seed=self.cfg.seed,
                mask_prob=self.cfg.mask_prob,
                leave_unmasked_prob=self.cfg.leave_unmasked_prob,
                random_token_prob=self.cfg.random_token_prob,
            )

        source = masking("source")
        pad = self.source_dictionary.pad()
        with data_utils.numpy_seed(self.cfg.seed, epoch):
            shuffle = np.random.permutation(len(source))
        self.datasets[split] = SortDataset(
            NestedDictionaryDataset(
                {
                    "id": IdDataset(),
                    "first_id": FirstIdDataset(),
                    "net_input": {
                        "src_tokens": RightPadDataset(source, pad_idx=pad),
                        "src_lengths": NumelDataset(source, reduce=False),
                        "masked_tokens": RightPadDataset(masking("selected"), pad_idx=0),
                        "positions": PositionsDataset(masking("selected")),
                    },
                    "target": RightPadDataset(dataset, pad_idx=pad),
                    "nsentences": NumSamplesDataset(),
                    "ntokens": NumelDataset(source, reduce=True),
                },
                sizes=[source.sizes],
            ),
            sort_order=[shuffle, source.sizes],
        )

    def build_model(self, cfg, from_checkpoint=False):
        max_positions = getattr(cfg, "max_positions", None)
        if max_positions is not None and self.cfg.tokens_per_sample > max_positions:
            raise DataConfigError(
                f"--tokens-per-sample {self.cfg.tokens_per_sample} is longer than the model's "
                f"--max-positions {max_positions}: lower --tokens-per-sample or raise "
                "--max-positions (a pretrained model's positions cannot grow)"
            )
        return super().build_model(cfg, from_checkpoint)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        # fairseq passes the update count to the model only; criteria with schedules
        # (e.g. focal_hardness's alpha ramp) read it through the same hook.
        if hasattr(criterion, "set_num_updates"):
            criterion.set_num_updates(update_num)
        # fairseq seeds torch once per update, so with --update-freq the second micro-batch
        # continues the first one's random stream, while on worker 1 of a data-parallel run
        # the same batch starts a fresh one. Seeding each micro-batch from (seed, update,
        # its smallest example index) makes the Gumbel noise and dropout a function of the batch
        # itself: 2 workers reproduce one process with --update-freq 2 exactly.
        with utils.set_torch_seed(micro_batch_seed(self.cfg.seed, update_num, sample)):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def max_positions(self):
        return self.cfg.tokens_per_sample


class PositionsDataset(BaseWrapperDataset):
    """Collates the batch's index tensors (``modules/positions.py``) from the items'
    selections, on the host, so that the model needs no boolean indexing on the device."""

    def collater(self, samples):
        return collate_positions(samples)


class FirstIdDataset(IdDataset):
    """The smallest dataset index of a batch as a Python int: it names the batch without a
    tensor, so reading it on a GPU run costs no host synchronisation."""

    def collater(self, samples):
        return min(samples) if samples else -1


def micro_batch_seed(seed: int, update_num: int, sample) -> int:
    """A torch seed that depends on the run's seed, the update and which examples the batch
    holds (``sample["first_id"]``), not on the worker or accumulation step."""
    first = sample.get("first_id", -1) if isinstance(sample, dict) else -1
    return (((seed * 1_000_003) + update_num) * 1_000_003 + int(first) + 1) % (2**63)


def validate_masking(cfg) -> None:
    """Stop on masking options that cannot mean anything."""
    if not 0.0 < cfg.mask_prob < 1.0:
        raise DataConfigError(f"--mask-prob must lie in (0, 1), got {cfg.mask_prob}: e.g. 0.15")
    for flag, value in (
        ("--leave-unmasked-prob", cfg.leave_unmasked_prob),
        ("--random-token-prob", cfg.random_token_prob),
    ):
        if not 0.0 <= value <= 1.0:
            raise DataConfigError(f"{flag} must lie in [0, 1], got {value}")
    if cfg.leave_unmasked_prob + cfg.random_token_prob > 1.0:
        raise DataConfigError(
            "--leave-unmasked-prob + --random-token-prob must not exceed 1, got "
            f"{cfg.leave_unmasked_prob} + {cfg.random_token_prob}"
        )
    if cfg.tokens_per_sample < 2:
        raise DataConfigError(f"--tokens-per-sample must be at least 2, got {cfg.tokens_per_sample}")


def check_vocabulary(dataset, max_id: int, split_path: str) -> None:
    """Stop if the binarized ids do not fit the dictionary (data from another dict.txt).

    Scans up to the first ``_VOCAB_CHECK_TOKENS`` tokens of the split, so the check costs
    well under a second even on large corpora.
    """
    seen, largest, i = 0, -1, 0
    while i < len(dataset) and seen < _VOCAB_CHECK_TOKENS:
        item = dataset[i]
        if len(item):
            largest = max(largest, int(item.max()))
        seen += len(item)
        i += 1
    if largest > max_id:
        raise DataConfigError(
            f"{split_path} holds token id {largest} but dict.txt has only {max_id + 1} ids: "
            "the data was binarized with another dictionary; binarize again with "
            "`fairseq-preprocess --srcdict` pointing at this directory's dict.txt"
        )
