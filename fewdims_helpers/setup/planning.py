"""How long an invocation takes, before anything trains: the runs each notebook computes, the
examples and evaluation items they process, and minutes from a short calibration of this machine.

Each study module says which runs it executes (``planned_runs``: the same configs the study builds,
through its own config builders), so the plan follows the recipes wherever they change. Runs whose
config depends on an earlier result (02's selected subsets, 07's chosen rates) are counted from the
design with a stand-in config of the same cost, ``PlannedRun(known=False)``, until that result is in
the store. The cost of a run (``run_work``) counts what the training loop does:

- training examples: optimizer steps times the batch (epochs of the training split);
- evaluation items: a validation pass per epoch (or per ``eval_every`` steps where the recipe has
  it), the test pass, one pass per other split whose features or predictions are saved, the source
  task's test split after cross fine-tuning, a second test pass for the token choice;
- encoder work scaled by the layers computed (``layer = k`` computes k of L layers) and, for a partly
  frozen encoder, by the layers the backward pass reaches; a wholly frozen encoder runs once per
  split over the three splits (cached features, shared by every run with the same features) and its
  head trains at no encoder cost.

``calibrate`` measures training and evaluation examples per second of the real training function on a
sample of each task's own tokens, at the run's precision and the thread count a worker gets, in at
most ``CALIBRATION_SECONDS`` in all, and caches the rates per machine (CPU model and flags, or GPU),
precision, threads, model, sequence length and kind of run, under the cache folder. Analysis cells
(pair scans, PCA probes, outlier analyses) are not counted.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import RunConfig, content_key, rate_key, run_kind
from ..data.tokenized import TokenizedSplit

log = logging.getLogger(__name__)

CALIBRATION_SECONDS = 60.0  # the whole calibration of one plan, model loading included
CALIBRATION_FORMAT = 1  # bump when the measurement changes: older cached rates are then ignored


@dataclass(frozen=True)
class PlannedRun:
    """One run a notebook executes. ``known=False``: its config depends on an earlier result that is
    not in the store yet, so ``config`` is a stand-in of the same cost (its run id is not the real one)."""
    config: RunConfig
    known: bool = True


@dataclass(frozen=True)
class ExtraPass:
    """Evaluation work outside the runs, e.g. 06 encoding its general-text pool with each model state:
    ``items`` examples through the encoder of ``config`` (its model, task and sequence length)."""
    config: RunConfig
    items: int
    what: str


@dataclass
class StudyPlan:
    """What one notebook executes: its runs in order, extra encoder passes, and a note (e.g. too few tasks)."""
    runs: list[PlannedRun] = field(default_factory=list)
    extra: list[ExtraPass] = field(default_factory=list)
    note: str | None = None


# ----------------------------------------------------------------------------- the cost of one run
@dataclass(frozen=True)
class Work:
    """What one run processes. ``train_examples`` and ``eval_items`` are counts; ``train_units`` and
    ``eval_units`` the same weighted by the share of the encoder computed (what the calibrated rates
    of ``kind`` divide). ``frozen_key``: the cached features a frozen run shares with others."""
    train_examples: int
    eval_items: int
    train_units: float
    eval_units: float
    kind: str
    rate_key: tuple
    frozen_key: tuple | None = None


def training_steps(config: RunConfig, num_train: int) -> int:
    """Optimizer steps of the run, by the training function's own count."""
    from ..training.loop import total_steps

    return total_steps(config, num_train)


