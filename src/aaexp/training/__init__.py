"""One run and the training scaffold every study runs on: runner (a run's life), loop, checkpoints, divergence guard."""
