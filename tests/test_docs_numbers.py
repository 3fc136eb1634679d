"""Every measured or computed number in the README and docs/ is the committed file's it comes from.

Each ``claim_*`` function below names the sentences of a page that print numbers, as templates ("{}" is
one printed number, "…" any text within a table cell), and the values read from the committed file
they come from (``results/timings-default.json``, ``benchmarks/results/``, ``figures/``) or computed
by the package (data counts, planned runs, model sizes). A printed number must equal its value within
its printed rounding. The blanket test then requires every other number in a page's prose to be a
value of a committed table (``findings.unbacked_prose_numbers``) or a setting listed in ``SETTINGS``.
A measurement no committed file holds belongs in CHANGELOG.md, which is history and is not checked.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewdims_helpers.report.findings import unbacked_prose_numbers

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
# docs/published.md is generated from fewdims_helpers/report/published.csv (the papers' numbers, not ours):
# tests/test_published.py checks it against that file
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md") if p.name != "published.md")]
_spec = importlib.util.spec_from_file_location("study_time", REPO / "benchmarks" / "study_time.py")
study_time = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study_time)
TIMED_ON = study_time.TIMED_ON  # the day each notebook was timed on the sized recipes (docs/speed.md says so)
NUMBER = r"([-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)"

# Numbers a page states that are settings, not results (with why), and are in no committed table.
SETTINGS = {
    "docs/speed.md": {"1.25": "the speed-up the package asks of an optimisation before adopting it",
                      "256": "the evaluation batch size that length-sorted batches of 64 replaced",
                      "90": "the budget issue 21 sets, in minutes"},
    "docs/studies.md": {"50000": "notebook 02's `triples` parameter"},
    "docs/scale-out.md": {"2.60": "the pinned Ray version (requirements-ray.txt)",
                          "2.52": "the Ray version that brought token authentication"},
}


# ----------------------------------------------------------------------------- the checker
def text(page: str) -> str:
    return " ".join((REPO / page).read_text().split())


def printed_matches(value: str, expected: float) -> bool:
    """Whether ``value`` as printed (``4,359``, ``-1.4``, ``2.7e-3``) is ``expected`` rounded to its digits."""
    mantissa, _, exponent = value.replace(",", "").replace("−", "-").lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    scale = 10.0 ** int(exponent or 0)
    return abs(float(mantissa) * scale - expected) <= 0.5 * 10.0 ** -decimals * scale * (1 + 1e-9)


def pattern(template: str) -> str:
    parts = re.split(r"(\{\}|…)", " ".join(template.split()))
    return "".join(NUMBER if p == "{}" else "[^|]*?" if p == "…" else re.escape(p) for p in parts)


def printed(page: str, template: str, content: str | None = None) -> re.Match:
    """Where ``page`` (or ``content``) says ``template``: the numbers are the match's groups."""
    match = re.search(pattern(template), text(page) if content is None else content)
    assert match, f"{page} no longer says: {template!r}"
    return match


def says(page: str, template: str, *values: float, content: str | None = None) -> list[str]:
    """Assert that ``page`` prints ``template`` with ``values``; return the numbers it printed."""
    match = printed(page, template, content)
    assert len(match.groups()) == len(values), template
    wrong = [f"{number} (the file gives {expected:.6g})" for number, expected in zip(match.groups(), values)
             if not printed_matches(number, float(expected))]
    assert not wrong, f"{page}: '{match.group(0)}' prints {'; '.join(wrong)}"
    return list(match.groups())


# ----------------------------------------------------------------------------- what the files hold
@lru_cache(maxsize=None)
def csv(name: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / name)


@lru_cache(maxsize=None)
def timings() -> dict[str, tuple[dict, dict | None]]:
    """Per notebook (by prefix), the entries of results/timings-default.json that finished on the day that
    notebook was timed: the first (computing its runs) and, where a later one computed nothing, the last
    (re-rendering from the store)."""
    entries = sorted((e for e in json.loads((REPO / "results" / "timings-default.json").read_text())
                      if e["finished"].startswith(TIMED_ON.get(e["notebook"][:2], "never"))),
                     key=lambda e: e["finished"])
    by_notebook: dict[str, list[dict]] = {}
    for entry in entries:
        by_notebook.setdefault(entry["notebook"][:2], []).append(entry)
    return {notebook: (got[0], got[-1] if len(got) > 1 and got[-1]["runs_computed"] == 0 else None)
            for notebook, got in sorted(by_notebook.items())}


