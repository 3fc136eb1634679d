"""Tokenise once, cache, and batch with dynamic padding and length grouping.

A task's splits are tokenised once per (data config, tokenizer) and kept as padded int32 arrays on
disk (``cache_dir()/tokens``) and in memory, so the 45 runs of a study tokenise each task once.
Training batches group examples of similar length (shuffled within mega-batches of 50 batches, as
``transformers``' ``group_by_length`` does) and are padded only to their own longest example.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from .config import DataConfig
from .models import load_tokenizer
from .paths import cache_dir
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


def _tokenize_split(dataset, text_fields: tuple[str, ...], tokenizer, max_seq_length: int) -> TokenizedSplit:
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


def _cache_key(data: DataConfig, model: str, glue_dir: str | None) -> str:
    payload = json.dumps({"data": asdict(data), "tokenizer": model if model not in ("tiny", "minilm") else "minilm",
                          "glue_dir": glue_dir, "format": 1}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@lru_cache(maxsize=16)
def tokenized_task(data: DataConfig, model: str, glue_dir: str | None = None) -> dict[str, TokenizedSplit]:
    """Tokenised train/validation/test of ``data.task`` for ``model``'s tokenizer, cached on disk."""
    path = cache_dir() / "tokens" / f"{data.task}-{_cache_key(data, model, glue_dir)}.npz"
    if path.exists():
        stored = np.load(path)
        return {split: TokenizedSplit(*(stored[f"{split}.{name}"] for name in TokenizedSplit.__dataclass_fields__))
                for split in SPLITS}
    spec = get_task(data.task)
    dataset = load_task(data.task, data.split_seed, glue_dir, data.max_train_examples, data.max_eval_examples)
    tokenizer = load_tokenizer(model)
    splits = {split: _tokenize_split(dataset[split], spec.text_fields, tokenizer, data.max_seq_length)
              for split in SPLITS}
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{split}.{name}": getattr(tokens, name)
              for split, tokens in splits.items() for name in TokenizedSplit.__dataclass_fields__}
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return splits


def split_fingerprint(tokens: dict[str, TokenizedSplit]) -> dict[str, dict]:
    """Sizes and a hash of the source rows of each split: recorded with every run."""
    return {split: {"size": len(part), "idx_sha256": hashlib.sha256(part.idx.tobytes()).hexdigest()[:16]}
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
