"""Study 07, intrinsic task subspaces (Zhang, Liu & Shao, ACL 2023, Sec. 4) on our tasks.

1. Trajectories: one fine-tuning per task records t checkpoints of every encoder layer (a seed
   disjoint from the evaluation seeds, so no evaluated run shares its batch order with it).
2. Table 1: Full (the profile's baseline fine-tuning, ``Profile.baseline``), Freeze (encoder layers
   frozen, embeddings and head trained: V theta_t = 0), Random (random d-dim subspace per layer) and
   Intrinsic (the top-d directions of the task's own trajectory), over the profile's seeds.
3. Outlier dimensions (Sec. 4.5): coordinates of V theta_t beyond 3 sigma of their layer's mean;
   zeroed in the fine-tuned model against as many random coordinates (Table 3), and where they sit
   (Table 4: weight matrix and layer of each layer's top 10).
4. Transfer (Sec. 4.3): task B fine-tuned in the subspace of task A. Unified subspace (Sec. 4.4):
   one checkpoint per task (dim = number of tasks), its zero-shot variant without B, and a random
   subspace of the same dimension. Ablation over d (Appendix A.2).

The learning rate of theta_t (the paper's 0.01) is one of the readings that matter at our scale: the
paper fine-tunes for thousands of steps, the default profile for at most 250. It is selected per task on
validation from a small grid, separately for the intrinsic and the random subspace, with the
profile's ``selection_seed`` (``select_rates``): no selection run is a reported run, so Table 1's
runs with the profile's seeds are fresh. Every verdict (``verdicts``, ``zeroing_verdicts``) is an
interval over seeds (t, paired by seed) and test examples (jackknife) of per-example test predictions
(``verdicts.py``).

The study in four modules: ``design`` (what runs, from the notebook's parameters), ``outliers``
(Sec. 4.5's outlier dimensions, cached per run), ``tables`` (tables and verdicts) and ``figures``. The names a
notebook uses are here.
"""
from __future__ import annotations

from .design import FREEZE_SCALES, SELECTION_TEST_EXAMPLES, SETTINGS, VERDICT_SEEDS, ZEROED_SETTINGS, Design, \
    analysis_configs, design_for, freeze_config, planned_runs, rate_sweep_configs, run_analysis, run_table, \
    select_rates, selection_config, selection_full, subspace_config, table_configs, trajectories, trajectory_config, \
    zeroed_configs
from .outliers import BINS, SIGMAS, TOP, ZEROINGS, delta_profile, outlier_analyses, outlier_analysis, \
    outlier_locations, outlier_mask, outlier_share, retrained_zeroing_verdicts, run_zeroed, \
    zeroing_outcomes, zeroing_table, zeroing_verdicts
from .figures import transfer_heatmap, update_profiles
from .tables import CIRCULAR, INFORMATIVE, ORDERING, TABLE_CLAIMS, ZHANG_ROBERTA_TABLE6, ablation_runs, \
    analysis_verdicts, beside_zhang_roberta, is_roberta, oracle_table, rate_choices, rate_choices_note, seeds_note, selection_orderings, \
    setting_outcomes, theta_similarity, transfer_matrix, unified_runs, verdicts

__all__ = ["ablation_runs", "analysis_configs", "analysis_verdicts", "beside_zhang_roberta", "BINS", "CIRCULAR",
           "delta_profile", "Design", "design_for", "freeze_config", "FREEZE_SCALES", "INFORMATIVE", "is_roberta",
           "oracle_table", "ORDERING", "outlier_analyses", "outlier_analysis", "outlier_locations", "outlier_mask",
           "outlier_share", "planned_runs", "rate_choices", "rate_choices_note", "rate_sweep_configs",
           "retrained_zeroing_verdicts", "run_analysis", "run_table", "run_zeroed", "seeds_note", "select_rates",
           "selection_config", "selection_full", "selection_orderings", "SELECTION_TEST_EXAMPLES",
           "setting_outcomes", "SETTINGS", "SIGMAS", "subspace_config", "TABLE_CLAIMS", "table_configs",
           "theta_similarity", "TOP", "trajectories", "trajectory_config", "transfer_heatmap", "transfer_matrix",
           "unified_runs", "update_profiles", "VERDICT_SEEDS", "verdicts", "zeroed_configs", "ZEROED_SETTINGS",
           "zeroing_outcomes", "zeroing_table", "zeroing_verdicts", "ZEROINGS", "ZHANG_ROBERTA_TABLE6"]
