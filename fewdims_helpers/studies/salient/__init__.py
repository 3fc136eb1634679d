"""Study 06: Matton & de Oliveira (2020), "Emergent Properties of Finetuned Language Representation
Models": how compressible is the [CLS] vector, and are there salient neurons?

Reproduced, for the pretrained model and for each fine-tuned model (study 04's standard runs):
- Sec. 3.1.1-3.1.2 (Figs. 1-3): test metric of a linear probe on the first n principal components,
  PCA fitted in-domain (task train features) or on general text, against n random dimensions;
- Sec. 3.1.3 (Fig. 4): explained-variance ratios of the general-text PCA, fine-tuned over pretrained,
  and the last leading index where they exceed 1, against the number of classes;
- Sec. 3.2 (Table 3, Figs. 5-6): each single dimension's probe, and greedy forward selection with
  5-fold cross-validation on train to 1, 5 and "natural" (number of classes) dimensions.
Probes (``probes.py``): logistic or ridge on features standardised on train, strength chosen on
validation, scored on test; the greedy search is vectorised (all candidates x folds as one batch of
Newton fits, closed-form ridge for regression) instead of scikit-learn's SequentialFeatureSelector.

Where our setting differs: MiniLM (hidden 384) and small packaged tasks instead of BERT-base on IMDB,
AG-news and DBpedia; the general text is a seeded sample of ``pool_size`` tweets, Amazon-review and
NYT-editorial snippets (vaderSentiment's archive) with every task text removed, instead of 1M
Wikipedia sentences; rt-valence is a regression (ridge, Pearson r; "natural" = 1 dimension); the
fine-tuned "All" column is a probe refit on all dimensions (the run's own head is shown beside it).

Verdicts (``verdicts``), for the fine-tuned models: a probe on the first ``VERDICT_COMPONENTS``
principal components (in-domain and general text), on the best single dimension (chosen on
validation, not the best of the test scores), and on the greedy first 1, 5 and natural dimensions,
each against the probe on all dimensions; from the probes' per-example test predictions, paired by
seed (the baseline runs' seeds) and test example; equivalence at the margin.

The study in four modules: ``features`` (the [CLS] features of every model state, cached), ``analysis``
(PCA, variance ratios, single and salient neurons, cached per state), ``tables`` (tables and
verdicts) and ``figures``; the general-text pool is a core module (``general_text``). The names a notebook uses are
here.
"""
from __future__ import annotations

from ...data.general_text import GENERAL_SOURCES, general_pool, read_general_text, task_texts, tokenize_pool
from .analysis import ALL, ANALYSIS_FORMAT, BEST_SINGLE, RATIO_COMPONENTS, VARIANTS, VERDICT_COMPONENTS, Analysis, \
    analyse, best_single_predictions, chance_score, fit_pca, leading_ratio_index, natural_dimensions, pca_curve, \
    pca_points, pca_predictions, salient_scores, single_neuron_scores, variance_ratios
from .features import Features, ModelState, encode_states, fine_tuned_runs, planned_runs
from .figures import best_neuron_activations, pca_curves, single_neuron_histograms, variance_ratio_curves
from .tables import STATES, best_neurons, curve_summary, curve_table, ratio_table, salient_table, \
    single_neuron_summary, verdict, verdicts

__all__ = ["ALL", "analyse", "Analysis", "ANALYSIS_FORMAT", "best_neuron_activations", "best_neurons", "BEST_SINGLE",
           "best_single_predictions", "chance_score", "curve_summary", "curve_table", "encode_states", "Features",
           "fine_tuned_runs", "fit_pca", "general_pool", "GENERAL_SOURCES", "leading_ratio_index", "ModelState",
           "natural_dimensions", "pca_curve", "pca_curves", "pca_points", "pca_predictions", "planned_runs",
           "RATIO_COMPONENTS", "ratio_table", "read_general_text", "salient_scores", "salient_table",
           "single_neuron_histograms", "single_neuron_scores", "single_neuron_summary", "STATES", "task_texts",
           "tokenize_pool", "variance_ratio_curves", "variance_ratios", "VARIANTS", "verdict", "VERDICT_COMPONENTS",
           "verdicts"]
