"""The graph's genre names, held in memory, and the check of the genres a recommendation request filters on.

``GET /users/{user_id}/recommendations?include_genres=Bogus`` used to answer an empty list, where ``POST /users`` and
``POST /items`` refuse an unknown genre with a 422: a misspelt filter looked like a user with nothing to recommend.
The filters' genres are now checked too, against :class:`GenreNames` — the set read once and re-read at most every
``KGREC_CATALOGUE_REFRESH_SECONDS``, and only when a request names genres, so that the read path costs no query per
request. Genres come only with a load (``POST /users`` and ``POST /items`` refuse new ones), so a set a few seconds
old is the graph's. While Neo4j is away the last set read stands; before one was ever read, the caller falls back on
the served model's item catalog, else does not check.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Collection

from neo4j import Driver

from api.refresh import Refresh
from graph.reads import read_genre_names
from schema.errors import KgrecError

log = logging.getLogger(__name__)

#: An unknown genre's message lists every genre of the graph when it has at most this many (else only the closest).
MAX_LISTED_GENRES = 30


class GenreNames:
    """The graph's genre names (thread-safe; module docstring).

    Args:
        driver: Open driver.
        database: Neo4j database.
        refresh_seconds: Re-read at most this often (0: read once).
    """

    def __init__(self, driver: Driver, database: str = "neo4j", refresh_seconds: float = 5.0) -> None:
        self.driver = driver
        self.database = database
        self._names: frozenset[str] | None = None
        self._refresh = Refresh(refresh_seconds)

    def names(self) -> frozenset[str] | None:
        """The genre names, re-read first when due (one caller reads while the others use the set they have; before
        any set, they wait for that read). None when Neo4j has not answered yet."""
        self._refresh.run_if_due(self._read, wait=self._names is None)
        return self._names

    def _read(self) -> None:
        try:
            self._names = read_genre_names(self.driver, self.database)
        except KgrecError as exc:  # Neo4j away: the last set stands, tried again when due
            log.warning("genre names not read: %s", exc)


def unknown_genre(name: str, known: Collection[str]) -> str:
    """The message refusing ``name``: the closest genres, and every genre when there are few."""
    message = f"unknown genre {name!r}"
    close = difflib.get_close_matches(name, known, n=3)
    if close:
        message += f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    if len(known) <= MAX_LISTED_GENRES:
        message += f"; the genres are {', '.join(sorted(known)) or '(none: the graph has no genres)'}"
    else:
        message += f" (the graph has {len(known)} genres)"
    return message


__all__ = ["MAX_LISTED_GENRES", "GenreNames", "unknown_genre"]
