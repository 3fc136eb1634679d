"""Study 02, dimension-wise (Fukuhata & Kano 2025, Sec. 4.2): how few dimensions of the final
layer's [CLS] vector are enough? Three ways to ask it, so their answers can be compared:

1. ``fine-tune on a fixed subset`` (the paper's protocol): the head sees only k dimensions during
   the whole fine-tuning (``ModelConfig.selected_dims``); N random subsets per k, the best chosen on
   validation and reported on test; then the "effective dimensions" step drops each dimension of the
   best 3-subset in turn.
2. ``train once, select at inference``: one fine-tuning with random DropConnect on the head, cached
   validation/test features, and every k-subset scored by masking the head at inference. A subset's
   logits are the bias plus the sum of its dimensions' contributions ``x[:, d] * W[:, d]``, so all
   pairs (73,536 for hidden 384; 294,528 for 768) are scored exhaustively, vectorised; the paper
   sampled at most 0.1% of them.
3. ``refit``: a logistic (classification) or least-squares (regression) head refit on the cached
   train features of just the subset's dimensions; the encoder is unchanged.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import ConfigError, RunConfig
from .metrics import compute_metrics

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- subsets


def sample_subsets(hidden_size: int, k: int, n: int, seed: int, exclude: set[tuple[int, ...]] = frozenset()
                   ) -> list[tuple[int, ...]]:
    """``n`` distinct sorted k-subsets of ``range(hidden_size)``, seeded, none in ``exclude``."""
    total = math.comb(hidden_size, k)
    if n > total - len(exclude):
        raise ConfigError(f"cannot sample {n} distinct {k}-subsets of {hidden_size} dimensions "
                          f"({total} exist, {len(exclude)} excluded)")
    if n > total // 2:  # dense request: enumerate and shuffle instead of rejection sampling
        pool = [s for s in itertools.combinations(range(hidden_size), k) if s not in exclude]
        order = np.random.default_rng(seed).permutation(len(pool))[:n]
        return [pool[i] for i in order]
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[int, ...], None] = {}
    while len(chosen) < n:  # draw with replacement, drop rows with a repeated dimension or a repeated subset
        rows = np.sort(rng.integers(0, hidden_size, (2 * (n - len(chosen)) + 16, k)), axis=1)
        rows = rows[(np.diff(rows, axis=1) > 0).all(axis=1)]
        for row in rows:
            subset = tuple(int(d) for d in row)
            if subset not in exclude and subset not in chosen:
                chosen[subset] = None
                if len(chosen) == n:
                    break
    return list(chosen)


def drop_one(subset: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The subsets with one dimension removed (the paper's "effective dimensions" step)."""
    return [tuple(d for d in subset if d != removed) for removed in subset]


# ----------------------------------------------------------------------------- cached head and features


@dataclass(frozen=True)
class CachedHead:
    """A fine-tuned linear head and the features it reads, from one run in the store."""
    weight: np.ndarray  # (num_labels, hidden)
    bias: np.ndarray  # (num_labels,)
    features: dict[str, np.ndarray]  # split -> (n, hidden)
    labels: dict[str, np.ndarray]  # split -> (n,)
    metric: str
    main_metric: str

    @property
    def hidden_size(self) -> int:
        return self.weight.shape[1]

    @property
    def num_labels(self) -> int:
        return self.weight.shape[0]


def load_cached_head(config: RunConfig, runs: Path) -> CachedHead:
    """Head weights and saved features of a finished run (``config.save_features`` must list them)."""
    from .store import run_dir
    from .tasks import get_task

    folder = run_dir(config, runs)
    if not (folder / "head.npz").exists():
        raise FileNotFoundError(f"{folder} has no head.npz; run it with save_features=(...) and a 1-layer head")
    head = np.load(folder / "head.npz")
    spec = get_task(config.data.task)
    return CachedHead(head["weight"], head["bias"],
                      {s: np.load(folder / f"features-{s}.npy") for s in config.save_features},
                      {s: np.load(folder / f"labels-{s}.npy") for s in config.save_features},
                      spec.metric, spec.main_metric)


# ----------------------------------------------------------------------------- vectorised scoring