@lru_cache(maxsize=None)
def data():
    """The counts the packaged tasks give under the default profile (cached archives; no training)."""
    from fewdims_helpers.setup import profiles
    from fewdims_helpers.model.pretrained import load_tokenizer
    from fewdims_helpers.options import DataSources
    from fewdims_helpers.data.tasks import BBC_TOPICS, load_task, packaged_duplicates, read_bbc_news, \
        read_rotten_tomatoes, read_vader_file

    sources = DataSources()
    profile = profiles.get_profile("default").resolve(sources)
    rt, bbc = load_task("rt-polarity", sources), load_task("bbc-news", sources)
    snippets = [line.split("\t", 2) for line in read_vader_file(sources, "movieReviewSnippets").splitlines()
                if line.strip()]
    lengths = np.array([len(ids) for ids in load_tokenizer(profile.model)(
        list(rt["train"]["sentence"]), truncation=False, verbose=False)["input_ids"]])
    seq_lengths = dict(profile.seq_lengths)
    return {"profile": profile, "rt_test": len(rt["test"]), "bbc_test": len(bbc["test"]),
            "bbc_validation": len(bbc["validation"]), "rt_snippets": len(read_rotten_tomatoes(sources)[0]),
            "zero_valence": sum(float(valence) == 0.0 for _, valence, _ in snippets),
            "bbc_articles": len(read_bbc_news(sources)[0]), "bbc_topics": len(BBC_TOPICS),
            "rt_duplicates": len(packaged_duplicates("rt-polarity", sources)),
            "bbc_duplicates": len(packaged_duplicates("bbc-news", sources)),
            "rt_quantile": math.ceil(np.quantile(lengths, 0.95)),
            "rt_truncated": 100 * float((lengths > seq_lengths["rt-polarity"]).mean()),
            "seq_lengths": set(seq_lengths.values())}


@lru_cache(maxsize=None)
def bert_base_layer_parameters() -> int:
    """Parameters of one bert-base block, as benchmarks/paper_estimate.py counts them."""
    from transformers import BertConfig

    h, f = BertConfig().hidden_size, BertConfig().intermediate_size
    return 4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h


@lru_cache(maxsize=None)
def minilm():
    from fewdims_helpers.model.pretrained import pretrained_encoder

    return pretrained_encoder("minilm")


# ----------------------------------------------------------------------------- the claims
def claim_default_profile_timings():
    t = timings()
    computed = ", ".join(f"{n} {{}}" for n in t)
    yield ("README.md", f"computing the runs: {computed};", [first["seconds"] for first, _ in t.values()])
    rendered = {n: last for n, (_, last) in t.items() if last is not None}
    yield ("README.md", "re-rendering from the store: " + ", ".join(f"{n} {{}}" for n in rendered) + " |",
           [last["seconds"] for last in rendered.values()])
    for notebook, (first, last) in t.items():
        cells = [first["runs_computed"], first["runs_used"], first["seconds"]] + ([] if last is None else [last["seconds"]])
        yield ("docs/speed.md", f"| {notebook} … | {{}} of {{}} used | {{}} | … | {'{}' if last is not None else ''} |",
               cells)
    total = sum(first["seconds"] for first, _ in t.values())
    yield ("docs/speed.md", f"The {len(t)} notebooks took {{}} s ({{}} hours) to compute", [total, total / 3600])
    yield ("README.md", "**The whole default study** takes about {} s ({} hours) on a 2-core AMD EPYC with "
           "AVX512-BF16 (bf16)", [total, total / 3600])
    study = csv("study_time.csv").set_index("notebook")  # benchmarks/study_time.py: the same sum, committed
    assert study.seconds["total"] == pytest.approx(total) and study.runs_computed["total"] == sum(
        f["runs_computed"] for f, _ in t.values()), "python benchmarks/study_time.py rewrites it"


