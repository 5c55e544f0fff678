"""Interaction kinds (view, add-to-cart, purchase, return, like, dislike, ...) and how several combine into one pair.

The graph keeps one INTERACTED relationship per (user, item) pair, so that recall, explanations, the answer
cache's fingerprint and the training export see one edge per pair whatever the source. When a pair has events of
several kinds (a view, then two purchases), they are combined into the relationship's ``weight`` and ``polarity``
by a stated rule, and the relationship keeps which kinds occurred and how often (``kinds``, ``kindCounts``), so
nothing is lost. The mapping loader (``etl``) and the API's feedback writes use the same :func:`combine`.

Rules:
    * ``sum`` (default): the signed sum of the events' weights (each event: its kind's weight × the row's weight,
      negative for a negative kind). Polarity is negative when the sum is below 0, or 0 with a negative event (a
      purchase returned); the weight is the sum's absolute value.
    * ``strongest``: the kind with the largest weight decides (a negative kind wins a tie); the weight is the sum of
      that kind's events.
    * ``latest``: the kind of the latest event (by timestamp, then by reading order) decides; the weight is the sum
      of that kind's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from schema.model import Polarity


class CombineRule(StrEnum):
    """How the events of one (user, item) pair become one weight and polarity."""

    SUM = "sum"
    STRONGEST = "strongest"
    LATEST = "latest"


@dataclass(frozen=True)
class InteractionKind:
    """One kind of interaction: its name, the weight of one event and its polarity."""

    name: str
    weight: float = 1.0
    polarity: Polarity = Polarity.POSITIVE


@dataclass(frozen=True)
class Event:
    """One source event of a pair: its kind, weight (kind weight × row weight), sign and timestamp."""

    kind: str
    weight: float
    sign: int
    timestamp: int | None = None


@dataclass(frozen=True)
class Combined:
    """The pair's combined interaction."""

    weight: float
    polarity: int
    kinds: tuple[str, ...]
    counts: tuple[int, ...]


def combine(events: Sequence[Event], rule: CombineRule = CombineRule.SUM) -> Combined:
    """Combine a pair's events (in reading order) into one weight and polarity by ``rule``.

    >>> combine([Event("view", 1, 1), Event("purchase", 5, 1), Event("purchase", 5, 1)])
    Combined(weight=11.0, polarity=1, kinds=('purchase', 'view'), counts=(2, 1))
    >>> combine([Event("purchase", 5, 1), Event("return", 5, -1)]).polarity
    -1
    """
    if not events:
        raise ValueError("combine needs at least one event")
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    signs: dict[str, int] = {}
    for e in events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
        sums[e.kind] = sums.get(e.kind, 0.0) + e.weight
        signs[e.kind] = min(signs.get(e.kind, 1), e.sign)
    kinds = tuple(sorted(counts))
    if rule is CombineRule.SUM:
        total = sum(e.sign * e.weight for e in events)
        negative = total < 0 or (total == 0 and any(e.sign < 0 for e in events))
        return Combined(float(abs(total)), -1 if negative else 1, kinds, tuple(counts[k] for k in kinds))
    if rule is CombineRule.STRONGEST:
        best = max(events, key=lambda e: (e.weight, -e.sign))
    else:
        order = {id(e): n for n, e in enumerate(events)}
        best = max(events, key=lambda e: (e.timestamp if e.timestamp is not None else -1, order[id(e)]))
    return Combined(float(sums[best.kind]), best.sign, kinds, tuple(counts[k] for k in kinds))


class Outcome(StrEnum):
    """What a feedback attributed to a shown list counts as in that list's online figures."""

    NONE = "none"
    CLICK = "click"  # a click of the list (CTR)
    CONVERSION = "conversion"  # a conversion of the list, and a click too (a bought item was engaged with)


@dataclass(frozen=True)
class FeedbackKind(InteractionKind):
    """A feedback type of the API (``POST /feedback``): an interaction kind, and what it counts as for the list it is
    attributed to."""

    outcome: Outcome = Outcome.NONE
    #: Recorded as an ignored impression (the item's count in the user's exposure arrays, which exposure fatigue reads)
    #: instead of an interaction: the item is not hidden, training does not see it, its score fades with each one.
    exposure: bool = False


#: The feedback types and their defaults (weight of one event, polarity, outcome); a YAML file named by
#: ``KGREC_FEEDBACK_KINDS`` overrides them. A negative type (dislike) is never a positive for recall, explanations or
#: training; like any interaction, it hides the item from its user for good. A skip is an ignored impression
#: (``exposure``): fatigue lowers the item, it is not hidden; a file can make it a negative interaction instead.
DEFAULT_FEEDBACK_KINDS: dict[str, FeedbackKind] = {
    k.name: k
    for k in (
        FeedbackKind("view", 0.5),
        FeedbackKind("click", 1.0, outcome=Outcome.CLICK),
        FeedbackKind("like", 3.0, outcome=Outcome.CLICK),
        FeedbackKind("purchase", 5.0, outcome=Outcome.CONVERSION),
        FeedbackKind("dislike", 5.0, Polarity.NEGATIVE),
        FeedbackKind("skip", 0.5, Polarity.NEGATIVE, exposure=True),
    )
}
