"""Output heads: the shared MLM head, the RTD head, the mixture scorer, the hardness head."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import LayerNorm


class MaskedLMHead(nn.Module):
    """dense(width -> E) -> GELU -> LayerNorm -> x @ E_tokens^T + bias.

    One head serves every generator depth; its output matrix is the shared token table
    (the same Parameter object, not a copy). Applied to masked positions only: [M, width] ->
    [M, V].
    """

    def __init__(self, width: int, token_embeddings: nn.Embedding):
        super().__init__()
        embed_dim = token_embeddings.embedding_dim
        self.dense = nn.Linear(width, embed_dim)
        self.layer_norm = LayerNorm(embed_dim)
        self.weight = token_embeddings.weight
        self.bias = nn.Parameter(torch.zeros(token_embeddings.num_embeddings))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(F.gelu(self.dense(hidden)))
        return F.linear(x, self.weight, self.bias)


class ReplacedTokenHead(nn.Module):
    """ELECTRA's discriminator head: dense -> GELU -> one logit per token. [N, C] -> [N]."""

    def __init__(self, width: int):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.out = nn.Linear(width, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.dense(hidden))).squeeze(-1)

    @torch.no_grad()
    def start_at_prior(self, replaced_fraction: float):
        """Set the output bias to logit(replaced_fraction): the untrained head then predicts
        the label prior (replacements are at most the masked fraction of tokens)."""
        self.out.bias.fill_(math.log(replaced_fraction / (1.0 - replaced_fraction)))


class MixtureScorer(nn.Module):
    """AMOS mixture logits: a bias-free score w . h shared by all depths.

    ``forward(hiddens [K, M, C]) -> [M, K]``; the mixture weights are its softmax over K.
    """

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1, bias=False)

    def forward(self, hiddens: torch.Tensor) -> torch.Tensor:
        return self.score(hiddens).squeeze(-1).transpose(0, 1)


class HardnessHead(nn.Module):
    """Predicts, for every candidate token, the discriminator's error if it were placed.

    dense(width -> width) -> GELU -> LayerNorm -> vocabulary logits u; sigmoid(u) is the
    predicted error probability. Its own output matrix (not tied): how hard a token is as a
    replacement is not what it means as an input. [M, width] -> [M, V].
    """

    def __init__(self, width: int, vocab_size: int):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.layer_norm = LayerNorm(width)
        self.out = nn.Linear(width, vocab_size)

    def features(self, hidden: torch.Tensor) -> torch.Tensor:
        """[M, width] -> [M, width], the input of the output layer."""
        return self.layer_norm(F.gelu(self.dense(hidden)))

    def output(self, features: torch.Tensor) -> torch.Tensor:
        """[M, width] -> [M, V], every candidate's logit."""
        return self.out(features)

    def output_at(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[M, width], [M] -> [M]: the logit of one candidate per row, equal to
        ``output(features).gather(-1, tokens)`` but with a gradient that touches only those
        rows of the output layer, not a dense [M, V] one."""
        rows = self.out.weight.index_select(0, tokens)  # [M, width]
        return (features * rows.to(features.dtype)).sum(-1) + self.out.bias.index_select(0, tokens).to(features.dtype)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(hidden))
