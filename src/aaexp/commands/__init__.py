"""The `aaexp` command and its subcommands (train, eval, report, server, ui) and the Optuna sweeper: the top, calls only down."""