def claim_test_split_and_data_counts():
    d = data()
    profile = d["profile"]
    yield ("docs/speed.md", "every run scores {} test items (rt tasks)", [d["rt_test"]])
    yield ("docs/deviations.md", "{} training examples, {} validation (bbc-news has {} in all), the whole test split "
           "({} items for rt-polarity and rt-valence, {} for bbc-news",
           [profile.max_train_examples, profile.max_eval_examples, d["bbc_validation"], d["rt_test"], d["bbc_test"]])
    assert d["seq_lengths"] == {48}, d["seq_lengths"]  # "48 tokens" on both pages
    yield ("docs/deviations.md", "{} tokens (the 95th percentile of the Rotten Tomatoes training snippets is {} tokens, "
           "and {}% of them are truncated", [48, d["rt_quantile"], d["rt_truncated"]])
    yield ("docs/deviations.md", "keeping the first: {} of bbc-news's {} articles (it re-publishes stories) and {} of "
           "the {} Rotten Tomatoes snippets",
           [d["bbc_duplicates"], d["bbc_articles"], d["rt_duplicates"], d["rt_snippets"]])
    yield ("docs/profiles.md", "MIT), {} sentences after dropping the {} of zero valence",
           [d["rt_snippets"], d["zero_valence"]])
    yield ("docs/profiles.md", "`bbc-news`: {} BBC articles in {} topics", [d["bbc_articles"], d["bbc_topics"]])


def claim_profiles():
    from fewdims_helpers.setup import profiles

    d = data()
    default, smoke, paper = (profiles.get_profile(n) for n in ("default", "smoke", "paper"))
    config = minilm().config
    steps = math.ceil(default.max_train_examples / default.train.batch_size) * default.train.epochs
    yield ("docs/profiles.md", "all-MiniLM-L6-v2 (real BERT weights, {} layers, hidden {}) | `rt-polarity`, "
           "`rt-valence`, `bbc-news` | {} train / {} validation (bbc-news: {}, all it has) / the whole test split "
           "({}; bbc-news {} after de-duplication), up to {} epochs ({} steps; … {} seeds; {} tokens for all three "
           "tasks (bound {}) |",
           [config.num_hidden_layers, config.hidden_size, default.max_train_examples, default.max_eval_examples,
            d["bbc_validation"], d["rt_test"], d["bbc_test"], default.train.epochs, steps, len(default.seeds),
            *d["seq_lengths"], default.max_seq_length])
    yield ("docs/profiles.md", "| the 3 packaged tasks | {} train / {} validation / {} test examples, {} epoch, {} seeds |",
           [smoke.max_train_examples, smoke.max_eval_examples, smoke.max_test_examples, smoke.train.epochs,
            len(smoke.seeds)])
    yield ("docs/profiles.md", "({} under the default profile, {} under the paper profile)",
           [default.max_seq_length, paper.max_seq_length])


def claim_coverage():
    table = csv("coverage.csv")
    coverage = table[table.failing_seed_loss_points == 0].sort_values("seed_sd_points")
    failing = table[table.failing_seed_loss_points > 0].sort_values("seed_sd_points")
    required = re.search(r"assert ([\d.]+) <= measured\[\"coverage90\"\]",
                         (REPO / "tests" / "test_verdicts.py").read_text()).group(1)
    yield ("README.md", "the 90% interval covered a planted difference in {} of replicates when example noise "
           "dominates and in {} at a seed standard deviation of {} points per side; `tests/test_verdicts.py` "
           "requires at least {} in both regimes",
           [coverage.coverage90.iloc[0], coverage.coverage90.iloc[-1], coverage.seed_sd_points.iloc[-1],
            float(required)])
    yield ("README.md", "When each seed of one side fails with probability {} (losing {} points), it covered the "
           "population difference in {} of replicates at a seed standard deviation of {} points and in {} at {} points",
           [failing.failing_share.iloc[0], failing.failing_seed_loss_points.iloc[0], failing.coverage90.iloc[0],
            failing.seed_sd_points.iloc[0], failing.coverage90.iloc[-1], failing.seed_sd_points.iloc[-1]])
    yield ("docs/studies.md", "the 95% interval covered a planted difference in {} to {} of replicates",
           [coverage.coverage95.min(), coverage.coverage95.max()])


