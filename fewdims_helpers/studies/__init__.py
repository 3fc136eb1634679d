"""The studies, one module per notebook (01 token_wise ... 07 intrinsic). They sit on top of the core
modules in ``fewdims_helpers/``: nothing below imports them, and no study imports another; what two
studies share lives in a core module (``subsets``, ``features``, ``probes``, ``store``, ...)."""
