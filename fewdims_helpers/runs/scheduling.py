"""The order runs are handed to parallel workers: longest first, the runs of one subspace together."""
from __future__ import annotations

from typing import Callable

from ..config import RunConfig
from ..data.tokenized import TokenizedSplit
from ..model.pretrained import pretrained_encoder
from ..model.subspace import basis_affinity


def schedule(configs: list[RunConfig], tokens: Callable[[RunConfig], dict[str, TokenizedSplit]]) -> list[RunConfig]:
    """The order to hand runs to parallel workers: longest first (so no worker is left with a long run
    at the end while the others idle), runs in one subspace adjacent (so a worker reuses its bases),
    the most expensive subspace first. ``tokens``: a run's tokenised splits (``Runner.tokens``)."""
    costs = {c: expected_cost(c, tokens(c), pretrained_encoder(c.model.model).config.num_hidden_layers)
             for c in configs}
    groups: dict[tuple, float] = {}
    for config, cost in costs.items():
        groups[basis_affinity(config)] = groups.get(basis_affinity(config), 0.0) + cost
    return sorted(configs, key=lambda c: (-groups[basis_affinity(c)], basis_affinity(c), -costs[c]))


def expected_cost(config: RunConfig, tokens: dict[str, TokenizedSplit], layers: int) -> float:
    """Relative cost of a run, for scheduling only: the tokens it trains on (a step costs about three
    forward passes) and evaluates, times the share of the ``layers`` encoder layers it computes. A
    frozen encoder runs once per split, so such a run is nearly free."""
    if config.model.freeze_pretrained:
        return 0.0
    hp, total = config.train, {name: float(split.lengths.sum()) for name, split in tokens.items()}
    work = (3 * total["train"] + total["validation"]) * hp.epochs + total["test"]
    work += sum(total[split] for split in config.save_features if split != "test")
    return work * min(config.model.layer or layers, layers) / layers
