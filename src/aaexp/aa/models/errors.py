"""The one error a model file can raise: names the file and what is wrong with it."""

from pathlib import Path

from aaexp.core.errors import AaexpError


class ModelFileError(AaexpError):
    """A model file that cannot be read or written; the CLI prints it as one line and exits 2."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever the cause's text held
        super().__init__(f"{self.path}: {self.problem}")
