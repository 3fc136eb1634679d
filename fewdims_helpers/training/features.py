"""Feature caches: head inputs of a frozen pretrained encoder, computed once per split and kept on disk.

With every pretrained parameter frozen, the encoder is a fixed feature extractor (eval mode, no
dropout), so its head inputs depend on the data, model, layer, token selection and precision, and
not on the head or the seed. Executing a frozen-encoder run trains it on them
(``loop.train(cached_features=...)``: the same batches, dropout masks and optimizer steps as
running the frozen encoder every step; tests check the equality), and studies 04 and 06 read them.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig, content_key
from ..data.tokenized import SPLITS, TokenizedSplit
from ..execution import Execution
from ..paths import save_npz_atomically
from .loop import build_model, predict


def _cache_path(config: RunConfig, tokens: dict[str, TokenizedSplit], precision: str, cache: Path) -> Path:
    content = content_key(b"".join(tokens[s].input_ids.tobytes() + tokens[s].token_type_ids.tobytes() for s in SPLITS))
    identity = {"data": asdict(config.data), "tokens": content, "model": config.model.model, "layer": config.model.layer,
                "token_selection": config.model.token_selection, "precision": precision,
                "max_norm_include_special": config.model.max_norm_include_special, "format": 1}
    key = content_key(identity)
    return Path(cache) / "frozen-features" / f"{config.data.task}-{key}.npz"


def frozen_features(config: RunConfig, tokens: dict[str, TokenizedSplit], execution: Execution, cache: Path
                    ) -> dict[str, torch.Tensor]:
    """Head inputs (n, hidden) of every split under the frozen pretrained encoder of ``config``, computed with
    ``execution`` and cached in the folder ``cache`` (``DataSources.cache``)."""
    device, precision = execution.torch_device, execution.precision(config.train.precision)
    path = _cache_path(config, tokens, precision, cache)
    if path.exists():
        with np.load(path) as stored:
            return {split: torch.from_numpy(stored[split]) for split in SPLITS}
    model = build_model(config).to(device)
    features = {split: predict(model, tokens[split], device, precision, config.train.eval_batch_size,
                               return_features=True)[1] for split in SPLITS}
    save_npz_atomically(path, features)
    return {split: torch.from_numpy(array) for split, array in features.items()}
