"""Progress bars on stderr (stdout stays clean for reports and tables)."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, label: str, enabled: bool = True):
    """A rich progress bar with fields (loss, ...) and ETA; yields ``update(done, **fields)``."""
    if not enabled:
        yield lambda done, **fields: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total, info="")
    with bar:
        yield lambda done, **fields: bar.update(
            task, completed=done, info="  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in fields.items()))