def claim_roofline():
    r = csv("roofline.csv")
    fast, slow = r[r.bf16_path == "AVX512-BF16"], r[r.bf16_path == "none"]

    def gemm(rows, dtype, threads, kind=None, shape=None):
        rows = rows[(rows.measure == "gemm") & (rows.dtype == dtype) & (rows.threads == threads)]
        rows = rows if kind is None else rows[rows.kind == kind]
        return rows if shape is None else rows[rows["shape"] == shape].gflops.item()

    def step(rows, threads):
        return rows[(rows.measure == "training step") & (rows.threads == threads)].iloc[0]

    slow1, fast1, fast2, slow2 = step(slow, 1), step(fast, 1), step(fast, 2), step(slow, 2)
    yield ("docs/speed.md", "measured fp32 products at {} to {} GFLOP/s on 1 thread, and bf16 at {} to {} (emulated",
           [gemm(slow, "fp32", 1).gflops.min(), gemm(slow, "fp32", 1).gflops.max(),
            gemm(slow, "bf16", 1).gflops.min(), gemm(slow, "bf16", 1).gflops.max()])
    yield ("docs/speed.md", "against {} to {} and {} to {} on the AVX512-BF16 machine",
           [gemm(fast, "fp32", 1).gflops.min(), gemm(fast, "fp32", 1).gflops.max(),
            gemm(fast, "bf16", 1).gflops.min(), gemm(fast, "bf16", 1).gflops.max()])
    yield ("docs/speed.md", "Its baseline run trained {} samples/s on 1 thread, against {} there: {}x slower",
           [slow1.train_samples_per_second, fast1.train_samples_per_second,
            fast1.train_samples_per_second / slow1.train_samples_per_second])
    model = gemm(slow, "fp32", 1, "model").set_index("shape").gflops / gemm(slow, "bf16", 1, "model").set_index("shape").gflops
    yield ("docs/speed.md", "at the model's shapes ran {} to {} times slower than fp32 on 1 thread", [model.min(), model.max()])
    yield ("docs/speed.md", "(6 x {}M non-embedding parameters", [fast1.non_embedding_parameters / 1e6])
    yield ("docs/speed.md", "bf16 products: {} GFLOP/s on 1 thread at 2048² ({} at 4096², {} to {} at the model's "
           "shapes), {} on 2 threads; fp32 about {}x slower ({} to {} on 1 thread)",
           [gemm(fast, "bf16", 1, "big", "square 2048"), gemm(fast, "bf16", 1, "big", "square 4096"),
            gemm(fast, "bf16", 1, "model").gflops.min(), gemm(fast, "bf16", 1, "model").gflops.max(),
            gemm(fast, "bf16", 2, "big", "square 2048"),
            gemm(fast, "bf16", 1, "big", "square 2048") / gemm(fast, "fp32", 1, "big", "square 2048"),
            gemm(fast, "fp32", 1).gflops.min(), gemm(fast, "fp32", 1).gflops.max()])
    yield ("docs/speed.md", "The training step achieved **{} GFLOP/s on 1 thread, {}% of the measured big-GEMM "
           "peak**, and {} GFLOP/s on 2 threads, {}% ({}% and {}% of the model-shape products)",
           [fast1.gflops, 100 * fast1.utilisation_of_big_gemm, fast2.gflops, 100 * fast2.utilisation_of_big_gemm,
            100 * fast1.utilisation_of_model_gemm, 100 * fast2.utilisation_of_model_gemm])
    yield ("docs/speed.md", "Evaluation ran {} samples/s against training's {} on 1 thread ({}x), {} against {} on 2 ({}x)",
           [fast1.eval_samples_per_second, fast1.train_samples_per_second,
            fast1.eval_samples_per_second / fast1.train_samples_per_second, fast2.eval_samples_per_second,
            fast2.train_samples_per_second, fast2.eval_samples_per_second / fast2.train_samples_per_second])
    yield ("docs/speed.md", "fp32 products {} GFLOP/s at 2048² and {} at 4096² on 1 thread ({} to {} at the model's "
           "shapes), {} and {} on 2; bf16 is emulated, {} to {} GFLOP/s at the model's shapes",
           [gemm(slow, "fp32", 1, "big", "square 2048"), gemm(slow, "fp32", 1, "big", "square 4096"),
            gemm(slow, "fp32", 1, "model").gflops.min(), gemm(slow, "fp32", 1, "model").gflops.max(),
            gemm(slow, "fp32", 2, "big", "square 2048"), gemm(slow, "fp32", 2, "big", "square 4096"),
            gemm(slow, "bf16", 1, "model").gflops.min(), gemm(slow, "bf16", 1, "model").gflops.max()])
    yield ("docs/speed.md", "The fp32 training step achieved **{} GFLOP/s on 1 thread, {}% of the measured big-GEMM "
           "peak** ({} on 2 threads, {}%); evaluation {} samples/s against training's {} ({}x)",
           [slow1.gflops, 100 * slow1.utilisation_of_big_gemm, slow2.gflops, 100 * slow2.utilisation_of_big_gemm,
            slow1.eval_samples_per_second, slow1.train_samples_per_second,
            slow1.eval_samples_per_second / slow1.train_samples_per_second])


