"""Shared fixtures: tiny random BERT models and synthetic tokenised tasks (no network, seconds each)."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from fewdims_helpers.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from fewdims_helpers.data.tokenized import TokenizedSplit

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


def run_all(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """``python run_all.py ARGS`` from the repository root, output captured."""
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


@dataclass(frozen=True)
class SmokeRun:
    result: subprocess.CompletedProcess
    output: Path  # notebooks/, figures/, results/ of the run
    reference: Path  # the reference it wrote (--update-reference --reference-dir)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """One run of every notebook on the smoke profile into a fresh store, writing a reference: the most
    expensive step of the suite, shared by the end-to-end test and the reproduction test."""
    root = tmp_path_factory.mktemp("smoke")
    output, reference = root / "out", root / "reference"
    result = run_all("--profile", "smoke", "--output-dir", str(output), "--update-reference",
                     "--reference-dir", str(reference))
    return SmokeRun(result, output, reference)


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
