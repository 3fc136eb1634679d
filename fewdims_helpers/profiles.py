"""Profiles: the model, tasks, seeds, data sizes and training recipe a whole study runs with.

- ``smoke``: the same code on a tiny random BERT and a few dozen examples; seconds per notebook.
- ``default``: the offline study: real MiniLM weights on the three packaged tasks, sized for a
  2-core CPU (the deviations from the paper are listed in ``DEVIATIONS`` and the README).
- ``paper``: bert-base-uncased on the eight GLUE tasks at the paper's hyperparameters (GPU expected).

Notebooks call ``get_profile`` with their parameters; ``run_all.py`` injects those parameters.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from .tasks import GLUE_TASKS, PACKAGED_TASKS, get_task

BASELINE_FEATURES = ("train", "validation", "test")  # what the baseline run saves (02 and 03 read them)


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    max_seq_length: int
    max_train_examples: int | None
    max_eval_examples: int | None
    train: TrainConfig
    description: str
    deviations: tuple[str, ...] = field(default=())
    workers: int | str = "auto"  # parallel runs (store.execute_all); smoke's tiny runs are cheaper than a process start

    def data(self, task: str) -> DataConfig:
        return DataConfig(task, max_seq_length=self.max_seq_length, max_train_examples=self.max_train_examples,
                          max_eval_examples=self.max_eval_examples)

    def run_config(self, task: str, seed: int, **model_fields) -> RunConfig:
        """The profile's baseline run (final-layer [CLS], linear head) with ``model_fields`` changed."""
        return RunConfig(data=self.data(task), model=ModelConfig(model=self.model, **model_fields),
                         train=dataclasses.replace(self.train, seed=seed))

    def baseline(self, task: str, seed: int) -> RunConfig:
        """The profile's standard fine-tuning (final-layer [CLS], linear head), one run shared by every
        study that needs it: 01's [CLS] runs, 02's all-dimensions reference, 03's top layer, 04's "all
        trained", 05's direct runs, 06's fine-tuned models and 07's Full. It keeps its weights and its
        head inputs of every split, so no study trains it a second time."""
        return dataclasses.replace(self.run_config(task, seed), save_features=BASELINE_FEATURES, save_model=True)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", model="tiny", tasks=PACKAGED_TASKS, seeds=(0, 1, 2), max_seq_length=32,
        max_train_examples=48, max_eval_examples=24,
        train=TrainConfig(batch_size=16, epochs=1, learning_rate=5e-4),
        description="tiny random BERT (2 layers, hidden 32), 48 training examples: checks the code, not the science",
        workers=1),
    "default": Profile(
        name="default", model="minilm", tasks=PACKAGED_TASKS, seeds=(0, 1, 2), max_seq_length=48,
        max_train_examples=400, max_eval_examples=300,
        train=TrainConfig(batch_size=16, epochs=2, learning_rate=1e-4),
        description="all-MiniLM-L6-v2 (real BERT weights, 6 layers, hidden 384) on rt-polarity, rt-valence and "
                    "bbc-news; 400 training examples, 2 epochs, batch 16, lr 1e-4, 48 tokens; 2-core CPU",
        deviations=(
            "model: all-MiniLM-L6-v2 (6 layers, hidden 384, sentence-embedding weights) instead of bert-base-uncased",
            "tasks: packaged Rotten Tomatoes polarity/valence and BBC news instead of GLUE",
            "size: 400 stratified training examples, 300 validation and 300 test; 48 tokens (BBC articles are cut to "
            "their title and first sentence; 3.5% of Rotten Tomatoes snippets are truncated)",
            "recipe: 2 epochs, batch 16 and lr 1e-4 instead of up to 5 epochs, batch 64 and lr 5e-5: many small "
            "steps from few examples (in sizing runs with 500 examples, validation accuracy was near chance after "
            "one epoch at either rate, and higher after two at lr 1e-4)",
        )),
    "paper": Profile(
        name="paper", model="bert-base-uncased", tasks=GLUE_TASKS, seeds=(0, 1, 2), max_seq_length=128,
        max_train_examples=None, max_eval_examples=None, train=TrainConfig(),
        description="bert-base-uncased on the eight GLUE tasks, AdamW lr 5e-5, batch 64, up to 5 epochs, 128 tokens"),
}


def get_profile(name: str = "default", model: str | None = None, tasks: list[str] | tuple[str, ...] | None = None,
                seeds: list[int] | tuple[int, ...] | None = None) -> Profile:
    """Profile ``name`` with optional overrides of its model, tasks and seeds."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    profile = PROFILES[name]
    for task in tasks or ():
        get_task(task)  # fails with the list of known tasks
    if seeds is not None and len(seeds) == 0:
        raise ConfigError("seeds is empty; give at least one seed (three or more to report mean ± std)")
    return dataclasses.replace(profile, model=model or profile.model, tasks=tuple(tasks or profile.tasks),
                               seeds=tuple(seeds if seeds is not None else profile.seeds))


def notebook_setup(profile: str, model: str | None = None, tasks=None, output_dir=None) -> tuple[Profile, dict]:
    """(profile, output paths) for a study notebook; logs the profile and its deviations from the paper."""
    from .paths import output_paths
    from .reporting import setup_logging

    setup_logging()
    chosen = get_profile(profile, model=model, tasks=tasks)
    print(f"profile {chosen.name}: {chosen.description}; seeds {list(chosen.seeds)}")
    print("\n".join(f"deviation: {d}" for d in chosen.deviations))
    return chosen, output_paths(output_dir)
