"""Hydra only instantiates sweepers that live under `hydra_plugins`; the code is in aaexp.commands.search."""

from aaexp.commands.search import OptunaSweeper


class AaexpOptunaSweeper(OptunaSweeper):
    """`hydra.sweeper._target_` of conf/hparams_search/optuna_*.yaml."""
