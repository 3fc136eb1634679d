"""The tasks this package knows: each one's name, source, text fields, label count and metric.

Pure data with no package imports, so that a ``DataConfig`` can validate its task name on construction
without loading any data (the loaders are in ``tasks.py``, which re-exports these names).
"""
from __future__ import annotations

from dataclasses import dataclass


class TaskError(RuntimeError):
    """A task's data could not be loaded; the message says how to get it."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    source: str  # "packaged" (offline), "glue" (hub or --glue-dir), "hub" (Matton's datasets)
    text_fields: tuple[str, ...]
    num_labels: int  # 1: regression
    metric: str  # see metrics.METRICS
    main_metric: str  # the key selection and reporting use
    hub_name: str | None = None
    hub_config: str | None = None
    validation_fraction: float = 0.1  # share of train carved out for validation (GLUE, hub tasks)
    length_cap: int | None = None  # tokens read at most, whatever the profile allows (see data.choose_seq_length)
    corpus: str | None = None  # tasks with the same corpus label the same texts (None: a text pool of its own)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in [
    TaskSpec("rt-polarity", "packaged", ("sentence",), 2, "accuracy", "accuracy", corpus="rotten-tomatoes-snippets"),
    TaskSpec("rt-valence", "packaged", ("sentence",), 1, "pearson_spearman", "pearson",
             corpus="rotten-tomatoes-snippets"),
    # BBC articles (median 430 tokens) are read as their title and first sentence: a deviation for the CPU budget
    TaskSpec("bbc-news", "packaged", ("text",), 5, "accuracy", "accuracy", length_cap=48),
    TaskSpec("cola", "glue", ("sentence",), 2, "matthews", "matthews_correlation", "nyu-mll/glue", "cola"),
    TaskSpec("sst2", "glue", ("sentence",), 2, "accuracy", "accuracy", "nyu-mll/glue", "sst2"),
    TaskSpec("mrpc", "glue", ("sentence1", "sentence2"), 2, "f1_accuracy", "accuracy", "nyu-mll/glue", "mrpc"),
    TaskSpec("stsb", "glue", ("sentence1", "sentence2"), 1, "pearson_spearman", "pearson", "nyu-mll/glue", "stsb"),
    TaskSpec("qqp", "glue", ("question1", "question2"), 2, "f1_accuracy", "accuracy", "nyu-mll/glue", "qqp"),
    TaskSpec("mnli", "glue", ("premise", "hypothesis"), 3, "accuracy", "accuracy", "nyu-mll/glue", "mnli"),
    TaskSpec("qnli", "glue", ("question", "sentence"), 2, "accuracy", "accuracy", "nyu-mll/glue", "qnli"),
    TaskSpec("rte", "glue", ("sentence1", "sentence2"), 2, "accuracy", "accuracy", "nyu-mll/glue", "rte"),
    TaskSpec("imdb", "hub", ("text",), 2, "accuracy", "accuracy", "stanfordnlp/imdb", None, 0.10),
    TaskSpec("ag_news", "hub", ("text",), 4, "accuracy", "accuracy", "fancyzhx/ag_news", None, 0.05),
    TaskSpec("dbpedia_14", "hub", ("content",), 14, "accuracy", "accuracy", "fancyzhx/dbpedia_14", None, 0.05),
]}
PACKAGED_TASKS = tuple(name for name, spec in TASKS.items() if spec.source == "packaged")
GLUE_TASKS = tuple(name for name, spec in TASKS.items() if spec.source == "glue")


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]
