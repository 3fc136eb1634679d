"""Training: one run's training loop and evaluation, the step near the chip, speed helpers, frozen features.
May import: the package root, stats/, model/ and data/."""