def run_work(config: RunConfig, tokens: dict[str, TokenizedSplit], num_layers: int,
             source_test: int = 0) -> Work:
    """The examples and evaluation items of one run (module docstring), ``source_test``: the size of the
    source task's test split of a cross fine-tuning (``init_from``)."""
    sizes = {split: len(part) for split, part in tokens.items()}
    hp, model = config.train, config.model
    steps = training_steps(config, sizes["train"])
    per_epoch = -(-sizes["train"] // hp.batch_size)
    train_examples = sizes["train"] * hp.epochs if steps == per_epoch * hp.epochs else steps * hp.batch_size
    eval_every = getattr(hp, "eval_every", None)
    passes = max(1, steps // eval_every) if eval_every else hp.epochs
    extra_splits = (set(config.save_features) | set(config.save_predictions)) - {"test"}
    eval_items = sizes["validation"] * passes + sizes["test"] + sum(sizes[s] for s in extra_splits)
    eval_items += source_test if config.init_from is not None else 0
    eval_items += sizes["test"] if model.token_selection == "max_norm_token" else 0
    depth = min(model.layer or num_layers, num_layers) / num_layers
    key = rate_key(config)
    if model.freeze_pretrained:  # encoder once per split, cached; the head trains on the cache
        frozen = (config.data, model.model, model.layer, model.token_selection, model.max_norm_include_special,
                  hp.precision)
        return Work(train_examples, eval_items, 0.0, float(sum(sizes.values())) * depth, "full", key, frozen)
    backward = (num_layers - min(model.frozen_layers, num_layers)) / num_layers  # the backward pass stops there
    train_units = train_examples * depth * (1 + 2 * backward) / 3  # a step is about a forward and two backward
    return Work(train_examples, eval_items, train_units, eval_items * depth, run_kind(config), key)


# ----------------------------------------------------------------------------- calibration
def machine_key() -> dict:
    """The machine as the rates depend on it: CPU model and flags (bf16 path), cores, GPU, torch."""
    import torch

    from ..runs.provenance import cpu_bf16_path, cpu_model

    flags = ""
    try:
        flags = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
    except OSError:
        pass
    return {"cpu": cpu_model(), "flags": content_key(flags.encode(), 12), "bf16": cpu_bf16_path(),
            "cpu_count": os.cpu_count(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__, "machine": platform.machine()}


@dataclass(frozen=True)
class Rates:
    """Measured on one run's recipe: encoder examples per second in training and in evaluation, and the
    seconds to build the model (load the encoder, set up the head)."""
    train_per_second: float
    eval_per_second: float
    load_seconds: float
    relative_to: tuple | None = None  # a subspace kind: the full run's key of the task it was measured on
    load_average: float | None = None  # the machine's 1-minute load when measured (busy: rates too low)
    estimated: bool = False  # not measured: the calibration ran out of time (``_estimated``)
    peak_bytes: int | None = None  # on a GPU: the run's peak memory (torch.cuda.max_memory_allocated)


def _subset(split: TokenizedSplit, rows: np.ndarray) -> TokenizedSplit:
    return TokenizedSplit(split.input_ids[rows], split.token_type_ids[rows], split.lengths[rows], split.labels[rows],
                          split.idx[rows])


def _measure(config: RunConfig, tokens: dict[str, TokenizedSplit], seconds: float, runner) -> Rates:
    """Train ``config`` with the training function on a seeded sample of its own training split and
    evaluate a sample of validation: a probe of one batch each (which also warms the kernels up), then,
    on the same model, as many examples as fit in about ``seconds`` in all (the probe's rates if none fit)."""
    from ..runs.models import initial_model
    from ..training.loop import build_model, train

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    model = initial_model(runner.store, config) if config.subspace is not None else build_model(config)
    load_seconds = time.perf_counter() - start

    def timed(train_rows: int, eval_rows: int, epochs: int) -> tuple[float, float]:
        rows = {"train": rng.choice(len(tokens["train"]), min(train_rows, len(tokens["train"])), replace=False),
                "validation": rng.choice(len(tokens["validation"]), min(eval_rows, len(tokens["validation"])),
                                         replace=False)}
        sample = {split: _subset(tokens[split], rows[split]) for split in rows}
        sample["test"] = sample["validation"]
        short = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs))
        history = train(short, sample, device=runner.execution, progress=False, model=model).history
        return (len(rows["train"]) * epochs / max(sum(h["train_seconds"] for h in history), 1e-6),
                len(rows["validation"]) / max(history[-1]["validation_seconds"], 1e-6))

    import torch

    batch, eval_batch = config.train.batch_size, config.train.eval_batch_size
    probe_train, probe_eval = timed(batch, eval_batch, 1)
    on_gpu = next(model.parameters()).is_cuda  # train() moved it to the device the runs use
    left = seconds - (time.perf_counter() - start)
    if left < 2 * (batch / probe_train + eval_batch / probe_eval):
        return Rates(probe_train, probe_eval, load_seconds, peak_bytes=torch.cuda.max_memory_allocated() if on_gpu
                     else None)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    train_rows = max(batch, int(probe_train * left * 0.55))
    epochs = min(20, max(1, math.ceil(train_rows / len(tokens["train"]))))
    eval_rows = max(eval_batch, int(probe_eval * left * 0.2))
    train_rate, eval_rate = timed(min(train_rows, len(tokens["train"])), eval_rows, epochs)
    return Rates(train_rate, eval_rate, load_seconds, peak_bytes=torch.cuda.max_memory_allocated() if on_gpu else None)


def calibration_config(config: RunConfig) -> RunConfig:
    """The run measured for ``config``'s rates: its task, recipe and kind with the whole encoder computed
    and trained, nothing saved and no source run (an intrinsic subspace measured in a random one of its
    dimension: the same cost per step, no trajectory needed)."""
    model = dataclasses.replace(config.model, layer=None, selected_dims=None, freeze_pretrained=False,
                                frozen_layers=0, head_dropconnect=0.0)
    subspace = config.subspace
    if subspace is not None and subspace.basis == "intrinsic":
        subspace = dataclasses.replace(subspace, basis="random", sources=())
    return RunConfig(data=config.data, model=model, train=config.train, subspace=subspace)


def calibration_path(cache_dir: Path, config: RunConfig, threads: int, device: str | None) -> Path:
    identity = {"machine": machine_key(), "threads": threads, "device": device or "auto", "rates": rate_key(config),
                "format": CALIBRATION_FORMAT}
    digest = content_key(identity, default=str)
    task = config.data.task if run_kind(config) == "full" else "any-task"
    return Path(cache_dir) / "calibration" / f"{task}-{run_kind(config)}-{digest}.json"


def run_rates(rates: dict[tuple, Rates], config: RunConfig) -> Rates | None:
    """The rates of ``config``: its task's plain rates, scaled for a subspace run by the subspace's
    measured ratio to the plain run of the task it was measured on."""
    plain = rates.get(rate_key(dataclasses.replace(config, subspace=None)))
    if run_kind(config) == "full" or plain is None:
        return plain
    sub = rates.get(rate_key(config))
    base = rates.get(sub.relative_to) if sub is not None and sub.relative_to else None
    if base is None:
        return None
    return Rates(plain.train_per_second * sub.train_per_second / base.train_per_second,
                 plain.eval_per_second * sub.eval_per_second / base.eval_per_second, sub.load_seconds)


def calibrate(configs: list[RunConfig], runner, threads: int, seconds: float = CALIBRATION_SECONDS,
              measure: bool = True) -> dict[tuple, Rates]:
    """Rates per ``rate_key`` of ``configs`` (one representative run each), read from the cache or measured
    with ``threads`` torch threads, all of them in at most ``seconds``. ``measure=False``: cached ones only."""
    import torch

    from ..paths import write_atomically

    chosen = {}
    for config in configs:
        if run_kind(config) == "subspace":  # measured beside the plain run of its task
            plain = dataclasses.replace(calibration_config(config), subspace=None)
            chosen.setdefault(rate_key(plain), plain)
        chosen.setdefault(rate_key(config), calibration_config(config))
    rates, missing = {}, []
    for key, config in chosen.items():
        path = calibration_path(runner.options.sources.cache, config, threads, runner.options.device)
        if path.exists():
            stored = json.loads(path.read_text())
            rates[key] = Rates(stored["train_per_second"], stored["eval_per_second"], stored["load_seconds"],
                               None if stored.get("relative_to") is None else tuple(stored["relative_to"]),
                               stored.get("load_average"), peak_bytes=stored.get("peak_bytes"))
        else:
            missing.append((key, config, path))
    if not measure or not missing:
        return rates
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        for index, (key, config, path) in enumerate(missing):
            budget = (seconds - (time.perf_counter() - start)) / (len(missing) - index)
            if budget < 1.0:  # out of time: estimated from the measured rates below, not cached
                continue
            measured = dataclasses.replace(_measure(config, runner.tokens(config), budget, runner),
                                           load_average=os.getloadavg()[0])
            if run_kind(config) == "subspace":
                measured = dataclasses.replace(measured, relative_to=rate_key(dataclasses.replace(config, subspace=None)))
            rates[key] = measured
            payload = {**dataclasses.asdict(measured), "machine": machine_key(), "threads": threads,
                       "rates": [str(k) for k in key], "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))
            if measured.peak_bytes is not None:  # the run store sizes its GPU workers by it (gpu_sharing.py)
                from ..runs.gpu_sharing import record_footprint

                record_footprint(runner.options.sources.cache, key, torch.cuda.get_device_name(), measured.peak_bytes)
            log.info("calibrated %s: %.1f train / %.1f eval examples per second", key, rates[key].train_per_second,
                     rates[key].eval_per_second)
    finally:
        torch.set_num_threads(previous)
    for key, config, _ in missing:
        if key not in rates:
            rates[key] = _estimated(rates, config)
    return {key: rate for key, rate in rates.items() if rate is not None}


def _estimated(rates: dict[tuple, Rates], config: RunConfig) -> Rates | None:
    """Rates of a key the calibration had no time for: a measured plain run of the same model, scaled by
    sequence length (a subspace: as costly as a plain run). Marked ``estimated``."""
    if run_kind(config) == "subspace":
        plain = next((k for k, r in rates.items() if k[6] == "full" and k[0] == config.model.model), None)
        return None if plain is None else dataclasses.replace(rates[plain], relative_to=plain, estimated=True)
    for key, rate in rates.items():
        if key[6] == "full" and key[0] == config.model.model and not rate.estimated:
            scale = key[2] / config.data.max_seq_length
            return Rates(rate.train_per_second * scale, rate.eval_per_second * scale, rate.load_seconds,
                         estimated=True)
    return None


def process_start_seconds(cache_dir: Path, measure: bool = True) -> float | None:
    """Seconds for a fresh Python process to import the run store (a worker's or a kernel's start), cached
    per machine; None when not cached and ``measure`` is False."""
    digest = content_key(machine_key())
    path = Path(cache_dir) / "calibration" / f"process-start-{digest}.json"
    if path.exists():
        return json.loads(path.read_text())["seconds"]
    if not measure:
        return None
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import fewdims_helpers.runs.store"], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": seconds}) + "\n")
    return seconds


