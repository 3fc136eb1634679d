"""The plateau rule on the reported runs (``studies/sizing``'s docstring says why): the gain in each run's last third of training, by
family of recipe, from the stored runs or the reference, and the generated section of ``figures/sizing.md``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from ..config import ModelConfig, RunConfig
from ..runs.store import RunStore
from .tables import replace_section, to_markdown

PLATEAU_GAIN = 1.0  # points: the least gain in a curve's last third that counts as still climbing (the rule's bound)


# ----------------------------------------------------------------------------- convergence of the reported runs

def last_third_gain(history: list[dict], metric: str) -> float:
    """What the last third of a run's training added to its best validation score (metric x 100): the best
    score of the whole curve minus the best up to two thirds of the steps the run trained (0 when the best came
    before; an early-stopped run's last third is of the steps it trained)."""
    steps = np.array([point["step"] for point in history], dtype=float)
    scores = 100 * np.array([point["validation"][metric] for point in history], dtype=float)
    early = scores[steps <= steps.max() * 2 / 3]
    return float(np.nanmax(scores) - np.nanmax(early)) if len(early) else float("nan")


def family_key(config: RunConfig, resolve: Callable[[str], RunConfig | None]) -> str:
    """What the runs of one family share: the whole config but its seed. A run named in it (the run ``init_from``
    starts from, a subspace's sources, a zeroing's source) counts by its own family where ``resolve`` finds its
    config (the same source seed by seed is one family), else by its id."""
    data = config.to_dict()
    data["train"]["seed"] = None

    def named(run_id: str) -> str:
        source = resolve(run_id)
        return run_id if source is None else family_key(source, resolve)

    if config.init_from is not None:
        data["init_from"] = named(config.init_from)
    if config.subspace is not None:
        data["subspace"]["sources"] = [named(s) for s in config.subspace.sources]
    if config.zeroed is not None:
        data["zeroed"]["source"] = named(config.zeroed.source)
    return json.dumps(data, sort_keys=True, default=str)


def family_name(config: RunConfig, resolve: Callable[[str], RunConfig | None]) -> str:
    """A family in words: the model fields that differ from the defaults (none: the baseline model), the run it
    starts from, the subspace or zeroing, and the recipe (rates and step cap in epochs)."""
    model = config.model
    default = ModelConfig(model=model.model)
    parts = [f"{f.name} {getattr(model, f.name)}" for f in dataclasses.fields(model)
             if getattr(model, f.name) != getattr(default, f.name)]
    if config.init_from is not None:
        source = resolve(config.init_from)
        parts.append(f"after {source.data.task if source is not None else config.init_from}")
    if config.subspace is not None:
        rate = f" at lr {config.subspace.learning_rate:g}" if config.subspace.basis != "none" else ""
        parts.append(f"subspace {config.subspace.basis} d {config.subspace.dim}{rate}")  # its coordinates' own rate
    if config.zeroed is not None:
        parts.append(f"zeroed {config.zeroed.coordinates}")
    recipe = config.train
    head = f", head lr {recipe.head_learning_rate:g}" if recipe.head_learning_rate is not None else ""
    return (", ".join(parts) or "baseline model ([CLS], all layers, linear head)") + \
        f"; lr {recipe.learning_rate:g}{head}, up to {recipe.epochs} epochs"


def reported_by_notebook(about: dict) -> dict[str, tuple[str, ...]]:
    """run id -> the notebooks that report it, from a reference's ``reference.json`` (parsed)."""
    found: dict[str, list[str]] = {}
    for notebook, entry in sorted(about.get("notebooks", {}).items()):
        for run_id in entry.get("runs", ()):
            found.setdefault(run_id, []).append(notebook)
    return {run_id: tuple(notebooks) for run_id, notebooks in found.items()}


def convergence(store: RunStore, run_ids: Iterable[str], seeds: Iterable[int],
                notebooks: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The plateau rule on the reported runs: one row per family of runs among ``run_ids`` whose seed is one of
    ``seeds`` (the reported seeds; the selection seed's runs only select), from each run's stored validation
    history. ``median_gain`` is the median over the family's seeds of ``last_third_gain``; the family has
    converged when it is at most ``PLATEAU_GAIN``. Descriptive beside it: the largest gain, and how many seeds'
    best checkpoint lies in the last tenth of the steps trained (a curve whose best is always at its end may still
    be rising slowly, its gain held down by the learning rate decaying to 0 at the cap). ``notebooks``: run id -> the notebooks reporting it."""
    seeds, notebooks = set(seeds), notebooks or {}
    resolved: dict[str, RunConfig | None] = {}

    def resolve(run_id: str) -> RunConfig | None:
        if run_id not in resolved:
            resolved[run_id] = store.stored_config(run_id) if (store.folder(run_id) / "config.json").exists() else None
        return resolved[run_id]

    families: dict[str, list[tuple[RunConfig, dict]]] = {}
    for run_id in run_ids:
        config = resolve(run_id)
        if config is None or config.train.seed not in seeds:
            continue
        families.setdefault(family_key(config, resolve), []).append((config, store.metrics(run_id)))
    rows = []
    for members, drawn in _with_draws(families, resolve):
        members.sort(key=lambda member: member[0].train.seed)
        config = members[0][0]
        gains = [last_third_gain(m["history"], m["main_metric"]) for _, m in members]
        at_end = sum((m.get("best_step") or 0) > 0.9 * m["history"][-1]["step"] for _, m in members)
        median = float(np.median(gains))
        name = family_name(config, resolve)
        if drawn:  # the first member's subset stands for all the draws
            name = name.replace(f"selected_dims {config.model.selected_dims}",
                                f"selected_dims: a random {len(config.model.selected_dims)}-subset drawn per seed", 1)
        rows.append({"task": config.data.task, "family": name,
                     "notebooks": " ".join(sorted({n for c, _ in members for n in notebooks.get(c.run_id, ())})),
                     "seeds": len(members), "steps": int(np.median([m["history"][-1]["step"] for _, m in members])),
                     "median_gain": median, "max_gain": float(np.max(gains)), "best_in_last_tenth": int(at_end),
                     "converged": bool(median <= PLATEAU_GAIN)})
    columns = ["task", "family", "notebooks", "seeds", "steps", "median_gain", "max_gain", "best_in_last_tenth",
               "converged"]
    return pd.DataFrame(rows, columns=columns).sort_values(["task", "notebooks", "family"], ignore_index=True)


def _with_draws(families: dict[str, list], resolve: Callable[[str], RunConfig | None]) -> list[tuple[list, bool]]:
    """The families, with the runs on a subset of dimensions drawn afresh for each seed (02's random controls: one
    run per drawn subset) gathered into one family per recipe and subset size, so that the rule's median is over
    their seeds as for any other family; (members, whether drawn)."""
    kept, draws = [], {}
    for members in families.values():
        config = members[0][0]
        if len(members) > 1 or config.model.selected_dims is None:
            kept.append((members, False))
            continue
        data = json.loads(family_key(config, resolve))
        data["model"]["selected_dims"] = len(config.model.selected_dims)
        draws.setdefault(json.dumps(data, sort_keys=True), []).extend(members)
    gathered = [(members, len({c.model.selected_dims for c, _ in members}) > 1) for members in draws.values()]
    return kept + gathered


def reference_convergence(reference: Path, seeds: Iterable[int]) -> pd.DataFrame:
    """``convergence`` of the reported runs a reference records (``reference.json``: each notebook's runs)."""
    from .reproduction import reference_folders

    folders = reference_folders(reference)
    notebooks = reported_by_notebook(json.loads(folders["about"].read_text()))
    return convergence(RunStore(folders["runs"]), list(notebooks), seeds, notebooks)


def convergence_line(table: pd.DataFrame) -> str:
    """One sentence: how many families of reported runs pass the plateau rule, and which do not."""
    failing = table[~table.converged]
    names = "; ".join(f"{row.family}, {row.task}, notebook {row.notebooks} ({row.median_gain:+.2f})"
                      for row in failing.itertuples())
    return (f"{int(table.converged.sum())} of {len(table)} families of reported runs pass the plateau rule (median over "
            f"their seeds of what the last third of training adds to the best validation score at most "
            f"{PLATEAU_GAIN:g} point)" + (f"; failing: {names}" if names else ""))


CONVERGENCE_START = "<!-- convergence:start (generated by benchmarks/convergence.py from sizing.convergence) -->"
CONVERGENCE_END = "<!-- convergence:end -->"


def convergence_section(table: pd.DataFrame) -> str:
    """The convergence table of the reported runs as ``figures/sizing.md`` shows it between its markers."""
    return (f"## The plateau rule on the reported runs (the reference; `benchmarks/convergence.py`)\n\n"
            f"{to_markdown(table)}\n{convergence_line(table)}.\n")


def put_convergence(path: Path, table: pd.DataFrame) -> None:
    """Write the convergence table of the reported runs into ``path`` (``figures/sizing.md``) between its
    markers, appending them where the file has none yet (``benchmarks/sizing.py`` rewrites the file)."""
    text = convergence_section(table)
    path = Path(path)
    if CONVERGENCE_START not in path.read_text():
        path.write_text(path.read_text().rstrip("\n") + f"\n\n{CONVERGENCE_START}\n{CONVERGENCE_END}\n")
    replace_section(path, text, CONVERGENCE_START, CONVERGENCE_END)