def claim_throughput():
    total = csv("throughput_vs_trainer.csv").set_index("contestant")
    speed = csv("throughput_vs_trainer_per_seed.csv").groupby("contestant").samples_per_second
    sides = ["fewdims", "trainer_run_glue_defaults", "trainer_tuned"]
    gaps = [100 * (total.test_score["fewdims"] - total.test_score[side]) for side in sides[1:]]
    values = []
    for side in sides:
        values += [speed.min()[side], speed.max()[side], total.test_score[side], total.test_std[side]]
    yield ("docs/speed.md", "this package {} to {} samples/s (test accuracy {} ± {} over the 3 seeds); `Trainer` with "
           "`run_glue.py` defaults (static padding to 128, fp32) {} to {} ({} ± {}); `Trainer` tuned (dynamic "
           "padding, `group_by_length`, bf16, fused AdamW) {} to {} ({} ± {}): **{}x** and **{}x**, at {} and {} "
           "points of accuracy",
           [*values, *total.fewdims_speedup[sides[1:]], *gaps])
    yield ("docs/speed.md", "this package's mean accuracy is {} and {} points above the two `Trainer` setups. Those "
           "gaps are smaller than the seed-to-seed spread of the tuned `Trainer` (± {} points) and about that of "
           "this package (± {})",
           [*gaps, 100 * total.test_std["trainer_tuned"], 100 * total.test_std["fewdims"]])


def claim_dimension_search_cost():
    cost = csv("dimension_search_cost.csv")
    paper = cost[cost.method.str.startswith("fine-tune")].iloc[0]
    scan = cost[cost.method.str.startswith("exhaustive")].set_index(["hidden", "labels"])
    yield ("docs/speed.md", "one fine-tuning on a fixed pair (the paper's way): {} s; every pair of one cached head: "
           "{} pairs in {} s (2 labels) and {} s (5 labels) for hidden 384, {} pairs in {} s and {} s for hidden "
           "768; all pairs the paper's way would take about {} days",
           [paper.seconds_per_subset, scan.measured_subsets[384, 2], scan.seconds_all_pairs[384, 2],
            scan.seconds_all_pairs[384, 5], scan.measured_subsets[768, 2], scan.seconds_all_pairs[768, 2],
            scan.seconds_all_pairs[768, 5], paper.seconds_all_pairs / 86400])
    yield ("docs/studies.md", "score **every** pair ({} for hidden 384)", [scan.measured_subsets[384, 2]])


def claim_frozen_heads():
    f = csv("frozen_heads.csv")
    one, six = f[f.runs == 1].set_index("method"), f[f.runs == 6].set_index("method")
    every, cached = "frozen model, encoder runs every step", "cached features, encoder runs once"
    assert one.test_score[every] == one.test_score[cached]  # "test ... both"
    yield ("docs/speed.md", "one run: frozen encoder run every step {} s against cached features {} s including the "
           "encoding pass, test {} both: **{}x**; notebook 04's six frozen runs of a task (2 heads x 3 seeds) sharing "
           "one encoding: {} s against {} s, mean test {} against {}: **{}x**",
           [one.seconds[every], one.seconds[cached], one.test_score[cached], one.seconds[every] / one.seconds[cached],
            six.seconds[every], six.seconds[cached], six.test_score[every], six.test_score[cached],
            six.seconds[every] / six.seconds[cached]])


