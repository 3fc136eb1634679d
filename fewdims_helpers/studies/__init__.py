"""The studies, one per notebook (01 token_wise ... 07 intrinsic): a module, or a package of modules
where a study has several concerns (``salient``, ``intrinsic``: features or design, analyses with
their caches, tables and verdicts). They sit on top of the core modules in ``fewdims_helpers/``:
nothing below imports them, and no study imports another; what two studies share lives in a core
module (``subsets``, ``features``, ``probes``, ``store``, ...)."""
