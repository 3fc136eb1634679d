"""Study 07, intrinsic task subspaces (Zhang, Liu & Shao, ACL 2023, Sec. 4) on our tasks.

1. Trajectories: one fine-tuning per task records t checkpoints of every encoder layer (a seed
   disjoint from the evaluation seeds, so no evaluated run shares its batch order with it).
2. Table 1: Full (the profile's baseline fine-tuning), Freeze (encoder layers frozen, embeddings and
   head trained: V theta_t = 0), Random (random d-dim subspace per layer) and Intrinsic (the top-d
   directions of the task's own trajectory), over the profile's seeds.
3. Outlier dimensions (Sec. 4.5): coordinates of V theta_t beyond 3 sigma of their layer's mean;
   zeroed in the fine-tuned model against as many random coordinates (Table 3), and where they sit
   (Table 4: weight matrix and layer of each layer's top 10).
4. Transfer (Sec. 4.3): task B fine-tuned in the subspace of task A. Unified subspace (Sec. 4.4):
   one checkpoint per task (dim = number of tasks), its zero-shot variant without B, and a random
   subspace of the same dimension. Ablation over d (Appendix A.2).

The learning rate of theta_t (the paper's 0.01) is one of the readings that matter at our scale: the
paper fine-tunes for thousands of steps, the default profile for 50. The notebook selects it per
task on validation from a small grid with one seed and uses the choice everywhere (``select_rates``).
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import RunConfig, SubspaceConfig
from .data import tokenized_task
from .models import pretrained_encoder
from .store import execute_all, load_model, run_dir, _initial_model
from .subspace import deltas, encoder_layers, flatten, materialize, parameter_slices
from .tasks import get_task
from .training import evaluate, resolve_device, resolve_precision

SETTINGS = ("Full", "Freeze", "Random", "Intrinsic")


def trajectory_config(profile, task: str, seed: int, checkpoints: int) -> RunConfig:
    """The profile's baseline fine-tuning of ``task`` that records ``checkpoints`` checkpoints."""
    return dataclasses.replace(profile.run_config(task, seed), record_trajectory=checkpoints)


def subspace_config(profile, task: str, seed: int, save_model: bool = False, **subspace_fields) -> RunConfig:
    return dataclasses.replace(profile.run_config(task, seed), subspace=SubspaceConfig(**subspace_fields),
                               save_model=save_model)


@dataclasses.dataclass(frozen=True)
class Design:
    """Everything the study varies, from the notebook's parameters."""
    dim: int = 32
    checkpoints: int = 32
    trajectory_seed: int = 100
    ablation_dims: tuple[int, ...] = (8, 16)
    analysis_seeds: tuple[int, ...] = (0,)  # seeds of the transfer, unified and ablation runs
    rates: dict = dataclasses.field(default_factory=dict)  # task -> learning rate of theta_t

    def with_rates(self, rates: dict[str, float]) -> "Design":
        return dataclasses.replace(self, rates=dict(rates))

    def source(self, profile, task: str) -> str:
        return trajectory_config(profile, task, self.trajectory_seed, self.checkpoints).run_id

    def intrinsic(self, profile, task: str, seed: int, source_task: str | None = None, dim: int | None = None,
                  save_model: bool = False) -> RunConfig:
        return subspace_config(profile, task, seed, save_model=save_model, basis="intrinsic", dim=dim or self.dim,
                               sources=(self.source(profile, source_task or task),), learning_rate=self.rates[task])


def trajectories(profile, design: Design, runs: Path, **options) -> pd.DataFrame:
    configs = [trajectory_config(profile, t, design.trajectory_seed, design.checkpoints) for t in profile.tasks]
    return execute_all(configs, runs, **options)


def select_rates(profile, design: Design, runs: Path, rates: tuple[float, ...], **options
                 ) -> tuple[dict[str, float], pd.DataFrame]:
    """Per task, the learning rate of theta_t with the best validation score of an intrinsic run
    (first evaluation seed); returns the choice and the sweep."""
    seed = profile.seeds[0]
    configs, rows = [], []
    for task in profile.tasks:
        for rate in rates:
            # save_model as in Table 1, so the chosen rate's run is reused there, not recomputed
            configs.append(dataclasses.replace(design, rates={task: rate}).intrinsic(profile, task, seed, save_model=True))
            rows.append({"task": task, "learning_rate": rate})
    sweep = execute_all(configs, runs, **options)
    sweep = pd.DataFrame(rows).assign(validation_score=sweep["validation_score"].to_numpy(),
                                      test_score=sweep["test_score"].to_numpy())
    best = sweep.loc[sweep.groupby("task", sort=False)["validation_score"].idxmax()]
    return dict(zip(best["task"], best["learning_rate"])), sweep


