"""How long work shows its progress: bars on a terminal, one plain line per phase elsewhere (a log file, cron).

Progress bars (tqdm, on stderr) are on when stderr is a terminal unless a ``--progress/--no-progress`` flag
says otherwise; when it is not a terminal (``kgrec retrain >> retrain.log 2>&1``), a training job instead
prints one line per finished phase of :mod:`gnn.phases` (``retrain: export 3.2 s``), free of carriage returns
and terminal control codes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from gnn.phases import PhaseEvent, listening


def bars_enabled(flag: bool | None = None) -> bool:
    """Whether progress bars show: ``flag`` when given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


class ProgressBars:
    """A progress-callback factory: ``bars(name, total)`` returns ``tick(n)``; ``close()`` ends them.

    A total of 0 means "unknown": the bar counts without a percentage.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = bars_enabled(enabled)
        self._bars: list[tqdm] = []

    def __call__(self, name: str, total: int) -> Callable[[int], None]:
        if not self.enabled:
            return lambda _n: None
        bar = tqdm(
            total=total or None, desc=f"{name:<28}", unit="row", unit_scale=True, leave=False, dynamic_ncols=True
        )
        self._bars.append(bar)

        def tick(n: int) -> None:
            bar.update(n)
            if total and bar.n >= total:
                bar.close()

        return tick

    def close(self) -> None:
        for bar in self._bars:
            bar.close()
        self._bars.clear()


def phase_line(job: str, event: PhaseEvent) -> str:
    """``job: phase 3.2 s`` for a finished phase (nested phases as ``fit/ease``; ``failed after`` when it raised)."""
    name = "/".join((*event.path, event.name))
    return f"{job}: {name} {'failed after ' if event.kind == 'failed' else ''}{event.seconds:.1f} s"


@contextmanager
def phase_lines(job: str, enabled: bool | None = None) -> Iterator[None]:
    """While the body runs, print :func:`phase_line` to stderr when each phase of the job ends or fails.

    Args:
        job: The command's name, the prefix of each line.
        enabled: Print the lines (default: when stderr is not a terminal, where bars show progress instead).
    """
    if not (not sys.stderr.isatty() if enabled is None else enabled):
        yield
        return

    def listener(event: PhaseEvent) -> None:
        if event.kind != "start":
            print(phase_line(job, event), file=sys.stderr, flush=True)

    with listening(listener):
        yield
