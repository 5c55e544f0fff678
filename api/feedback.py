"""Feedback (``POST /feedback``): typed events combined into the pair's interaction, attributed to the list shown.

The types, their weights and polarities and what each counts as in a list's figures come from
:data:`schema.kinds.DEFAULT_FEEDBACK_KINDS`, or from the YAML file named by ``KGREC_FEEDBACK_KINDS``::

    combine: sum            # how a pair's events combine (schema/kinds.py): sum, strongest or latest
    kinds:
      click: {weight: 1, polarity: positive, outcome: click}
      purchase: {weight: 5, outcome: conversion}
      dislike: {weight: 5, polarity: negative}
      skip: {exposure: true}  # an ignored impression, not an interaction (the default's skip)

A negative type (dislike) makes the pair negative: never a positive for recall, explanations or training (it is
exported with its polarity, so ``gnn.evaluation.positive_mask`` leaves it out), and, as any interaction, it hides the
item from the user's lists for good. A feedback naming a ``recommendation_id`` is attributed to that list when the
list exists, was served to this user and showed the item; otherwise it is still recorded, unattributed, and the
answer says why (``unknown_recommendation``, ``not_shown``): the event is never lost for a bad id. An ``exposure``
type (skip by default) writes no interaction: it counts one more ignored impression of the item for the user (its
count in the user's exposure arrays, which fatigue reads), so the item fades from their lists but is not hidden and not a training negative.

With the impressions outside the graph (``KGREC_IMPRESSION_STORE=sqlite``), the graph's transaction writes only the
interaction; the attribution and a skip's exposure go to the store after it (:class:`graph.impressions.
SqliteImpressionStore`), by the same rules.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml
from neo4j import Driver
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.cache import HeldHistories
from api.errors import UnknownEntityError
from api.impressions import ImpressionRecorder
from api.metrics import Metrics
from api.schemas import FeedbackIn, FeedbackOut
from graph.impressions import ImpressionStore, SqliteImpressionStore
from graph.reads import written_interaction
from graph.writers import EXPOSURE_ITEMS, write_exposure_feedback, write_feedback
from schema.errors import ConfigError
from schema.kinds import DEFAULT_FEEDBACK_KINDS, CombineRule, FeedbackKind, Outcome
from schema.model import Polarity


class UnknownFeedbackTypeError(ValueError):
    """A feedback type that is not configured (422)."""


class _KindSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    polarity: Polarity = Polarity.POSITIVE
    outcome: Outcome = Outcome.NONE
    exposure: bool = False


class _FeedbackFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    combine: CombineRule = CombineRule.SUM
    kinds: dict[str, _KindSpec] = Field(min_length=1)


class FeedbackConfig:
    """The feedback types and the combine rule of one app.

    Args:
        kinds: The types by name.
        rule: How a pair's events combine.
    """

    def __init__(self, kinds: dict[str, FeedbackKind], rule: CombineRule = CombineRule.SUM) -> None:
        self.kinds = kinds
        self.rule = rule

    @classmethod
    def load(cls, path: Path | None) -> FeedbackConfig:
        """The defaults, or the file at ``path`` (it replaces the whole table).

        Raises:
            ConfigError: The file is missing or not a valid table (the message says where).
        """
        if path is None:
            return cls(dict(DEFAULT_FEEDBACK_KINDS))
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            spec = _FeedbackFile.model_validate(raw)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"KGREC_FEEDBACK_KINDS {path}: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"KGREC_FEEDBACK_KINDS {path}: {problems}") from exc
        kinds = {n: FeedbackKind(n, k.weight, k.polarity, k.outcome, k.exposure) for n, k in spec.kinds.items()}
        return cls(kinds, spec.combine)

    def kind(self, name: str) -> FeedbackKind:
        """The type called ``name``.

        Raises:
            UnknownFeedbackTypeError: No such type.
        """
        try:
            return self.kinds[name]
        except KeyError:
            raise UnknownFeedbackTypeError(
                f"unknown feedback type {name[:64]!r}; configured: {', '.join(sorted(self.kinds))}"
            ) from None


def record_feedback(
    driver: Driver,
    body: FeedbackIn,
    config: FeedbackConfig,
    metrics: Metrics,
    recorder: ImpressionRecorder | None = None,
    database: str = "neo4j",
    on_click: Callable[[str], None] | None = None,
    max_shown: int = EXPOSURE_ITEMS,
    histories: HeldHistories | None = None,
    store: ImpressionStore | None = None,
) -> FeedbackOut:
    """Record one feedback event and attribute it to its list (``on_click`` hears of each new attributed click, with
    the item id: exploration counts it). The interaction written is applied to the user's history ``histories``
    holds (:meth:`api.cache.HeldHistories.written`), so that their next read finds it current. ``store``: where
    impressions are kept (None: the graph, in the feedback's own transaction).

    A list served a moment ago may still wait in the impression queue: it is written first (with its user's other
    queued lists, not the whole window: :meth:`api.impressions.ImpressionRecorder.flush_list`), so that the feedback
    finds it.

    Raises:
        UnknownFeedbackTypeError: The type is not configured.
        UnknownEntityError: The item does not exist.
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    kind = config.kind(body.type)
    rec_id = body.recommendation_id
    if rec_id is not None and recorder is not None and recorder.pending(rec_id):
        recorder.flush_list(rec_id)
    outside = store if isinstance(store, SqliteImpressionStore) else None  # None: the graph's transaction does it
    write = (
        functools.partial(write_exposure_feedback, max_shown=max_shown, exposure=outside is None)
        if kind.exposure
        else write_feedback
    )
    timestamp = body.timestamp if body.timestamp is not None else int(time.time())
    click, conversion = kind.outcome is Outcome.CLICK, kind.outcome is Outcome.CONVERSION
    outcome = write(
        driver,
        body.user_id,
        body.item_id,
        kind,
        timestamp,
        kinds=config.kinds,
        rule=config.rule,
        recommendation_id=rec_id if outside is None else None,
        click=click,
        conversion=conversion,
        database=database,
    )
    if outcome is None:
        raise UnknownEntityError(f"unknown item {body.item_id!r}")
    if outside is not None:
        if kind.exposure:
            outside.record_skip(body.user_id, body.item_id, timestamp)
        if rec_id is not None:
            attribution = outside.attribute(rec_id, body.user_id, body.item_id, click=click, conversion=conversion)
            outcome = replace(outcome, **attribution._asdict())
    if histories is not None and outcome.before is not None:
        histories.written(body.user_id, [written_interaction(outcome.interaction)], outcome.before, outcome.after)
    if rec_id is None:
        attribution = "none"
    elif outcome.shown:
        attribution = "attributed"
    else:
        attribution = "not_shown" if outcome.found else "unknown_recommendation"
    variant = outcome.variant if outcome.shown else None
    if outcome.new_click and on_click is not None:
        on_click(body.item_id)
    if variant is not None:
        if outcome.new_click:
            metrics.clicks.labels(variant).inc()
        if outcome.new_conversion:
            metrics.conversions.labels(variant).inc()
    metrics.feedback.labels(kind.name, attribution if attribution in ("none", "attributed") else "unattributed").inc()
    return FeedbackOut(
        user_id=body.user_id,
        item_id=body.item_id,
        type=kind.name,
        created_user=outcome.created_user,
        polarity=outcome.interaction.polarity,
        weight=outcome.interaction.weight,
        attributed=outcome.shown,
        attribution=attribution,
        variant=variant,
    )


__all__ = ["FeedbackConfig", "UnknownFeedbackTypeError", "record_feedback"]
