"""Study 06's [CLS] features of every model state (the pretrained model and each fine-tuned run, per
task): train/validation/test read from where they were computed already, the general-text pool encoded
here in the runner's workers, each state's cached in a folder by run, training time, precision and pool."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import content_key
from ...data.general_text import tokenize_pool
from ...data.tokenized import TokenizedSplit
from ...paths import save_npz_atomically
from ...runs.models import kept_model
from ...runs.runner import Runner, map_jobs
from ...setup.planning import ExtraPass, PlannedRun, StudyPlan
from ...setup.profiles import BASELINE_FEATURES
from ...training.features import frozen_features
from ...training.loop import build_model, predict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelState:
    task: str
    state: str  # "pretrained" or "fine-tuned"
    seed: int  # fine-tuning seed; pretrained: the seed of its random-dimension control


@dataclass
class Features:
    states: dict[ModelState, dict[str, np.ndarray]]  # split or "pool" -> (n, hidden) [CLS] vectors
    labels: dict[str, dict[str, np.ndarray]]  # task -> split -> (n,)
    test_idx: dict[str, np.ndarray]  # task -> (n,) example ids of the test split, in the features' order
    keys: dict[ModelState, str]  # identity of each state's features (run, pool, precision): names its analysis


def digest(payload) -> str:
    return content_key(payload)


def _encode_state(config, fine_tuned: bool, runner: Runner, splits: dict[str, TokenizedSplit], path: Path,
                  precision: str) -> None:
    """Writes the features (n, hidden) of every split in ``splits`` under the pretrained encoder of
    ``config`` or, if ``fine_tuned``, under its fine-tuned run's kept weights, to ``path`` (.npz)."""
    torch_device = runner.execution.torch_device
    model = (kept_model(runner.store, config) if fine_tuned else build_model(config)).to(torch_device)
    save_npz_atomically(path, {name: predict(model, split, torch_device, precision, config.train.eval_batch_size,
                                   return_features=True)[1] for name, split in splits.items()})


def _trained_stamp(config, runner: Runner) -> str:
    """Digest of when the run was trained: features of a run retrained under the same id are not reused."""
    return digest(runner.store.record(config)["created"])[:8]


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def encode_states(profile, runner: Runner, pool_texts: tuple[str, ...], folder: Path) -> Features:
    """[CLS] features of train/validation/test and of the general pool for the pretrained model and
    each fine-tuned run of every task. The splits come from where they were computed already (the
    frozen-encoder cache of study 04; the fine-tuned runs' own saved features); the pool is encoded
    here (at the longest of the tasks' sequence lengths), cached in ``folder`` by run (id and training
    time), precision and pool."""
    precision = runner.execution.precision(profile.train.precision)
    pool = tokenize_pool(pool_texts, profile.model, max(length for _, length in profile.seq_lengths))
    pool_key = content_key(pool.input_ids.tobytes() + pool.lengths.tobytes())
    pretrained = folder / f"pretrained-{digest([profile.model, precision])}-{pool_key}.npz"
    jobs = [(profile.run_config(profile.tasks[0], profile.seeds[0]), False, runner, {"pool": pool}, pretrained,
             precision)]
    paths = {}
    for config in profile.baselines():
        name = f"{config.run_id}-{_trained_stamp(config, runner)}-{precision}-pool-{pool_key}.npz"
        paths[ModelState(config.data.task, "fine-tuned", config.train.seed)] = path = folder / name
        jobs.append((config, True, runner, {"pool": pool}, path, precision))
    jobs = [job for job in jobs if not job[4].exists()]
    start = time.perf_counter()
    map_jobs(runner, _encode_state, jobs, "encoding")
    log.info("features: %d model states encoded in %.0f s, %d read from %s", len(jobs), time.perf_counter() - start,
             len(paths) + 1 - len(jobs), folder)
    states, keys, labels, test_idx = {}, {}, {}, {}
    for task in profile.tasks:
        frozen = profile.run_config(task, profile.seeds[0], freeze_pretrained=True)
        tokens = runner.tokens(frozen)
        labels[task] = {split: part.labels for split, part in tokens.items()}
        test_idx[task] = tokens["test"].idx
        state = ModelState(task, "pretrained", profile.seeds[0])
        encoded = frozen_features(frozen, tokens, runner.execution, runner.options.sources.cache)
        states[state] = {**{s: a.numpy() for s, a in encoded.items()}, **_load(pretrained)}
        keys[state] = digest([frozen.run_id, precision, pretrained.name])
        for seed in profile.seeds:
            state = ModelState(task, "fine-tuned", seed)
            saved = {split: runner.store.features(profile.baseline(task, seed), split)[0] for split in BASELINE_FEATURES}
            states[state] = {**saved, **_load(paths[state])}
            keys[state] = paths[state].name
    return Features(states, labels, test_idx, keys)


def planned_runs(profile, runner: Runner, pool_size: int = 2000) -> StudyPlan:
    """The runs the notebook executes (the baselines) and its encoder passes over the general pool (the
    pretrained model and each fine-tuned one; ``encode_states``), for ``run_all.py --plan``. The splits'
    features come from 04's frozen-encoder cache and the baselines' saved features."""
    baselines = profile.baselines()
    return StudyPlan([PlannedRun(c) for c in baselines],
                     [ExtraPass(baselines[0], pool_size * (1 + len(baselines)), "general pool, every model state")])


def fine_tuned_runs(profile, runner: Runner) -> pd.DataFrame:
    """The profile's baseline fine-tunings (kept weights and features): read from the store, or trained."""
    return runner.execute_all(profile.baselines())
