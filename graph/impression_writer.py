"""The SQLite impression store's writes in a process of their own (``KGREC_IMPRESSIONS_WRITER=process``).

A served list costs the API's process about 90 µs of CPU to write (:meth:`graph.impressions.SqliteImpressionStore.
write`: the rows generated in Python, the statements stepped by SQLite), and more than that in the requests served
beside it: a writer thread takes turns at the interpreter's lock with them at every row it generates, and its SQLite
work shares the process's caches. Measured in process (a cached hit served in a loop, docs/benchmarks.md §5), a hit's
own CPU rose by about 100 µs with the writer thread running. In a child process the writes share nothing of the API's
interpreter: the API sends each transaction's rows (:class:`graph.writers.ImpressionBatch`, pickled, a few µs of C a
list) through a pipe and waits, the interpreter's lock released, for the answer.

:class:`WriterProcess` is the parent's end: one child per API process (``python -m graph.impression_writer``, the same
interpreter and checkout), started on first use, restarted on the next use after it exits. The child owns a
:class:`graph.impressions.SqliteImpressionStore` on the same file and runs the calls it receives, one at a time, at
the niceness it is given (``KGREC_IMPRESSIONS_WRITER_NICE``: it yields the cores to requests and Neo4j, without the
priority inversion a niced thread holding the interpreter's lock caused). Every read, and the writes of feedback
(attribution, skips), stay in the API's process: the file is shared by processes as it is by API workers (WAL, every
write transaction ``BEGIN IMMEDIATE`` with a busy timeout).

Protocol: the parent writes pickles of ``(method, args)`` to the child's stdin; the child answers each with a pickle
of ``(True, result)`` or ``(False, message)`` (a :class:`schema.errors.KgrecError` raised there) on its stdout; its
logs go to stderr, the API's log. A pickle of ``None`` (or the pipe closed) ends it.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from schema.errors import KgrecError

log = logging.getLogger(__name__)


#: The store's methods the child runs.
CALLS = ("prepare", "write", "prune")


class WriterProcessError(KgrecError):
    """The writer process could not take a call (it exited, or could not be started)."""


class WriterProcess:
    """The parent's end of the writer process (module docstring). Thread-safe: calls are serialised.

    Args:
        path: The SQLite file.
        max_shown: Most items a user's exposure keeps.
        busy_seconds: The child's busy timeout on the file's write lock.
        nice: Added to the child's niceness (0: the API's priority).
    """

    def __init__(self, path: Path, max_shown: int, busy_seconds: float, nice: int = 0) -> None:
        self.arguments = [str(path), str(max_shown), str(busy_seconds), str(nice)]
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        #: How many children were started (the first, then one per restart).
        self.started = 0

    def call(self, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` of the child's store and return its result.

        Raises:
            WriterProcessError: The child exited (it is restarted on the next call) or could not be started.
            KgrecError: The store refused the call (the child's :class:`~schema.errors.KgrecError`, its message kept).
        """
        with self._lock:
            child = self._ensure()
            try:
                pickle.dump((method, args), child.stdin, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[arg-type]
                child.stdin.flush()  # type: ignore[union-attr]
                ok, result = pickle.load(child.stdout)  # type: ignore[arg-type]
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._reap()
                raise WriterProcessError(f"the impression writer process exited during {method}: {exc}") from exc
        if not ok:
            raise KgrecError(result)
        return result

    def _ensure(self) -> subprocess.Popen[bytes]:
        """The running child, started when there is none (the lock held)."""
        if self._child is not None and self._child.poll() is None:
            return self._child
        if self._child is not None:
            log.warning("the impression writer process exited (code %s): starting another", self._child.returncode)
            self._reap()
        root = str(Path(__file__).resolve().parent.parent)  # this checkout's code, whatever the working directory
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "graph.impression_writer", *self.arguments],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise WriterProcessError(f"the impression writer process could not be started: {exc}") from exc
        self.started += 1
        log.info("impression writer process %d started (nice +%s)", self._child.pid, self.arguments[3])
        return self._child

    def _reap(self) -> None:
        """Forget the child, killing it if it still runs (the lock held)."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.kill()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
        child.wait()

    @property
    def pid(self) -> int | None:
        """The running child's process id (None: none runs)."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def close(self, timeout: float = 10.0) -> None:
        """End the child after the call in progress (it finishes its transaction), killed after ``timeout``."""
        with self._lock:
            child = self._child
            if child is None:
                return
            try:
                pickle.dump(None, child.stdin)  # type: ignore[arg-type]
                child.stdin.flush()  # type: ignore[union-attr]
                child.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._reap()


def _serve(path: str, max_shown: str, busy_seconds: str, nice: str) -> None:
    """The child: run the calls read from stdin on a store of the file, answer each on stdout."""
    from graph.impressions import SqliteImpressionStore

    if int(nice):
        os.nice(int(nice))
    calls, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the protocol
    store = SqliteImpressionStore(Path(path), int(max_shown), float(busy_seconds))
    try:
        while True:
            try:
                message = pickle.load(calls)
            except EOFError:
                return
            if message is None:
                return
            method, args = message
            try:
                if method not in CALLS:
                    raise KgrecError(f"the impression writer process runs {', '.join(CALLS)}, not {method!r}")
                answer = (True, getattr(store, method)(*args))
            except KgrecError as exc:
                answer = (False, str(exc))
            pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
            answers.flush()
    finally:
        store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _serve(*sys.argv[1:5])
