#!/usr/bin/env python
"""Training throughput of this package's loop against the Hugging Face ``Trainer``, in one run.

Same model (all-MiniLM-L6-v2 with BERT's pooler and a linear head, i.e. what
``AutoModelForSequenceClassification`` builds), same task split, learning rate, batch size,
epochs and seed. Three contestants:

- ``fewdims``: this package (dynamic padding, length-grouped batches, bf16 autocast where native,
  fused AdamW, fast dropout on CPU);
- ``trainer_run_glue_defaults``: ``Trainer`` as ``run_glue.py`` runs it by default (every example
  padded to 128 tokens, fp32);
- ``trainer_tuned``: ``Trainer`` with the speed options it offers (dynamic padding through
  ``DataCollatorWithPadding``, ``train_sampling_strategy="group_by_length"``, bf16).

Prints training samples per second, the ratios, and each side's test metric (speed is never
bought with accuracy), and writes ``benchmarks/results/throughput_vs_trainer.{csv,png}``. Not a test:
these machines are noisy, so only ratios measured in one run are meaningful.

    python benchmarks/throughput_vs_trainer.py [--train-examples 800] [--epochs 1] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fewdims_helpers.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from fewdims_helpers.data.tokenized import tokenized_task
from fewdims_helpers.stats.metrics import compute_metrics, predictions_from_logits
from fewdims_helpers.model.pretrained import minilm_path
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.store import RunStore
from fewdims_helpers.data.tasks import get_task, load_task
from fewdims_helpers.execution import resolve

RESULTS = Path(__file__).resolve().parent / "results"
OPTIONS = RunOptions(sources=DataSources(), progress=False)  # packaged data, default cache, device auto


def run_trainer(config: RunConfig, tuned: bool) -> dict:
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                              TrainingArguments, default_data_collator)

    spec = get_task(config.data.task)
    tokenizer_path = minilm_path()
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    dataset = load_task(config.data.task, OPTIONS.sources, config.data.split_seed, config.data.max_train_examples,
                        config.data.max_eval_examples)

    def tokenize(batch):
        # run_glue.py's default: pad_to_max_length=True, max_seq_length=128
        return tokenizer(*[batch[f] for f in spec.text_fields], truncation=True,
                         max_length=config.data.max_seq_length if tuned else 128,
                         padding=False if tuned else "max_length")

    encoded = dataset.map(tokenize, batched=True, remove_columns=[*spec.text_fields, "idx"])
    torch.manual_seed(config.train.seed)
    model = AutoModelForSequenceClassification.from_pretrained(tokenizer_path, num_labels=spec.num_labels)
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=config.train.batch_size,
            per_device_eval_batch_size=config.train.eval_batch_size, learning_rate=config.train.learning_rate,
            num_train_epochs=config.train.epochs, weight_decay=config.train.weight_decay, seed=config.train.seed,
            lr_scheduler_type="linear", save_strategy="no", eval_strategy="no", logging_strategy="no",
            report_to=[], disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
            train_sampling_strategy="group_by_length" if tuned else "random", bf16=tuned and resolve("cpu").precision("auto") == "bf16",
            optim="adamw_torch_fused" if tuned else "adamw_torch")
        trainer = Trainer(model=model, args=args, train_dataset=encoded["train"],
                          data_collator=DataCollatorWithPadding(tokenizer) if tuned else default_data_collator)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        output = trainer.predict(encoded["test"])
    # score against the labels predict() returns: with group_by_length its evaluation order is not the dataset's
    predictions = predictions_from_logits(np.asarray(output.predictions), spec.num_labels)
    test = compute_metrics(spec.metric, predictions, np.asarray(output.label_ids))
    return {"train_seconds": seconds, "test_score": test[spec.main_metric]}


def run_fewdims(config: RunConfig) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        metrics = Runner(RunStore(runs), OPTIONS).execute(config, progress=False)
    # training time only: the Trainer sides run no validation pass while training
    return {"train_seconds": sum(epoch["train_seconds"] for epoch in metrics["history"]),
            "test_score": metrics["test"][metrics["main_metric"]]}


CONTESTANTS = ("fewdims", "trainer_run_glue_defaults", "trainer_tuned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="rt-polarity")
    parser.add_argument("--train-examples", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="seeds per contestant; with several, the metrics are compared as mean ± std")
    parser.add_argument("--contestants", nargs="+", default=list(CONTESTANTS), choices=CONTESTANTS)
    args = parser.parse_args()

    base = RunConfig(DataConfig(args.task, max_seq_length=128, max_train_examples=args.train_examples,
                                max_eval_examples=400),
                     ModelConfig("minilm", token_selection="pooler"),
                     TrainConfig(batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.learning_rate))
    tokenized_task(base.data, "minilm", OPTIONS.sources)  # tokenise outside the timed region, as the Trainer sides do
    n_train = args.train_examples * args.epochs
    runners = {"fewdims": run_fewdims, "trainer_run_glue_defaults": lambda c: run_trainer(c, tuned=False),
               "trainer_tuned": lambda c: run_trainer(c, tuned=True)}
    rows = []
    for seed in args.seeds:  # contestants interleaved per seed, so drifting machine load hits all sides alike
        config = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed))
        for name in args.contestants:
            result = runners[name](config)
            rows.append({"contestant": name, "seed": seed, "samples_per_second": n_train / result["train_seconds"],
                         **result})
            print(f"{name:>27} seed {seed}: {rows[-1]['samples_per_second']:6.1f} samples/s, test "
                  f"{get_task(args.task).main_metric} {result['test_score']:.4f}", flush=True)
    per_seed = pd.DataFrame(rows)
    frame = per_seed.groupby("contestant", sort=False).agg(
        train_seconds=("train_seconds", "sum"), test_score=("test_score", "mean"),
        test_std=("test_score", "std"), seeds=("seed", "count")).reset_index()
    frame["samples_per_second"] = n_train * frame.seeds / frame.train_seconds
    if "fewdims" in set(frame.contestant):
        ours = frame.set_index("contestant").loc["fewdims"]
        frame["fewdims_speedup"] = ours.samples_per_second / frame["samples_per_second"]
        for row in frame.itertuples():
            if row.contestant != "fewdims":
                print(f"fewdims is {row.fewdims_speedup:.2f}x {row.contestant}; test metric over {row.seeds} seed(s): "
                      f"{ours.test_score:.4f} ± {ours.test_std:.4f} vs {row.test_score:.4f} ± {row.test_std:.4f} "
                      f"(difference {100 * (ours.test_score - row.test_score):+.1f} points)")
    RESULTS.mkdir(exist_ok=True)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(frame.contestant, frame.samples_per_second)
    for y, row in enumerate(frame.itertuples()):
        ax.text(row.samples_per_second, y, f" {row.samples_per_second:.1f}/s, test {row.test_score:.3f}", va="center")
    ax.set_xlabel("training samples per second")
    ax.set_xlim(right=frame.samples_per_second.max() * 1.6)
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput_vs_trainer.png", dpi=120)
    frame.assign(train_examples=args.train_examples, epochs=args.epochs, batch_size=args.batch_size,
                 threads=torch.get_num_threads()).to_csv(RESULTS / "throughput_vs_trainer.csv", index=False)
    per_seed.to_csv(RESULTS / "throughput_vs_trainer_per_seed.csv", index=False)
    print(f"wrote {RESULTS / 'throughput_vs_trainer.csv'}")


if __name__ == "__main__":
    main()
