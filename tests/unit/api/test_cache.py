"""The answer cache's count of answers per user (:meth:`api.cache.ResponseCache.may_hold`), and the held histories'
bound (:class:`api.cache.HeldHistories`)."""

from __future__ import annotations

import time

from api.cache import Answer, HeldHistories, ResponseCache
from api.schemas import RecommendationsResponse
from graph.reads import HeldHistory, Interaction, InteractionColumns


def _answer(user: str) -> Answer:
    return Answer(RecommendationsResponse(user_id=user, model_version="m", items=[]))


def test_may_hold_follows_puts_replacements_and_evictions() -> None:
    cache = ResponseCache(size=2, ttl=60.0)
    assert not cache.may_hold("a")
    cache.put(("a", 1), _answer("a"), "a")
    cache.put(("a", 1), _answer("a"), "a")  # a replacement is still one answer
    cache.put(("a", 2), _answer("a"), "a")
    assert cache.may_hold("a") and not cache.may_hold("b")
    cache.put(("b", 1), _answer("b"), "b")  # evicts ("a", 1), the least recently used
    assert cache.may_hold("a") and cache.get(("a", 1)) is None
    cache.put(("b", 2), _answer("b"), "b")  # evicts ("a", 2): nothing of a's is left
    assert not cache.may_hold("a") and cache.may_hold("b") and cache.get(("a", 2)) is None


def test_a_cache_without_time_to_live_holds_nothing() -> None:
    cache = ResponseCache(size=100, ttl=0.0)
    cache.put(("a", 1), _answer("a"), "a")
    assert cache.get(("a", 1)) is None and not cache.may_hold("a") and cache.size == 0


def _history(n: int, rev: int = 1) -> HeldHistory:
    columns = InteractionColumns.of([Interaction(f"i{k}", 4.0, None, n - k) for k in range(n)])  # most recent first
    return HeldHistory(columns, n, rev)


def test_held_histories_keep_the_interactions_within_the_bound_least_recent_first() -> None:
    held = HeldHistories(size=10, ttl=60.0)
    a, b = _history(4), _history(5)
    held.put("a", a)
    held.put("b", b)
    assert held.interactions == 9 and held.get("a") is a  # a is now the most recently used
    held.put("c", _history(3))  # 12 > 10: b goes, the least recently used
    assert held.get("b") is None and held.get("a") is a and held.interactions == 7
    held.put("a", _history(6, rev=2))  # a re-read history replaces the old one: 6 + 3
    assert held.interactions == 9 and held.get("a").rev == 2 and len(held) == 2
    held.put("d", _history(11))  # longer than the bound: not held, nothing evicted for it
    assert held.get("d") is None and held.interactions == 9
    held.put("e", _history(10))  # exactly the bound: everything else goes
    assert len(held) == 1 and held.interactions == 10 and held.get("e") is not None


def test_held_histories_age_out_and_can_be_off() -> None:
    held = HeldHistories(size=10, ttl=0.05)
    held.put("a", _history(2))
    time.sleep(0.1)
    assert held.get("a") is None and held.interactions == 0 and len(held) == 0
    for off in (HeldHistories(size=0, ttl=60.0), HeldHistories(size=10, ttl=0.0)):
        off.put("a", _history(2))
        assert off.get("a") is None and len(off) == 0


def test_a_write_brings_the_history_held_at_its_version_before_and_drops_another() -> None:
    held = HeldHistories(size=10, ttl=60.0)
    a = _history(3, rev=1)
    held.put("a", a)
    new = Interaction("new", 5.0, 1.0, 99)
    held.written("a", [new], before=(3, 1), after=(4, 2))  # the write was the only change: applied
    updated = held.get("a")
    assert updated is not None and (updated.interactions, updated.rev) == (4, 2)
    assert updated.columns.rows() == (new, *a.columns.rows()) and held.interactions == 4
    held.written("a", [Interaction("i0", 1.0, 1.0, 0)], before=(4, 1), after=(4, 2))  # another writer came between
    assert held.get("a") is None and held.interactions == 0
    held.put("a", a)
    held.written("a", [new], before=(3, 1), after=None)  # the version after is not known: read again
    assert held.get("a") is None
    held.written("nobody", [new], before=(0, 0), after=(1, 1))  # none held: nothing to do
    assert len(held) == 0
    held.put("b", _history(9))
    held.written("b", [new], before=(9, 1), after=(10, 2))  # 10 interactions: within the bound, alone
    assert held.get("b") is not None and held.interactions == 10
    held.written("b", [Interaction("more", 1.0, 1.0, 1)], before=(10, 2), after=(11, 3))  # beyond it: not held
    assert held.get("b") is None and held.interactions == 0


def test_a_write_keeps_the_held_history_s_age() -> None:
    held = HeldHistories(size=10, ttl=0.2)
    held.put("a", _history(2))
    time.sleep(0.15)
    held.written("a", [Interaction("new", 5.0, 1.0, 99)], before=(2, 1), after=(3, 2))
    assert held.get("a") is not None
    time.sleep(0.1)  # read 0.25 s ago: aged out, though written 0.1 s ago
    assert held.get("a") is None
