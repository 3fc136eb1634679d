"""Tokenise once, cache, and batch with dynamic padding and length grouping.

A task's splits are tokenised once per (data config, tokenizer, data source) and kept as padded int32
arrays on disk (``<cache>/tokens``) and in memory, so the 45 runs of a study tokenise each task once.
The sequence length of a task follows its data (``choose_seq_length``): a cap covering most examples,
within the profile's bound.
Training batches group examples of similar length (shuffled within mega-batches of 50 batches, as
``transformers``' ``group_by_length`` does) and are padded only to their own longest example.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from ..config import DataConfig, content_key
from ..model.pretrained import load_tokenizer
from ..options import DataSources
from ..paths import save_npz_atomically, write_atomically
from .tasks import get_task, load_task

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TokenizedSplit:
    input_ids: np.ndarray  # (n, max_len) int32, right-padded with 0
    token_type_ids: np.ndarray  # (n, max_len) int8
    lengths: np.ndarray  # (n,) real tokens per example
    labels: np.ndarray  # (n,) int64 or float32
    idx: np.ndarray  # (n,) row numbers in the task's source

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """Tensors for ``rows``, padded to the longest of them."""
        width = int(self.lengths[rows].max())
        attention_mask = np.arange(width)[None, :] < self.lengths[rows, None]
        return {"input_ids": torch.from_numpy(self.input_ids[rows, :width].astype(np.int64)).to(device),
                "attention_mask": torch.from_numpy(attention_mask.astype(np.int64)).to(device),
                "token_type_ids": torch.from_numpy(self.token_type_ids[rows, :width].astype(np.int64)).to(device)}


def tokenize_split(dataset, text_fields: tuple[str, ...], tokenizer, max_seq_length: int) -> TokenizedSplit:
    texts = [list(dataset[field]) for field in text_fields]
    encoded = tokenizer(*texts, truncation=True, max_length=max_seq_length, padding="max_length",
                        return_token_type_ids=True, return_attention_mask=True)
    input_ids = np.asarray(encoded["input_ids"], dtype=np.int32)
    lengths = np.asarray(encoded["attention_mask"], dtype=np.int32).sum(1)
    width = max(int(lengths.max()), 1)
    dtype = np.float32 if _has_float_labels(dataset) else np.int64
    return TokenizedSplit(input_ids[:, :width], np.asarray(encoded["token_type_ids"], dtype=np.int8)[:, :width],
                          lengths, np.asarray(dataset["label"], dtype=dtype), np.asarray(dataset["idx"], dtype=np.int64))


def _has_float_labels(dataset) -> bool:
    return bool(len(dataset)) and isinstance(dataset[0]["label"], float)


def _tokenizer_name(model: str) -> str:
    return model if model not in ("tiny", "minilm") else "minilm"  # the tiny test model uses MiniLM's vocabulary


def _cache_key(payload: dict) -> str:
    return content_key(payload)


@lru_cache(maxsize=16)
def tokenized_task(data: DataConfig, model: str, sources: DataSources) -> dict[str, TokenizedSplit]:
    """Tokenised train/validation/test of ``data.task`` for ``model``'s tokenizer, cached on disk.
    ``sources`` is required, so no caller can drop the user's GLUE folder."""
    key = _cache_key({"data": asdict(data), "tokenizer": _tokenizer_name(model), "glue_dir": sources.glue_dir,
                      "format": 2})  # 2: packaged tasks without their duplicates
    path = sources.cache / "tokens" / f"{data.task}-{key}.npz"
    if path.exists():
        stored = np.load(path)
        return {split: TokenizedSplit(*(stored[f"{split}.{name}"] for name in TokenizedSplit.__dataclass_fields__))
                for split in SPLITS}
    spec = get_task(data.task)
    dataset = load_task(data.task, sources, data.split_seed, data.max_train_examples, data.max_eval_examples,
                        data.max_test_examples)
    tokenizer = load_tokenizer(model)
    splits = {split: tokenize_split(dataset[split], spec.text_fields, tokenizer, data.max_seq_length)
              for split in SPLITS}
    save_npz_atomically(path, {f"{split}.{name}": getattr(tokens, name)
                     for split, tokens in splits.items() for name in TokenizedSplit.__dataclass_fields__})
    return splits


LENGTH_QUANTILE = 0.95  # the sequence length covers this share of a task's training examples
LENGTH_MULTIPLE = 8  # ... rounded up to a multiple of this
LENGTH_SAMPLE = 20_000  # training examples measured at most (a seeded sample of larger tasks)


@lru_cache(maxsize=64)
def choose_seq_length(task: str, model: str, sources: DataSources, bound: int) -> int:
    """Tokens per example for ``task``: the ``LENGTH_QUANTILE`` of its training examples' tokenised
    lengths (untruncated), rounded up to a multiple of ``LENGTH_MULTIPLE``, and at most ``bound`` (the
    profile's) and the task's own cap (``TaskSpec.length_cap``). Measured on the full training split
    (a seeded sample of ``LENGTH_SAMPLE`` rows of larger tasks), so it does not depend on a profile's
    subsample; cached on disk."""
    spec = get_task(task)
    key = _cache_key({"task": task, "tokenizer": _tokenizer_name(model), "glue_dir": sources.glue_dir,
                      "quantile": LENGTH_QUANTILE, "sample": LENGTH_SAMPLE, "format": 2})
    path = sources.cache / "lengths" / f"{task}-{key}.json"
    if path.exists():
        measured = json.loads(path.read_text())["quantile_length"]
    else:
        train = load_task(task, sources)["train"]
        if len(train) > LENGTH_SAMPLE:
            train = train.select(np.sort(np.random.default_rng(0).choice(len(train), LENGTH_SAMPLE, replace=False)))
        encoded = load_tokenizer(model)(*[list(train[field]) for field in spec.text_fields], truncation=False,
                                        verbose=False)
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        measured = int(math.ceil(np.quantile(lengths, LENGTH_QUANTILE)))
        write_atomically(path, lambda tmp: tmp.write_text(json.dumps(
            {"quantile_length": measured, "examples": len(lengths), "max": int(lengths.max())}) + "\n"))
    rounded = -(-measured // LENGTH_MULTIPLE) * LENGTH_MULTIPLE
    return min(rounded, bound, spec.length_cap or bound)


def split_fingerprint(tokens: dict[str, TokenizedSplit]) -> dict[str, dict]:
    """Sizes and a hash of the source rows of each split: recorded with every run."""
    return {split: {"size": len(part), "idx_sha256": content_key(part.idx.tobytes())}
            for split, part in tokens.items()}


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           megabatch_factor: int = 50) -> list[np.ndarray]:
    """Shuffled batches of row indices whose members have similar lengths."""
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * megabatch_factor):
        chunk = order[start: start + batch_size * megabatch_factor]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches in order of length (least padding); callers restore the order."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