def table_configs(profile, design: Design) -> tuple[list[RunConfig], list[str]]:
    """Table 1: every task, seed and setting."""
    configs, labels = [], []
    for task in profile.tasks:
        for seed in profile.seeds:
            configs += [profile.run_config(task, seed),
                        subspace_config(profile, task, seed, basis="none"),
                        subspace_config(profile, task, seed, basis="random", dim=design.dim,
                                        learning_rate=design.rates[task]),
                        design.intrinsic(profile, task, seed, save_model=True)]
            labels += list(SETTINGS)
    return configs, labels


def analysis_configs(profile, design: Design) -> pd.DataFrame:
    """Transfer, unified, zero-shot, random-of-the-same-dimension and ablation runs, one row each."""
    tasks, rows = profile.tasks, []
    unified_sources = tuple(design.source(profile, t) for t in tasks)
    for seed in design.analysis_seeds:
        for target in tasks:
            rate = design.rates[target]
            for source in tasks:
                if source != target:
                    rows.append(("transfer", source, target, seed, design.intrinsic(profile, target, seed, source)))
            others = tuple(design.source(profile, t) for t in tasks if t != target)
            rows.append(("Unified", "all", target, seed, subspace_config(
                profile, target, seed, basis="intrinsic", dim=len(tasks), sources=unified_sources, checkpoints="last",
                learning_rate=rate)))
            if others:
                rows.append(("Zero-shot", "others", target, seed, subspace_config(
                    profile, target, seed, basis="intrinsic", dim=len(others), sources=others, checkpoints="last",
                    learning_rate=rate)))
            rows.append(("Random", "none", target, seed, subspace_config(
                profile, target, seed, basis="random", dim=len(tasks), learning_rate=rate)))
            for dim in design.ablation_dims:
                rows.append((f"dim={dim}", target, target, seed, design.intrinsic(profile, target, seed, dim=dim)))
    return pd.DataFrame(rows, columns=["setting", "source", "task", "seed", "config"])


def run_table(profile, design: Design, runs: Path, **options) -> pd.DataFrame:
    configs, labels = table_configs(profile, design)
    return execute_all(configs, runs, **options).assign(setting=labels)


def run_analysis(profile, design: Design, runs: Path, **options) -> pd.DataFrame:
    plan = analysis_configs(profile, design)
    frame = execute_all(list(plan["config"]), runs, **options)
    return frame.assign(setting=plan["setting"].to_numpy(), source=plan["source"].to_numpy())


# ----------------------------------------------------------------------------- outlier dimensions
def outlier_mask(delta: np.ndarray, sigmas: float = 3.0) -> np.ndarray:
    """Coordinates of one layer's update V theta_t deviating more than ``sigmas`` std from its mean."""
    return np.abs(delta - delta.mean()) > sigmas * delta.std()


def stored_deltas(config: RunConfig, runs: Path) -> list[np.ndarray]:
    """V theta_t of every layer of a finished subspace run, from its saved theta_t (the basis is rebuilt)."""
    model = _initial_model(config, runs)
    thetas = np.load(run_dir(config, runs) / "subspace.npz")
    for index, layer in enumerate(encoder_layers(model)):
        layer.theta.data = torch.from_numpy(thetas[f"layer_{index}"])
    return deltas(model)


@torch.no_grad()
def _disable(model, masks: list[np.ndarray], originals: list[torch.Tensor] | None) -> None:
    """Set the masked coordinates of every (materialised) layer to 0, or to theta_0 if ``originals``."""
    for index, (layer, mask) in enumerate(zip(encoder_layers(model), masks)):
        for (name, start, stop), p in zip(parameter_slices(layer), layer.parameters()):
            part = torch.from_numpy(mask[start:stop])
            if part.any():
                flat = p.view(-1)
                flat[part] = 0.0 if originals is None else originals[index][start:stop][part].to(p.dtype)


