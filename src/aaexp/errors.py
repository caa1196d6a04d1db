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
