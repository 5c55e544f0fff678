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
        expected = json.loads(response.model_copy(update={"items": response.items[:k]}).model_dump_json())
        assert json.loads(answer.json(k)) == expected
        assert answer.first(k).model_dump() == RecommendationsResponse.model_validate(expected).model_dump()


def test_answer_of_an_empty_list_is_valid_json() -> None:
    answer = Answer(_response(0))
    assert json.loads(answer.json(10))["items"] == []