def zeroing(configs: list[RunConfig], runs: Path, sigmas: float = 3.0, device: str | None = None) -> pd.DataFrame:
    """Table 3: test score of each intrinsic run as trained, with its outlier coordinates disabled,
    and with as many random coordinates disabled (per layer, seeded by the run's seed). Two readings
    of "disable": set the weight to 0 (the paper's) or remove only the learned update (back to theta_0)."""
    rows = []
    for config in configs:
        model = load_model(config, runs)
        layer_deltas = deltas(model)
        materialize(model)
        spec = get_task(config.data.task)
        tokens = tokenized_task(config.data, config.model.model)
        torch_device = resolve_device(device)
        precision = resolve_precision(config.train.precision, torch_device)
        rng = np.random.default_rng(config.train.seed)
        outliers = [outlier_mask(d, sigmas) for d in layer_deltas]
        randoms = []
        for mask in outliers:
            chosen = np.zeros_like(mask)
            chosen[rng.choice(len(mask), int(mask.sum()), replace=False)] = True
            randoms.append(chosen)
        originals = [flatten(layer) for layer in encoder_layers(pretrained_encoder(config.model.model))]
        share = sum(int(m.sum()) for m in outliers) / sum(len(m) for m in outliers)

        def score(masks, reset) -> float:
            edited = copy.deepcopy(model)
            if masks is not None:
                _disable(edited, masks, originals if reset else None)
            result = evaluate(edited.to(torch_device), tokens["test"], spec.metric, torch_device, precision)
            return result[spec.main_metric]

        base = {"task": config.data.task, "seed": config.train.seed, "disabled_share": share}
        rows.append({**base, "setting": "Intrinsic (as trained)", "test_score": score(None, False)})
        for reading, reset in (("weight set to 0", False), ("update removed", True)):
            rows.append({**base, "setting": f"outliers: {reading}", "test_score": score(outliers, reset)})
            rows.append({**base, "setting": f"random: {reading}", "test_score": score(randoms, reset)})
    return pd.DataFrame(rows)