def claim_layer_cost():
    layers = csv("layer_cost.csv").sort_values("layer")
    yield ("docs/speed.md", "layer 1 to 6: {}, {}, {}, {}, {}, {} of the full model's training time ({} s). The rounds "
           "differed by up to {}x for one layer",
           [*layers.share_of_full, layers.train_seconds.iloc[-1],
            (layers.slowest_seconds / layers.train_seconds).max()])


def claim_basis_products():
    b = csv("basis_products.csv").set_index("basis")
    yield ("docs/speed.md", "one MiniLM layer ({}M parameters)", [b.parameters_per_layer["float32"] / 1e6])
    yield ("docs/speed.md", "float32 {} ms per layer and step, about {} s of a 6-layer, 50-step run; bfloat16 {} ms: "
           "**{}x slower**, with a {} relative error in Vθₜ and max \\|VᵀV − I\\| of {} (float32: {})",
           [b.step_ms["float32"], b.seconds_per_run["float32"], b.step_ms["bfloat16"],
            b.step_ms["bfloat16"] / b.step_ms["float32"], b.update_relative_error["bfloat16"],
            b.max_orthogonality_error["bfloat16"], b.max_orthogonality_error["float32"]])


def claim_cost_curve_and_paper_estimate():
    curve = csv("cost_curve.csv")
    size = curve[curve.sweep == "size"]
    slope, intercept = np.polyfit(size.train_examples, size.train_seconds, 1)
    first = curve.iloc[0]
    yield ("docs/speed.md", "{} ms per training example at 48 tokens (+{} s fixed); time grows as L^{} from 16 to 128 "
           "tokens; {} GFLOP/s achieved on 2 threads, **{}%** of the {} GFLOP/s measured",
           [first.ms_per_example_slope, intercept, first.length_exponent,
            first.mfu * first.measured_bf16_gemm_gflops, 100 * first.mfu, first.measured_bf16_gemm_gflops])
    assert slope * 1000 == pytest.approx(first.ms_per_example_slope)

    estimate = csv("paper_estimate.csv").set_index("notebook")
    flops = estimate.PFLOP * 1e15
    cpu = (flops / (estimate["CPU-days on this machine (estimate)"] * 86400)).dropna().iloc[0]
    gpu = (flops / (estimate["GPU-hours (estimate)"] * 3600)).dropna().iloc[0]
    yield ("docs/speed.md", "FLOPs are 6 × {}M non-embedding parameters per training token",
           [12 * bert_base_layer_parameters() / 1e6])
    mfu, peak = printed("docs/speed.md", "GPU hours assume one A100 at {}% model-FLOP utilisation of its {} dense "
                                         "bf16 TFLOP/s").groups()  # the script's defaults, as its CSV used them
    assert float(mfu) / 100 * float(peak) * 1e12 == pytest.approx(gpu, rel=1e-3), "the GPU-hours' rate"
    yield ("docs/speed.md", "CPU days use the {} GFLOP/s the cost curve measured", [cpu / 1e9])
    yield ("docs/speed.md", "time grows linearly with the number of training examples (correlation {})",
           [size.train_seconds.corr(size.train_examples)])
    for notebook, row in estimate.iterrows():
        cells = [row.PFLOP, row["GPU-hours (estimate)"], row["CPU-days on this machine (estimate)"]]
        if notebook == "total":
            yield ("docs/speed.md", "| **total** | **{}** | **{}** | **{}** |", cells)
        else:
            first_cell = "{} (no training)" if row.PFLOP == 0 else "{}"
            yield ("docs/speed.md", f"| {notebook[:2]} … | {first_cell} | {{}} | {{}} |", cells)


