"""Model: the encoders of every family, the head that selects tokens, layers and dimensions, subspace layers.
May import: the package root only."""
