"""From a graph export to tensors: contiguous id↔index maps, the interaction edges and a HeteroData.

``user_id``/``item_id`` are the external string ids of the graph; ``user_idx``/``item_idx`` are positions
in the tensors. Every conversion between the two goes through an :class:`IdMap` saved with the snapshot.
Ids are ordered naturally (digit runs by value: "9" < "10", "u2" < "u10"), so an index order is also a
stable, human-readable id order — the evaluation split breaks timestamp ties by item id with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from gnn.artifacts import ItemCatalog, read_files
from graph.export import NO_TIMESTAMP, NO_YEAR, GraphExport
from schema.errors import DataError

#: Person roles as stored in ``GraphSnapshot.person_role``.
ROLES: tuple[str, ...] = ("actor", "director")

SNAPSHOT_FILE = "snapshot.pt"
MAPS_FILE = "id_maps.json"
META_FILE = "snapshot.json"
FORMAT_VERSION = 2  # 2: item_year (format 1 snapshots still load, every year unknown)
READABLE_FORMATS = (1, 2)

#: HeteroData edge types of a snapshot (PyG vocabulary: (source node type, relation, destination node type)).
INTERACTED = ("user", "interacted", "item")
REV_INTERACTED = ("item", "rev_interacted", "user")
IN_GENRE = ("item", "in_genre", "genre")
ACTED_IN = ("person", "acted_in", "item")
DIRECTED = ("person", "directed", "item")
HAS_TAG = ("item", "has_tag", "tag")
FOLLOWS = ("user", "follows", "user")
PREFERS = ("user", "prefers", "genre")
#: User attributes (age band, country, occupation): a node type of their own in GraphSAGE's graph, so each user's
#: input is the mean of its attributes' learned embeddings (a multi-hot of its attributes times a learned matrix).
HAS_USER_ATTRIBUTE = ("user", "has_attribute", "user_attribute")

_DIGITS = re.compile(r"(\d+)", re.ASCII)


def natural_key(value: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key of "natural" order: digit runs compare as numbers ("u2" < "u10", "9" < "10").

    Pieces alternate text, number, text, ... so keys of any two ids compare; the id itself breaks the tie
    of equal numbers written differently ("007" and "7").
    """
    pieces = _DIGITS.split(value)
    return tuple(int(p) if k % 2 else p for k, p in enumerate(pieces)), value


class IdMap:
    """A bijection between external ids (strings) and contiguous indices ``0..n-1``.

    Args:
        ids: Distinct ids, in index order.

    Raises:
        DataError: ``ids`` contains a duplicate.
    """

    def __init__(self, ids: Sequence[str]) -> None:
        self._ids = [str(i) for i in ids]
        self._index = pd.Index(self._ids)
        if not self._index.is_unique:
            raise DataError("an id map needs distinct ids")

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> IdMap:
        """Build the map of the distinct ``ids`` in natural order."""
        return cls(sorted(set(ids), key=natural_key))

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids)"

    @property
    def ids(self) -> list[str]:
        """All ids in index order (a copy)."""
        return list(self._ids)

    def index(self, id_: str) -> int:
        """Index of one id.

        Raises:
            KeyError: Unknown id.
        """
        return int(self._index.get_loc(id_))

    def get(self, id_: str) -> int | None:
        """Index of one id, or None when unknown."""
        pos = self._index.get_indexer([id_])[0]
        return None if pos < 0 else int(pos)

    def to_index(self, ids: Sequence[str] | pd.Series | np.ndarray, *, strict: bool = True) -> np.ndarray:
        """Indices of many ids (int64).

        Args:
            ids: External ids.
            strict: Raise on an unknown id; otherwise unknown ids give -1.

        Raises:
            KeyError: An id is unknown and ``strict`` is set.
        """
        positions = self._index.get_indexer(pd.Index(ids, dtype=object)).astype(np.int64)
        if strict and len(positions) and positions.min() < 0:
            missing = [ids[k] for k in np.flatnonzero(positions < 0)[:5]]
            raise KeyError(f"unknown ids: {missing}")
        return positions

    def to_ids(self, indices: Iterable[int] | Tensor | np.ndarray) -> list[str]:
        """External ids of indices."""
        if isinstance(indices, Tensor):
            indices = indices.tolist()
        return [self._ids[int(i)] for i in indices]


