"""One interface to the pretrained models the studies read: BERT, RoBERTa, ELECTRA, DeBERTa-v2/v3,
ModernBERT, GPT-2 and Llama-style decoders (Llama, Qwen2/3, Mistral).

Fukuhata & Kano study BERT; Zhang, Liu & Shao report RoBERTa beside it; the paper's first open
question is whether dimension-wise redundancy holds for decoders. Everything the package needs from a
model goes through the ``Family`` of its ``config.model_type``:

- ``encoder_layers``: the stack of transformer blocks, in order (04's per-layer weight change and
  freezing, 07's per-layer subspaces);
- ``embedding_modules``: the parameters below the first block (04's "embeddings" row; frozen with
  ``frozen_layers``);
- ``word_embeddings``: the ``nn.Embedding`` of the vocabulary (``training/train_vocabulary.py``);
- ``truncate``: keep the first k blocks, so the layers above k are never computed. A model whose last
  block is followed by a final norm (ModernBERT, GPT-2, Llama) keeps it only when it keeps every
  block: hidden state k is then what ``output_hidden_states=True`` gives as ``hidden_states[k]`` of
  the full model, which normalises only the top one;
- ``pretrained_pooler``: BERT's and RoBERTa's tanh pooler on the first token; the others have none;
- ``forward_kwargs``: token type ids only for models with more than one token type (BERT, ELECTRA),
  ``use_cache=False`` for decoders;
- ``special_token_ids``: [CLS]/[SEP], <s>/</s>, BOS/EOS of the tokenizer (what ``max_norm_token``
  may skip).

Token selection on a decoder (``head.py``): ``cls`` means the sequence-summary token, which for a
causal decoder is the last real token (the only one that has seen the whole text; what
``GPT2ForSequenceClassification`` reads), and ``last`` names it for every model. A model type not
listed here is refused with the list of supported ones; adding a ``Family`` row is all it takes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

log = logging.getLogger(__name__)


class UnsupportedArchitecture(RuntimeError):
    """The model's architecture has no ``Family`` row; the message lists the supported ones."""


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # ``config.model_type`` values
    layers: str  # attribute path of the ModuleList of blocks
    embeddings: tuple[str, ...]  # attribute paths of the modules below the first block
    word_embeddings: str  # attribute path of the vocabulary's nn.Embedding
    final_norm: str | None = None  # attribute path of a norm after the last block
    decoder: bool = False  # causal attention: the summary token is the last one
    bert_attention: bool = False  # BERT's attention modules (fast_dropout.py may route their attention)


FAMILIES = (
    Family("BERT", ("bert",), "encoder.layer", ("embeddings",), "embeddings.word_embeddings", bert_attention=True),
    Family("RoBERTa", ("roberta", "xlm-roberta"), "encoder.layer", ("embeddings",), "embeddings.word_embeddings",
           bert_attention=True),
    Family("ELECTRA", ("electra",), "encoder.layer", ("embeddings",), "embeddings.word_embeddings",
           bert_attention=True),
    Family("DeBERTa-v2/v3", ("deberta-v2",), "encoder.layer", ("embeddings",), "embeddings.word_embeddings"),
    Family("ModernBERT", ("modernbert",), "layers", ("embeddings",), "embeddings.tok_embeddings", "final_norm"),
    Family("GPT-2", ("gpt2",), "h", ("wte", "wpe"), "wte", "ln_f", decoder=True),
    Family("Llama-style decoder", ("llama", "qwen2", "qwen3", "mistral"), "layers", ("embed_tokens",),
           "embed_tokens", "norm", decoder=True),
)


def _backbone(model: nn.Module) -> nn.Module:
    """The Hugging Face model: ``model`` itself, or the ``encoder`` of a ``SequenceClassifier``."""
    from transformers import PreTrainedModel

    return model if isinstance(model, PreTrainedModel) else model.encoder


