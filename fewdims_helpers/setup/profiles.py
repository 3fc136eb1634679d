"""Profiles: the model, tasks, seeds, data sizes and training recipe a whole study runs with.

- ``smoke``: the same code on a tiny random BERT and a few dozen examples; seconds per notebook.
- ``default``: the offline study: real MiniLM weights on the three packaged tasks, sized for a
  2-core CPU (the deviations from the paper are listed in ``DEVIATIONS`` and the README).
- ``paper``: bert-base-uncased on the eight GLUE tasks at the paper's hyperparameters (GPU expected).

Notebooks call ``notebook_setup`` with their parameters (the profile, the output folder and one
``options`` dictionary; ``run_all.py`` injects them): it resolves the profile (overrides, pilot caps,
and each task's sequence length from its data), builds the one ``RunOptions`` value, resolves the one
``Execution`` (``execution.resolve``), returns a ``Runner`` over the notebook's ``RunStore``, and prints
a banner of the facts of the run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from ..data.tasks import GLUE_TASKS, PACKAGED_TASKS, get_task
from ..data.tokenized import choose_seq_length
from ..model import architectures
from ..model.pretrained import pretrained_encoder
from ..options import DataSources, ProfileOverrides

BASELINE_FEATURES = ("train", "validation", "test")  # what the baseline run saves (02 and 03 read them)
PREDICTIONS = ("validation", "test")  # every run saves its per-example predictions: every verdict is computed from them


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    max_seq_length: int  # the bound: a task's own length (``seq_lengths``) follows its data, up to this
    max_train_examples: int | None
    max_eval_examples: int | None  # validation
    train: TrainConfig
    description: str
    deviations: tuple[str, ...] = field(default=())
    workers: int | str = "auto"  # parallel runs (Runner.execute_all); smoke's tiny runs are cheaper than a process start
    seq_lengths: tuple[tuple[str, int], ...] = ()  # (task, tokens) chosen from the data by ``resolve``
    max_test_examples: int | None = None  # None: the whole test split (the verdicts' power)
    selection_seed: int = 1000  # runs that select (a subset, a rate) use this seed; reported runs use ``seeds``
    epochs_cap: int | None = None  # --epochs N of a pilot: no run of any study trains longer (studies' own recipes too)
    layer_head_train: TrainConfig | None = None  # recipe of a head on a layer below the top (03); None: ``train``
    frozen_head_train: TrainConfig | None = None  # recipe of a head on the wholly frozen encoder (04 b, c); None: ``train``

    def resolve(self, sources: DataSources) -> "Profile":
        """This profile with each task's sequence length chosen from its data (``data.tokenized.choose_seq_length``:
        the 95th percentile of the training examples' lengths, rounded up to a multiple of 8, within
        ``max_seq_length`` and the task's own cap)."""
        return dataclasses.replace(self, seq_lengths=tuple(
            (task, choose_seq_length(task, self.model, sources, self.max_seq_length)) for task in self.tasks))

    def seq_length(self, task: str) -> int:
        lengths = dict(self.seq_lengths)
        if task not in lengths:
            raise ConfigError(f"the sequence length of {task!r} is not chosen yet; call profile.resolve(sources) "
                              f"(notebook_setup does) before building run configs")
        return lengths[task]

    def data(self, task: str) -> DataConfig:
        return DataConfig(task, max_seq_length=self.seq_length(task), max_train_examples=self.max_train_examples,
                          max_eval_examples=self.max_eval_examples, max_test_examples=self.max_test_examples)

    @property
    def num_layers(self) -> int:
        return architectures.num_layers(pretrained_encoder(self.model))

    @property
    def hidden_size(self) -> int:
        return architectures.hidden_size(pretrained_encoder(self.model))

    def recipe(self, model: ModelConfig) -> TrainConfig:
        """The training recipe of a run of ``model``: ``frozen_head_train`` for a head on the wholly frozen
        encoder (it trains on cached features, so epochs are cheap), ``layer_recipe`` for a head on a layer
        below the top (its curve plateaus only with a higher encoder and head rate: the sizing study), else
        ``train``."""
        if model.freeze_pretrained and self.frozen_head_train is not None:
            return self.frozen_head_train
        below_top = model.layer is not None and model.layer < self.num_layers
        return self.layer_recipe() if below_top else self.train

    def layer_recipe(self) -> TrainConfig:
        """The recipe of a head on a layer below the top (``layer_head_train``, else ``train``). 03 also trains
        the top layer with it, so that each layer is compared with the top at one recipe."""
        return self.layer_head_train if self.layer_head_train is not None else self.train

    def run_config(self, task: str, seed: int, recipe: TrainConfig | None = None, **model_fields) -> RunConfig:
        """The profile's baseline run (final-layer [CLS], linear head) with ``model_fields`` changed, trained with
        its family's recipe (``recipe``; given: that recipe instead, e.g. 03's top layer at the lower layers'
        recipe). It saves its validation and test predictions, from which the studies compute their verdicts."""
        model = ModelConfig(model=self.model, **model_fields)
        chosen = self.recipe(model) if recipe is None else recipe
        return RunConfig(data=self.data(task), model=model, train=dataclasses.replace(chosen, seed=seed),
                         save_predictions=PREDICTIONS)

    def baseline(self, task: str, seed: int) -> RunConfig:
        """The profile's standard fine-tuning (final-layer [CLS], linear head), one run shared by every
        study that needs it: 01's [CLS] runs, 02's all-dimensions reference, 03's top layer, 04's "all
        trained", 05's direct runs, 06's fine-tuned models and 07's Full. It keeps its weights and its
        head inputs of every split, so no study trains it a second time."""
        return dataclasses.replace(self.run_config(task, seed), save_features=BASELINE_FEATURES, save_model=True)

    def baselines(self) -> list[RunConfig]:
        """The baseline run of every task and seed, task-major."""
        return [self.baseline(task, seed) for task in self.tasks for seed in self.seeds]


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", model="tiny", tasks=PACKAGED_TASKS, seeds=(0, 1, 2), max_seq_length=32,
        max_train_examples=48, max_eval_examples=24, max_test_examples=24,
        train=TrainConfig(batch_size=16, epochs=1, learning_rate=5e-4),
        frozen_head_train=TrainConfig(batch_size=16, epochs=20, learning_rate=1e-3),
        description="tiny random BERT (2 layers, hidden 32), 48 training examples: checks the code, not the science",
        workers=1),
    "default": Profile(
        name="default", model="minilm", tasks=PACKAGED_TASKS, seeds=(0, 1, 2, 3, 4), max_seq_length=256,
        max_train_examples=400, max_eval_examples=500, max_test_examples=None,
        train=TrainConfig(batch_size=16, epochs=10, learning_rate=1e-4, head_learning_rate=1e-3, warmup_ratio=0.1,
                          eval_every=20, patience=5),
        # Heads on layers below the top (03; the top layer too, for 03's matched comparisons): up to 20 epochs
        # (500 steps). At 10 epochs, the reported rt-valence heads on layers 1 and 3 still gained +1.15 and +1.68
        # points (median over the seeds) in the last third of training, their best checkpoint at step 220 or later
        # of 250 in 8 of 10 runs (benchmarks/results/convergence_reference.md); the early stop ends the runs that
        # have plateaued, so the cap costs only where a curve still climbs. Not yet checked on the reported seeds at
        # 20 epochs (`python benchmarks/convergence_candidates.py --families layers` trains and tabulates it).
        layer_head_train=TrainConfig(batch_size=16, epochs=20, learning_rate=3e-4, head_learning_rate=3e-3,
                                     warmup_ratio=0.1, eval_every=20, patience=5),
        # Heads on cached frozen features (04 b, c), sized on the default profile's cached MiniLM features: at
        # lr 1e-4 the linear head's rt-valence validation Pearson was still 0.7 after 10 epochs (the 2-layer
        # head's 39.0, still rising); at lr 1e-3 the 2-layer head peaked by epoch 6 (rt-valence 39.5, bbc 91.3).
        # At 20 epochs the reported rt-valence linear heads kept their last-third gain under a point (+0.39) only
        # because the rate decays to 0 there: every seed's best checkpoint was in the last tenth of the cap. At 60
        # epochs their median last-third gain was +0.02, their best checkpoints from step 870 of 1500, and their
        # mean validation and test scores 38.4 -> 40.0 and 38.4 -> 40.7 (benchmarks/results/convergence_candidates.md).
        frozen_head_train=TrainConfig(batch_size=16, epochs=60, learning_rate=1e-3, eval_every=15),
        description="all-MiniLM-L6-v2 (real BERT weights, 6 layers, hidden 384); 400 training examples, batch 16, "
                    "up to 10 epochs (250 steps), encoder lr 1e-4 and head lr 1e-3 (heads on lower layers, and 03's "
                    "top layer beside them, 3e-4 and 3e-3 for up to 20 epochs), validation every 20 steps, early stop "
                    "after 5 without a new best; 2-core CPU",
        deviations=(
            "model: all-MiniLM-L6-v2 (6 layers, hidden 384, sentence-embedding weights) instead of bert-base-uncased",
            "tasks: packaged Rotten Tomatoes polarity/valence and BBC news instead of GLUE (BBC articles are read as "
            "their first 48 tokens: title and first sentence)",
            "size: 400 stratified training examples, at most 500 validation, the whole test split (exact and near "
            "duplicates removed before splitting); each task's sequence length from its data (95th percentile, "
            "up to 256 tokens)",
            "recipe: batch 16, up to 250 steps, encoder lr 1e-4 and a head lr of its own (1e-3; 3e-4 and 3e-3 for "
            "up to 500 steps for heads on layers below the top, and for 03's top layer beside them), 10% warm-up, "
            "the best of validations every 20 steps kept and an early stop after 5 without a new best, instead of "
            "up to 5 epochs at batch 64 and lr 5e-5: many small steps from few examples, sized on the selection seed "
            "for each family's validation curve to plateau and checked on the reported runs (figures/sizing.md: "
            "the plateau rule per family; figures/sizing_curves.png; figures/recipes.md)",
        )),
    "paper": Profile(
        name="paper", model="bert-base-uncased", tasks=GLUE_TASKS, seeds=(0, 1, 2), max_seq_length=128,
        max_train_examples=None, max_eval_examples=None, train=TrainConfig(),
        description="bert-base-uncased on the eight GLUE tasks, AdamW lr 5e-5, batch 64, up to 5 epochs, 128 tokens"),
}


