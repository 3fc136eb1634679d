"""Train only the word-embedding rows a run can update: an exact speed-up of fine-tuning.

A run's training text uses a few thousand of the vocabulary's 30,522 tokens. Every other row of
the word-embedding matrix gets a zero gradient at every step, and with AdamW at weight decay 0
a zero gradient moves nothing: the moments stay 0 and so does the step. Yet the dense path still
pays for those rows each step: a zero-filled (vocab, hidden) gradient, its accumulation and an
optimizer update over 11.7M parameters (MiniLM). ``train_vocabulary`` swaps the embedding for one
whose only parameter is the rows of the tokens in the training split, and writes them back at
the end, so the trained model, its saved weights and its metrics are those of the dense run.

Not used when weight decay is on (decoupled decay shrinks every row, used or not) or when the
word embeddings are frozen.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..model import architectures

log = logging.getLogger(__name__)


class TrainVocabularyEmbedding(nn.Module):
    """Stand-in for an ``nn.Embedding`` whose rows ``ids`` are the only trainable ones."""

    def __init__(self, embedding: nn.Embedding, ids: torch.Tensor):
        super().__init__()
        weight = embedding.weight.detach()  # shares storage: the frozen rows are read in place
        self.register_buffer("frozen", weight, persistent=False)
        slot = torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device)
        slot[ids] = torch.arange(len(ids), device=weight.device)
        self.register_buffer("slot", slot, persistent=False)
        self.rows = nn.Parameter(weight[ids].clone())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        slot = self.slot[input_ids]
        trained = F.embedding(slot.clamp(min=0), self.rows)
        return torch.where((slot >= 0).unsqueeze(-1), trained, F.embedding(input_ids, self.frozen))


def trainable_ids(input_ids: torch.Tensor, vocabulary: int, padding_idx: int | None) -> torch.Tensor:
    """Sorted token ids occurring in ``input_ids``, without the padding id (whose row never trains)."""
    present = torch.zeros(vocabulary, dtype=torch.bool)
    present[input_ids.reshape(-1).long()] = True
    if padding_idx is not None:
        present[padding_idx] = False
    return present.nonzero().squeeze(1)


@contextmanager
def train_vocabulary(model: nn.Module, train_input_ids: torch.Tensor, weight_decay: float):
    """Inside the block, only the rows of tokens in ``train_input_ids`` of the word embeddings of
    ``model`` (a ``SequenceClassifier``) are parameters; on exit they are written back into the
    original ``nn.Embedding``, which is put back. A no-op when it would not be exact (logged)."""
    embeddings, name = architectures.word_embeddings(model)
    original = getattr(embeddings, name, None)
    reason = ("the word embeddings are not an nn.Embedding" if not isinstance(original, nn.Embedding) else
              "the word embeddings are frozen" if not original.weight.requires_grad else
              "weight decay moves every row" if weight_decay != 0 else
              "the word embeddings are shared with another module" if _shared(model, original) else None)
    if reason is not None:
        log.debug("training the whole vocabulary: %s", reason)
        yield
        return
    ids = trainable_ids(train_input_ids, original.num_embeddings, original.padding_idx).to(original.weight.device)
    compact = TrainVocabularyEmbedding(original, ids)
    setattr(embeddings, name, compact)
    try:
        yield
    finally:
        with torch.no_grad():
            original.weight[ids] = compact.rows.to(original.weight.dtype)
        setattr(embeddings, name, original)


def _shared(model: nn.Module, embedding: nn.Embedding) -> bool:
    """Whether another module reads the embedding's weight (tied weights): the swap would hide it."""
    return sum(p is embedding.weight for _, p in model.named_parameters(remove_duplicate=False)) > 1
