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

``calibration.calibrate`` measures training and evaluation examples per second of the real training function on a
sample of each task's own tokens, at the run's precision and the thread count a worker gets, in at
most ``CALIBRATION_SECONDS`` in all, and caches the rates per machine (CPU model and flags, or GPU),
precision, threads, model, sequence length and kind of run, under the cache folder. Analysis cells
(pair scans, PCA probes, outlier analyses) are not counted.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig, rate_key, run_kind
from ..data.tokenized import TokenizedSplit
from .calibration import CALIBRATION_SECONDS, calibrate, process_start_seconds, run_rates, share_gpu

log = logging.getLogger(__name__)


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
    footprint (``gpu_sharing``), the rates then calibrated with that many runs at once (``calibration.share_gpu``)."""
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
        rates, workers, sharing = share_gpu(rates, configs, runner, calibrate_rates)
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
