"""The progress bar of long runs (a backtest, a sweep); rich loads only when a bar is wanted."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["progress_bar"]


def progress_bar(label: str, total: int | None) -> Callable[[int], None]:
    """A rich progress bar driven by a callback: a count updates it, a negative count ends it."""
    from rich.progress import (  # noqa: PLC0415 - only when a bar is wanted
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    bar = Progress(TextColumn(label), *columns)
    task = bar.add_task(label, total=total)
    bar.start()

    def update(done: int) -> None:
        bar.update(task, completed=abs(done))
        if done < 0:
            if total is None:
                bar.update(task, total=abs(done))
            bar.stop()

    return update
