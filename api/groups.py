"""Group recommendations: one list for a set of users (friends watching together), each item explained for the
members it serves.

1. **Members**: 2 to :data:`api.schemas.MAX_GROUP_MEMBERS` distinct users, each read with its interactions
   (:func:`graph.reads.user_context`); an unknown member is a 404 naming it.
2. **Scores per member**: with a model (the one of the group's variant, assigned by a stable hash of the sorted
   member ids, :func:`api.variants.group_key`), the model scores every item for each member from their live
   positives, as for one user (a member without positives is scored by their graph-path list, 0 where it found
   nothing). Without a model the graph path answers each member (the blended recall sources, as
   ``GET /users/{id}/recommendations`` does) and an item a member's recall did not find scores 0 for them. With a
   model and Neo4j away, each member is scored from the history the model was fitted on (``degraded``, no paths;
   503 when the model does not know a member).
3. **Exclusion**: every item any member has interacted with (positive or negative) is left out, for everyone.
4. **Normalisation**: each member's scores become z-scores over the group's candidate items (mean 0, standard
   deviation 1; all 0 when a member's scores do not vary), so that a member with larger raw scores does not
   outweigh the others.
5. **Aggregation** (:func:`aggregate`): ``average`` (mean of the members' z-scores), ``least_misery`` (their
   minimum: an item one member dislikes sinks) or ``most_pleasure`` (their maximum). On the model path maximal
   marginal relevance then picks the ``k`` items (the variant's λ), as for one user; no new-arrival positions.
6. **Explanation**: an item *serves* the members whose z-score for it is at or above 0 (their mean), or, when none
   is, the member who likes it most; each served member's paths to the item are given
   (:func:`graph.explain.explain_items` from that member). Every member's score is given.

Group answers are not cached; with a model the request is admitted by :class:`api.limits.MissGate` like a miss, at
the cost of one miss per member (at most the client's burst), before anything is read of its members.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from api.errors import UnknownEntityError
from api.limits import miss_cost
from api.ranking import MAX_EXPLANATIONS, pick
from api.schemas import GroupItem, GroupMemberScore, GroupRecommendationsResponse, RecommendationsResponse
from api.variants import Variant, group_key
from gnn.serving import Positives
from graph.errors import unreachable
from graph.explain import MAX_EXPLAIN_ITEMS, ExplainedItem, explain_items, strongest_seeds
from graph.paths import Explanation
from graph.reads import UserContext
from graph.recall import RecallFilters
from schema.errors import DatabaseUnavailableError

if TYPE_CHECKING:
    from api.model import ServingModel
    from api.service import Recommender

log = logging.getLogger(__name__)

#: The aggregations a group request may ask for.
AGGREGATIONS = ("average", "least_misery", "most_pleasure")


def graph_fetch(k: int) -> int:
    """Items each member's graph recall returns on the path without a model (their union is the group's candidates):
    three times ``k``, at least 30 and at most 300."""
    return min(max(3 * k, 30), 300)


def normalise(raw: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per-member z-scores over the candidate columns.

    Args:
        raw: ``[members, items]`` scores.
        candidates: ``[items]`` bool, the items that may be recommended (the statistics use only these).

    Returns:
        ``[members, items]`` float64 z-scores; 0 for a member whose candidate scores do not vary, ``-inf`` outside
        the candidates.
    """
    out = np.full(raw.shape, -np.inf, dtype=np.float64)
    if not candidates.any():
        return out
    part = raw[:, candidates].astype(np.float64)
    mean = part.mean(axis=1, keepdims=True)
    std = part.std(axis=1, keepdims=True)
    out[:, candidates] = np.where(std > 0, (part - mean) / np.where(std > 0, std, 1.0), 0.0)
    return out


def aggregate(z: np.ndarray, how: str) -> np.ndarray:
    """The group's score of each item from the members' z-scores (``[members, items]``): their mean (``average``),
    minimum (``least_misery``) or maximum (``most_pleasure``)."""
    if how == "average":
        return z.mean(axis=0)
    if how == "least_misery":
        return z.min(axis=0)
    if how == "most_pleasure":
        return z.max(axis=0)
    raise ValueError(f"unknown aggregation {how!r}; one of {', '.join(AGGREGATIONS)}")


