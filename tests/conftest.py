"""Shared fixtures: tiny random BERT models and synthetic tokenised tasks (no network, seconds each)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fewdims_helpers.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from fewdims_helpers.data import TokenizedSplit

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_config(task: str = "rt-polarity", seed: int = 0, epochs: int = 1, lr: float = 1e-3, **model_fields) -> RunConfig:
    return RunConfig(data=DataConfig(task, max_seq_length=16), model=ModelConfig(model="tiny", **model_fields),
                     train=TrainConfig(batch_size=8, epochs=epochs, learning_rate=lr, seed=seed, precision="fp32"))


def synthetic_split(n: int, seed: int, learnable: bool = True) -> TokenizedSplit:
    """Binary task: label 1 iff token 2000 occurs in the text; lengths 4..12 with right padding."""
    rng = np.random.default_rng(seed)
    width = 12
    lengths = rng.integers(4, width + 1, n)
    ids = np.zeros((n, width), dtype=np.int32)
    labels = rng.integers(0, 2, n) if learnable else np.zeros(n, dtype=np.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(3000, 3100, length)
        ids[i, 0], ids[i, length - 1] = 101, 102  # [CLS] ... [SEP]
        if labels[i]:
            ids[i, rng.integers(1, length - 1)] = 2000
    return TokenizedSplit(ids, np.zeros_like(ids, dtype=np.int8), lengths.astype(np.int32),
                          labels.astype(np.int64), np.arange(n))


@pytest.fixture
def synthetic_task() -> dict[str, TokenizedSplit]:
    return {"train": synthetic_split(96, 0), "validation": synthetic_split(48, 1), "test": synthetic_split(48, 2)}


@pytest.fixture(autouse=True)
def _deterministic_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
