"""A/B variants (:mod:`api.variants`): the variants file, the stable assignment, and the answer's JSON."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from api.cache import Answer
from api.schemas import RecommendationsResponse, RecommendedItem
from api.variants import DEFAULT_VARIANT, Variant, Variants, bucket, group_key, load_variants
from schema.errors import ConfigError

ROOT = Path(__file__).parents[3]


def _three() -> Variants:
    return Variants(
        salt="s1",
        variants=(
            Variant(name="a", share=0.5),
            Variant(name="b", share=0.3, mmr_lambda=0.9),
            Variant(name="c", share=0.2, model_version="v2", exploration_share=0.1),
        ),
    )


def test_bucket_is_sha256_of_salt_and_id() -> None:
    digest = hashlib.sha256(b"s1:u42").digest()
    assert bucket("s1", "u42") == int.from_bytes(digest[:8], "big") / 2.0**64
    assert 0.0 <= bucket("s1", "u42") < 1.0 and bucket("s1", "u42") != bucket("s2", "u42")


def test_assignment_follows_the_shares() -> None:
    variants = _three()
    counts = Counter(variants.assign(f"user-{n}").name for n in range(20_000))
    assert abs(counts["a"] / 20_000 - 0.5) < 0.015
    assert abs(counts["b"] / 20_000 - 0.3) < 0.015
    assert abs(counts["c"] / 20_000 - 0.2) < 0.015


def test_assignment_is_the_same_in_another_process() -> None:
    """Python's own hash() differs between processes (PYTHONHASHSEED); the assignment must not."""
    variants = _three()
    ids = [f"u{n}" for n in range(200)]
    here = [variants.assign(u).name for u in ids]
    code = (
        "from api.variants import Variant, Variants\n"
        "v = Variants(salt='s1', variants=(Variant(name='a', share=0.5), Variant(name='b', share=0.3), "
        "Variant(name='c', share=0.2)))\n"
        "print(','.join(v.assign(f'u{n}').name for n in range(200)))\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env={"PYTHONHASHSEED": "7"}
    )
    assert other.stdout.strip().split(",") == here
    assert set(here) == {"a", "b", "c"}


def test_a_changed_share_moves_only_users_across_the_boundary() -> None:
    before = Variants(salt="s", variants=(Variant(name="a", share=0.5), Variant(name="b", share=0.5)))
    after = Variants(salt="s", variants=(Variant(name="a", share=0.4), Variant(name="b", share=0.6)))
    moved = [u for u in (f"x{n}" for n in range(5000)) if before.assign(u).name != after.assign(u).name]
    assert moved and all(before.assign(u).name == "a" and after.assign(u).name == "b" for u in moved)
    assert abs(len(moved) / 5000 - 0.1) < 0.02


def test_group_key_ignores_member_order() -> None:
    assert group_key(["u2", "u1", "u3"]) == group_key(["u3", "u2", "u1"]) != group_key(["u1", "u2"])


def test_no_file_is_one_default_variant(tmp_path: Path) -> None:
    variants = load_variants(None)
    assert variants.names == [DEFAULT_VARIANT] and variants.assign("anyone").name == DEFAULT_VARIANT
    assert variants.model_versions == []


def test_a_variants_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "variants.yaml"
    path.write_text(
        "salt: spring\nvariants:\n  - {name: control, share: 0.7}\n"
        "  - {name: new, share: 0.3, model_version: '20260101T000000Z', mmr_lambda: 0.8, exploration_share: 0.1}\n",
        encoding="utf-8",
    )
    variants = load_variants(path)
    assert variants.salt == "spring" and variants.names == ["control", "new"]
    assert variants.get("new") == Variant(
        name="new", share=0.3, model_version="20260101T000000Z", mmr_lambda=0.8, exploration_share=0.1
    )
    assert variants.model_versions == ["20260101T000000Z"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("salt: s\nvariants:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.4}\n", "must sum to 1, not 0.9"),
        ("variants:\n  - {name: a, share: 0.5}\n  - {name: a, share: 0.5}\n", "distinct: a appear"),
        ("variants:\n  - {name: a, share: 1.0, mmr_lambda: 2}\n", "variants.0.mmr_lambda"),
        ("variants:\n  - {name: a, share: 1.0, colour: red}\n", "variants.0.colour"),
        ("variants: []\n", "variants: Tuple should have at least 1 item"),
        ("variants: [\n", "is not YAML"),
    ],
)
def test_a_broken_variants_file_is_refused_with_the_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "variants.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="KGREC_VARIANTS") as raised:
        load_variants(path)
    assert expected in str(raised.value)


def test_a_missing_variants_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_variants(tmp_path / "absent.yaml")


def test_the_answer_json_is_the_responses_with_its_variant_and_id() -> None:
    items = [RecommendedItem(item_id=f"i{n}", score=1.0 - n / 10, sources={"x": 1.0}) for n in range(3)]
    response = RecommendationsResponse(user_id='u"1', model_version="m", items=items, variant="new")
    answer = Answer(response)
    assert answer.json(3, "abc") == answer.first(3, "abc").model_dump_json().encode()
    assert answer.json(2, "abc") == answer.first(2, "abc").model_dump_json().encode()
    assert b'"variant":"new","recommendation_id":"abc","items":[' in answer.json(2, "abc")
