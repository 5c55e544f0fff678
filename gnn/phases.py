"""Named phases of the training jobs, announced to whoever listens.

A job marks its steps with :func:`phase` (``export``, ``split``, ``fit``, and inside the blend's fit each
component: ``ease``, ``als``, ``lightgcn`` …). Listeners registered with :func:`listening` receive a
:class:`PhaseEvent` when a phase starts, ends or fails: the CLI prints one line per phase when its output is
not a terminal, and benchmarks record the time and memory of each phase without patching any module.

Without listeners a phase costs a clock read. Listeners are process-wide (a job's phases are reported
whichever thread runs them) and are called in the order they were registered; an exception in a listener
propagates into the job, so listeners must not raise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["start", "end", "failed"]


@dataclass
class PhaseEvent:
    """One moment of a phase.

    Attributes:
        name: The phase's name (``export``, ``fit``, ``ease`` …).
        kind: ``start``, ``end`` or ``failed``.
        seconds: Wall seconds since the phase started (0 at ``start``).
        data: What the phase chose to publish (e.g. ``snapshot`` and ``split`` at the end of ``split``); the
            same dict at start and end, filled in by the phase's body.
        path: Names of the enclosing phases, outermost first (``("fit", "fit_components")`` for ``ease``).
    """

    name: str
    kind: EventKind
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    path: tuple[str, ...] = ()


Listener = Callable[[PhaseEvent], None]

_listeners: list[Listener] = []
_lock = threading.Lock()
_stack = threading.local()


def _emit(event: PhaseEvent) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(event)


@contextmanager
def phase(name: str, **data: Any) -> Iterator[dict[str, Any]]:  # noqa: ANN401 - data is free-form
    """Mark the body as phase ``name``; yields the event's ``data`` dict for the body to fill in.

    Args:
        name: Phase name.
        **data: Published at start already (e.g. sizes known before the work).

    Yields:
        The ``data`` dict listeners receive with the ``end`` event.
    """
    stack: list[str] = getattr(_stack, "names", None) or []
    _stack.names = stack
    path = tuple(stack)
    stack.append(name)
    started = time.perf_counter()
    try:
        if _listeners:
            _emit(PhaseEvent(name, "start", 0.0, data, path))
        yield data
    except BaseException:
        if _listeners:
            _emit(PhaseEvent(name, "failed", time.perf_counter() - started, data, path))
        raise
    else:
        if _listeners:
            _emit(PhaseEvent(name, "end", time.perf_counter() - started, data, path))
    finally:
        stack.pop()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Deliver every phase event to ``listener`` while the body runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)