# ----------------------------------------------------------------------------- the plan
@dataclass
class NotebookPlan:
    """One notebook's line of the plan."""
    notebook: str
    to_compute: list[PlannedRun]
    in_store: int
    earlier: int  # planned by an earlier notebook of this invocation
    train_examples: int
    eval_items: int
    run_seconds: dict[str, float]  # run id -> planned seconds of one worker (stand-ins included)
    seconds: float | None  # wall seconds with the workers, None without rates
    note: str | None = None

    @property
    def unresolved(self) -> int:
        return sum(not r.known for r in self.to_compute)


@dataclass
class Plan:
    notebooks: list[NotebookPlan]
    workers: int
    threads: int
    precision: str
    calibrated: bool
    calibration_seconds: float = 0.0
    warning: str | None = None
    estimated: int = 0  # rates the calibration had no time to measure
    sharing: str | None = None  # on a GPU with workers "auto": how many runs share it, and why

    @property
    def to_compute(self) -> int:
        return sum(len(n.to_compute) for n in self.notebooks)

    @property
    def seconds(self) -> float | None:
        times = [n.seconds for n in self.notebooks]
        return None if any(t is None for t in times) else sum(times)

    def run_seconds(self) -> dict[str, float]:
        return {run_id: s for n in self.notebooks for run_id, s in n.run_seconds.items()}

    def text(self) -> str:
        """The printed plan: one line per notebook and a total line."""
        def minutes(seconds: float | None) -> str:
            return "?" if seconds is None else f"{seconds / 60:.1f}"
        lines = [f"{'notebook':<28} {'to compute':>10} {'in store':>8} {'earlier':>7} {'train ex.':>10} "
                 f"{'eval items':>10} {'minutes':>8}"]
        for n in self.notebooks:
            pending = f" ({n.unresolved} from the design: ids depend on earlier results)" if n.unresolved else ""
            lines.append(f"{n.notebook:<28} {len(n.to_compute):>10} {n.in_store:>8} {n.earlier:>7} "
                         f"{n.train_examples:>10,} {n.eval_items:>10,} {minutes(n.seconds):>8}{pending}"
                         + (f"  [{n.note}]" if n.note else ""))
        lines.append(f"{'total':<28} {self.to_compute:>10} {sum(n.in_store for n in self.notebooks):>8} "
                     f"{sum(n.earlier for n in self.notebooks):>7} {sum(n.train_examples for n in self.notebooks):>10,} "
                     f"{sum(n.eval_items for n in self.notebooks):>10,} {minutes(self.seconds):>8}")
        lines.append(f"({self.workers} worker(s) of {self.threads} thread(s), precision {self.precision}; "
                     + (f"rates calibrated on this machine (cached; {self.calibration_seconds:.0f} s now)"
                        if self.calibrated else "no calibration: no minutes")
                     + "; runs and kernel starts only, analysis cells not counted)")
        if self.sharing:
            lines.append(f"on the GPU: {self.sharing}")
        if self.warning:
            lines.append(f"warning: {self.warning}")
        if self.estimated:
            lines.append(f"warning: {self.estimated} rate(s) estimated from the others: the calibration ran out of its "
                         f"{CALIBRATION_SECONDS:.0f} s; the next plan measures them")
        return "\n".join(lines)


