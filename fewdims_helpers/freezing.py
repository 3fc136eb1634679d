"""Study 04, freezing (Fukuhata & Kano 2025, Sec. 4.4): must the pretrained layers move?

With every pretrained parameter frozen, the encoder is a fixed feature extractor (eval mode, no
dropout), so its head inputs are computed once per split and the head trains on them: the same
batches, dropout masks and optimizer steps as running the frozen encoder every step, at the cost
of one forward pass (``training.train(cached_features=...)``; tests check the equality). Frozen
configurations that still train some layers (``frozen_layers``) run normally.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from .config import RunConfig
from .data import SPLITS, TokenizedSplit
from .paths import cache_dir
from .training import build_model, predict, resolve_device, resolve_precision


def _cache_path(config: RunConfig, tokens: dict[str, TokenizedSplit], precision: str):
    content = hashlib.sha256(b"".join(tokens[s].input_ids.tobytes() + tokens[s].token_type_ids.tobytes()
                                      for s in SPLITS)).hexdigest()[:16]
    identity = {"data": asdict(config.data), "tokens": content, "model": config.model.model, "layer": config.model.layer,
                "token_selection": config.model.token_selection, "precision": precision,
                "max_norm_include_special": config.model.max_norm_include_special, "format": 1}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "frozen-features" / f"{config.data.task}-{key}.npz"


def encode(config: RunConfig, tokens: dict[str, TokenizedSplit], device: str | None = None
           ) -> dict[str, torch.Tensor]:
    """Head inputs (n, hidden) of every split under the frozen pretrained encoder, cached on disk
    (they depend on the data, model, layer, token selection and precision, not on the head or seed)."""
    torch_device = resolve_device(device)
    precision = resolve_precision(config.train.precision, torch_device)
    path = _cache_path(config, tokens, precision)
    if path.exists():
        stored = np.load(path)
        return {split: torch.from_numpy(stored[split]) for split in SPLITS}
    model = build_model(config).to(torch_device)
    features = {split: predict(model, tokens[split], torch_device, precision, config.train.eval_batch_size,
                               return_features=True)[1] for split in SPLITS}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **features)
    os.replace(tmp, path)
    return {split: torch.from_numpy(array) for split, array in features.items()}


def variants(profile, top_layers: tuple[int, ...], num_layers: int) -> dict[str, dict]:
    """The compared settings as ``ModelConfig`` fields: standard, frozen with a linear or 2-layer
    head, and frozen except the top k layers (k values that would freeze no layer are skipped)."""
    settings = {"(a) standard: all trained, linear head": {},
                "(b) frozen, linear head": {"freeze_pretrained": True},
                "(c) frozen, 2-layer head (the paper's)": {"freeze_pretrained": True, "head_layers": 2}}
    for k in (k for k in top_layers if 0 < k < num_layers):
        settings[f"(d) frozen but top {k} layer{'s' if k > 1 else ''}"] = {"frozen_layers": num_layers - k}
    return settings


def layer_movement(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table of relative weight change per block (embeddings, layer_1, ...) per run."""
    columns = [c for c in runs.columns if c.startswith("weight_change.")]
    long = runs.melt(id_vars=["setting", "data.task", "train.seed"], value_vars=columns,
                     var_name="block", value_name="relative_change")
    return long.assign(block=long["block"].str.removeprefix("weight_change."))


def configs(profile, top_layers: tuple[int, ...]) -> tuple[list[RunConfig], list[str]]:
    """(configs, setting label of each) for every task, seed and setting. The standard setting is the
    profile's baseline run (01's [CLS] runs; 05 and 06 reuse its weights)."""
    from .layer_wise import num_layers

    chosen, labels = [], []
    for label, fields in variants(profile, top_layers, num_layers(profile)).items():
        for task in profile.tasks:
            for seed in profile.seeds:
                chosen.append(profile.baseline(task, seed) if not fields else profile.run_config(task, seed, **fields))
                labels.append(label)
    return chosen, labels


def run(profile, runs, top_layers: tuple[int, ...] = (1, 3), **execute_options) -> pd.DataFrame:
    from .store import execute_all

    chosen, labels = configs(profile, top_layers)
    return execute_all(chosen, runs, **execute_options).assign(setting=labels)


def verdict(summary: pd.DataFrame) -> str:
    """Per task: each setting's test metric against the standard setting (a), from the runs."""
    lines = []
    for task, block in summary.groupby("data.task", sort=False):
        standard = block.loc[block.setting.str.startswith("(a)"), "mean"].item()
        parts = [f"{row.setting.split(':')[0].split(',')[0]} {100 * (row.mean - standard):+.1f}"
                 for row in block.itertuples() if not row.setting.startswith("(a)")]
        lines.append(f"- {task} (standard {100 * standard:.1f}): " + ", ".join(parts) + " points")
    return "\n".join(lines)


PROBE_SETTING = "(b*) frozen, linear probe fit to convergence (reference)"


def linear_probes(profile) -> pd.DataFrame:
    """An L2-regularised logistic (or ridge) head fit to convergence on the frozen encoder's cached
    train features, its strength chosen on validation, scored on test: what the frozen features
    support when the head is not the limit. Deterministic (frozen features do not depend on the
    seed), so one row per task."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    from .data import tokenized_task
    from .metrics import compute_metrics
    from .tasks import get_task

    rows = []
    for task in profile.tasks:
        config = profile.run_config(task, profile.seeds[0], freeze_pretrained=True)
        tokens = tokenized_task(config.data, config.model.model)
        features = {split: array.numpy() for split, array in encode(config, tokens).items()}
        spec = get_task(task)
        scaler = StandardScaler().fit(features["train"])
        scaled = {split: scaler.transform(array) for split, array in features.items()}

        def fitted(strength: float):
            model = Ridge(alpha=strength) if spec.is_regression else LogisticRegression(C=1 / strength, max_iter=2000)
            return model.fit(scaled["train"], tokens["train"].labels)

        def score(model, split: str) -> float:
            return compute_metrics(spec.metric, model.predict(scaled[split]), tokens[split].labels)[spec.main_metric]

        best = max((fitted(strength) for strength in np.logspace(-2, 4, 7)), key=lambda m: score(m, "validation"))
        rows.append({"data.task": task, "setting": PROBE_SETTING, "mean": score(best, "test"), "std": 0.0, "n": 1})
    return pd.DataFrame(rows)