def capped_recipe(recipe: TrainConfig | None, epochs: int | None) -> TrainConfig | None:
    """A family's recipe under a pilot's ``--epochs`` cap (no run trains longer; a shorter recipe keeps its own)."""
    if recipe is None or epochs is None:
        return recipe
    return dataclasses.replace(recipe, epochs=min(recipe.epochs, int(epochs)))


def get_profile(name: str = "default", overrides: ProfileOverrides | None = None) -> Profile:
    """Profile ``name`` with ``overrides`` (``options.ProfileOverrides``, which checks them): its model, tasks,
    seeds and epochs replaced, and caps on its training and evaluation examples (a pilot of a large profile:
    the smaller of the cap and the profile's)."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    profile, given = PROFILES[name], overrides if overrides is not None else ProfileOverrides()
    for task in given.tasks or ():
        get_task(task)  # fails with the list of known tasks

    def capped(current: int | None, cap: int | None) -> int | None:
        return current if cap is None else cap if current is None else min(current, cap)
    return dataclasses.replace(
        profile, model=given.model or profile.model, tasks=tuple(given.tasks or profile.tasks),
        seeds=tuple(given.seeds if given.seeds is not None else profile.seeds),
        max_train_examples=capped(profile.max_train_examples, given.max_train_examples),
        max_eval_examples=capped(profile.max_eval_examples, given.max_eval_examples),
        max_test_examples=capped(profile.max_test_examples, given.max_eval_examples),
        train=profile.train if given.epochs is None else dataclasses.replace(profile.train, epochs=given.epochs),
        layer_head_train=capped_recipe(profile.layer_head_train, given.epochs),
        frozen_head_train=capped_recipe(profile.frozen_head_train, given.epochs),
        epochs_cap=given.epochs)


def notebook_setup(profile: str, output_dir=None, options: dict | None = None):
    """(profile, output paths, runner) for a study notebook, from its ``parameters`` cell: the profile with
    the overrides in ``options`` and its sequence lengths resolved, and a ``Runner`` over the notebook's run
    store carrying the one ``RunOptions`` value and the one ``Execution`` (device, precision, threads)
    resolved here, at the notebook's edge. ``options`` holds any option of ``options.py`` by name
    (``python run_all.py --help`` lists them), e.g. ``{"epochs": 1, "device": "cpu"}``; ``output_dir``
    is relative to the repository (None: the repository). Prints a banner: profile, lengths, sizes,
    options, the device and precision the runs use here, and the deviations from the paper."""
    from ..execution import resolve
    from ..paths import REPO_ROOT, output_paths
    from ..report.tables import setup_logging
    from ..runs.runner import Runner
    from ..runs.store import RunStore
    from .parameters import build

    setup_logging()
    overrides, run_options = build(options, default_workers=get_profile(profile).workers)
    chosen = get_profile(profile, overrides).resolve(run_options.sources)
    execution = resolve(run_options.device)
    out = output_paths(None if output_dir is None else REPO_ROOT / output_dir)
    print(f"profile {chosen.name}: {chosen.description}; seeds {list(chosen.seeds)}")
    print(f"tasks {', '.join(chosen.tasks)}; model {chosen.model}; tokens per example (95th percentile of train, "
          f"up to {chosen.max_seq_length}): " + ", ".join(f"{task} {length}" for task, length in chosen.seq_lengths))
    epochs = f"{chosen.train.epochs} epoch{'s' if chosen.train.epochs != 1 else ''}"
    print(f"examples: train {chosen.max_train_examples or 'all'}, validation {chosen.max_eval_examples or 'all'}, "
          f"test {chosen.max_test_examples or 'all'}"
          f"; {epochs}; data: {'a local GLUE copy' if run_options.sources.glue_dir else 'packaged / hub'}; "
          f"device {execution.device} ({execution.precision(chosen.train.precision)}); "
          f"workers {run_options.workers}"
          + (f"; backend ray at {run_options.ray_address or 'a private Ray'}" if run_options.backend == "ray" else ""))
    own_tasks = set(chosen.tasks) <= set(PROFILES[profile].tasks)
    print("\n".join(f"deviation: {d}" for d in chosen.deviations if own_tasks or not d.startswith("tasks:")))
    return chosen, out, Runner(RunStore(out["runs"]), run_options, execution)
