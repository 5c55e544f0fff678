"""Freezing the heap alive (api/heap.py): frozen objects are out of every collection until thawed; the youngest
generation's threshold raised and given back; the interpreter lock's switch interval set and given back; each
collection reported with its start and length, until the hook is removed."""

from __future__ import annotations

import gc
import sys
import time
import weakref

import pytest

from api.heap import freeze_heap, switch_interval, thaw_heap, time_collections, young_threshold


def test_frozen_objects_leave_the_oldest_generation_until_thawed() -> None:
    held = [[n] for n in range(5_000)]  # lists are always tracked (dicts of atoms are not)
    gc.collect()  # every object alive now sits in the oldest generation
    assert id(held[0]) in {id(o) for o in gc.get_objects(2)}
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(held)
        assert id(held[0]) not in {id(o) for o in gc.get_objects(2)}  # a full collection no longer walks it
        fresh = ["after"]
        assert id(fresh) in {id(o) for o in gc.get_objects(0)}  # what is allocated afterwards is collected as usual
    finally:
        thaw_heap()
    assert gc.get_freeze_count() == 0
    assert id(held[-1]) in {id(o) for o in gc.get_objects(2)}


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_collecting_frees_cycles_that_became_garbage_while_frozen() -> None:
    first, second = _Node(), _Node()
    first.other, second.other = second, first  # a reference cycle: reference counting alone never frees it
    alive = weakref.ref(first)
    try:
        freeze_heap()
        del first, second
        gc.collect()
        assert alive() is not None  # frozen: a full collection does not walk it
        freeze_heap(collect=True)
        assert alive() is None  # thawed, collected, frozen again: the cycle is gone
        assert gc.get_freeze_count() > 0
    finally:
        thaw_heap()


def test_young_threshold_replaces_only_the_youngest_generations_and_gives_the_old_one_back() -> None:
    before = gc.get_threshold()
    previous = young_threshold(20_000)
    try:
        assert previous == before[0]
        assert gc.get_threshold() == (20_000, *before[1:])
    finally:
        assert young_threshold(previous) == 20_000
    assert gc.get_threshold() == before


def test_switch_interval_sets_the_interpreters_turns_in_milliseconds_and_gives_the_old_one_back() -> None:
    before = sys.getswitchinterval()
    previous = switch_interval(0.5)
    try:
        assert previous == pytest.approx(1000 * before)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        assert switch_interval(previous) == pytest.approx(0.5)
    assert sys.getswitchinterval() == pytest.approx(before)


def test_each_collection_is_reported_with_its_generation_start_and_length_until_the_hook_is_removed() -> None:
    reports: list[tuple[int, float, float, float, int]] = []
    remove = time_collections(lambda *report: reports.append(report))
    before = time.time()
    try:
        first, second = _Node(), _Node()
        first.other, second.other = second, first
        del first, second
        gc.collect()
    finally:
        remove()
    last = reports[-1]
    generation, start, ms, cpu_ms, collected = last
    assert generation == 2
    assert before <= start <= time.time()
    assert ms >= 0 and cpu_ms >= 0
    assert collected >= 2  # the cycle's two nodes
    gc.collect()
    assert reports[-1] is last  # removed: no more reports
