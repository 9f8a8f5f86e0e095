"""Lines longer than a block become several pieces, so that no token of a corpus is dropped.

fairseq's sentence-preserving break modes (``complete``, ``complete_doc``, ``eos``) put a whole
line into one block, however long: a corpus with one paragraph or document per line (Wikipedia
dumps, web text) would give blocks longer than the model's positions, and cutting each line to
the block size would silently drop the rest of it. ``LinePiecesDataset`` splits every line of
more than ``max_len`` tokens into the fewest pieces of at most ``max_len`` tokens, of nearly
equal length (they differ by at most one token), in order; shorter lines pass unchanged.
Equal pieces, rather than full ones and a remainder, mean that no piece of a long line is a
lone ``</s>``, which ``complete_doc`` would take for a document boundary (an empty line).
"""

import numpy as np
from fairseq.data import BaseWrapperDataset


class LinePiecesDataset(BaseWrapperDataset):
    """Item ``j`` is piece ``j`` of the lines of ``dataset``, in corpus order.

    Args:
        dataset: a fairseq dataset of 1-D token tensors with ``sizes`` (one line each).
        max_len: the most tokens a piece may hold (``--tokens-per-sample`` - 1).
    """

    def __init__(self, dataset, max_len: int):
        super().__init__(dataset)
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        line_sizes = np.asarray(dataset.sizes, dtype=np.int64)
        pieces = np.maximum(1, -(-line_sizes // max_len))  # ceil, and an empty line stays one item
        self.line_of_piece = np.repeat(np.arange(len(line_sizes)), pieces)
        first_piece = np.cumsum(pieces) - pieces
        rank = np.arange(len(self.line_of_piece)) - first_piece[self.line_of_piece]  # piece index in its line
        size, n = line_sizes[self.line_of_piece], pieces[self.line_of_piece]
        # Piece r of a line of `size` tokens cut into n: [floor(r*size/n), floor((r+1)*size/n)).
        self.start = rank * size // n
        self.end = (rank + 1) * size // n
        self._sizes = self.end - self.start
        self.num_long_lines = int((pieces > 1).sum())

    @property
    def sizes(self):
        return self._sizes

    def size(self, index):
        return int(self._sizes[index])

    def num_tokens(self, index):
        return int(self._sizes[index])

    def __len__(self):
        return len(self._sizes)

    def __getitem__(self, index):
        line = self.dataset[int(self.line_of_piece[index])]
        if self._sizes[index] == len(line):
            return line
        return line[int(self.start[index]) : int(self.end[index])]

    @property
    def supports_prefetch(self):
        return False


def token_count(sizes) -> int:
    """The number of tokens in a dataset with these item sizes."""
    return int(np.asarray(sizes, dtype=np.int64).sum())


def describe_served_tokens(split: str, data_tokens: int, served_tokens: int, num_long_lines: int,
                           max_len: int, dropped_because: str, boundary_lines: int = 0) -> str:
    """One log line: how many of a split's tokens the blocks serve, and if any are not
    served, how many and why. ``boundary_lines`` empty lines (one ``</s>`` each) mark
    document boundaries and are not served as text (``complete_doc``)."""
    line = f"{split}: the blocks serve {served_tokens:,} of the data's {data_tokens:,} tokens"
    if num_long_lines:
        line += f" ({num_long_lines:,} lines longer than {max_len} tokens split into pieces)"
    if boundary_lines:
        line += f"; {boundary_lines:,} empty lines mark document boundaries, not text"
    dropped = data_tokens - boundary_lines - served_tokens
    if dropped:
        line += f"; {dropped:,} ({100.0 * dropped / max(data_tokens, 1):.1f}%) dropped by {dropped_because}"
    else:
        line += "; none dropped"
    return line
