"""Measures stored in a run's metrics beside the standard ones (``RunConfig.measures``): how often a
``max_norm_token`` head reads [CLS], the final [SEP] or another token (notebook 01), and how much of
the source task survives fine-tuning on another (``source_after``, notebook 05)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..config import RunConfig
from ..data.tasks import get_task
from ..data.tokenized import sorted_batches
from ..stats.metrics import compute_metrics, predictions_from_logits
from ..training.loop import autocast
from .artifacts import Trained
from .store import RunStore


def _source_after(store: RunStore, config: RunConfig, run: Trained) -> dict[str, float]:
    """Test metrics of the source run's task with the source run's own head on this run's encoder
    (the pass whose logits ``source_predictions`` saves)."""
    logits, tokens = run.source_pass("test")
    spec = get_task(store.stored_config(config.init_from).data.task)
    return compute_metrics(spec.metric, predictions_from_logits(logits, logits.shape[1]), tokens.labels)


@torch.no_grad()
def _token_choice(store: RunStore, config: RunConfig, run: Trained) -> dict[str, float]:
    """Share of test examples whose ``max_norm_token`` read is [CLS] (position 0), the final [SEP]
    (the last real token) or another token, under the kept model."""
    model, split, device = run.result.model.eval(), run.tokens["test"], torch.device(run.result.device)
    counts = np.zeros(3)
    for rows in sorted_batches(split.lengths, config.train.eval_batch_size):
        with autocast(device, run.result.precision):
            position = model.chosen_positions(**split.batch(rows, device)).cpu().numpy()
        last = split.lengths[rows] - 1
        counts += [(position == 0).sum(), ((position == last) & (position != 0)).sum(),
                   ((position != 0) & (position != last)).sum()]
    return dict(zip(("cls", "sep", "other"), (counts / counts.sum()).tolist()))


MEASURES: dict[str, Callable[[RunStore, RunConfig, Trained], dict]] = {
    "source_after": _source_after, "token_choice": _token_choice}
