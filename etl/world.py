"""A synthetic world at real size, streamed to CSV files that ``kgrec load world`` (``mappings/world.yaml``) loads.

``etl.synthetic`` builds small worlds as rows in memory for the demo and the tests; this module writes worlds of
hundreds of thousands of users and tens of millions of interactions in bounded memory: users are generated in
chunks with numpy and each chunk is written and dropped, so memory grows with the catalogue (items), not with the
interactions. The structure planted is the small world's: taste communities that each prefer three of twelve genres,
follows mostly inside the community, items with genres, a director, actors and tags of their main genre. Added for
size: user activity and item popularity are both Zipf-like (a few users and items account for much of the data).
Not kept from the small world: friends' influence (rating items followees liked), which needs every user's likes
in memory. The same arguments always write the same files (numpy's PCG64).

Files (all UTF-8 CSV with a header): ``items.csv`` (itemId, title, year, genres ``|``-separated, director, actors
``|``-separated, tags ``|``-separated), ``interactions.csv`` (userId, itemId, rating, timestamp; grouped by user,
users in id order), ``follows.csv`` (follower, followee) and ``world.json`` (the sizes, the seed and the planted
communities' genres).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from etl.synthetic import _ADJ, _NOUN, _TAGS_PER_GENRE, GENRES, _unique_names

#: Users generated (and written) at a time: bounds the generator's memory whatever the world's size.
USER_CHUNK = 4096
#: Fewest interactions of a user; the Zipf-like tail sits on top of it.
MIN_ACTIVITY = 5
#: Exponents of the Zipf-like laws: item popularity ∝ rank^-ITEM_EXPONENT, user activity ∝ rank^-USER_EXPONENT.
ITEM_EXPONENT = 0.8
USER_EXPONENT = 0.6
#: Weight of an item outside a user's community's genres, relative to one inside.
OUT_OF_TASTE = 0.08
_IN_TASTE_RATINGS = (np.array([3.5, 4.0, 4.5, 5.0]), np.array([0.1, 0.3, 0.3, 0.3]))
_OUT_TASTE_RATINGS = (np.array([1.0, 2.0, 2.5, 3.0, 3.5, 4.0]), np.array([0.1, 0.2, 0.2, 0.25, 0.15, 0.1]))
FILES = ("items.csv", "interactions.csv", "follows.csv", "world.json")


@dataclass
class WorldSummary:
    """What :func:`write_world` wrote (also saved as ``world.json``)."""

    users: int
    items: int
    interactions: int
    follows: int
    seed: int
    communities: int
    community_genres: dict[int, list[str]]
    seconds: float


def activity(users: int, items: int, interactions: int, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: at least :data:`MIN_ACTIVITY`, the rest shared Zipf-like over a random ranking of the
    users, each user capped at a fifth of the catalogue; sums to about ``interactions``."""
    cap = max(MIN_ACTIVITY, items // 5)
    weights = 1.0 / np.power(rng.permutation(users) + 1.0, USER_EXPONENT)
    extra = max(0, interactions - MIN_ACTIVITY * users)
    counts = MIN_ACTIVITY + np.floor(extra * weights / weights.sum()).astype(np.int64)
    counts = np.minimum(counts, cap)
    short = interactions - int(counts.sum())
    room = cap - counts
    if short > 0 and room.any():  # the cap cut the head: spread what is left over the users below it, by weight
        open_weights = weights * (room > 0)
        share = np.floor(short * open_weights / open_weights.sum()).astype(np.int64)
        counts += np.minimum(share, room)
    return counts


def write_world(
    out: Path,
    users: int = 100_000,
    items: int = 50_000,
    interactions: int = 5_000_000,
    seed: int = 42,
    communities: int = 4,
    progress: Callable[[int], None] | None = None,
) -> WorldSummary:
    """Write a world's CSV files into ``out`` (created; existing files are replaced).

    Args:
        out: Target folder.
        users: Number of users (at least 4).
        items: Number of items (at least 12).
        interactions: About how many interactions (each user has at least :data:`MIN_ACTIVITY`; a user's draws of an
            item already drawn are dropped, so the count written is a little lower when activity is very skewed).
        seed: Random seed.
        communities: Taste communities (1–4).
        progress: Called with the number of users written after each chunk.

    Returns:
        The summary, also written to ``world.json``.

    Raises:
        ValueError: Sizes too small to plant structure.
    """
    if users < 4 or items < 12 or not 1 <= communities <= 4 or interactions < 1:
        raise ValueError("need users >= 4, items >= 12, interactions >= 1 and 1 <= communities <= 4")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_genres = len(GENRES)
    community_genres = {c: [GENRES[(3 * c + k) % n_genres] for k in range(3)] for c in range(communities)}

    main_genre = rng.integers(0, n_genres, size=items)
    _write_items(out / "items.csv", items, main_genre, rng)

    # Per community: the cumulative distribution of its item choices (popularity × taste).
    popularity = 1.0 / np.power(rng.permutation(items) + 1.0, ITEM_EXPONENT)
    cdfs, taste = [], []
    for c in range(communities):
        in_taste = np.isin(main_genre, [GENRES.index(g) for g in community_genres[c]])
        weights = popularity * np.where(in_taste, 1.0, OUT_OF_TASTE)
        cdfs.append(np.cumsum(weights) / weights.sum())
        taste.append(in_taste)

    community = rng.permutation(np.arange(users) % communities)
    counts = activity(users, items, interactions, rng)
    members = [np.flatnonzero(community == c) for c in range(communities)]
    written = 0
    with (out / "interactions.csv").open("w", encoding="utf-8") as inter:
        inter.write("userId,itemId,rating,timestamp\n")
        for lo in range(0, users, USER_CHUNK):
            hi = min(users, lo + USER_CHUNK)
            written += _write_chunk(inter, lo, hi, community, counts, cdfs, taste, rng)
            if progress is not None:
                progress(hi - lo)
    follows = _write_follows(out / "follows.csv", community, members, rng)
    summary = WorldSummary(
        users=users,
        items=items,
        interactions=written,
        follows=follows,
        seed=seed,
        communities=communities,
        community_genres=community_genres,
        seconds=time.perf_counter() - started,
    )
    (out / "world.json").write_text(json.dumps(asdict(summary), indent=2), encoding="utf-8")
    return summary


def _write_chunk(
    handle,  # noqa: ANN001 - a text file
    lo: int,
    hi: int,
    community: np.ndarray,
    counts: np.ndarray,
    cdfs: list[np.ndarray],
    taste: list[np.ndarray],
    rng: np.random.Generator,
) -> int:
    """Draw and write the interactions of users ``lo``..``hi`` (0-based); returns how many were written."""
    want = counts[lo:hi]
    draws = np.ceil(want * 1.5).astype(np.int64) + 2  # a few extra draws make up for repeated items
    owner = np.repeat(np.arange(lo, hi), draws)
    uniform = rng.random(owner.size)
    item = np.empty(owner.size, dtype=np.int64)
    owner_community = community[owner]
    for c, cdf in enumerate(cdfs):
        mask = owner_community == c
        item[mask] = np.minimum(np.searchsorted(cdf, uniform[mask], side="right"), cdf.size - 1)
    # Keep each user's first draw of an item, in draw order, then the user's first ``want`` of those.
    items_n = cdfs[0].size
    key = owner * items_n + item
    _, first = np.unique(key, return_index=True)
    first.sort()
    owner, item = owner[first], item[first]
    starts = np.searchsorted(owner, np.arange(lo, hi))
    rank = np.arange(owner.size) - starts[owner - lo]
    keep = rank < want[owner - lo]
    owner, item = owner[keep], item[keep]
    in_taste = np.zeros(owner.size, dtype=bool)
    for c, t in enumerate(taste):
        mask = community[owner] == c
        in_taste[mask] = t[item[mask]]
    rating = np.where(
        in_taste,
        rng.choice(_IN_TASTE_RATINGS[0], size=owner.size, p=_IN_TASTE_RATINGS[1]),
        rng.choice(_OUT_TASTE_RATINGS[0], size=owner.size, p=_OUT_TASTE_RATINGS[1]),
    )
    start = 1_600_000_000 + rng.integers(0, 30_000_000, size=hi - lo)
    stamp = start[owner - lo] + rng.integers(0, 20_000_000, size=owner.size)
    lines = [
        f"u{u + 1},i{i + 1},{r:g},{s}\n"
        for u, i, r, s in zip(owner.tolist(), item.tolist(), rating.tolist(), stamp.tolist(), strict=True)
    ]
    handle.write("".join(lines))
    return len(lines)


def _write_items(path: Path, items: int, main_genre: np.ndarray, rng: np.random.Generator) -> None:
    n_genres = len(GENRES)
    n_actors, n_directors = max(24, items // 3), max(12, items // 8)
    names = _unique_names(n_actors + n_directors, rng)
    actor_names, director_names = names[:n_actors], names[n_actors:]
    actor_genre = rng.integers(0, n_genres, size=n_actors)
    director_genre = rng.integers(0, n_genres, size=n_directors)
    actors_of = [np.flatnonzero(actor_genre == g) for g in range(n_genres)]
    directors_of = [np.flatnonzero(director_genre == g) for g in range(n_genres)]
    years = rng.integers(1970, 2025, size=items)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("itemId,title,year,genres,director,actors,tags\n")
        for i in range(items):
            g = int(main_genre[i])
            extra = rng.choice(n_genres, size=int(rng.integers(0, 3)), replace=False)
            genres = "|".join(GENRES[k] for k in sorted({g, *map(int, extra)}))
            home_d = directors_of[g] if directors_of[g].size and rng.random() < 0.9 else np.arange(n_directors)
            director = director_names[int(home_d[int(rng.integers(0, home_d.size))])]
            n_cast = int(rng.integers(2, 5))
            home_a = actors_of[g] if actors_of[g].size >= n_cast and rng.random() < 0.9 else np.arange(n_actors)
            cast = "|".join(actor_names[int(a)] for a in rng.choice(home_a, size=n_cast, replace=False))
            own = _TAGS_PER_GENRE[GENRES[g]]
            tags = "|".join(own[int(t)] for t in rng.choice(len(own), size=int(rng.integers(1, 3)), replace=False))
            name = f"{_ADJ[i % len(_ADJ)]} {_NOUN[(i // len(_ADJ)) % len(_NOUN)]} {i // (len(_ADJ) * len(_NOUN)) + 1}"
            handle.write(f'i{i + 1},"{name} ({years[i]})",{years[i]},{genres},"{director}","{cast}",{tags}\n')


def _write_follows(path: Path, community: np.ndarray, members: list[np.ndarray], rng: np.random.Generator) -> int:
    """Each user follows 2–5 users, 85% of them in their community; repeated pairs and self-follows are dropped."""
    users = community.size
    per_user = rng.integers(2, 6, size=users)
    follower = np.repeat(np.arange(users), per_user)
    own = rng.random(follower.size) < 0.85
    followee = rng.integers(0, users, size=follower.size)
    for c, group in enumerate(members):
        mask = own & (community[follower] == c)
        followee[mask] = group[rng.integers(0, group.size, size=int(mask.sum()))]
    pairs = np.unique(follower * users + followee)
    follower, followee = pairs // users, pairs % users
    keep = follower != followee
    with path.open("w", encoding="utf-8") as handle:
        handle.write("follower,followee\n")
        pairs_kept = zip(follower[keep].tolist(), followee[keep].tolist(), strict=True)
        handle.write("".join(f"u{a + 1},u{b + 1}\n" for a, b in pairs_kept))
    return int(keep.sum())
