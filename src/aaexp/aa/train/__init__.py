"""Training: tone data and targets, framing, the loop, checkpoints, divergence guard, LR schedules, in-training target watch."""
