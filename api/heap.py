"""Keeping the interpreter's pauses short while serving: garbage collections, and the interpreter lock's turns.

CPython's cyclic collector walks every tracked container of the generation it collects. The oldest generation of an
API process holds everything imported and loaded (FastAPI and pydantic, torch, the model, the warmed answers): a
full collection walks all of it and holds the GIL meanwhile, so every request in flight waits (measured: 0.4–1.8 s
per full collection on the loaded 2-core machine, a few a minute at 150 requests/s, docs/benchmarks.md §5). Full
collections come when enough objects survived two younger collections: requests in flight, and recorded lists
waiting for the impression writer's next window (api/impressions.py), which is why recording made the stalls more
frequent.

:func:`freeze_heap` moves what is alive at that moment into the permanent generation (:func:`gc.freeze`), which
collections skip: a full collection then walks only what was allocated since. It runs once the service has started
(before the first request) and after each warming of the answer cache; :func:`gc.freeze` is a constant-time move, no
collection. What it costs: frozen objects are still freed by reference counting, but garbage held in a reference
cycle among them is not collected while frozen; so after a model has been replaced the app thaws, collects once and
freezes again (``freeze_heap(collect=True)``: one full collection per reload, at the end of the new model's
warming), and what start-up left in cycles stays until :func:`thaw_heap` (the app's shutdown).
``KGREC_GC_FREEZE=false`` turns it off.

Young collections cost too: a miss allocates thousands of container objects (the user's interactions as tuples, the
explanation paths, the response models), so with CPython's default threshold (a collection of the youngest generation
every 700 net allocations) each miss runs several, and each walks every young object still alive, i.e. the requests
in flight (measured: about 5% of the time an API process holds the GIL under misses, docs/benchmarks.md §5).
:func:`young_threshold` raises that threshold (``KGREC_GC_YOUNG_THRESHOLD``): fewer collections, each walking about
as much, and garbage in reference cycles waits a little longer to be freed. Not too far, though: each collection holds
the interpreter lock while it walks what came since the last, and every request waits meanwhile. The default, 5,000,
costs misses no more CPU than 20,000 did, and its collections hold the lock about 2–3 ms instead of 8–27 ms (the
read path's p99 with cached answers is those pauses: docs/benchmarks.md §5).

Threads take turns holding the interpreter's lock (the GIL): a thread that wants it waits until the holder blocks on
I/O or has run for the switch interval (CPython: 5 ms). A request served on the event loop takes the lock again after
each await; while a background thread computes (the impression writer's transactions, a miss's scoring in the thread
pool) each of those takes can wait up to a whole interval, so a cached answer of 2 ms can take several intervals.
:func:`switch_interval` shortens the turns (``KGREC_GIL_SWITCH_MS``): waits shorter, switches more frequent. Off by
default: at 1 ms misses cost about a quarter more CPU and the read path's tail was no better on a quiet machine
(docs/benchmarks.md §5).

:func:`time_collections` reports every collection with its wall-clock start and length (the API logs them with
``KGREC_DEBUG_TIMELINE``, :func:`log_collection`; bench.api_load times its own client's), so that a slow request can be
set against the collections (bench/tail_events.py).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
timeline = logging.getLogger("api.timeline")  # KGREC_DEBUG_TIMELINE (bench/tail_events.py)


def freeze_heap(collect: bool = False) -> None:
    """Move every object the collector tracks into the permanent generation (:func:`gc.freeze`: a constant-time
    move of the generations' lists, no walk of the heap, so it may run while requests are served).

    Args:
        collect: First give the frozen objects back and run one full collection (:func:`gc.collect`), so that
            reference cycles that became garbage while frozen are freed: the app does this after a model has been
            replaced (the old model's cycles), once per reload, instead of keeping them until shutdown.
    """
    if collect:
        gc.unfreeze()
        found = gc.collect()
        log.info("heap collected before freezing again: %d unreachable objects freed", found)
    gc.freeze()
    log.debug("heap frozen")


def young_threshold(allocations: int) -> int:
    """Collect the youngest generation every ``allocations`` net allocations of tracked objects
    (:func:`gc.set_threshold`; the older generations' thresholds kept). Returns the threshold it replaces."""
    previous, *older = gc.get_threshold()
    gc.set_threshold(allocations, *older)
    return previous


def switch_interval(milliseconds: float) -> float:
    """Let a thread hold the interpreter lock for at most ``milliseconds`` while another waits for it
    (:func:`sys.setswitchinterval`). Returns the interval it replaces, in milliseconds."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(milliseconds / 1000.0)
    return previous * 1000.0


def time_collections(report: Callable[[int, float, float, float, int], None]) -> Callable[[], None]:
    """Call ``report(generation, start, ms, cpu_ms, collected)`` after each of this process's garbage collections:
    ``start`` in epoch seconds, ``ms`` its wall time, ``cpu_ms`` the CPU time of the thread that ran it (the
    collection's own work, which a busy machine does not stretch). Three clock reads a collection (a few a second
    under load). Returns the function that removes the hook."""
    started = [0.0, 0.0, 0.0]  # wall clock, perf counter, thread CPU time at the start of the current collection

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = time.time(), time.perf_counter(), time.thread_time()
        else:
            ms, cpu_ms = 1000 * (time.perf_counter() - started[1]), 1000 * (time.thread_time() - started[2])
            report(info["generation"], started[0], ms, cpu_ms, info["collected"])

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)


def log_collection(generation: int, start: float, ms: float, cpu_ms: float, collected: int) -> None:
    """A :func:`time_collections` report as a line of the ``api.timeline`` log (``KGREC_DEBUG_TIMELINE``):
    ``gc gen=G start=EPOCH ms=M cpu_ms=C collected=N``."""
    timeline.info("gc gen=%d start=%.4f ms=%.2f cpu_ms=%.2f collected=%d", generation, start, ms, cpu_ms, collected)


def thaw_heap() -> None:
    """Give the frozen objects back to the collector (:func:`gc.unfreeze`; the app's shutdown)."""
    gc.unfreeze()


__all__ = ["freeze_heap", "switch_interval", "log_collection", "thaw_heap", "time_collections", "young_threshold"]
