"""What the classifier sees: the variables of Fukuhata & Kano (2025).

``SequenceClassifier`` = encoder truncated at layer k + token selection + dimension mask + head.

- token selection (Sec. "token-wise"): ``cls`` (final-layer [CLS] vector, the paper's baseline: the
  first real token of an encoder; on a decoder the last real token, see ``architectures.py``),
  ``last`` (the last real token), ``max_norm_token`` (the paper's "MaxPooling": the token vector of
  largest L2 norm; padding is never chosen), ``max`` (element-wise max over real tokens), ``mean``
  (mean over real tokens), ``pooler`` (BERT's tanh pooler on [CLS], what
  ``BertForSequenceClassification`` uses; RoBERTa's too). Every selection reads the attention mask,
  so left and right padding give the same vectors;
- layer (Sec. "layer-wise"): the encoder keeps only its first k layers, so the output is hidden
  state k and the layers above are never computed (``architectures.truncate``);
- selected dimensions (Sec. "dimension-wise"): the head's input weights outside the selected
  index set are multiplied by zero (a fixed DropConnect mask), so unselected dimensions can neither
  contribute nor receive gradient; optional random DropConnect on the head while training;
- head depth: one linear layer, or linear, activation, linear (the paper's frozen setting);
- freezing: every pretrained parameter, or the embeddings and the first k layers.
Dropout 0.1 before the head, as in the paper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, ModelConfig
from . import architectures

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


class MaskedLinear(nn.Linear):
    """Linear layer whose input weights are multiplied by a fixed 0/1 column mask and, while
    training, by a random DropConnect mask (inverted scaling, so evaluation needs no rescaling)."""

    def __init__(self, in_features: int, out_features: int, selected_dims: tuple[int, ...] | None,
                 dropconnect: float = 0.0):
        super().__init__(in_features, out_features)
        mask = torch.zeros(in_features) if selected_dims is not None else torch.ones(in_features)
        if selected_dims is not None:
            mask[list(selected_dims)] = 1.0
        self.register_buffer("input_mask", mask, persistent=False)
        self.dropconnect = dropconnect

    def masked_weight(self) -> torch.Tensor:
        weight = self.weight * self.input_mask  # (out, in)
        if self.training and self.dropconnect > 0:
            keep = torch.rand_like(weight) >= self.dropconnect
            weight = weight * keep / (1.0 - self.dropconnect)
        return weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(features, self.masked_weight(), self.bias)


def select_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor, selection: str,
                  special_mask: torch.Tensor | None = None, first_token_real: bool = False) -> torch.Tensor:
    """Sentence vector (batch, hidden) from token vectors ``hidden`` (batch, seq, hidden).

    ``attention_mask`` (batch, seq) is 1 on real tokens; ``special_mask`` (batch, seq) is 1 on
    tokens that ``max_norm_token`` may not pick (besides padding). ``first_token_real``: the caller knows
    every row's first token is real (a right-padded batch), so ``cls`` reads position 0 without checking
    the mask (on a GPU the check waits for the device: ``device_step.py``)."""
    real = attention_mask.bool()
    if selection == "cls":  # the first real token: position 0 unless the batch is left-padded
        if first_token_real:
            return hidden[:, 0]
        return hidden[:, 0] if bool(real[:, 0].all()) else _gather(hidden, real.int().argmax(dim=1))
    if selection == "last":
        return _gather(hidden, last_positions(attention_mask))
    if selection == "mean":
        weights = real.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    if selection == "max":
        return hidden.masked_fill(~real.unsqueeze(-1), torch.finfo(hidden.dtype).min).max(dim=1).values
    if selection == "max_norm_token":
        index = max_norm_positions(hidden, attention_mask, special_mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
    raise ConfigError(f"unknown token selection {selection!r}")


def _gather(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position (batch,) of the last real token, under left or right padding."""
    seq = attention_mask.shape[1]
    return seq - 1 - attention_mask.bool().flip(1).int().argmax(dim=1)


