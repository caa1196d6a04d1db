"""Markdown tables, written one way for every study (eval tables, reports, experiment notes)."""

from __future__ import annotations

from typing import Collection, Iterable, Sequence


def markdown(head: Sequence[str], rows: Iterable[Sequence[object]], right: Collection[int] = ()) -> str:
    """A Markdown table: the header, its rule (`---:` for the column indices in `right`, so numbers
    line up when rendered), one line per row; cells are written with str()."""
    rule = "|" + "".join("---:|" if i in right else "---|" for i in range(len(head)))
    lines = ["| " + " | ".join(head) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