def family(model: nn.Module) -> Family:
    """The ``Family`` of a Hugging Face model (or of a ``SequenceClassifier``'s)."""
    model_type = getattr(_backbone(model).config, "model_type", None)
    for candidate in FAMILIES:
        if model_type in candidate.model_types:
            return candidate
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    raise UnsupportedArchitecture(f"{type(_backbone(model)).__name__} (model_type {model_type!r}) is not supported; "
                                  f"fewdims reads {supported}. Add a Family row in fewdims_helpers/model/architectures.py "
                                  f"naming its layers, embeddings and final norm")


def _get(module: nn.Module, path: str):
    for name in path.split("."):
        module = getattr(module, name)
    return module


def _owner(module: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent, _, name = path.rpartition(".")
    return (_get(module, parent) if parent else module), name


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of ``model`` (a Hugging Face model or a ``SequenceClassifier``), bottom up."""
    backbone = _backbone(model)
    return _get(backbone, family(backbone).layers)


def embedding_modules(model: nn.Module) -> list[nn.Module]:
    """The modules below the first block (token, position and type embeddings and their norm)."""
    backbone = _backbone(model)
    return [_get(backbone, path) for path in family(backbone).embeddings]


def word_embeddings(model: nn.Module) -> tuple[nn.Module, str]:
    """(owner, attribute name) of the vocabulary's embedding, so it can be swapped (``train_vocabulary``)."""
    backbone = _backbone(model)
    return _owner(backbone, family(backbone).word_embeddings)


def num_layers(model: nn.Module) -> int:
    return len(encoder_layers(model))


def hidden_size(model: nn.Module) -> int:
    return _backbone(model).config.hidden_size


def is_decoder(model: nn.Module) -> bool:
    return family(model).decoder


def truncate(model: nn.Module, layer: int) -> None:
    """Keep the first ``layer`` blocks of a Hugging Face model (in place): the blocks above never run.
    Below the top, a final norm is dropped so the output is ``hidden_states[layer]`` of the full model."""
    spec, layers = family(model), encoder_layers(model)
    if layer >= len(layers):
        return
    owner, name = _owner(model, spec.layers)
    setattr(owner, name, layers[:layer])
    model.config.num_hidden_layers = layer  # Llama-style models loop over config.num_hidden_layers blocks
    if spec.final_norm is not None:
        norm_owner, norm_name = _owner(model, spec.final_norm)
        setattr(norm_owner, norm_name, nn.Identity())


def detach_pooler(model: nn.Module) -> nn.Module | None:
    """The model's pretrained pooler (BERT, RoBERTa), removed from the model so it runs only when read;
    None for a model without one."""
    pooler = getattr(model, "pooler", None)
    if isinstance(pooler, nn.Module):
        model.pooler = None
        return pooler
    return None


def uses_token_types(model: nn.Module) -> bool:
    """Whether the model has more than one token type (BERT, ELECTRA): then its type ids are passed.
    RoBERTa's single type and DeBERTa's none are the model's own default; GPT-2 would add them as
    word embeddings and Llama-style models take none."""
    return not family(model).decoder and getattr(_backbone(model).config, "type_vocab_size", 0) > 1


def last_hidden_state(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      token_type_ids: torch.Tensor | None = None, encoder_mask: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """Token vectors (batch, seq, hidden) of the model's top block (after truncation: block k).
    ``encoder_mask``: a mask already prepared for the model's attention, passed in place of ``attention_mask``."""
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask if encoder_mask is None else encoder_mask}
    if uses_token_types(model):
        kwargs["token_type_ids"] = token_type_ids
    elif family(model).decoder:
        kwargs["use_cache"] = False
    return model(**kwargs).last_hidden_state


def special_token_ids(tokenizer) -> tuple[int, ...]:
    """Ids of the tokens the tokenizer adds around a text ([CLS]/[SEP], <s>/</s>, BOS/EOS); the padding
    and unknown tokens are not among them. BERT's order, (cls, sep), comes first."""
    ids = [getattr(tokenizer, f"{name}_token_id", None) for name in ("cls", "sep", "bos", "eos")]
    return tuple(dict.fromkeys(i for i in ids if i is not None))
