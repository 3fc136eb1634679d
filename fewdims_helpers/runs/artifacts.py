"""The artifact writers: what a finished training leaves in its run folder besides its config and
metrics (features, the head, predictions, the model, a trajectory, a subspace), one writer per kind
that ``RunConfig.artifacts`` declares."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import RunConfig
from ..data.tokenized import TokenizedSplit
from ..model.subspace import TrajectoryRecorder, subspace_state
from ..training.loop import TrainResult, build_model, predict
from .run_files import HEAD_FILE, MODEL_FILE, SUBSPACE_FILE, TRAJECTORY_DIR, features_files, predictions_file, \
    source_predictions_file, trajectory_file, write_json
from .store import RunStore


@dataclass
class Trained:
    """What the artifact writers need from one finished training. Each split is passed through the kept
    model at most once (the test pass is the one that scored test), so features and predictions of one
    split come from the same pass."""
    config: RunConfig
    result: TrainResult
    tokens: dict[str, TokenizedSplit]
    cached: dict[str, torch.Tensor]
    passes: dict[str, tuple[np.ndarray, np.ndarray | None]]  # split -> (logits, features or None)
    recorder: TrajectoryRecorder | None
    store: RunStore  # where the source run of ``init_from`` is read
    tokens_of: Callable[[RunConfig], dict[str, TokenizedSplit]]  # another run's splits (the source run's task)

    def source_pass(self, split: str) -> tuple[np.ndarray, TokenizedSplit]:
        """Logits (n, num_labels) of the source run's task (``init_from``) on ``split``, with the source
        run's own head on this run's encoder, and that split: how much of task A survives task B."""
        key = f"source:{split}"
        if key not in self.passes:
            source_config = self.store.stored_config(self.config.init_from)
            source = build_model(source_config)
            source.load_state_dict(self.store.state_dict(self.config.init_from))
            source.encoder.load_state_dict(self.result.model.encoder.state_dict())
            device = torch.device(self.result.device)
            tokens = self.tokens_of(source_config)[split]
            logits = predict(source.to(device), tokens, device, self.result.precision,
                             self.config.train.eval_batch_size)[0]
            self.passes[key] = (logits, tokens)
        return self.passes[key]

    def logits_and_features(self, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        if split not in self.passes:
            model, device = self.result.model, torch.device(self.result.device)
            self.passes[split] = predict(model, self.tokens[split], device, self.result.precision,
                                         self.config.train.eval_batch_size,
                                         return_features=split in self.config.save_features,
                                         cached=self.cached.get(split))
        return self.passes[split]


def _write_features(folder: Path, run: Trained, split: str) -> None:
    features = run.logits_and_features(split)[1]
    np.save(folder / features_files(split)[0], features)
    np.save(folder / features_files(split)[1], run.tokens[split].labels)


def _write_head(folder: Path, run: Trained, split: str) -> None:
    first = run.result.model.head[0].eval()  # the effective weights: selected-dims mask applied, no DropConnect
    np.savez(folder / HEAD_FILE, weight=first.masked_weight().detach().float().cpu().numpy(),
             bias=first.bias.detach().float().cpu().numpy())


def _write_predictions(folder: Path, run: Trained, split: str) -> None:
    logits = run.logits_and_features(split)[0]
    np.savez(folder / predictions_file(split), idx=run.tokens[split].idx, logits=logits,
             labels=run.tokens[split].labels)


def _write_source_predictions(folder: Path, run: Trained, split: str) -> None:
    logits, tokens = run.source_pass(split)
    np.savez(folder / source_predictions_file(split), idx=tokens.idx, logits=logits, labels=tokens.labels)


def _write_model(folder: Path, run: Trained, split: str) -> None:
    torch.save(run.result.model.state_dict(), folder / MODEL_FILE)


def _write_trajectory(folder: Path, run: Trained, split: str) -> None:
    (folder / TRAJECTORY_DIR).mkdir()
    for index, rows in enumerate(run.recorder.rows):
        np.save(folder / trajectory_file(index), rows)
    write_json(folder / TRAJECTORY_DIR / "steps.json", {"steps": run.recorder.steps.tolist()})


def _write_subspace(folder: Path, run: Trained, split: str) -> None:
    np.savez(folder / SUBSPACE_FILE, **subspace_state(run.result.model))


WRITERS: dict[str, Callable[[Path, Trained, str], None]] = {
    "features": _write_features, "head": _write_head, "predictions": _write_predictions, "model": _write_model,
    "source_predictions": _write_source_predictions,
    "trajectory": _write_trajectory, "subspace": _write_subspace}