def served(z_column: np.ndarray) -> list[int]:
    """Rows of the members an item serves: z-score >= 0, or the best-placed member when none is."""
    rows = [int(r) for r in np.flatnonzero(z_column >= 0)]
    return rows or [int(np.argmax(z_column))]


def recommend_group(
    rec: Recommender,
    user_ids: Sequence[str],
    k: int,
    aggregation: str,
    *,
    explain: bool = True,
    client: str | None = None,
) -> GroupRecommendationsResponse:
    """One list for the group ``user_ids`` (module docstring).

    Raises:
        UnknownEntityError: A member does not exist (the message names every unknown one).
        DatabaseUnavailableError: Neo4j is unreachable and no model can answer for every member.
        RefusedError: The computation was not admitted (429 or 503 with Retry-After).
    """
    members = list(user_ids)
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    variant = rec.variant_of(group_key(members))
    model = rec.model_of(variant)
    if model is None:
        # each member's graph-path answer is cached, and admitted when computed, as one user's
        try:
            known = _read_members(rec, members)
        except DatabaseUnavailableError as exc:
            raise unreachable("group members", exc) from exc
        return _graph_group(rec, members, known, _seen(rec, known), k, aggregation, explain, client, variant.name)
    # A group's answer is never cached: it is admitted before anything is read of its members (as a user with no
    # answer held: api.service.Recommender.answer), so that a refused or queued request costs Neo4j nothing.
    cost = min(miss_cost(k, explain) * len(members), rec.settings.miss_cost_burst)
    with rec.gate.admit(client, cost):
        try:
            known = _read_members(rec, members)
        except DatabaseUnavailableError as exc:
            return _degraded(rec, model, members, k, aggregation, variant, exc)
        # A member without positives (just onboarded) has no model scores: their graph-path list stands in (within
        # this admission: computing it takes no slot of its own)
        min_rating = rec.settings.min_rating
        fallback = {
            c.user_id: _graph_list(rec, c, graph_fetch(k), explain, client)
            for c in known
            if not c.columns.positive(min_rating).any()
        }
        return _model_group(rec, model, members, known, _seen(rec, known), k, aggregation, explain, variant, fallback)


def _read_members(rec: Recommender, members: list[str]) -> list[UserContext]:
    """Every member's context (:meth:`api.service.Recommender.read_context`).

    Raises:
        UnknownEntityError: A member does not exist (the message names every unknown one).
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    contexts = [rec.read_context(u) for u in members]
    unknown = [u for u, c in zip(members, contexts, strict=True) if c is None]
    if unknown:
        raise UnknownEntityError(f"unknown user{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)}")
    return [c for c in contexts if c is not None]


def _seen(rec: Recommender, known: list[UserContext]) -> set[str]:
    """Items any member interacted with, and hidden or out-of-window ones (the run-time catalogue)."""
    return set().union(*(c.columns.seen for c in known)) | rec.catalogue.unavailable()


def _graph_list(
    rec: Recommender, context: UserContext, size: int, explain: bool, client: str | None
) -> RecommendationsResponse:
    """The member's graph-path list of ``size`` items (its own variant's, cached like any answer), computed within
    the group's admission."""
    answer, _ = rec._graph_answer(
        context.user_id, size, explain, rec.source_names, RecallFilters(), context.fingerprint, client, admitted=True
    )
    return answer.response