def _scores(outputs: torch.Tensor, labels: torch.Tensor, main_metric: str, margin: bool = False) -> torch.Tensor:
    """Main metric of many predictors at once. outputs: (m, n, num_labels) logits, or (m, n, 1)
    binary margins (logit 1 - logit 0) when ``margin``; labels: (n,)."""
    if outputs.shape[-1] == 1 and not margin:  # regression: Pearson correlation per predictor
        if main_metric != "pearson":
            raise ConfigError(f"vectorised scoring supports pearson for regression, not {main_metric}")
        pred = outputs[..., 0] - outputs[..., 0].mean(dim=1, keepdim=True)
        target = labels.float() - labels.float().mean()
        denominator = pred.norm(dim=1) * target.norm()
        return torch.where(denominator > 0, pred @ target / denominator.clamp(min=1e-12), torch.zeros(()))
    # argmax picks class 0 on a tie, and so does "margin > 0"
    predictions = (outputs[..., 0] > 0).long() if margin else outputs.argmax(dim=-1)  # (m, n)
    if main_metric == "accuracy":
        return (predictions == labels).float().mean(dim=1)
    if main_metric == "matthews_correlation":  # binary Matthews from confusion counts
        positive, truth = predictions == 1, (labels == 1)
        tp = (positive & truth).sum(1).double(); fp = (positive & ~truth).sum(1).double()
        fn = (~positive & truth).sum(1).double(); tn = (~positive & ~truth).sum(1).double()
        denominator = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).sqrt()
        return torch.where(denominator > 0, (tp * tn - fp * fn) / denominator.clamp(min=1e-12), torch.zeros((), dtype=torch.double)).float()
    raise ConfigError(f"vectorised scoring does not support main metric {main_metric}")


