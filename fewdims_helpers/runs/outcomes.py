"""Stored runs read into the stats floor's values: the ``Outcomes`` of runs' saved predictions (every verdict's
input) and the ``CachedHead`` of a run's head and saved features (02's and 03's dimension subsets)."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..config import RunConfig
from ..stats.subsets import CachedHead
from ..stats.verdicts import Outcomes
from ..task_specs import get_task
from .store import RunStore


def run_outcomes(store, configs: Iterable, split: str = "test") -> Outcomes:
    """The saved predictions of runs that differ only in their seed (``save_predictions`` of ``split``),
    read through the run store, one row per run in the order given."""
    configs = list(configs)
    if not configs:
        raise ValueError("no runs to read predictions from")
    saved = [store.predictions(config, split) for config in configs]
    first = saved[0]
    for config, other in zip(configs[1:], saved[1:]):
        if not np.array_equal(other["idx"], first["idx"]):
            raise ValueError(f"run {config.run_id} was scored on other {split} examples than {configs[0].run_id}")
    spec = get_task(configs[0].data.task)
    return Outcomes.from_logits([s["logits"] for s in saved], first["labels"], first["idx"],
                                [c.train.seed for c in configs], spec.main_metric)


def cached_head(store: RunStore, config: RunConfig) -> CachedHead:
    """Head weights and saved features of a finished run (``config.save_features`` must list them)."""
    weight, bias = store.head(config)
    saved = {split: store.features(config, split) for split in config.save_features}
    return CachedHead(weight, bias, {s: f for s, (f, _) in saved.items()}, {s: y for s, (_, y) in saved.items()},
                      get_task(config.data.task))