def outlier_locations(configs: list[RunConfig], runs: Path, top: int = 10, sigmas: float = 3.0
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 4: (component x layer counts of each layer's ``top`` largest outliers, summed over runs;
    per component, the share of its coordinates that are 3-sigma outliers, over all runs)."""
    layer_template = encoder_layers(pretrained_encoder(configs[0].model.model))[0]
    slices = parameter_slices(layer_template)
    starts = np.array([start for _, start, _ in slices])
    names = [name for name, _, _ in slices]
    counts = pd.DataFrame(0, index=names, columns=[f"layer {i + 1}" for i in range(len(encoder_layers(
        pretrained_encoder(configs[0].model.model))))])
    outliers = np.zeros(len(names))
    sizes = np.array([stop - start for _, start, stop in slices], dtype=float)
    for config in configs:
        for index, delta in enumerate(stored_deltas(config, runs)):
            deviation = np.abs(delta - delta.mean())
            for position in np.argsort(-deviation)[:top]:
                counts.iloc[np.searchsorted(starts, position, side="right") - 1, index] += 1
            mask = outlier_mask(delta, sigmas)
            outliers += np.add.reduceat(mask.astype(float), starts)
    share = pd.DataFrame({"component": names, "outliers": outliers.astype(int),
                          "share of component (%)": 100 * outliers / (sizes * len(configs) * counts.shape[1])})
    counts = counts[counts.sum(axis=1) > 0]
    counts.index.name = "component"
    return counts, share.sort_values("outliers", ascending=False)


def delta_profile(config: RunConfig, runs: Path, bins: int = 400) -> pd.DataFrame:
    """Largest |V theta_t| in each of ``bins`` consecutive blocks of every layer (for Fig. 4-like plots:
    spikes survive the downsampling)."""
    rows = []
    for index, delta in enumerate(stored_deltas(config, runs)):
        blocks = np.array_split(np.abs(delta), bins)
        rows += [{"layer": index + 1, "position": b / bins, "max_abs_update": float(block.max())}
                 for b, block in enumerate(blocks)]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tables and verdict
def transfer_matrix(analysis: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Mean test score of B (columns) in the subspace of A (rows); the diagonal is B's own subspace
    (Table 1's intrinsic runs with the same seeds)."""
    transfer = analysis[analysis.setting == "transfer"].assign(target=lambda f: f["data.task"])
    seeds = set(transfer["train.seed"])
    own = table[(table.setting == "Intrinsic") & table["train.seed"].isin(seeds)]
    own = own.assign(source=own["data.task"], target=own["data.task"])
    both = pd.concat([transfer, own])
    tasks = list(dict.fromkeys(table["data.task"]))
    matrix = both.pivot_table(index="source", columns="target", values="test_score", aggfunc="mean")
    return matrix.reindex(index=tasks, columns=tasks)


def theta_similarity(analysis: pd.DataFrame, runs: Path) -> pd.DataFrame:
    """Cosine similarity of the learned theta_t (ensemble mean) between tasks in the unified
    subspace, averaged over layers and seeds (the paper's Fig. 3)."""
    unified = analysis[analysis.setting == "Unified"]
    vectors: dict[str, list] = {}
    for run_id, task in zip(unified["run_id"], unified["data.task"]):
        stored = np.load(Path(runs) / run_id / "subspace.npz")
        vectors.setdefault(task, []).append([stored[f"layer_{i}"].mean(0) for i in range(len(stored.files))])
    tasks = list(vectors)
    matrix = pd.DataFrame(index=tasks, columns=tasks, dtype=float)
    for a in tasks:
        for b in tasks:
            cosines = [float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
                       for run_a, run_b in zip(vectors[a], vectors[b]) for x, y in zip(run_a, run_b)]
            matrix.loc[a, b] = np.mean(cosines)
    return matrix


def verdict(table: pd.DataFrame, zeroed: pd.DataFrame, analysis: pd.DataFrame) -> str:
    """The paper's claims checked against the runs, one line each."""
    means = table.groupby(["data.task", "setting"], sort=False)["test_score"].mean().unstack()
    lines = []
    for task, row in means.iterrows():
        lines.append(f"- {task}: Intrinsic {100 * row.Intrinsic:.1f} vs Full {100 * row.Full:.1f} "
                     f"({100 * (row.Intrinsic - row.Full):+.1f}), Random {100 * row.Random:.1f}, "
                     f"Freeze {100 * row.Freeze:.1f}; intrinsic beats random by {100 * (row.Intrinsic - row.Random):+.1f}")
    z = zeroed.groupby("setting")["test_score"].mean()
    lines.append(f"- zeroing 3-sigma outliers (weight set to 0; {100 * zeroed.disabled_share.mean():.2f}% of encoder-layer "
                 f"parameters): {100 * z['outliers: weight set to 0']:.1f} vs random {100 * z['random: weight set to 0']:.1f} "
                 f"(as trained {100 * z['Intrinsic (as trained)']:.1f}, mean over tasks)")
    other = analysis[analysis.setting.isin(["Unified", "Zero-shot", "Random"])]
    u = other.groupby("setting")["test_score"].mean()
    lines.append("- unified subspace (mean over tasks): " + ", ".join(f"{s} {100 * u[s]:.1f}" for s in u.index))
    return "\n".join(lines)


def design_for(profile, dim: int, checkpoints: int, trajectory_seed: int, ablation_dims, analysis_seeds) -> Design:
    """The notebook's parameters as a ``Design``, capped to what the profile's runs allow: at most one
    checkpoint per optimizer step, and subspace dimensions no larger than the checkpoints recorded."""
    from .training import total_steps

    steps = min(total_steps(profile.run_config(t, 0), len(tokenized_task(profile.data(t), profile.model)["train"]))
                for t in profile.tasks)
    checkpoints = min(checkpoints, steps)
    if checkpoints < 2:
        raise ValueError(f"the profile's runs have {steps} optimizer step(s); a trajectory needs at least 2")
    dims = tuple(d for d in ablation_dims if d < min(dim, checkpoints))
    seeds = tuple(s for s in profile.seeds if s in tuple(analysis_seeds)) or profile.seeds[:1]
    return Design(dim=min(dim, checkpoints), checkpoints=checkpoints, trajectory_seed=trajectory_seed,
                  ablation_dims=dims, analysis_seeds=seeds)
