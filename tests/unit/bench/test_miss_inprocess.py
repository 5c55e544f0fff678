"""bench/miss_inprocess.py's helpers: blanking the recommendation id, timing a function in place."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from bench.miss_inprocess import blank_ids, timed


def test_only_the_recommendation_id_is_blanked() -> None:
    body = b'{"user_id":"7","recommendation_id":"0a1b2c","items":[{"item_id":"recommendation_id"}]}'
    assert blank_ids(body) == b'{"user_id":"7","recommendation_id":"","items":[{"item_id":"recommendation_id"}]}'


def test_timed_counts_each_call_and_puts_the_function_back() -> None:
    def work(n: int) -> int:
        return sum(i * i for i in range(n))

    owner = SimpleNamespace(work=work)
    used: Counter[str] = Counter()
    with timed(owner, "work", "work", used):
        assert owner.work(200_000) == work(200_000)
        assert owner.work is not work
    assert owner.work is work
    assert used["work"] > 0
