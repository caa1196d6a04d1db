"""One call that seeds every RNG a run touches."""

import random

import numpy as np
import torch


def seed_everything(seed: int | None) -> None:
    if seed is None:  # `if seed:` would skip seed 0
        return
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(False)
