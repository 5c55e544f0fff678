"""When a set the API holds in memory is re-read from Neo4j: :class:`Refresh`, the schedule that the catalogue's
restricted items (:class:`api.catalogue.Catalogue`) and the genre names (:class:`api.genres.GenreNames`) share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Refresh:
    """Re-read at most every ``seconds``: due when never tried, or when the last attempt (a read, or a failed one,
    which the caller keeps the last set through) is ``seconds`` old; one caller reads while the others go on.

    Args:
        seconds: The shortest time between two reads; 0: only the first (then only when the owner reads on its own,
            calling :meth:`tried`).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tried_at: float | None = None  # monotonic time of the last attempt
        self._reading = threading.Lock()

    def due(self) -> bool:
        """Whether a read is due now."""
        tried_at = self._tried_at
        return tried_at is None or (self.seconds > 0 and time.monotonic() - tried_at >= self.seconds)

    def tried(self) -> None:
        """Note a read (or a failed one) now: the next is due ``seconds`` from now."""
        self._tried_at = time.monotonic()

    def run_if_due(self, read: Callable[[], object], *, wait: bool = False) -> None:
        """Call ``read`` when due, in one caller at a time (then note the attempt, even a failed one): the others go
        on at once with what they have, or, with ``wait`` (nothing read yet), wait for that read and read only if it
        is still due."""
        if self.due() and self._reading.acquire(blocking=wait):
            try:
                if self.due():
                    try:
                        read()
                    finally:
                        self.tried()
            finally:
                self._reading.release()


__all__ = ["Refresh"]