def _model_group(
    rec: Recommender,
    model: ServingModel,
    members: list[str],
    contexts: list[UserContext],
    seen: set[str],
    k: int,
    aggregation: str,
    explain: bool,
    variant: Variant,
    fallback: dict[str, RecommendationsResponse],
) -> GroupRecommendationsResponse:
    min_rating = rec.settings.min_rating
    rows = []
    for c in contexts:
        if c.user_id in fallback:  # graph recall's scores where it found items, 0 elsewhere
            row = np.zeros(len(model.item_ids), dtype=np.float32)
            for item in fallback[c.user_id].items:
                if item.item_id in model.item_index:
                    row[model.item_index[item.item_id]] = item.score
            rows.append(row)
            continue
        positives = Positives.live(c, min_rating)
        rows.append(rec._stage("model", lambda c=c, p=positives: model.scores(c.user_id, p)))
    raw = np.stack(rows)
    z, group = _scores(model, raw, seen, aggregation)
    lam = rec.mmr_lambda(variant)
    pool = _best(group, max(2 * k, k + 10) if lam < 1.0 else k + 10)
    dropped: set[int] = set()
    seeds = {c.user_id: strongest_seeds(c, min_rating=min_rating) for c in contexts}
    for _ in range(3):  # an item the graph no longer has (or hides) is dropped and the pick made again
        candidates = [r for r in pool if r not in dropped]
        picked = rec._stage("rerank", lambda c=candidates: pick(model, group, c, k, lam, None))
        explained = _explain(rec, model, members, seeds, z, picked, explain)
        missing = {r for r in picked if model.item_ids[r] not in explained}
        if not missing:
            break
        dropped |= missing
    picked = [r for r in picked if r not in missing]
    items = [_item(model.item_ids[r], explained.get(model.item_ids[r]), group[r], z[:, r], members) for r in picked]
    return GroupRecommendationsResponse(
        user_ids=members,
        aggregation=aggregation,
        model_version=f"{model.kind}-{model.version}",
        items=items,
        variant=variant.name,
    )


def _scores(model: ServingModel, raw: np.ndarray, seen: set[str], aggregation: str) -> tuple[np.ndarray, np.ndarray]:
    """The members' z-scores and the group's scores (``-inf`` for items seen by a member or unscored)."""
    candidates = np.isfinite(raw).all(axis=0)
    candidates[[model.item_index[i] for i in seen if i in model.item_index]] = False
    z = normalise(raw, candidates)
    group = np.where(candidates, aggregate(np.where(candidates, z, 0.0), aggregation), -np.inf)
    return z, group


def _best(scores: np.ndarray, limit: int) -> list[int]:
    """Rows of the ``limit`` best finite scores, best first (ties by row)."""
    rows = np.flatnonzero(np.isfinite(scores))
    order = rows[np.lexsort((rows, -scores[rows]))]
    return [int(r) for r in order[:limit]]


def _explain(
    rec: Recommender,
    model: ServingModel,
    members: list[str],
    seeds: dict[str, list[str]],
    z: np.ndarray,
    picked: list[int],
    explain: bool,
) -> dict[str, dict[str, ExplainedItem]]:
    """Each picked item's explanations by the members it serves: ``{item id: {member: explained}}`` (an item no
    member's query returned is absent: gone from the graph)."""
    wanted: dict[str, list[str]] = {u: [] for u in members}
    for row in picked:
        for m in served(z[:, row]):
            wanted[members[m]].append(model.item_ids[row])
    out: dict[str, dict[str, ExplainedItem]] = {}
    for user_id, item_ids in wanted.items():
        for start in range(0, len(item_ids), MAX_EXPLAIN_ITEMS):  # one query explains at most MAX_EXPLAIN_ITEMS
            found = rec._stage(
                "explain",
                lambda u=user_id, ids=item_ids[start : start + MAX_EXPLAIN_ITEMS]: explain_items(
                    rec.driver,
                    u,
                    ids,
                    max_paths=MAX_EXPLANATIONS if explain else 0,
                    filters=RecallFilters(),
                    seed_ids=seeds[u],
                    database=rec.database,
                ),
            )
            for item_id, entry in found.items():
                out.setdefault(item_id, {})[user_id] = entry
    return out


