"""Progress bars for long work (tqdm on stderr; silent when stderr is not a terminal unless forced)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


class ProgressBars:
    """A progress-callback factory: ``bars(name, total)`` returns ``tick(n)``; ``close()`` ends them.

    A total of 0 means "unknown": the bar counts without a percentage.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
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
