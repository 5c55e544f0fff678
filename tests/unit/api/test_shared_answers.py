"""The answers the workers of one `kgrec serve --workers N` share (:class:`api.cache.SharedAnswers`): what one worker's
cache stores is a hit in another's, byte for byte; old rows are neither read nor kept; a broken file costs the
sharing, never the request."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from api.cache import Answer, ResponseCache, SharedAnswers
from api.metrics import Metrics
from api.schemas import RecommendationsResponse, RecommendedItem
from graph.paths import Explanation


def _answer(user: str, n: int = 3) -> Answer:
    items = [
        RecommendedItem(
            item_id=f"item\n{i}" if i == 1 else f"item{i}",  # a line break inside an id: JSON escapes it
            title='A "quoted" title' if i == 0 else None,
            score=1.0 / (i + 1),
            sources={"model": 0.5},
            explanations=[Explanation(text=f"because of {i}")],
        )
        for i in range(n)
    ]
    return Answer(RecommendationsResponse(user_id=user, model_version="blend-1", items=items, variant="default"))


def _count(metrics: Metrics, outcome: str) -> float:
    return metrics.shared_answers.labels(outcome)._value.get()


def test_an_answer_one_worker_stores_is_a_hit_in_another_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    metrics_two = Metrics()
    one = ResponseCache(100, 60.0, shared=path)
    two = ResponseCache(100, 60.0, metrics_two, shared=path)
    stored = _answer("u1")
    assert not two.may_hold("u1")
    one.put(("u1", 20, True, "rev"), stored, "u1")
    assert two.may_hold("u1") and not two.may_hold("u2")
    found = two.get(("u1", 20, True, "rev"))
    assert found is not None and found is not stored
    # what serving a hit needs of the head is read from the head alone: the items are not parsed for it
    assert (found.model_version, found.variant, found.degraded) == ("blend-1", "default", False)
    assert found._response is None
    for k in (1, 2, 3):
        assert found.json(k, "abc") == stored.json(k, "abc")
    assert found.item_ids == stored.item_ids and found.first(2, "x") == stored.first(2, "x")
    assert found.response == stored.response
    assert two.get(("u1", 20, True, "other revision")) is None  # another key is a miss
    assert _count(metrics_two, "hit") == 1 and _count(metrics_two, "miss") == 1
    # the hit is held by `two` from now on: a second lookup does not read the file
    assert two.get(("u1", 20, True, "rev")) is found and _count(metrics_two, "hit") == 1


def test_an_answer_held_from_the_file_keeps_the_age_it_had_there(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    one = ResponseCache(100, 2.0, shared=path)
    two = ResponseCache(100, 2.0, shared=path)
    one.put(("u1", 1), _answer("u1"), "u1")
    time.sleep(0.5)
    assert two.get(("u1", 1)) is not None  # 0.5 s old: read, and held for what is left of its two seconds
    time.sleep(1.7)
    assert two.get(("u1", 1)) is None and one.get(("u1", 1)) is None and not two.may_hold("u1")


def test_the_sweep_drops_old_rows_and_keeps_the_newest_within_the_size(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    shared = SharedAnswers(path, 60.0, 3)
    for n in range(5):
        shared.put(("u", n), _answer("u"), "u")
    db = sqlite3.connect(path)
    db.execute("UPDATE answers SET stored = stored - 3600 WHERE key = ?", (SharedAnswers.digest(("u", 4)),))
    db.commit()
    assert shared.get(("u", 4)) is None  # older than the time to live: not read
    assert shared.sweep() == 2  # ("u", 4) aged out, ("u", 0) the oldest beyond 3
    left = {row[0] for row in db.execute("SELECT key FROM answers")}
    assert left == {SharedAnswers.digest(("u", n)) for n in (1, 2, 3)}
    db.close()


def test_a_broken_file_costs_the_sharing_not_the_request(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    path.write_bytes(b"not a database file " * 100)
    metrics = Metrics()
    cache = ResponseCache(100, 60.0, metrics, shared=path)
    assert _count(metrics, "failed") == 1  # the file could not be opened: sharing is off
    answer = _answer("u1")
    cache.put(("u1", 1), answer, "u1")  # held here only
    assert cache.shared is None and cache.get(("u1", 1)) is answer and cache.may_hold("u1")
    assert cache.get(("u2", 1)) is None and not cache.may_hold("u2") and _count(metrics, "failed") == 1


def test_a_statement_that_fails_is_counted_and_the_request_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    metrics = Metrics()
    cache = ResponseCache(100, 60.0, metrics, shared=path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another worker holding the file's locks longer than the wait
    answer = _answer("u1")
    cache.put(("u1", 1), answer, "u1")  # its write fails: held here all the same
    assert cache.get(("u1", 1)) is answer and _count(metrics, "failed") == 1 and _count(metrics, "stored") == 0
    assert cache.get(("u2", 1)) is None and _count(metrics, "miss") == 1  # a reader still reads in WAL mode
    other.execute("ROLLBACK")
    cache.put(("u1", 2), answer, "u1")
    assert _count(metrics, "stored") == 1
    other.execute("DROP TABLE answers")  # a read that fails is a failure, not a miss
    assert cache.get(("u3", 1)) is None and _count(metrics, "miss") == 1 and _count(metrics, "failed") == 2
    other.close()


def test_the_workers_split_a_warming_by_claims_per_model_version(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    metrics = Metrics()
    one = ResponseCache(100, 60.0, metrics, shared=path)
    two = ResponseCache(100, 60.0, shared=path)
    assert one.claim("blend-1", "u1") and not two.claim("blend-1", "u1") and not one.claim("blend-1", "u1")
    assert two.claim("blend-1", "u2") and two.claim("blend-2", "u1")  # another user, another model's warming
    assert ResponseCache(100, 60.0).claim("blend-1", "u1")  # alone: every user is this worker's
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE warming SET claimed = claimed - 3600 WHERE user_id = 'u2'")
    one.shared.sweep()  # claims older than the time to live go with the answers
    assert {row[0] for row in db.execute("SELECT user_id FROM warming")} == {"u1"}
    db.execute("BEGIN EXCLUSIVE")  # a claim that cannot be written: this worker warms the user itself
    assert one.claim("blend-1", "u1") and _count(metrics, "failed") == 1
    db.execute("ROLLBACK")
    db.close()