def build_plan(studies: list[tuple[str, StudyPlan]], runner, workers: int | str, calibrate_rates: bool = True,
               seconds: float = CALIBRATION_SECONDS) -> Plan:
    """The plan of ``studies`` ((notebook name, its ``StudyPlan``), in order) against ``runner``'s store: per notebook
    the runs to compute (each counted once, by the first notebook that plans it), those in the store, their
    work, and wall seconds with ``workers`` parallel runs of cpu_count / workers threads each. ``workers``
    "auto": on a CPU ``workers.default_workers``; on a GPU as many as it holds at the runs' measured
    footprint (``gpu_sharing``), the rates then calibrated with that many runs at once (``_share_gpu``)."""
    from ..model.pretrained import pretrained_encoder
    from ..runs.workers import worker_count

    store, execution = runner.store, runner.execution
    gpu_auto = workers == "auto" and execution.kind == "cuda"
    workers = 1 if gpu_auto else worker_count(workers, execution)
    threads = max(1, (os.cpu_count() or 1) // workers)
    seen: set[str] = set()
    rows = []
    for name, study in studies:
        fresh, in_store, earlier = [], 0, 0
        for run in dict.fromkeys(study.runs):  # a run listed twice (queued early, then read) counts once
            run_id = run.config.run_id
            if run.known and run_id in seen:
                earlier += 1
            elif run.known and not runner.options.force and store.is_complete(run.config):
                in_store += 1
            else:
                fresh.append(run)
            seen.add(run_id)
        rows.append((name, study, fresh, in_store, earlier))
    configs = [p.config for _, _, fresh, _, _ in rows for p in fresh] + [e.config for _, s, *_ in rows for e in s.extra]
    began = time.perf_counter()
    start = process_start_seconds(runner.options.sources.cache, measure=calibrate_rates)
    rates = calibrate(configs, runner, threads, seconds - (time.perf_counter() - began), measure=calibrate_rates)
    sharing = None
    if gpu_auto and configs:
        rates, workers, sharing = _share_gpu(rates, configs, runner, calibrate_rates)
        threads = max(1, (os.cpu_count() or 1) // workers)
    calibration_seconds = time.perf_counter() - began
    load = max((r.load_average or 0.0 for r in rates.values()), default=0.0)
    estimated = sum(r.estimated for r in rates.values())
    precision = execution.precision(configs[0].train.precision) if configs else "-"
    planned = {p.config.run_id: p.config for _, study in studies for p in study.runs}
    frozen_done: set = set()
    notebooks = []
    split_cache: dict = {}

    def tokens_of(config: RunConfig) -> dict[str, TokenizedSplit]:  # many runs share one task's splits
        key = (config.data, config.model.model)
        if key not in split_cache:
            split_cache[key] = runner.tokens(config)
        return split_cache[key]

    for name, study, fresh, in_store, earlier in rows:
        train_examples = eval_items = 0
        run_seconds: dict[str, float] = {}
        missing_rates = False
        for index, run in enumerate(fresh):
            config = run.config
            tokens = tokens_of(config)
            source = len(tokens_of(planned.get(config.init_from) or store.stored_config(config.init_from))["test"]) \
                if config.init_from else 0
            work = run_work(config, tokens, pretrained_encoder(config.model.model).config.num_hidden_layers, source)
            train_examples, eval_items = train_examples + work.train_examples, eval_items + work.eval_items
            rate = run_rates(rates, config)
            eval_units = work.eval_units
            if work.frozen_key is not None:
                eval_units = 0.0 if work.frozen_key in frozen_done else eval_units
                frozen_done.add(work.frozen_key)
            if rate is None:
                missing_rates = True
                continue
            key = config.run_id if run.known else f"{config.run_id}#{index}"
            run_seconds[key] = (work.train_units / rate.train_per_second + eval_units / rate.eval_per_second
                                + rate.load_seconds)
        extra_seconds = 0.0
        for extra in study.extra:
            eval_items += extra.items
            rate = run_rates(rates, extra.config)
            if rate is None:
                missing_rates = True
                continue
            extra_seconds += extra.items / rate.eval_per_second
        wall = None
        if not missing_rates and start is not None:
            busy = sum(run_seconds.values())
            parallel = max(busy / workers, max(run_seconds.values(), default=0.0)) if len(fresh) > 1 else busy
            wall = start + (start if len(fresh) > 1 and workers > 1 else 0.0) + parallel + extra_seconds / workers
        notebooks.append(NotebookPlan(name, fresh, in_store, earlier, train_examples, eval_items, run_seconds, wall,
                                      study.note))
    return Plan(notebooks, workers, threads, precision,
                calibrated=start is not None and all(n.seconds is not None for n in notebooks),
                calibration_seconds=calibration_seconds, estimated=estimated, sharing=sharing,
                warning=(f"the machine was busy while calibrating (load {load:.1f} on {os.cpu_count()} cores): the "
                         f"minutes are too high; delete {Path(runner.options.sources.cache) / 'calibration'} and plan "
                         f"again on an idle machine") if load > (os.cpu_count() or 1) + 0.5 else None)


PACKED_SECONDS = 10.0  # about how long each packed calibration run trains


def _share_gpu(rates: dict[tuple, Rates], configs: list[RunConfig], runner, measure: bool
               ) -> tuple[dict[tuple, Rates], int, str]:
    """On a GPU with workers "auto": how many runs share it (``gpu_sharing.choose``, from its free memory and
    the largest footprint the calibration measured, else estimated) and the rates scaled to one run's speed
    with that many at once, measured on the most common plain recipe (``gpu_sharing.measure_packing``, cached
    per GPU) and applied to every recipe. Returns (rates, workers, what the plan says of it)."""
    import collections

    import torch

    from ..runs import gpu_sharing

    cache, gpu = runner.options.sources.cache, torch.cuda.get_device_name()
    by_key = {rate_key(c): c for c in configs}
    footprints = [(rates[key].peak_bytes, True) if key in rates and rates[key].peak_bytes
                  else gpu_sharing.run_footprint(config, cache, gpu) for key, config in by_key.items()]
    concurrency = gpu_sharing.choose(*max(footprints))
    runs = concurrency.runs
    plain = [rate_key(c) for c in configs if run_kind(c) == "full" and not c.model.freeze_pretrained]
    if runs == 1 or not plain:
        return rates, runs, concurrency.reason()
    key = collections.Counter(plain).most_common(1)[0][0]
    packing = gpu_sharing.cached_packing(cache, key, gpu, runs)
    if packing is None and measure and key in rates and not rates[key].estimated:
        config, alone = calibration_config(by_key[key]), rates[key]
        tokens = runner.tokens(config)
        guess = 2.0 / runs  # each run's share of its speed alone if the GPU gave twice one run's throughput
        train_rows = min(len(tokens["train"]), max(config.train.batch_size,
                                                   int(alone.train_per_second * guess * PACKED_SECONDS)))
        eval_rows = min(len(tokens["validation"]), max(config.train.eval_batch_size,
                                                        int(alone.eval_per_second * guess * PACKED_SECONDS / 5)))
        packing = gpu_sharing.measure_packing(config, tokens, runner.execution, runs,
                                              (alone.train_per_second, alone.eval_per_second), train_rows, eval_rows,
                                              threads=max(1, (os.cpu_count() or 1) // runs))
        gpu_sharing.record_packing(cache, key, gpu, packing)
        log.info("%s", packing.text())
    if packing is None:
        return rates, runs, f"{concurrency.reason()}; rates of one run alone (no packed calibration yet)"
    scaled = {k: dataclasses.replace(r, train_per_second=r.train_per_second * packing.train_share,
                                     eval_per_second=r.eval_per_second * packing.eval_share) for k, r in rates.items()}
    return scaled, runs, f"{concurrency.reason()}; {packing.text()}"


# ----------------------------------------------------------------------------- progress of an invocation
def clock(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """The whole invocation's progress, from the ledger its notebooks' stores write (``InvocationLedger.note``):
    runs computed of the plan's total, time elapsed and time left. Time left comes from the planned
    seconds of the runs still to compute, scaled by how the finished ones compared with the plan (the
    plan's own minutes until a tenth of its work is done; without calibrated rates, from the run counts)."""

    def __init__(self, plan: Plan | None, store, invocation: str, started: float | None = None):
        self.plan, self.store, self.invocation = plan, store, invocation
        self.started = time.time() if started is None else started
        self.total = plan.to_compute if plan is not None else None
        costs = plan.run_seconds() if plan is not None else {}
        self.costs = costs
        self.mean_cost = sum(costs.values()) / len(costs) if costs else None

    def done(self) -> list[str]:
        return self.store.ledger.invocation_runs(self.invocation)["computed"]

    def status(self, now: float | None = None) -> tuple[int, float, float | None]:
        """(runs computed, seconds elapsed, seconds left or None)."""
        elapsed = (time.time() if now is None else now) - self.started
        computed = self.done()
        if not self.total:
            return len(computed), elapsed, None
        if self.costs and self.plan.seconds:
            work = sum(self.costs.values())
            finished = min(sum(self.costs.get(r, self.mean_cost) for r in computed), work)
            fraction = finished / work
            if fraction < 0.1:
                return len(computed), elapsed, max(self.plan.seconds - elapsed, 0.0)
        else:
            fraction = min(len(computed) / self.total, 1.0)
            if fraction == 0:
                return 0, elapsed, None
        return len(computed), elapsed, elapsed * (1 - fraction) / fraction

    def line(self, now: float | None = None) -> str:
        done, elapsed, left = self.status(now)
        total = f" of {self.total}" if self.total is not None else ""
        return (f"all notebooks: {done}{total} runs, {clock(elapsed)} elapsed"
                + (f", about {clock(left)} left" if left is not None else ""))
