"""Setup: what a study runs with (profiles, options, checks), the plan of an invocation, executing a notebook.
May import: every floor below it (root, stats/, model/, data/, training/, runs/, report/), never the studies."""
