"""The one training scaffold every study runs on: loop life cycle, checkpoints, divergence guard."""
