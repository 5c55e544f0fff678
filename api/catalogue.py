"""The run-time catalogue in the API: which items may not be recommended now, which were added since the model, and
the item routes' work (``POST /items``, ``PATCH /items/{item_id}``).

Availability is enforced twice, once per kind of ranking:

* **In Cypher** — every recall, similar-items and explain query leaves out hidden items and items outside their
  availability window at the database's clock (:mod:`graph.items`). The graph path, ``/similar`` and the
  explanations of the model path therefore never show one, whichever process changed the item.
* **In process** — the model ranks every item it was fitted on without asking the graph, and the degraded path has
  no graph at all. :class:`Catalogue` holds the restricted items (hidden, windowed, or added through the API: one
  indexed query, :func:`graph.items.read_restricted_items`), re-read at once after a ``PATCH``/``POST`` in this
  process and at most every ``KGREC_CATALOGUE_REFRESH_SECONDS`` otherwise (changes made through another process);
  the ranking excludes :meth:`Catalogue.unavailable` like items the user has seen. If an explain query drops an item
  the model picked (hidden in another process since the last read), the model path picks again from what the graph
  kept. When Neo4j is away, the last set read serves the degraded answers.

Cached answers: the catalogue's revision (:meth:`Catalogue.state`) changes whenever the set of unavailable items
changes (a hide, an expiry, a window opening) or an item is added, and it is part of every answer cache key, so no
cached list outlives a change. Filtering cached lists at serve time instead would re-render every hit and return short
lists; a revision costs one recomputation per user after a catalogue change, which is rare next to reads, and nothing
while the catalogue does not change (an empty set when nothing is restricted: the read path is unchanged). The revision
is a digest of the two sets, not a count of changes, so processes that read the same catalogue name it alike and can
share answers (:class:`api.cache.SharedAnswers`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable

from neo4j import Driver

from api.errors import EmptyWindowError, ItemExistsError, UnknownEntityError, UnknownNamesError
from api.item_schemas import ItemIn, ItemOut, ItemPatch, window_error
from api.refresh import Refresh
from graph.items import (
    CatalogueItem,
    Restriction,
    create_item,
    read_catalogue_item,
    read_restricted_items,
    update_item,
)
from graph.reads import read_existing_genres
from schema.errors import KgrecError

log = logging.getLogger(__name__)


class Catalogue:
    """The restricted and added items of the graph, held in memory (thread-safe).

    Args:
        driver: Open driver.
        database: Neo4j database.
        refresh_seconds: Re-read at most this often (0: only when :meth:`refresh` is called).
        clock: The time in epoch seconds (tests move it).
    """

    def __init__(
        self,
        driver: Driver,
        database: str = "neo4j",
        refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.driver = driver
        self.database = database
        self.clock = clock
        self._lock = threading.Lock()
        self._refresh = Refresh(refresh_seconds)
        self._items: dict[str, Restriction] = {}
        self._revision = _digest(frozenset(), ())
        self._unavailable: frozenset[str] = frozenset()
        self._added: tuple[str, ...] = ()
        self._valid_until = float("inf")  # the next window bound after which the unavailable set changes
        self._computed = False

    def refresh(self) -> bool:
        """Re-read the restricted items now.

        Returns:
            Whether the read succeeded (Neo4j away: False, the last set read stays).
        """
        try:
            items = read_restricted_items(self.driver, self.database)
        except KgrecError as exc:
            log.warning("catalogue restrictions not refreshed: %s", exc)
            return False
        finally:
            self._refresh.tried()  # a read asked for restarts the wait for the next one
        with self._lock:
            self._items = {r.item_id: r for r in items}
            self._recompute(int(self.clock()))
        return True

    def _maybe_refresh(self) -> None:
        """Refresh when the last read is older than ``refresh_seconds`` (one caller reads; the others go on with the
        set they have)."""
        self._refresh.run_if_due(self.refresh)

    def _recompute(self, now: int) -> None:
        """The unavailable and added sets at ``now`` (under the lock); a new revision when either changed."""
        unavailable = frozenset(r.item_id for r in self._items.values() if not r.available(now))
        added = tuple(
            r.item_id
            for r in sorted(self._items.values(), key=lambda r: (-(r.added_at or 0), r.item_id))
            if r.added_at is not None
        )
        bounds = [
            b
            for r in self._items.values()
            for b in (r.available_from, r.available_until)
            if b is not None and b > now and not r.hidden
        ]
        self._valid_until = min(bounds, default=float("inf"))
        if not self._computed or unavailable != self._unavailable or added != self._added:
            self._revision = _digest(unavailable, added)
            self._unavailable, self._added, self._computed = unavailable, added, True

    def state(self) -> tuple[str, frozenset[str], tuple[str, ...]]:
        """``(revision, unavailable, added)`` now: the answer cache's catalogue revision, the ids of the items that
        may not be recommended now, and the ids of the items added through the API, most recent first (refreshing
        first when due)."""
        self._maybe_refresh()
        now = int(self.clock())
        with self._lock:
            if not self._computed or now >= self._valid_until:
                self._recompute(now)
            return self._revision, self._unavailable, self._added

    def unavailable(self) -> frozenset[str]:
        """The ids of the items that may not be recommended now."""
        return self.state()[1]


def add_item(driver: Driver, body: ItemIn, catalogue: Catalogue, database: str = "neo4j") -> tuple[ItemOut, bool]:
    """Add an item (``POST /items``); a retry of the same body changes nothing.

    Returns:
        The item and whether it was created (False: it existed with the same content: a retry).

    Raises:
        UnknownNamesError: Some genres do not exist (nothing is written).
        ItemExistsError: The item exists with other content.
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    existing = read_catalogue_item(driver, body.item_id, database)
    if existing is not None:
        if not _same(existing, body):
            raise ItemExistsError(
                f"item {body.item_id!r} exists already with other content (PATCH /items/{{item_id}} changes its "
                "title, visibility and availability window)"
            )
        return _out(
            existing.item_id,
            existing.title,
            existing.hidden,
            existing.available_from,
            existing.available_until,
            catalogue,
        ), False
    known = read_existing_genres(driver, body.genres, database)
    unknown = [("genres", n, "genre", g) for n, g in enumerate(body.genres) if g not in known]
    if unknown:
        raise UnknownNamesError(unknown)
    params = {
        "itemId": body.item_id,
        "title": body.title,
        "year": body.year,
        "labels": [body.label] if body.label is not None else None,
        "genres": sorted(set(body.genres)),
        "people": [{"person_id": p.person_id, "name": p.name, "role": p.role.value} for p in body.people],
        "tags": [{"tag": tag, "weight": weight} for tag, weight in _merged_tags(body).items()],
        "attributes": [{"kind": a.kind, "value": a.value} for a in body.attributes],
        "hidden": True if body.hidden else None,
        "availableFrom": body.available_from,
        "availableUntil": body.available_until,
        "addedAt": int(time.time()),
    }
    created = create_item(driver, params, database)
    catalogue.refresh()
    return _out(body.item_id, body.title, body.hidden, body.available_from, body.available_until, catalogue), created


