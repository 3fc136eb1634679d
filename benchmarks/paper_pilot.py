"""The paper profile, piloted on this machine: a randomly initialised bert-base-shaped model (12 layers,
hidden 768, bert-base-uncased's vocabulary) on a local GLUE copy, through ``run_all.py`` with its caps,
one notebook at a time. It answers whether hidden 768 and 12 layers fit (02's 294,528-pair scan, 06's
768-d probes, 07's per-layer bases) and what each notebook costs at that size.

    python benchmarks/paper_pilot.py --glue-dir ../shared/glue --tasks rte mrpc \
        --max-train-examples 96 --max-eval-examples 48 --epochs 1 --seeds 0

Writes ``benchmarks/results/paper_pilot.csv``: per notebook, its seconds, the peak memory in use on the
machine while it ran (from /proc/meminfo, so the notebook's kernel and its worker processes together,
less what was in use before it started), and the CPU model. The weights are random, so the scores
mean nothing; the point is time and memory.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def memory_in_use() -> int:
    """Bytes in use on this machine: MemTotal - MemAvailable."""
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()}
    return fields["MemTotal"] - fields["MemAvailable"]


class PeakMemory:
    """Samples ``memory_in_use`` every ``interval`` seconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak, self._stop = interval, memory_in_use(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, memory_in_use())

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def write_random_bert_base(folder: Path) -> Path:
    """bert-base-uncased's shape (BertConfig's defaults: 12 layers, hidden 768, 12 heads, FFN 3072) with
    random weights, and bert-base-uncased's tokenizer (MiniLM ships the same vocabulary)."""
    if (folder / "config.json").exists():
        return folder
    from transformers import BertConfig, BertModel

    from fewdims_helpers.model.pretrained import minilm_path

    folder.mkdir(parents=True, exist_ok=True)
    BertModel(BertConfig()).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (minilm_path() / name).exists():
            shutil.copy(minilm_path() / name, folder / name)
    return folder


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glue-dir", required=True)
    parser.add_argument("--tasks", nargs="+", default=["rte", "mrpc"])
    parser.add_argument("--max-train-examples", default="96")
    parser.add_argument("--max-eval-examples", default="48")
    parser.add_argument("--epochs", default="1")
    parser.add_argument("--seeds", nargs="+", default=["0"])
    parser.add_argument("--only", nargs="+", default=["01", "02", "03", "04", "05", "06", "07"])
    parser.add_argument("--output-dir", default=str(REPO / "build" / "paper-pilot"))
    args = parser.parse_args()
    model = write_random_bert_base(REPO / "build" / "bert-base-random")
    rows = []
    for notebook in args.only:
        command = [sys.executable, str(REPO / "run_all.py"), "--profile", "paper", "--model", str(model),
                   "--glue-dir", args.glue_dir, "--tasks", *args.tasks, "--max-train-examples", args.max_train_examples,
                   "--max-eval-examples", args.max_eval_examples, "--epochs", args.epochs, "--seeds", *args.seeds,
                   "--only", notebook, "--output-dir", args.output_dir]
        before, start = memory_in_use(), time.perf_counter()
        with PeakMemory() as memory:
            result = subprocess.run(command, cwd=REPO)
        seconds = time.perf_counter() - start
        row = {"notebook": notebook, "exit": result.returncode, "seconds": round(seconds, 1),
               "peak_memory_gb": round((memory.peak - before) / 2**30, 2), "tasks": " ".join(args.tasks),
               "max_train_examples": args.max_train_examples, "max_eval_examples": args.max_eval_examples,
               "epochs": args.epochs, "seeds": " ".join(args.seeds), "cpu": cpu_model()}
        rows.append(row)
        print(f"paper_pilot: {notebook}: exit {result.returncode}, {seconds:.0f} s, peak memory "
              f"{row['peak_memory_gb']:.2f} GB above the {before / 2**30:.1f} GB in use before", flush=True)
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / "paper_pilot.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return max(row["exit"] for row in rows)


if __name__ == "__main__":
    sys.exit(main())
