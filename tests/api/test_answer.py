"""The pre-rendered answer: its bytes are exactly the JSON of the response cut to k items."""

from __future__ import annotations

import json

from api.cache import Answer
from api.schemas import RecommendationsResponse


def _response(n: int) -> RecommendationsResponse:
    example = RecommendationsResponse.model_config["json_schema_extra"]["example"]
    item = example["items"][0]
    items = [dict(item, item_id=str(i), title=f'Title \u00e9 "{i}"', score=1.0 / (i + 1)) for i in range(n)]
    return RecommendationsResponse.model_validate(dict(example, items=items, degraded=n % 2 == 0))


def test_answer_bytes_equal_the_response_json_for_every_k() -> None:
    response = _response(7)
    answer = Answer(response)
    for k in (0, 1, 3, 7, 50):
        rec_id = f"{k:032x}"
        cut = response.model_copy(update={"items": response.items[:k], "recommendation_id": rec_id})
        assert answer.json(k, rec_id) == cut.model_dump_json().encode()  # byte for byte, the id joined in
        assert answer.first(k, rec_id).model_dump() == cut.model_dump()


def test_each_recommendation_id_is_joined_into_the_same_cached_bytes() -> None:
    answer = Answer(_response(3))
    first, second = json.loads(answer.json(2, "a" * 32)), json.loads(answer.json(2, "b" * 32))
    assert (first["recommendation_id"], second["recommendation_id"]) == ("a" * 32, "b" * 32)
    assert first["items"] == second["items"] and first["variant"] == "default"


def test_answer_of_an_empty_list_is_valid_json() -> None:
    answer = Answer(_response(0))
    assert json.loads(answer.json(10))["items"] == []