def patch_item(driver: Driver, item_id: str, body: ItemPatch, catalogue: Catalogue, database: str = "neo4j") -> ItemOut:
    """Change an item's title, visibility or availability window (``PATCH /items/{item_id}``).

    Raises:
        UnknownEntityError: The item does not exist.
        EmptyWindowError: The resulting availability window would be empty.
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    # null title or hidden: no change; a null bound removes the bound
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    changes = {name: value for name, value in changes.items() if value is not None or name.startswith("available_")}
    existing = read_catalogue_item(driver, item_id, database)
    if existing is None:
        raise UnknownEntityError(f"unknown item {item_id[:100]!r}")
    start = changes.get("available_from", existing.available_from)
    end = changes.get("available_until", existing.available_until)
    reason = window_error(start, end)
    if reason is not None:
        raise EmptyWindowError(reason)
    if changes:
        updated = update_item(driver, item_id, changes, database)
        if updated is None:  # deleted in between
            raise UnknownEntityError(f"unknown item {item_id[:100]!r}")
        catalogue.refresh()
        return _out(
            item_id,
            updated["title"],
            updated["hidden"],
            updated["available_from"],
            updated["available_until"],
            catalogue,
        )
    return _out(item_id, existing.title, existing.hidden, existing.available_from, existing.available_until, catalogue)


def _digest(unavailable: frozenset[str], added: tuple[str, ...]) -> str:
    """The catalogue revision of these sets: the same in every process that reads them (module docstring)."""
    text = json.dumps([sorted(unavailable), list(added)])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _merged_tags(body: ItemIn) -> dict[str, float]:
    """The body's tags by name, the weights of a repeated name summed (as a load does; the sum may pass the bound
    each given weight has: it is not a ``TagIn``)."""
    weights: dict[str, float] = {}
    for t in body.tags:
        weights[t.tag] = weights.get(t.tag, 0.0) + t.weight
    return weights


def _same(existing: CatalogueItem, body: ItemIn) -> bool:
    """Whether ``body`` describes ``existing`` as it is (a retry of the POST that created it)."""
    return (
        existing.title == body.title
        and existing.year == body.year
        and (body.label is None or body.label in existing.labels)
        and existing.genres == frozenset(body.genres)
        and {(p, role) for p, _, role in existing.people} == {(p.person_id, p.role.value) for p in body.people}
        and existing.tags == frozenset((tag, float(weight)) for tag, weight in _merged_tags(body).items())
        and existing.attributes == frozenset((a.kind, a.value) for a in body.attributes)
        and existing.hidden == body.hidden
        and existing.available_from == body.available_from
        and existing.available_until == body.available_until
    )


def _out(
    item_id: str,
    title: str | None,
    hidden: bool,
    available_from: int | None,
    available_until: int | None,
    catalogue: Catalogue,
) -> ItemOut:
    now = int(catalogue.clock())
    available = Restriction(item_id, hidden, available_from, available_until, None).available(now)
    return ItemOut(
        item_id=item_id,
        title=title,
        hidden=hidden,
        available_from=available_from,
        available_until=available_until,
        available=available,
    )


__all__ = ["Catalogue", "add_item", "patch_item"]