def claim_compiled_step():
    step = csv("compiled_step.csv")
    compiled, eager = step[step.side == "compiled"], step[step.side == "eager"]
    torch_dropout = step[step.side.str.startswith("compiled, torch's dropout")]
    profile = csv("compiled_step_profile.csv")
    group = profile.groupby(["side", "group"]).self_cpu_seconds.sum()
    copies = profile[profile.operator == "aten::copy_"].set_index("side").self_cpu_seconds
    graphs = profile[(profile.side == "compiled") & profile.operator.str.startswith("## Call CompiledFxGraph")]
    elementwise = sum(group["eager", g] for g in ("activations", "attention", "dropout", "normalisation"))
    yield ("docs/speed.md", "steady-state training **{}x** (slower), validation {}x; compiling took about {} s per "
           "process with inductor's on-disk cache warm; validation accuracy {} against {} eager (mean of 3 seeds)",
           [compiled.train_speedup.iloc[0], compiled.validation_speedup.iloc[0],
            (compiled.first_epoch_seconds - compiled.steady_epoch_seconds).mean(),
            compiled.validation_accuracy.mean(), eager.validation_accuracy.mean()])
    yield ("docs/speed.md", "matrix products are unchanged ({} s of self CPU time compiled, {} s eager); autocast's "
           "casts go (copies {} s to {} s); the element-wise work is fused but not cheaper (activations, attention, "
           "dropout and normalisation {} s eager, inductor's kernels {} s); and the encoder runs as {} separate "
           "compiled graphs, whose calls cost {} s",
           [group["compiled", "matrix products"], group["eager", "matrix products"], copies["eager"],
            copies["compiled"], elementwise, group["compiled", "inductor kernels"], len(graphs),
            graphs.self_cpu_seconds.sum()])
    yield ("docs/speed.md", "was slower still: **{}x** training, {}x validation",
           [torch_dropout.train_speedup.iloc[0], torch_dropout.validation_speedup.iloc[0]])


def claim_plan():
    plan = csv("plan_default.csv").set_index("notebook")
    yield ("README.md", "A whole regeneration of the default profile was planned at {} minutes", [plan.minutes["total"]])
    yield ("docs/speed.md", "07 is planned at {} minutes from an empty store and the whole study at {}",
           [plan.minutes["07_intrinsic_subspaces.ipynb"], plan.minutes["total"]])


def claim_power():
    power = pd.read_csv(RESULTS / "power.csv", dtype={"study": str})
    three = power[power.projected_seeds == 3].groupby("study").same_verdict.agg(["sum", "size"])
    template = ", ".join(f"{int(study):02d} {{}} of {{}}" for study in three.index)
    yield ("docs/speed.md", "With 3 seeds instead of 5 the notebooks would keep " + template + " of their verdicts "
           "({} would change)", [v for row in three.itertuples() for v in (row.sum, row.size)]
           + [(three["size"] - three["sum"]).sum()])


def claim_gpu_check():
    g = csv("gpu_check.csv").set_index(["shape", "concurrent_runs"])
    about = json.loads((RESULTS / "gpu_check.json").read_text())
    m1, m4 = g.loc[("minilm-shaped", 1)], g.loc[("minilm-shaped", 4)]
    b1, b4 = g.loc[("bert-base-shaped", 1)], g.loc[("bert-base-shaped", 4)]
    yield ("docs/speed.md", "bf16 products at {} TFLOP/s. MiniLM-shaped (batch {}): {} samples/s for one run, {}% of that "
           "peak; four runs at once {} samples/s together (**{}x**). bert-base-shaped (batch {}): {} samples/s, {} TFLOP/s, "
           "{}% of the peak; four at once {} samples/s (**{}x**), {} TFLOP/s, {}%",
           [about["bf16_gemm_peak_tflops"], 16, m1.samples_per_second, 100 * m1.utilisation_of_gemm_peak,
            m4.samples_per_second, about["minilm-shaped_packing_gain"], 64, b1.samples_per_second, b1.model_flops / 1e12,
            100 * b1.utilisation_of_gemm_peak, b4.samples_per_second, about["bert-base-shaped_packing_gain"],
            b4.model_flops / 1e12, 100 * b4.utilisation_of_gemm_peak])
    yield ("README.md", "estimated at {} GPU-hours on one H200", [about["paper_profile_gpu_hours"]])
    yield ("docs/speed.md", "at one bert-base-shaped run's measured {} TFLOP/s on the H200: {} GPU-hours",
           [b1.model_flops / 1e12, about["paper_profile_gpu_hours"]])
    yield ("docs/scale-out.md", "four MiniLM-shaped runs packed at once trained {}x the samples/s of one, and four "
           "bert-base-shaped runs {}x: `{}` suits",
           [about["minilm-shaped_packing_gain"], about["bert-base-shaped_packing_gain"], 0.25])