def _item(
    item_id: str,
    by_member: dict[str, ExplainedItem] | dict[str, list[Explanation]] | None,
    score: float,
    z_column: np.ndarray,
    members: list[str],
    title: str | None = None,
) -> GroupItem:
    """A group item: every member's z-score, the served ones first (best first) with their paths."""
    serving = set(served(z_column))
    entries = []
    for m in sorted(range(len(members)), key=lambda m: (m not in serving, -z_column[m], m)):
        found = (by_member or {}).get(members[m]) if m in serving else None
        if isinstance(found, ExplainedItem):
            title = title or found.title
            paths = list(found.explanations)
        else:
            paths = list(found or [])
        entries.append(
            GroupMemberScore(
                user_id=members[m], score=round(float(z_column[m]), 6), serves=m in serving, explanations=paths
            )
        )
    return GroupItem(item_id=item_id, title=title, score=round(float(score), 6), members=entries)


def _graph_group(
    rec: Recommender,
    members: list[str],
    contexts: list[UserContext],
    seen: set[str],
    k: int,
    aggregation: str,
    explain: bool,
    client: str | None,
    variant: str,
) -> GroupRecommendationsResponse:
    """Without a model: each member's graph-path answer, scores 0 where a member's recall did not find an item."""
    answers = []
    for context in contexts:
        answers.append(_graph_list(rec, context, graph_fetch(k), explain, client))
    item_ids = sorted({i.item_id for a in answers for i in a.items} - seen)
    column = {item_id: c for c, item_id in enumerate(item_ids)}
    raw = np.zeros((len(members), len(item_ids)), dtype=np.float64)
    titles: dict[str, str | None] = {}
    paths: list[dict[str, list[Explanation]]] = [{} for _ in members]
    for m, response in enumerate(answers):
        for item in response.items:
            if item.item_id in column:
                raw[m, column[item.item_id]] = item.score
                titles[item.item_id] = titles.get(item.item_id) or item.title
                paths[m][item.item_id] = item.explanations
    z = normalise(raw, np.ones(len(item_ids), dtype=bool))
    group = aggregate(z, aggregation) if item_ids else np.zeros(0)
    picked = _best(group, k)
    items = [
        _item(
            item_ids[c],
            {members[m]: paths[m].get(item_ids[c], []) for m in range(len(members))},
            group[c],
            z[:, c],
            members,
            title=titles.get(item_ids[c]),
        )
        for c in picked
    ]
    return GroupRecommendationsResponse(
        user_ids=members,
        aggregation=aggregation,
        model_version=answers[0].model_version,
        degraded=any(a.degraded for a in answers),
        items=items,
        variant=variant,
    )


def _degraded(
    rec: Recommender,
    model: ServingModel,
    members: list[str],
    k: int,
    aggregation: str,
    variant: Variant,
    cause: Exception,
) -> GroupRecommendationsResponse:
    """Neo4j is away: each member scored from the history the model was fitted on; no paths nor titles."""
    log.warning("degraded group answer for %d users: %s", len(members), cause)
    unknown = [u for u in members if not model.knows_user(u)]
    if unknown:
        raise DatabaseUnavailableError(
            f"Neo4j is unreachable and the model does not know user(s) {', '.join(repr(u[:100]) for u in unknown)}"
        )
    histories = [model.fitted_history(u) for u in members]
    raw = np.stack([model.scores(u, Positives.of(h)) for u, h in zip(members, histories, strict=True)])
    seen = {i for h in histories for i, _ in h} | rec.catalogue.unavailable()  # the last read of the catalogue
    z, group = _scores(model, raw, seen, aggregation)
    picked = pick(model, group, _best(group, max(3 * k, 30)), k, rec.mmr_lambda(variant), None)
    items = [_item(model.item_ids[r], None, group[r], z[:, r], members) for r in picked]
    return GroupRecommendationsResponse(
        user_ids=members,
        aggregation=aggregation,
        model_version=f"{model.kind}-{model.version}",
        degraded=True,
        items=items,
        variant=variant.name,
    )


__all__ = ["AGGREGATIONS", "aggregate", "normalise", "recommend_group", "served"]