def max_norm_positions(hidden: torch.Tensor, attention_mask: torch.Tensor,
                       special_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Position (batch,) of the real token of largest L2 norm that ``max_norm_token`` reads."""
    real = attention_mask.bool()
    allowed = real if special_mask is None else real & ~special_mask.bool()
    allowed = torch.where(allowed.any(dim=1, keepdim=True), allowed, real)  # text of special tokens only
    norms = hidden.float().norm(dim=-1).masked_fill(~allowed, -1.0)  # (batch, seq); norms are >= 0
    return norms.argmax(dim=1)


class SequenceClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, config: ModelConfig, num_labels: int,
                 special_token_ids: tuple[int, ...] = ()):
        super().__init__()
        num_layers = architectures.num_layers(encoder)
        hidden_size = architectures.hidden_size(encoder)
        if config.layer is not None and not 1 <= config.layer <= num_layers:
            raise ConfigError(f"layer {config.layer} is out of range: the model has {num_layers} layers (1..{num_layers})")
        if config.frozen_layers > num_layers:
            raise ConfigError(f"frozen_layers {config.frozen_layers} is out of range: the model has {num_layers} layers")
        if config.selected_dims is not None and max(config.selected_dims) >= hidden_size:
            raise ConfigError(f"selected dimension {max(config.selected_dims)} is out of range for hidden size "
                              f"{hidden_size} (valid: 0..{hidden_size - 1})")
        if config.layer is not None and config.layer < num_layers:
            architectures.truncate(encoder, config.layer)  # layers above k never run
        pooler = architectures.detach_pooler(encoder)
        self.pooler = pooler if config.token_selection == "pooler" else None
        if config.token_selection == "pooler" and self.pooler is None:
            raise ConfigError(f"token_selection 'pooler' needs a model with a pretrained pooler (BERT, RoBERTa); "
                              f"{type(encoder).__name__} has none: use 'cls' or 'mean'")
        # on a causal decoder only the last real token has seen the whole text: 'cls' reads it
        self.selection = "last" if config.token_selection == "cls" and architectures.is_decoder(encoder) \
            else config.token_selection
        self.encoder = encoder
        self.config = config
        self.num_labels = num_labels
        self.register_buffer("special_token_ids", torch.tensor(special_token_ids, dtype=torch.long), persistent=False)

        self.dropout = nn.Dropout(config.dropout)
        first_out = hidden_size if config.head_layers == 2 else num_labels
        layers: list[nn.Module] = [MaskedLinear(hidden_size, first_out, config.selected_dims, config.head_dropconnect)]
        if config.head_layers == 2:
            layers += [ACTIVATIONS[config.head_activation](), nn.Linear(hidden_size, num_labels)]
        self.head = nn.Sequential(*layers)
        for module in self.head:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)  # BERT's initializer_range
                nn.init.zeros_(module.bias)
        self._freeze(config)

    def _freeze(self, config: ModelConfig) -> None:
        frozen: list[nn.Module] = []
        if config.freeze_pretrained:
            frozen = [self.encoder] + ([self.pooler] if self.pooler is not None else [])
        elif config.frozen_layers > 0:
            frozen = [*architectures.embedding_modules(self.encoder),
                      *architectures.encoder_layers(self.encoder)[: config.frozen_layers]]
        for module in frozen:
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> "SequenceClassifier":
        """A frozen encoder is a fixed feature extractor: it stays in eval mode (no dropout), so
        its features are the same every epoch and can be computed once (``freezing.py``)."""
        super().train(mode)
        if self.config.freeze_pretrained:
            self.encoder.eval()
        return self

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor | None = None, encoder_mask: torch.Tensor | None = None,
                 first_token_real: bool = False) -> torch.Tensor:
        """Head input (batch, hidden): the selected token vector of the selected layer. ``encoder_mask``: the
        padding mask prepared as the encoder's attention takes it (``device_step.encoder_mask``), given to the
        encoder in place of ``attention_mask``; ``first_token_real``: see ``select_tokens``."""
        hidden = architectures.last_hidden_state(self.encoder, input_ids, attention_mask, token_type_ids,
                                                 encoder_mask)  # (batch, seq, hidden)
        if self.pooler is not None:
            return self.pooler(hidden)
        special = None
        if self.config.token_selection == "max_norm_token" and not self.config.max_norm_include_special:
            special = torch.isin(input_ids, self.special_token_ids)
        return select_tokens(hidden, attention_mask, self.selection, special, first_token_real)

    def chosen_positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Position (batch,) of the token a ``max_norm_token`` model reads."""
        hidden = architectures.last_hidden_state(self.encoder, input_ids, attention_mask, token_type_ids)
        special = None if self.config.max_norm_include_special else torch.isin(input_ids, self.special_token_ids)
        return max_norm_positions(hidden, attention_mask, special)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (batch, num_labels) from head inputs (batch, hidden)."""
        return self.head(self.dropout(features))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.features(input_ids, attention_mask, token_type_ids))