@dataclass(eq=False)
class GraphSnapshot:
    """One export of the graph as tensors, with the id maps that give them meaning.

    Interaction edges are sorted by ``(user_idx, item_idx)``; every knowledge edge list likewise by its
    (start, end) indices, so the same graph always gives the same tensors and the same ``snapshot_id``.

    Attributes:
        users, items, genres, people, tags: Id maps per node type.
        edge_index: ``[2, E]`` int64, row 0 ``user_idx``, row 1 ``item_idx``: every INTERACTED relationship.
        edge_weight: ``[E]`` float32 interaction weights (play counts, 1.0 for ratings).
        edge_rating: ``[E]`` float32 ratings, NaN where the interaction has none.
        edge_time: ``[E]`` int64 epoch seconds, ``-1`` where the interaction has none.
        item_genre_index: ``[2, G]`` (item_idx, genre_idx).
        item_person_index: ``[2, P]`` (item_idx, person_idx); ``person_role`` ``[P]`` int64 index into ROLES.
        item_tag_index: ``[2, T]`` (item_idx, tag_idx); ``item_tag_weight`` ``[T]`` float32.
        follow_index: ``[2, F]`` (follower user_idx, followee user_idx).
        user_genre_index: ``[2, Q]`` (user_idx, genre_idx): genres chosen at onboarding.
        item_year: ``[num_items]`` int64 release year of each item, ``-1`` unknown (None: all unknown).
        edge_polarity: ``[E]`` int8, 1 or -1 for a negative interaction (a return, a dislike), which is never a
            positive (:func:`gnn.evaluation.positive_mask`) but stays an interaction (the item is seen). None: all 1.
        user_attributes: Id map of the user attributes (``"<kind>:<value>"``, e.g. ``"age:25-34"``); None: none.
        user_attribute_index: ``[2, A]`` (user_idx, user attribute index); None: none.
        snapshot_id: Hash of all of the above (16 hex digits); names the data an artifact was trained on.
    """

    users: IdMap
    items: IdMap
    genres: IdMap
    people: IdMap
    tags: IdMap
    edge_index: Tensor
    edge_weight: Tensor
    edge_rating: Tensor
    edge_time: Tensor
    item_genre_index: Tensor
    item_person_index: Tensor
    person_role: Tensor
    item_tag_index: Tensor
    item_tag_weight: Tensor
    follow_index: Tensor
    user_genre_index: Tensor
    item_year: Tensor | None = None
    edge_polarity: Tensor | None = None
    user_attributes: IdMap | None = None
    user_attribute_index: Tensor | None = None
    snapshot_id: str = field(default="")

    def __post_init__(self) -> None:
        if self.user_attributes is None:
            self.user_attributes = IdMap([])
        if self.user_attribute_index is None:
            self.user_attribute_index = torch.empty(2, 0, dtype=torch.long)
        if self.edge_polarity is None:
            self.edge_polarity = torch.ones(self.num_interactions, dtype=torch.int8)
        if self.edge_polarity.shape != (self.num_interactions,):
            raise DataError(
                f"edge_polarity has shape {tuple(self.edge_polarity.shape)}, expected ({self.num_interactions},)"
            )
        if self.item_year is None:
            self.item_year = torch.full((self.num_items,), NO_YEAR, dtype=torch.long)
        if self.item_year.shape != (self.num_items,):
            raise DataError(f"item_year has shape {tuple(self.item_year.shape)}, expected ({self.num_items},)")
        if not self.snapshot_id:
            self.snapshot_id = _content_hash(self)

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def num_interactions(self) -> int:
        return int(self.edge_index.size(1))

    @property
    def has_timestamps(self) -> bool:
        """Whether every interaction carries a timestamp."""
        return bool(self.num_interactions) and bool((self.edge_time >= 0).all())

    def counts(self) -> dict[str, int]:
        """Nodes per type and edges per relation."""
        return {
            "users": self.num_users,
            "items": self.num_items,
            "genres": len(self.genres),
            "people": len(self.people),
            "tags": len(self.tags),
            "interactions": self.num_interactions,
            "item_genres": int(self.item_genre_index.size(1)),
            "item_people": int(self.item_person_index.size(1)),
            "item_tags": int(self.item_tag_index.size(1)),
            "follows": int(self.follow_index.size(1)),
            "user_genres": int(self.user_genre_index.size(1)),
            "item_years": int((self.item_year >= 0).sum()),
            "user_attributes": int(self.user_attribute_index.size(1)),
        }

    def item_catalog(self) -> ItemCatalog:
        """Each item's genres and year, to save beside a model (the API's filters while Neo4j is away)."""
        return ItemCatalog(
            self.items.ids,
            self.genres.ids,
            self.item_genre_index.numpy().astype(np.int64),
            self.item_year.numpy().astype(np.int64),
        )

    def item_genre_matrix(self) -> Tensor:
        """``[num_items, num_genres]`` bool: which genres each item has (for diversity metrics)."""
        out = torch.zeros(self.num_items, len(self.genres), dtype=torch.bool)
        out[self.item_genre_index[0], self.item_genre_index[1]] = True
        return out

    def hetero_data(self, interaction_mask: Tensor | None = None) -> HeteroData:
        """The snapshot as a heterogeneous graph (users, items, genres, people, tags).

        Args:
            interaction_mask: ``[E]`` bool, which interactions to keep (e.g. all but the test
                interactions, so that no model sees them). ``None`` keeps all.

        Returns:
            A HeteroData whose node stores hold ``num_nodes`` and whose edge stores hold ``edge_index``;
            interactions also carry ``edge_weight``, ``rating`` and ``time``, tags ``edge_weight``.
            Reverse edges are not added (``torch_geometric.transforms.ToUndirected`` does that).
        """
        keep = slice(None) if interaction_mask is None else interaction_mask.bool()
        data = HeteroData()
        data["user"].num_nodes = self.num_users
        data["item"].num_nodes = self.num_items
        data["genre"].num_nodes = len(self.genres)
        data["person"].num_nodes = len(self.people)
        data["tag"].num_nodes = len(self.tags)
        data[INTERACTED].edge_index = self.edge_index[:, keep]
        data[INTERACTED].edge_weight = self.edge_weight[keep]
        data[INTERACTED].rating = self.edge_rating[keep]
        data[INTERACTED].time = self.edge_time[keep]
        data[IN_GENRE].edge_index = self.item_genre_index
        actor = self.person_role == ROLES.index("actor")
        data[ACTED_IN].edge_index = self.item_person_index[:, actor].flip(0)
        data[DIRECTED].edge_index = self.item_person_index[:, ~actor].flip(0)
        data[HAS_TAG].edge_index = self.item_tag_index
        data[HAS_TAG].edge_weight = self.item_tag_weight
        data[FOLLOWS].edge_index = self.follow_index
        data[PREFERS].edge_index = self.user_genre_index
        if len(self.user_attributes):
            data["user_attribute"].num_nodes = len(self.user_attributes)
            data[HAS_USER_ATTRIBUTE].edge_index = self.user_attribute_index
        return data

    def user_attribute_matrix(self) -> Tensor:
        """``[num_users, num_user_attributes]`` bool: which attributes each user has (the multi-hot)."""
        out = torch.zeros(self.num_users, len(self.user_attributes), dtype=torch.bool)
        out[self.user_attribute_index[0], self.user_attribute_index[1]] = True
        return out

    def save(self, directory: Path) -> Path:
        """Write ``snapshot.pt`` (tensors), ``id_maps.json`` and ``snapshot.json`` (id, counts) to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        torch.save({name: getattr(self, name) for name in _TENSOR_FIELDS}, directory / SNAPSHOT_FILE)
        maps = {name: getattr(self, name).ids for name in _MAP_FIELDS}
        if len(self.user_attributes):
            maps["user_attributes"] = self.user_attributes.ids
        (directory / MAPS_FILE).write_text(json.dumps(maps), encoding="utf-8")
        meta = {"format": FORMAT_VERSION, "snapshot_id": self.snapshot_id, "counts": self.counts()}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path) -> GraphSnapshot:
        """Read a snapshot written by :meth:`save` and check its content hash.

        Raises:
            DataError: Files are missing, of another format, or do not match their snapshot id.
        """
        meta, maps, tensors = read_files(directory, "snapshot directory", META_FILE, MAPS_FILE, SNAPSHOT_FILE)
        if meta.get("format") not in READABLE_FORMATS:
            raise DataError(f"snapshot {directory} has format {meta.get('format')}, expected one of {READABLE_FORMATS}")
        extra = {"user_attributes": IdMap(maps["user_attributes"])} if "user_attributes" in maps else {}
        snapshot = cls(**{name: IdMap(maps[name]) for name in _MAP_FIELDS}, **extra, **tensors)
        if snapshot.snapshot_id != meta["snapshot_id"]:
            raise DataError(f"snapshot {directory}: content does not match its id {meta['snapshot_id']}")
        return snapshot


_MAP_FIELDS = ("users", "items", "genres", "people", "tags")
_TENSOR_FIELDS = tuple(
    f.name for f in fields(GraphSnapshot) if f.name not in (*_MAP_FIELDS, "user_attributes", "snapshot_id")
)


def build_graph_snapshot(export: GraphExport) -> GraphSnapshot:
    """Turn a graph export into tensors with id maps (``user_id`` → ``user_idx`` and so on).

    Args:
        export: Columns of external ids from :func:`graph.export.export_graph`.

    Returns:
        The snapshot; edges sorted, duplicate knowledge edges dropped.

    Raises:
        DataError: An edge names an id that the export's node lists lack.
    """
    inter = export.interactions
    users = IdMap.from_ids(
        [
            *export.users,
            *inter["user_id"],
            *export.follows["follower_id"],
            *export.follows["followee_id"],
            *export.user_genres["user_id"],
            *export.user_attributes["user_id"],
        ]
    )
    items = IdMap.from_ids(
        [
            *export.items,
            *inter["item_id"],
            *export.item_genres["item_id"],
            *export.item_people["item_id"],
            *export.item_tags["item_id"],
            *export.item_attributes["item_id"],
        ]
    )
    genres = IdMap.from_ids([*export.item_genres["genre"], *export.user_genres["genre"]])
    people = IdMap.from_ids(export.item_people["person_id"])
    item_tags = _tags_and_attributes(export)
    tags = IdMap.from_ids(item_tags["tag"])
    user_attributes = IdMap.from_ids(export.user_attributes["attribute"].astype(str))

    u = users.to_index(inter["user_id"])
    i = items.to_index(inter["item_id"])
    order = np.lexsort((i, u))
    rating = inter["rating"].to_numpy(np.float64)[order]
    stamps = inter["timestamp"].to_numpy(np.int64)[order]
    stamps = np.where(stamps < 0, NO_TIMESTAMP, stamps)

    role_codes = export.item_people["role"].map({r: k for k, r in enumerate(ROLES)})
    if role_codes.isna().any():
        raise DataError(f"unknown person roles: {sorted(set(export.item_people['role']) - set(ROLES))}")
    person_index, person_extra = _edges(
        items.to_index(export.item_people["item_id"]),
        people.to_index(export.item_people["person_id"]),
        role_codes.to_numpy(np.int64),
    )
    tag_index, tag_extra = _edges(
        items.to_index(item_tags["item_id"]),
        tags.to_index(item_tags["tag"]),
        item_tags["weight"].to_numpy(np.float64),
    )
    polarity = inter["polarity"].to_numpy(np.int8)[order] if "polarity" in inter else np.ones(len(order), dtype=np.int8)
    return GraphSnapshot(
        users=users,
        items=items,
        genres=genres,
        people=people,
        tags=tags,
        edge_index=torch.from_numpy(np.stack([u[order], i[order]])),
        edge_weight=torch.from_numpy(inter["weight"].to_numpy(np.float64)[order]).float(),
        edge_rating=torch.from_numpy(rating).float(),
        edge_time=torch.from_numpy(stamps),
        item_genre_index=_edges(
            items.to_index(export.item_genres["item_id"]), genres.to_index(export.item_genres["genre"])
        )[0],
        item_person_index=person_index,
        person_role=torch.from_numpy(person_extra.astype(np.int64)),
        item_tag_index=tag_index,
        item_tag_weight=torch.from_numpy(tag_extra).float(),
        follow_index=_edges(
            users.to_index(export.follows["follower_id"]), users.to_index(export.follows["followee_id"])
        )[0],
        user_genre_index=_edges(
            users.to_index(export.user_genres["user_id"]), genres.to_index(export.user_genres["genre"])
        )[0],
        item_year=_item_years(items, export),
        edge_polarity=torch.from_numpy(np.ascontiguousarray(polarity)),
        user_attributes=user_attributes,
        user_attribute_index=_edges(
            users.to_index(export.user_attributes["user_id"].astype(str).tolist()),
            user_attributes.to_index(export.user_attributes["attribute"].astype(str).tolist()),
        )[0],
    )


#: Prefix of the tag ids that stand for item attributes in a snapshot (``attribute:brand:Acme``).
ATTRIBUTE_TAG_PREFIX = "attribute:"


def _tags_and_attributes(export: GraphExport) -> pd.DataFrame:
    """Item tags, with the item attributes (brand, category, ...) appended as tags of weight 1, so the knowledge
    features, cold-start embeddings and GraphSAGE reach them the way they reach tags."""
    attributes = export.item_attributes
    if not len(attributes):
        return export.item_tags
    extra = pd.DataFrame(
        {
            "item_id": attributes["item_id"].astype(str).tolist(),
            "tag": [ATTRIBUTE_TAG_PREFIX + str(a) for a in attributes["attribute"]],
            "weight": np.ones(len(attributes), dtype=np.float64),
        }
    )
    return pd.concat([export.item_tags[["item_id", "tag", "weight"]], extra], ignore_index=True)


def _item_years(items: IdMap, export: GraphExport) -> Tensor:
    """``[num_items]`` int64 release years from the export (``NO_YEAR`` where unknown or implausible)."""
    years = np.full(len(items), NO_YEAR, dtype=np.int64)
    frame = export.item_years
    if len(frame):
        index = items.to_index(frame["item_id"].astype(str).tolist(), strict=False)
        values = frame["year"].to_numpy(np.int64)
        keep = (index >= 0) & (values > 0)
        years[index[keep]] = values[keep]
    return torch.from_numpy(years)


def _edges(src: np.ndarray, dst: np.ndarray, extra: np.ndarray | None = None) -> tuple[Tensor, np.ndarray]:
    """Sorted, de-duplicated ``[2, n]`` edges and the aligned extra column (first occurrence kept).

    With an extra column (a role), the same (src, dst) pair with different extras stays as separate edges.
    """
    key = np.stack([src, dst] if extra is None else [src, dst, extra.astype(np.float64)], axis=1)
    if len(key) == 0:
        return torch.empty(2, 0, dtype=torch.long), np.empty(0)
    order = np.lexsort(key.T[::-1])
    key = key[order]
    keep = np.ones(len(key), dtype=bool)
    keep[1:] = (key[1:] != key[:-1]).any(axis=1)
    chosen = order[keep]
    edge_index = torch.from_numpy(np.stack([src[chosen], dst[chosen]]).astype(np.int64))
    return edge_index, (extra[chosen] if extra is not None else np.empty(0))


def _content_hash(snapshot: GraphSnapshot) -> str:
    digest = hashlib.sha256()
    for name in _MAP_FIELDS:
        digest.update(name.encode())
        digest.update("\x1f".join(getattr(snapshot, name).ids).encode("utf-8"))
        digest.update(b"\x1e")
    if len(snapshot.user_attributes):
        digest.update(b"user_attributes")
        digest.update("\x1f".join(snapshot.user_attributes.ids).encode("utf-8"))
        digest.update(b"\x1e")
    for name in _TENSOR_FIELDS:
        tensor = getattr(snapshot, name).contiguous()
        if name == "item_year" and not bool((tensor >= 0).any()):
            continue  # no known year: the id of a snapshot from before item_year existed stays the same
        if name == "edge_polarity" and not bool((tensor < 0).any()):
            continue  # no negative interaction: the id of a snapshot from before polarity existed stays the same
        if name == "user_attribute_index" and not tensor.numel():
            continue  # no user attribute: the id of a snapshot from before user attributes stays the same
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]
