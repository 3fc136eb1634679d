"""Study 02, dimension-wise (Fukuhata & Kano 2025, Sec. 4.2): how few dimensions of the final
layer's [CLS] vector are enough? Three ways to ask it, so their answers can be compared:

1. ``fine-tune on a fixed subset`` (the paper's protocol): the head sees only k dimensions during
   the whole fine-tuning (``ModelConfig.selected_dims``); N random subsets per k, each trained with
   ``profile.selection_seed`` (selection only, never reported), the best chosen on validation and
   retrained with every reported seed (``profile.seeds``); only those fresh runs are reported.
2. ``train once, select at inference``: one fine-tuning per seed with random DropConnect on the head,
   cached validation/test features, and every k-subset scored by masking the head at inference. A
   subset's logits are the bias plus the sum of its dimensions' contributions ``x[:, d] * W[:, d]``,
   so all pairs (73,536 for hidden 384; 294,528 for 768) are scored exhaustively, vectorised; the
   paper sampled at most 0.1% of them. The same scan runs on the standard head of the baseline run.
3. ``refit``: the package's one linear-head refit (``probes.refit``: L2-regularised logistic or ridge
   regression, its strength chosen on validation) on the cached train features of just the subset's
   dimensions; the encoder is unchanged.
Ways 2 and 3 select on validation within each seed's run and report that seed's test predictions.
Every "the best k-subset is enough" verdict compares those per-example test predictions with the
all-dimensions baseline runs (paired interval, equivalence at the margin: ``verdicts.compare``).

**Random controls.** With the encoder fine-tuned, almost any dimensions may be enough, so each best k-subset
has a control: for each way, k and reported seed a random k-subset drawn afresh (``control_subset``: seeded
by a hash of the task, way, k and seed; every draw recorded in ``figures/02_dimension_wise_random``) and
trained and evaluated exactly as the best subset is: way 1 fine-tuned on it with that seed (its own runs),
way 2 masked on that seed's DropConnect head, way 3 refit on that run's features. Two verdicts per way and
k: "the best k-subset beats a random k-subset" (one-sided, paired by seed) and "a random k-subset is enough"
(equivalence against the same all-dimensions runs). A draw may coincide with the best subset (it is random);
it is kept, and the table and the verdict row count it (``coinciding_draws``).
The scoring and the refit live in the core module ``subsets`` (study 03 uses them too).

The study in three modules: ``runs`` (the configs and the runs of every way and control), ``tables``
(outcomes, tables and verdicts) and ``figures``. The names a notebook uses are here.
"""
from __future__ import annotations

from .runs import ALL, CONTROL_WAYS, SCAN_DROPCONNECT, SCAN_SPLITS, TOP_PAIRS, WAYS, Scan, best_on_validation, \
    control_configs, control_draws, control_outcomes, control_seed, control_subset, fixed_configs, head_configs, \
    inference_selection, planned_runs, random_subset_configs, run_controls, run_fixed_subsets, scan, scan_config, \
    selected_configs
from .figures import agreement_scatter, pair_rankings, subset_score_distributions
from .tables import agreement, baseline_outcomes, effective_dimensions, summary_table, verdict, verdicts, way_outcomes

__all__ = ["agreement", "agreement_scatter", "ALL", "baseline_outcomes", "best_on_validation", "control_configs",
           "control_draws", "control_outcomes", "control_seed", "control_subset", "CONTROL_WAYS",
           "effective_dimensions", "fixed_configs", "head_configs", "inference_selection", "pair_rankings",
           "planned_runs", "random_subset_configs", "run_controls", "run_fixed_subsets", "Scan", "scan",
           "scan_config", "SCAN_DROPCONNECT", "SCAN_SPLITS", "selected_configs", "subset_score_distributions",
           "summary_table", "TOP_PAIRS", "verdict", "verdicts", "way_outcomes", "WAYS"]
