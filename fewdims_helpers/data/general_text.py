"""General English text, apart from the tasks: vaderSentiment's tweets, Amazon-review and NYT-editorial
snippets (shipped in its sdist, ASSETS.md), sampled into a seeded pool with every task text removed.
Study 06 fits its "general text" PCA on this pool (Matton & de Oliveira use 1M Wikipedia sentences)."""
from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from ..model.pretrained import load_tokenizer
from ..options import DataSources
from .tasks import get_task, load_task, read_vader_file
from .tokenized import TokenizedSplit, tokenize_split

log = logging.getLogger(__name__)

GENERAL_SOURCES = ("tweets", "amazonReviewSnippets", "nytEditorialSnippets")


@lru_cache(maxsize=None)
def read_general_text(sources: DataSources) -> tuple[str, ...]:
    """Distinct sentences of vaderSentiment's tweets, Amazon and NYT snippets, in file order."""
    texts: dict[str, None] = {}
    for source in GENERAL_SOURCES:
        for line in filter(str.strip, read_vader_file(sources, source).splitlines()):
            texts[line.split("\t", 2)[2].strip()] = None
    return tuple(t for t in texts if t)


@lru_cache(maxsize=None)
def task_texts(task: str, sources: DataSources) -> frozenset[str]:
    """Every text (each field, stripped) in any split of ``task``'s full source."""
    dataset = load_task(task, sources)
    return frozenset(str(text).strip() for split in dataset.values() for field in get_task(task).text_fields
                     for text in split[field])


def general_pool(tasks: tuple[str, ...], pool_size: int, sources: DataSources, seed: int = 0) -> tuple[str, ...]:
    """A seeded sample of ``pool_size`` general-text sentences, none of which occurs in any of ``tasks``."""
    excluded = set().union(*(task_texts(task, sources) for task in tasks))
    general = read_general_text(sources)
    candidates = [text for text in general if text not in excluded]
    if not 2 <= pool_size <= len(candidates):
        raise ValueError(f"pool_size must be between 2 and {len(candidates)} (the general sentences not in "
                         f"the tasks' data), got {pool_size}")
    rows = np.sort(np.random.default_rng(seed).choice(len(candidates), pool_size, replace=False))
    log.info("general pool: %d of %d sentences (%d removed: also in the tasks' data)", pool_size,
             len(candidates), len(general) - len(candidates))
    return tuple(candidates[i] for i in rows)


def tokenize_pool(texts: tuple[str, ...], model: str, max_seq_length: int) -> TokenizedSplit:
    import datasets

    rows = datasets.Dataset.from_dict({"text": list(texts), "label": [0] * len(texts), "idx": list(range(len(texts)))})
    return tokenize_split(rows, ("text",), load_tokenizer(model), max_seq_length)
