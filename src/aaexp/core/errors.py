"""Errors that the CLI reports as one line instead of a traceback."""


class AaexpError(Exception):
    """Bad input or usage: the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class TrainingDiverged(AaexpError):
    """A loss became NaN/Inf; the run is marked FAILED and the last good checkpoint is kept."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, SLURM time limits and pre-emption, container stops), handled as Ctrl-C:
    the run is marked KILLED, its checkpoints are kept, and the CLI exits with 128 + 15."""

    exit_code = 143


class RunTerminated(AaexpError):
    """Terminated, seen from a launcher's job process (submitit/SLURM, Ray) that the CLI did not start:
    the run is already marked KILLED with its checkpoints kept; the launcher records a failed job."""

    exit_code = 143


class TrialPruned(Exception):
    """The Optuna pruner stopped this trial at a validation: the run ends KILLED, tagged optuna_pruned=true,
    and the sweeper tells the study PRUNED (an outcome of the search, not a failure)."""

    def __init__(self, step: int, value: float):
        super().__init__(f"pruned by Optuna at step {step} ({value:.6g})")
        self.step, self.value = step, value
