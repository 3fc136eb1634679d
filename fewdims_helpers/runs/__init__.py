"""Runs: the run store (a folder per run, named by its config), executing runs into it, and reading them back.
May import: the package root, stats/, model/, data/ and training/."""