def _contributions(head: CachedHead, split: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Per-dimension logit contributions x[:, d] * W[:, d] laid out (hidden, n, outputs), so that
    a sum over a subset's dimensions is contiguous per predictor; the bias; and whether they are
    binary margins: for two classes only logit 1 - logit 0 matters, half the work."""
    features = torch.from_numpy(head.features[split]).float()  # (n, hidden)
    weight, bias = torch.from_numpy(head.weight).float(), torch.from_numpy(head.bias).float()
    margin = head.num_labels == 2
    if margin:
        weight, bias = weight[1:] - weight[:1], bias[1:] - bias[:1]
    return (features.T.unsqueeze(-1) * weight.T.unsqueeze(1)).contiguous(), bias, margin


def score_subsets(head: CachedHead, subsets: np.ndarray, split: str, chunk: int = 4096) -> np.ndarray:
    """Main metric on ``split`` of the head masked to each subset. subsets: (m, k) int -> (m,)."""
    subsets = np.asarray(subsets, dtype=np.int64)
    contributions, bias, margin = _contributions(head, split)  # (hidden, n, outputs)
    labels = torch.from_numpy(head.labels[split])
    scores = np.empty(len(subsets), dtype=np.float32)
    for start in range(0, len(subsets), chunk):
        index = torch.from_numpy(subsets[start: start + chunk])  # (c, k)
        logits = contributions[index].sum(dim=1) + bias  # (c, n, outputs)
        scores[start: start + chunk] = _scores(logits, labels, head.main_metric, margin).numpy()
    return scores


def scan_all_pairs(head: CachedHead, split: str) -> np.ndarray:
    """Score of every pair (i < j) on ``split``: a (hidden, hidden) matrix, NaN on and below the diagonal."""
    hidden = head.hidden_size
    contributions, bias, margin = _contributions(head, split)  # (hidden, n, outputs)
    contributions = contributions + bias / 2  # each pair gets the bias once
    labels = torch.from_numpy(head.labels[split])
    matrix = np.full((hidden, hidden), np.nan, dtype=np.float32)
    for i in range(hidden - 1):
        logits = contributions[i: i + 1] + contributions[i + 1:]  # (hidden - i - 1, n, outputs)
        matrix[i, i + 1:] = _scores(logits, labels, head.main_metric, margin).numpy()
    return matrix


def pair_table(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (m, 2), scores (m,)) of the upper triangle of a ``scan_all_pairs`` matrix."""
    rows, cols = np.triu_indices(matrix.shape[0], k=1)
    return np.stack([rows, cols], axis=1), matrix[rows, cols]


# ----------------------------------------------------------------------------- refit


def refit_scores(head: CachedHead, subset: tuple[int, ...]) -> dict[str, float]:
    """Validation and test main metric of a head refit on the train features of ``subset`` only."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if "train" not in head.features:
        raise ConfigError("refit needs train features; run with save_features=('train', 'validation', 'test')")
    columns = list(subset)
    scaler = StandardScaler().fit(head.features["train"][:, columns])
    model = LinearRegression() if head.num_labels == 1 else LogisticRegression(max_iter=1000)
    model.fit(scaler.transform(head.features["train"][:, columns]), head.labels["train"])
    result = {}
    for split in ("validation", "test"):
        predictions = model.predict(scaler.transform(head.features[split][:, columns]))
        result[split] = compute_metrics(head.metric, predictions, head.labels[split])[head.main_metric]
    return result


# ----------------------------------------------------------------------------- the study

SCAN_DROPCONNECT = 0.5  # random DropConnect on the head while training the run that is scanned
SCAN_SPLITS = ("train", "validation", "test")


def scan_config(profile, task: str, seed: int) -> RunConfig:
    """Way 2's single fine-tuning: all dimensions, DropConnect on the head, features saved."""
    return dataclasses.replace(profile.run_config(task, seed, head_dropconnect=SCAN_DROPCONNECT),
                               save_features=SCAN_SPLITS)


def inference_selection(head: CachedHead, triples: int, seed: int
                        ) -> tuple[pd.DataFrame, dict[int, np.ndarray], np.ndarray, float]:
    """Way 2 on one cached head: every single dimension and every pair scored exhaustively on
    validation, ``triples`` sampled triples; the validation-best subset of each k scored on test.

    Returns (one row per k: best subset, validation and test score, subsets scored), the
    validation scores of every subset scored per k, the validation pair matrix, and the seconds
    the exhaustive pair scan took."""
    start = time.perf_counter()
    matrix = scan_all_pairs(head, "validation")
    pair_seconds = time.perf_counter() - start
    pairs, pair_scores = pair_table(matrix)
    singles = np.arange(head.hidden_size)[:, None]
    candidates = {1: (singles, score_subsets(head, singles, "validation")), 2: (pairs, pair_scores)}
    if triples:
        sampled = np.array(sample_subsets(head.hidden_size, 3, min(triples, math.comb(head.hidden_size, 3)), seed))
        candidates[3] = (sampled, score_subsets(head, sampled, "validation"))
    everything = np.arange(head.hidden_size)[None, :]
    rows = []
    for k, (subsets, scores) in candidates.items():
        best = subsets[int(np.nanargmax(scores))]
        rows.append({"k": k, "subset": tuple(int(d) for d in best), "validation": float(np.nanmax(scores)),
                     "test": float(score_subsets(head, best[None, :], "test")[0]), "scored": len(subsets),
                     "exhaustive": k < 3 or len(subsets) == math.comb(head.hidden_size, 3),
                     "validation_median": float(np.nanmedian(scores))})
    rows.append({"k": head.hidden_size, "subset": "all", "validation": float(score_subsets(head, everything, "validation")[0]),
                 "test": float(score_subsets(head, everything, "test")[0]), "scored": 1, "exhaustive": True,
                 "validation_median": float("nan")})
    return pd.DataFrame(rows), {k: scores for k, (_, scores) in candidates.items()}, matrix, pair_seconds


def fixed_subset_configs(profile, task: str, subsets: list[tuple[int, ...]], seed: int) -> list[RunConfig]:
    """Way 1: one full fine-tuning per subset, the head seeing only that subset throughout."""
    return [profile.run_config(task, seed, selected_dims=subset) for subset in subsets]


def best_on_validation(runs: pd.DataFrame) -> pd.Series:
    """The run with the highest validation score (ties: the first)."""
    validation = runs["validation." + runs["main_metric"].iloc[0]]
    return runs.loc[validation.idxmax()]


def run_inference_selection(profile, runs: Path, triples: int, **execute_options
                            ) -> tuple[pd.DataFrame, dict[tuple[str, int], dict], dict[tuple[str, int], np.ndarray]]:
    """Way 2 for every task and seed: train (or read) the scanned runs, then scan them.

    Returns one row per task, seed and k; the validation scores of every subset scored, per
    (task, seed) and k; and the validation pair matrix of each (task, seed)."""
    from .store import execute_all

    configs = [scan_config(profile, task, seed) for task in profile.tasks for seed in profile.seeds]
    execute_all(configs, runs, **execute_options)
    frames, distributions, matrices = [], {}, {}
    for config in configs:
        task, seed = config.data.task, config.train.seed
        head = load_cached_head(config, runs)
        rows, distributions[task, seed], matrices[task, seed], seconds = inference_selection(head, triples, seed)
        refit = [refit_scores(head, s)["test"] if s != "all" else np.nan for s in rows["subset"]]
        frames.append(rows.assign(task=task, seed=seed, refit_test=refit, pair_scan_seconds=seconds))
        log.info("%s seed %d: %d pairs scored exhaustively in %.2f s", task, seed, np.isfinite(matrices[task, seed]).sum(), seconds)
    return pd.concat(frames, ignore_index=True), distributions, matrices


def random_subset_configs(profile, subsets_per_k: int, ks: tuple[int, ...] = (1, 2, 3),
                          tasks: tuple[str, ...] | None = None) -> list[RunConfig]:
    """Way 1's first stage: ``subsets_per_k`` random k-subsets per task and k, each one fine-tuning
    (first seed). They depend on nothing else, so the notebook can start them early (``background``)."""
    from .models import pretrained_encoder

    hidden = pretrained_encoder(profile.model).config.hidden_size
    first = profile.seeds[0]
    return [profile.run_config(task, first, selected_dims=subset) for task in (tasks or profile.tasks) for k in ks
            for subset in sample_subsets(hidden, k, subsets_per_k, seed=1000 * k + first)]


def run_fixed_subsets(profile, runs: Path, inference: pd.DataFrame, subsets_per_k: int, ks: tuple[int, ...] = (1, 2, 3),
                      **execute_options) -> pd.DataFrame:
    """Way 1, the paper's protocol, for every task: ``subsets_per_k`` random k-subsets, each a full
    fine-tuning (first seed); the validation-best 2- and 3-subsets retrained with the other seeds;
    the scan's best pair and triple fine-tuned too (agreement between ways); and the "effective
    dimensions" step: each dimension of the best 3-subset dropped in turn."""
    from .store import execute_all

    first, others = profile.seeds[0], profile.seeds[1:]
    labelled: list[tuple[RunConfig, str]] = []
    for task in profile.tasks:
        labelled += [(config, "random") for config in random_subset_configs(profile, subsets_per_k, ks, (task,))]
        scan = inference[(inference.task == task) & (inference.seed == first) & inference.k.isin([2, 3])]
        for subset in scan["subset"]:
            labelled.append((profile.run_config(task, first, selected_dims=subset), "scan-best"))
    stage_one = execute_all([c for c, _ in labelled], runs, **execute_options).assign(source=[s for _, s in labelled])

    for task in profile.tasks:
        random_runs = stage_one[(stage_one["data.task"] == task) & (stage_one.source == "random")]
        for k in (2, 3):
            best = best_on_validation(random_runs[random_runs["model.selected_dims"].map(len) == k])
            subset = tuple(best["model.selected_dims"])
            labelled += [(profile.run_config(task, seed, selected_dims=subset), "best-reseeded") for seed in others]
            if k == 3:
                labelled += [(profile.run_config(task, first, selected_dims=s), "drop-one") for s in drop_one(subset)]
    frame = execute_all([c for c, _ in labelled], runs, **execute_options).assign(source=[s for _, s in labelled])
    return frame.assign(k=frame["model.selected_dims"].map(len))


def summary_table(inference: pd.DataFrame, fixed: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Best subset per task and k for each way: test metric (mean, std over seeds) and its share
    of the all-dimensions fine-tuning baseline (``baseline``: the profile's [CLS] runs)."""
    rows = []
    for task, base in baseline.groupby("data.task", sort=False):
        rows.append({"task": task, "way": "all dimensions (fine-tuned)", "k": int(inference["k"].max()), "subset": "all",
                     "test_mean": base["test_score"].mean(), "test_std": base["test_score"].std(), "seeds": len(base)})
        ways = fixed[fixed["data.task"] == task]
        for k in sorted(ways["k"].unique()):
            chosen = best_on_validation(ways[(ways.k == k) & (ways.source == "random")])
            subset = chosen["model.selected_dims"]
            same = ways[(ways["model.selected_dims"] == subset) & ways.source.isin(["random", "best-reseeded"])]
            rows.append({"task": task, "way": "1: fine-tuned on subset", "k": k, "subset": subset,
                         "test_mean": same["test_score"].mean(), "test_std": same["test_score"].std(), "seeds": len(same)})
        scans = inference[(inference.task == task) & (inference.subset != "all")]
        for k, block in scans.groupby("k"):
            rows.append({"task": task, "way": "2: selected at inference", "k": k, "subset": block["subset"].iloc[0],
                         "test_mean": block["test"].mean(), "test_std": block["test"].std(), "seeds": len(block)})
            rows.append({"task": task, "way": "3: head refit on subset", "k": k, "subset": block["subset"].iloc[0],
                         "test_mean": block["refit_test"].mean(), "test_std": block["refit_test"].std(), "seeds": len(block)})
    frame = pd.DataFrame(rows).fillna({"test_std": 0.0})
    order = {task: i for i, task in enumerate(dict.fromkeys(frame.task))}
    frame = frame.sort_values(["task", "way", "k"], key=lambda c: c.map(order) if c.name == "task" else c,
                              kind="stable", ignore_index=True)
    full = frame[frame.subset.astype(str) == "all"].set_index("task")["test_mean"]
    return frame.assign(share_of_full=frame["test_mean"] / frame["task"].map(full))


def agreement(fixed: pd.DataFrame, profile, runs: Path) -> pd.DataFrame:
    """For every subset fine-tuned with the first seed (way 1): its score when selected at inference
    on the first seed's scanned head (way 2, validation) and when refit (way 3, test)."""
    first = fixed[fixed["train.seed"] == profile.seeds[0]]
    rows = []
    for task, block in first.groupby("data.task", sort=False):
        head = load_cached_head(scan_config(profile, task, profile.seeds[0]), runs)
        subsets = list(block["model.selected_dims"])
        for k in sorted({len(s) for s in subsets}):
            chosen = [s for s in subsets if len(s) == k]
            inference = score_subsets(head, np.array(chosen), "validation")
            for subset, score in zip(chosen, inference):
                run = block[block["model.selected_dims"] == subset].iloc[0]
                rows.append({"task": task, "k": k, "subset": subset, "source": run["source"],
                             "inference_validation": float(score), "refit_test": refit_scores(head, subset)["test"],
                             "fine_tuned_test": run["test_score"]})
    return pd.DataFrame(rows)


def effective_dimensions(fixed: pd.DataFrame) -> pd.DataFrame:
    """The best random 3-subset (first seed) and the 2-subsets left by dropping each dimension."""
    rows = []
    for task, block in fixed.groupby("data.task", sort=False):
        best = best_on_validation(block[(block.k == 3) & (block.source == "random")])
        subset = tuple(best["model.selected_dims"])
        rows.append({"task": task, "subset": subset, "dropped": None, "test_score": best["test_score"], "change": 0.0})
        for smaller in drop_one(subset):
            run = block[(block.source == "drop-one") & (block["model.selected_dims"] == smaller)].iloc[0]
            rows.append({"task": task, "subset": smaller, "dropped": (set(subset) - set(smaller)).pop(),
                         "test_score": run["test_score"], "change": run["test_score"] - best["test_score"]})
    return pd.DataFrame(rows)


COMPARABLE_POINTS = 2.0  # "comparable to all dimensions": within this many points (metric x 100)


def verdict(table: pd.DataFrame) -> str:
    """Per task, the smallest k whose best subset is within ``COMPARABLE_POINTS`` of all dimensions,
    for each way; computed from the summary table."""
    lines = []
    for task, block in table.groupby("task", sort=False):
        full = block.loc[block.subset.astype(str) == "all", "test_mean"].item()
        parts = []
        for way, rows in block[block.subset.astype(str) != "all"].groupby("way", sort=True):
            close = rows[100 * (full - rows.test_mean) <= COMPARABLE_POINTS].sort_values("k")
            best = rows.loc[rows.test_mean.idxmax()]
            parts.append(f"{way.split(':')[0]}: " + (f"k = {close.k.iloc[0]} is enough" if len(close) else
                                                     f"no k <= {rows.k.max()} is enough (best k = {best.k}: "
                                                     f"{100 * best.test_mean:.1f} vs {100 * full:.1f})"))
        lines.append(f"- {task} (all dimensions {100 * full:.1f}): " + "; ".join(parts))
    lines.append(f"'Enough' means within {COMPARABLE_POINTS:g} points of the all-dimensions fine-tuning (test, mean over "
                 f"seeds). Ways: 1 fine-tuned on the subset, 2 selected at inference, 3 head refit on the subset.")
    return "\n".join(lines)
