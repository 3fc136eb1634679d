"""The layout of a run folder: the names of the files a run leaves, and which of them a config declares.

``<root>/<run_id>/`` holds ``config.json`` (the full config, package versions, git commit, device,
data split), ``metrics.json`` (per-epoch validation and final test metrics), the artifacts the
config declares (``RunConfig.artifacts``) and ``manifest.json`` (each file's size and sha256). The run store's modules (this one, ``store``, ``artifacts``,
``execute``, ``reference_export``) are the only code that knows these names; everyone else reads a run
through ``RunStore``'s methods.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import RunConfig
from ..model.pretrained import pretrained_encoder

CONFIG_FILE, METRICS_FILE = "config.json", "metrics.json"
HEAD_FILE, MODEL_FILE, SUBSPACE_FILE, TRAJECTORY_DIR = "head.npz", "model.pt", "subspace.npz", "trajectory"
# A run folder exported as a summary (the committed reference) holds this file; it is never a finished run.
SUMMARY_FILE = "summary.json"
# The size and sha256 of every other file of a run, written last (``integrity``); corrupt runs are moved
# into the store's quarantine folder, which no store reads.
MANIFEST_FILE, QUARANTINE_DIR = "manifest.json", ".quarantine"


def features_files(split: str) -> list[str]:
    return [f"features-{split}.npy", f"labels-{split}.npy"]


def predictions_file(split: str) -> str:
    return f"predictions-{split}.npz"


def source_predictions_file(split: str) -> str:
    return f"source-predictions-{split}.npz"


def trajectory_file(layer_index: int) -> str:
    return f"{TRAJECTORY_DIR}/layer_{layer_index}.npy"


def encoder_depth(config: RunConfig) -> int:
    """Encoder layers a run computes: up to ``config.model.layer``, else all of the pretrained model's."""
    layers = pretrained_encoder(config.model.model).config.num_hidden_layers
    return min(config.model.layer or layers, layers)


def artifact_files(config: RunConfig) -> list[str]:
    """File names (relative to the run folder) of every artifact ``config`` declares."""
    files = []
    for artifact in config.artifacts:
        kind, _, split = artifact.partition(":")
        files += {"features": lambda: features_files(split), "head": lambda: [HEAD_FILE],
                  "predictions": lambda: [predictions_file(split)], "model": lambda: [MODEL_FILE],
                  "source_predictions": lambda: [source_predictions_file(split)],
                  "subspace": lambda: [SUBSPACE_FILE],
                  "trajectory": lambda: [trajectory_file(i) for i in range(encoder_depth(config))]
                  + [f"{TRAJECTORY_DIR}/steps.json"]}[kind]()
    return files


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
