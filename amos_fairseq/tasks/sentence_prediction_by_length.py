"""``--task sentence_prediction_by_length``: fairseq's ``sentence_prediction`` with training
batches of sentences of similar length.

fairseq's ``sentence_prediction`` orders the training set by a random permutation only, so a
batch of 32 holds sentences of any length and is padded to its longest: on GLUE's STS-B
about 60% of the positions the model computes are padding. This task orders the training
set by length first (the permutation breaks ties), as fairseq's ``masked_lm`` does; fairseq's
epoch iterator then shuffles the order of the batches every epoch. The examples, the
options and the checkpoints are ``sentence_prediction``'s; only which sentences share a
batch changes (a batch's sentences are of similar length, the batch order stays random).
The split named ``train`` only; validation and test keep ``sentence_prediction``'s order.
"""

import logging

import numpy as np
from fairseq.data import SortDataset
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

logger = logging.getLogger(__name__)


@register_task("sentence_prediction_by_length", dataclass=SentencePredictionConfig)
class SentencePredictionByLengthTask(SentencePredictionTask):
    def load_dataset(self, split, combine=False, **kwargs):
        dataset = super().load_dataset(split, combine=combine, **kwargs)
        if split != "train" or not isinstance(dataset, SortDataset):  # --no-shuffle: file order
            return dataset
        examples = dataset.dataset
        lengths = np.asarray(examples.sizes[0])  # [N] tokens per example (pairs: both parts)
        # np.lexsort sorts by its last key first: length, then the random permutation.
        self.datasets[split] = SortDataset(examples, sort_order=[dataset.sort_order[0], lengths])
        logger.info(f"{split}: batches of similar length ({len(lengths)} examples, "
                    f"{int(lengths.min())}-{int(lengths.max())} tokens)")
        return self.datasets[split]
