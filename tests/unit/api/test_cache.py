"""The answer cache's count of answers per user (:meth:`api.cache.ResponseCache.may_hold`)."""

from __future__ import annotations

from api.cache import Answer, ResponseCache
from api.schemas import RecommendationsResponse


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
