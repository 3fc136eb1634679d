"""The sizing study: does every family of runs converge under its recipe? Sized before any reported run, and
checked on the reported runs themselves afterwards (``convergence``).

Each configuration family the studies train (the baseline fine-tuning; 03's heads on a low layer;
04's "frozen but the top layer"; 05's second fine-tuning; 07's Freeze) is trained once per task on
the profile's ``selection_seed``, a seed no reported run uses, with the profile's recipe but no early
stop, so its whole validation curve up to the step cap is seen. A family's curve **has plateaued**
when the best validation score of the last third of the steps is above the best before it by at most
one standard error of a validation score (``validation_noise``: about 1.8 points of accuracy at 80% on
500 items), and at least ``PLATEAU_GAIN`` (1 point of the metric x 100). ``benchmarks/sizing.py`` runs it and writes the curves
(``figures/sizing_curves.png``), the check per family and task (``figures/sizing.csv``) and the recipe
table (``figures/recipes.csv``) that the README shows.

That check on the selection seed is a pre-check, one curve per family and task. **The plateau rule** is decided
on the reported runs (``convergence``): over a family's reported seeds, the median of what the last third of
training adds to the best validation score (``last_third_gain``) is at most ``PLATEAU_GAIN`` (1 point of the
metric x 100). A family of reported runs is every run whose config differs from another's only in its seed
(``family_key``; a run it starts from counts by its own family), and the runs on a subset of dimensions
drawn afresh for each seed (02's random controls) are one family per recipe and subset size. ``benchmarks/convergence.py`` computes it
for the committed reference and lists it in ``figures/sizing.md``.

07's Random and Intrinsic subspaces are not here: their learning rate of theta_t is chosen on the same
seed, from their own validation sweep (``studies/intrinsic.select_rates``), and 04's frozen heads train
to convergence on cached features (``Profile.frozen_head_train``, sized on those features). 07's Freeze
is sized at the rates its own sweep chose (``freeze``: the caller passes that study's configs).

The study's runs and checks are ``recipes``; the plateau rule on the reported runs is ``report/convergence``
(the last third's gain of each run), which the findings state too. The names the benchmarks use are here.
"""
from __future__ import annotations

from ...report.convergence import CONVERGENCE_END, CONVERGENCE_START, PLATEAU_GAIN, convergence, convergence_line, \
    convergence_section, family_key, family_name, last_third_gain, put_convergence, reference_convergence, reported_by_notebook
from .recipes import RECIPES_END, RECIPES_START, best_pair, check, curves, describe, family_configs, \
    pair_refits, plateau, plot, recipe_table, sanity_orderings, sizing_runs, sources, summary_line

__all__ = ["CONVERGENCE_END", "CONVERGENCE_START", "PLATEAU_GAIN", "RECIPES_END", "RECIPES_START", "best_pair",
           "check", "convergence", "convergence_line", "convergence_section", "curves", "describe", "family_configs",
           "family_key", "family_name", "last_third_gain", "pair_refits", "plateau", "plot", "put_convergence",
           "recipe_table", "reference_convergence", "reported_by_notebook", "sanity_orderings", "sizing_runs",
           "sources", "summary_line"]
