"""Stats: numbers from predictions: GLUE metrics, scores over a batch axis, intervals, verdicts, probes, subsets.
May import: the package root (config, options, paths, task_specs) only; it never reads a run store."""
