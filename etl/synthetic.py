"""A deterministic synthetic world with planted structure, for the demo and for tests.

The world has taste communities: each community prefers three of twelve genres, its members mostly
follow each other, and they mostly rate items of their genres highly. Items carry genres, a
director, two to four actors and tags that belong to their main genre, so knowledge paths are
meaningful. Friends influence each other: every user also rates a few items their followees liked.
Optionally users carry attributes (country, occupation, age band) that their community predicts up to noise, so
that a model can learn taste from attributes alone (off by default: the world is then the same as without the option).
The same seed always gives the same world (numpy's PCG64 generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from etl.dataset import Dataset
from etl.transform import slugify_name
from schema.model import Label, Role
from schema.rows import (
    AttributeRow,
    FollowRow,
    InteractionRow,
    ItemGenreRow,
    ItemPersonRow,
    ItemRow,
    ItemTagRow,
    UserRow,
)

GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Horror",
    "Romance",
    "Sci-Fi",
    "Thriller",
)
_TAGS_PER_GENRE = {
    "Action": ("explosions", "car chase"),
    "Adventure": ("quest", "treasure"),
    "Animation": ("pixar-like", "hand drawn"),
    "Comedy": ("witty", "slapstick"),
    "Crime": ("heist", "noir"),
    "Documentary": ("true story", "nature"),
    "Drama": ("tearjerker", "slow burn"),
    "Fantasy": ("dragons", "magic"),
    "Horror": ("jump scares", "gore"),
    "Romance": ("love triangle", "feel-good"),
    "Sci-Fi": ("space", "time travel"),
    "Thriller": ("twist ending", "suspense"),
}
_FIRST = (
    "Ada",
    "Ben",
    "Cleo",
    "Dev",
    "Eva",
    "Finn",
    "Gia",
    "Hugo",
    "Ines",
    "Jon",
    "Kira",
    "Liam",
    "Mara",
    "Nico",
    "Omar",
    "Pia",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wes",
    "Xena",
    "Yuri",
    "Zoe",
)
_LAST = (
    "Abbott",
    "Brandt",
    "Costa",
    "Dumont",
    "Ekberg",
    "Fischer",
    "Garcia",
    "Hale",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Laurent",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Sato",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zeller",
)
_ADJ = ("Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Distant", "Electric", "Frozen", "Wild")
_NOUN = ("Harbor", "Signal", "Garden", "Empire", "River", "Machine", "Promise", "Horizon", "Orchard", "Station")
#: User attributes of the synthetic world: the country and two occupations of each community; age bands say nothing.
COUNTRIES = ("FR", "DE", "JP", "BR")
OCCUPATIONS = ("artist", "writer", "engineer", "scientist", "doctor", "nurse", "farmer", "chef")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")


@dataclass
class SyntheticWorld:
    """The generated dataset and the structure planted in it (the tests' known answer).

    Attributes:
        dataset: Rows ready to load.
        user_community: Community index of every user id.
        community_genres: The three preferred genres of each community.
    """

    dataset: Dataset
    user_community: dict[str, int] = field(default_factory=dict)
    community_genres: dict[int, tuple[str, ...]] = field(default_factory=dict)


def generate_world(
    users: int = 300,
    items: int = 600,
    seed: int = 42,
    communities: int = 4,
    *,
    user_attributes: bool = False,
    attribute_noise: float = 0.25,
) -> SyntheticWorld:
    """Generate a synthetic world.

    Args:
        users: Number of users (at least 4).
        items: Number of items (at least 12).
        seed: Random seed; the same arguments always give the same world.
        communities: Number of taste communities (1–4 fits twelve genres without overlap).
        user_attributes: Give every user a country and an occupation that follow their community (each drawn at
            random instead with probability ``attribute_noise``) and an age band that does not; drawn from a random
            stream of their own, so every other part of the world is the same as without them.
        attribute_noise: Probability that a user's country or occupation is drawn uniformly at random.

    Returns:
        The world with its planted structure.

    Raises:
        ValueError: Sizes are too small to plant structure.
    """
    if users < 4 or items < 12 or not 1 <= communities <= 4:
        raise ValueError("need users >= 4, items >= 12 and 1 <= communities <= 4")
    if not 0.0 <= attribute_noise <= 1.0:
        raise ValueError("attribute_noise is a probability: 0 to 1")
    rng = np.random.default_rng(seed)
    ds = Dataset(name="synthetic", item_labels=[Label.MOVIE])
    n_genres = len(GENRES)
    community_genres = {c: tuple(GENRES[(3 * c + k) % n_genres] for k in range(3)) for c in range(communities)}

    # People: actors and directors, each at home in one genre.
    n_actors, n_directors = max(24, items // 3), max(12, items // 8)
    names = _unique_names(n_actors + n_directors, rng)
    actor_names, director_names = names[:n_actors], names[n_actors:]
    actor_genre = rng.integers(0, n_genres, size=n_actors)
    director_genre = rng.integers(0, n_genres, size=n_directors)

    # Items: a main genre, maybe one or two more, a director, actors and tags of the main genre.
    main_genre = rng.integers(0, n_genres, size=items)
    popularity = 1.0 / np.power(rng.permutation(items) + 1.0, 0.8)
    for i in range(items):
        item_id = f"i{i + 1}"
        year = int(rng.integers(1970, 2025))
        title = f"{_ADJ[i % len(_ADJ)]} {_NOUN[(i // len(_ADJ)) % len(_NOUN)]} {i // (len(_ADJ) * len(_NOUN)) + 1}"
        ds.items.append(ItemRow(item_id=item_id, title=f"{title} ({year})", year=year))
        g = int(main_genre[i])
        extra = rng.choice(n_genres, size=int(rng.integers(0, 3)), replace=False)
        for genre_index in sorted({g, *map(int, extra)}):
            ds.genres.append(ItemGenreRow(item_id=item_id, genre=GENRES[genre_index]))
        d = _pick_at_home(rng, director_genre, g, 1)[0]
        ds.people.append(_person(item_id, director_names[d], Role.DIRECTOR))
        for a in _pick_at_home(rng, actor_genre, g, int(rng.integers(2, 5))):
            ds.people.append(_person(item_id, actor_names[a], Role.ACTOR))
        own_tags = _TAGS_PER_GENRE[GENRES[g]]
        for t in rng.choice(len(own_tags), size=int(rng.integers(1, 3)), replace=False):
            ds.tags.append(ItemTagRow(item_id=item_id, tag=own_tags[int(t)], weight=float(rng.integers(1, 6))))

    # Users and communities (balanced), follows mostly inside the community.
    user_ids = [f"u{u + 1}" for u in range(users)]
    community = rng.permutation(np.arange(users) % communities)
    members = {c: [u for u in range(users) if community[u] == c] for c in range(communities)}
    follows: set[tuple[int, int]] = set()
    for u in range(users):
        own = [v for v in members[int(community[u])] if v != u]
        for _ in range(int(rng.integers(2, 6))):
            pool = own if (own and rng.random() < 0.85) else [v for v in range(users) if v != u]
            follows.add((u, int(pool[int(rng.integers(0, len(pool)))])))
    ds.users = [UserRow(user_id=uid) for uid in user_ids]
    ds.follows = [FollowRow(follower_id=user_ids[a], followee_id=user_ids[b]) for a, b in sorted(follows)]

    # Interactions: popularity × community taste, then a few items that followees liked.
    in_taste = np.zeros((communities, items), dtype=bool)
    for c, genres in community_genres.items():
        in_taste[c] = np.isin(main_genre, [GENRES.index(g) for g in genres])
    liked: dict[int, list[int]] = {}
    rated: dict[int, dict[int, float]] = {}
    for u in range(users):
        c = int(community[u])
        weights = popularity * np.where(in_taste[c], 1.0, 0.08)
        n = min(items - 1, int(8 + rng.geometric(1 / 14)))
        chosen = rng.choice(items, size=n, replace=False, p=weights / weights.sum())
        rated[u] = {int(i): _rating(rng, bool(in_taste[c, i])) for i in chosen}
        liked[u] = [i for i, r in rated[u].items() if r >= 4.0]
    followees: dict[int, list[int]] = {}
    for a, b in sorted(follows):
        followees.setdefault(a, []).append(b)
    for u in range(users):
        pool = sorted({i for v in followees.get(u, []) for i in liked[v]} - rated[u].keys())
        if pool:
            for i in rng.choice(pool, size=min(len(pool), int(rng.integers(1, 4))), replace=False):
                rated[u][int(i)] = float(rng.choice([4.0, 4.5, 5.0]))
    for u in range(users):
        start = 1_600_000_000 + int(rng.integers(0, 30_000_000))
        offsets = np.sort(rng.integers(0, 20_000_000, size=len(rated[u])))
        for (i, rating), offset in zip(sorted(rated[u].items()), rng.permutation(offsets), strict=True):
            ds.interactions.append(
                InteractionRow(
                    user_id=user_ids[u], item_id=f"i{i + 1}", rating=rating, weight=1.0, timestamp=start + int(offset)
                )
            )
    if user_attributes:
        ds.user_attributes = _user_attributes(user_ids, community, np.random.default_rng([seed, 1]), attribute_noise)
    return SyntheticWorld(
        dataset=ds,
        user_community={user_ids[u]: int(community[u]) for u in range(users)},
        community_genres=community_genres,
    )


def _user_attributes(
    user_ids: list[str], community: np.ndarray, rng: np.random.Generator, noise: float
) -> list[AttributeRow]:
    """Each user's country and occupation (their community's, or uniformly random with probability ``noise``) and
    an age band (uniformly random)."""
    rows = []
    for u, user_id in enumerate(user_ids):
        c = int(community[u])
        country = COUNTRIES[c] if rng.random() >= noise else COUNTRIES[int(rng.integers(0, len(COUNTRIES)))]
        own = OCCUPATIONS[2 * c + int(rng.integers(0, 2))]
        occupation = own if rng.random() >= noise else OCCUPATIONS[int(rng.integers(0, len(OCCUPATIONS)))]
        age = AGE_BANDS[int(rng.integers(0, len(AGE_BANDS)))]
        for kind, value in (("country", country), ("occupation", occupation), ("age", age)):
            rows.append(AttributeRow(owner_id=user_id, kind=kind, value=value))
    return rows


def _unique_names(n: int, rng: np.random.Generator) -> list[str]:
    combos = [f"{f} {last}" for f in _FIRST for last in _LAST]
    order = rng.permutation(len(combos))
    return [combos[order[k % len(combos)]] + (f" {k // len(combos) + 1}" if k >= len(combos) else "") for k in range(n)]


def _pick_at_home(rng: np.random.Generator, home: np.ndarray, genre: int, size: int) -> list[int]:
    at_home = np.flatnonzero(home == genre)
    pool = at_home if len(at_home) >= size and rng.random() < 0.9 else np.arange(len(home))
    return [int(x) for x in rng.choice(pool, size=size, replace=False)]


def _person(item_id: str, name: str, role: Role) -> ItemPersonRow:
    return ItemPersonRow(item_id=item_id, person_id=slugify_name(name), name=name, role=role)


def _rating(rng: np.random.Generator, in_taste: bool) -> float:
    if in_taste:
        return float(rng.choice([3.5, 4.0, 4.5, 5.0], p=[0.1, 0.3, 0.3, 0.3]))
    return float(rng.choice([1.0, 2.0, 2.5, 3.0, 3.5, 4.0], p=[0.1, 0.2, 0.2, 0.25, 0.15, 0.1]))
