"""Readiness of several worker processes behind one port (``kgrec serve --workers N``), and the file in which they
share their answers.

Each worker warms its own answer cache; a load balancer's ``/ready`` probe reaches whichever worker accepts it. So
that ``/ready`` turns 200 only when every worker serves hits, ``kgrec serve`` names a directory shared by the workers
(``KGREC_SERVE_WORKERS_DIR``) and their number (``KGREC_SERVE_WORKERS``); each worker leaves a ``warmed-<pid>-<random>`` mark
there once warm, and any worker answers ``/ready`` 200 only when N live workers have marked. Without these variables
(one process, or processes on ports of their own behind a proxy) each process answers for itself. The same directory
holds the SQLite file of the answers the workers share (:func:`shared_answers_path`, :class:`api.cache.SharedAnswers`).
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

WORKERS_ENV = "KGREC_SERVE_WORKERS"
WORKERS_DIR_ENV = "KGREC_SERVE_WORKERS_DIR"


def _shared() -> tuple[Path, int] | None:
    directory, workers = os.environ.get(WORKERS_DIR_ENV), os.environ.get(WORKERS_ENV, "")
    if not directory or not workers.isdigit() or int(workers) <= 1:
        return None
    return Path(directory), int(workers)


def mark_when_warmed(warmed: threading.Event, stop: threading.Event) -> Path | None:
    """Leave this process's mark in the shared directory once ``warmed`` is set (a daemon thread waits for it).

    Returns:
        The mark's path (remove it when the process stops), or None without a shared directory.
    """
    shared = _shared()
    if shared is None:
        return None
    mark = shared[0] / f"warmed-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # the pid tells whether it is alive

    def wait() -> None:
        while not stop.is_set():
            if warmed.wait(0.5):
                mark.touch()
                return

    threading.Thread(target=wait, name="kgrec-ready-mark", daemon=True).start()
    return mark


def workers_warmed() -> tuple[int, int] | None:
    """``(live workers warmed, workers)``, or None when this process serves alone."""
    shared = _shared()
    if shared is None:
        return None
    directory, workers = shared
    live = 0
    for mark in directory.glob("warmed-*"):
        pid = mark.name.split("-")[1]
        if pid.isdigit() and _alive(int(pid)):  # a worker that died (and was replaced) no longer counts
            live += 1
    return live, workers


def shared_answers_path() -> Path | None:
    """The file in which the workers of this `kgrec serve` share their answers (:class:`api.cache.SharedAnswers`), or
    None when this process serves alone."""
    shared = _shared()
    return None if shared is None else shared[0] / "answers.sqlite3"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["WORKERS_DIR_ENV", "WORKERS_ENV", "mark_when_warmed", "shared_answers_path", "workers_warmed"]
