"""Data: where tasks come from (registry loaders, GLUE, pinned archives, general text) and their tokenised splits.
May import: the package root and model/ (a model's tokenizer)."""