def claim_paper_pilot():
    pilot = csv("paper_pilot.csv")
    template = ", ".join(f"{n:02d} {{}} s ({{}} GB)" for n in pilot.notebook)
    yield ("docs/speed.md", template, [v for row in pilot.itertuples() for v in (row.seconds, row.peak_memory_gb)])
    layer = bert_base_layer_parameters()
    yield ("docs/speed.md", "one model's bases alone take 12 x {}M x 32 x 4 bytes = {} GiB",
           [layer / 1e6, 12 * layer * 32 * 4 / 2 ** 30])


def claim_profile_run():
    run = csv("profile_run.csv")
    share = run.groupby("group").share.sum()
    operator = run.set_index("operator")
    yield ("docs/speed.md", "Matrix products take {}% of CPU time. Copies take {}%: they are bf16 autocast's casts of "
           "weights and activations. The fused AdamW step takes {}%, activations {}% and dropout {}%",
           [100 * share["matrix products"], 100 * operator.share["aten::copy_"],
            100 * operator.share["aten::_fused_adamw_"], 100 * share["activations"], 100 * share["dropout"]])
    yield ("docs/speed.md", "halved the optimizer step, now {} s per run", [operator.self_cpu_seconds["aten::_fused_adamw_"]])


def claim_model_facts():
    from fewdims_helpers.training.fast_dropout import FastDropout

    encoder = minilm()
    rows, hidden = encoder.embeddings.word_embeddings.weight.shape
    yield ("docs/speed.md", "all {} rows ({}M parameters of MiniLM's {}M)",
           [rows, rows * hidden / 1e6, sum(p.numel() for p in encoder.parameters()) / 1e6])
    dropout = FastDropout(encoder.config.hidden_dropout_prob, np.random.default_rng(0))
    yield ("docs/deviations.md", "`round(p·65536)/65536` = {} for p = {}", [dropout.threshold / 65536, dropout.p])


def claim_zhang_table():
    from fewdims_helpers.studies.intrinsic.tables import ZHANG_ROBERTA_TABLE6 as paper

    yield ("docs/model-families.md", "SST-2 {} / {} / {} and STS-B {} / {} / {}",
           [*paper["sst2"].values(), *paper["stsb"].values()])


CLAIMS = [value for name, value in dict(globals()).items() if name.startswith("claim_")]


# ----------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("claims", CLAIMS, ids=lambda f: f.__name__.removeprefix("claim_"))
def test_each_measured_number_in_the_docs_is_the_committed_files(claims):
    for page, template, values in claims():
        says(page, template, *values)


def test_every_other_number_in_the_docs_prose_is_a_committed_value_or_a_setting():
    checked: dict[str, set[str]] = {}
    for claims in CLAIMS:
        for page, template, values in claims():
            checked.setdefault(page, set()).update(n.replace(",", "") for n in says(page, template, *values))
    unchecked = {}
    for page in PAGES:
        known = checked.get(page, set()) | set(SETTINGS.get(page, {}))
        left = [n for n in unbacked_prose_numbers((REPO / page).read_text(), REPO) if n not in known]
        if left:
            unchecked[page] = left
    assert unchecked == {}, "a number no committed file holds: check it here, or move it to CHANGELOG.md"


def test_a_stale_number_is_caught():
    content = text("docs/speed.md")
    roofline = next(c for c in claim_roofline() if "Its baseline run" in c[1])
    says("docs/speed.md", roofline[1], *roofline[2], content=content)
    stale = re.sub(r"there: [\d.]+x slower", "there: 5.3x slower", content)
    with pytest.raises(AssertionError, match=r"prints 5\.3"):
        says("docs/speed.md", roofline[1], *roofline[2], content=stale)
    assert printed_matches("4,359", 4359.311) and printed_matches("2.7e-3", 0.0027378)
    assert not printed_matches("0.72", 0.726147) and printed_matches("-1.4", -1.3725)
