"""tqdm progress bars that switch themselves off when stderr is not a terminal."""

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(setting="auto") -> bool:
    """`progress` config key: true | false | auto (on only for an interactive terminal)."""
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ("auto", "none", "null"):
        return sys.stderr.isatty()
    return str(setting).lower() in ("1", "true", "yes", "on")


def bar(iterable: Iterable[T] | None = None, enabled: bool = True, **kwargs) -> "tqdm[T]":
    """A tqdm bar, or a silent pass-through iterator when `enabled` is false."""
    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, leave=False, **kwargs)
