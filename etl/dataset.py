"""A dataset ready to load: validated rows for every kind of fact, plus what was rejected or skipped.

:func:`build_from_mapping` reads the files a mapping names and runs the transforms; the synthetic
generator builds the same :class:`Dataset` directly. Loading (``etl.load``) only ever sees a Dataset.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from etl.extract import MAX_LINE_BYTES, FileFormat, RawRecord, ReadStats, Reject, read_records
from etl.mapping import AttributesSpec, InteractionsSpec, LookupSpec, Mapping, TagsSpec, TreeSpec, _Section
from etl.transform import (
    RowError,
    SkipRow,
    interaction_kind,
    to_attributes,
    to_follows,
    to_genres,
    to_interaction,
    to_item,
    to_people,
    to_tags,
    to_user,
    tree_ancestors,
)
from schema.errors import DataError
from schema.kinds import Event, combine
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

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The kinds of rows a Dataset holds, in the order a whole Dataset is written: nodes first, then what references them.
KINDS = (
    "users",
    "items",
    "interactions",
    "genres",
    "people",
    "tags",
    "follows",
    "item_attributes",
    "user_attributes",
)


@dataclass
class Dataset:
    """Validated rows of one load, de-duplicated, with the bookkeeping of everything left out.

    Attributes:
        name: Dataset name (used for the reject file).
        item_labels: Labels given to every item besides Item, e.g. ["Movie"].
        users/items/...: One row per graph fact; repeated facts already merged, tag weights summed.
        rejects: Rows that could not become facts, each with file, line and reason.
        skipped: Valid knowledge rows about items outside the catalogue, counted per section.
        merged: Repeated facts merged into one, counted per section.
        read: Data records read, per section.
        source_rows: Data lines read, per section: the records plus the lines rejected while reading them
            (undecodable, too long, wrong column count); the denominator of the reject rate.
        blank: Blank lines skipped, per file name (counted once however many sections read the file).
        emitted: Rows per kind. A dataset read with a sink (a load) does not keep its rows, which the sink has
            written already; it only counts them here, so its memory does not grow with the data.
    """

    name: str
    item_labels: list[str] = field(default_factory=list)
    users: list[UserRow] = field(default_factory=list)
    items: list[ItemRow] = field(default_factory=list)
    interactions: list[InteractionRow] = field(default_factory=list)
    genres: list[ItemGenreRow] = field(default_factory=list)
    people: list[ItemPersonRow] = field(default_factory=list)
    tags: list[ItemTagRow] = field(default_factory=list)
    follows: list[FollowRow] = field(default_factory=list)
    item_attributes: list[AttributeRow] = field(default_factory=list)
    user_attributes: list[AttributeRow] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    merged: Counter[str] = field(default_factory=Counter)
    read: Counter[str] = field(default_factory=Counter)
    source_rows: Counter[str] = field(default_factory=Counter)
    blank: Counter[str] = field(default_factory=Counter)
    emitted: Counter[str] = field(default_factory=Counter)

    def count(self, kind: str) -> int:
        """Rows of one kind ("users", "interactions", …): the rows kept, or those passed to a sink."""
        return max(len(getattr(self, kind)), self.emitted[kind])

    @property
    def fact_count(self) -> int:
        return sum(self.count(kind) for kind in KINDS)


ProgressFactory = Callable[[str, int], Callable[[int], None]]

#: Receives validated rows while a dataset is still being read: ``sink(kind, rows)`` where kind is a
#: Dataset list attribute ("items", "interactions", ...). Lets writing overlap reading.
RowSink = Callable[[str, list], None]  # type: ignore[type-arg]

#: Rows handed to a sink at a time.
SINK_CHUNK = 10_000


def no_progress(_name: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


class _Builder:
    """Accumulates one Dataset while sections are read (keeps the first line of every key)."""

    def __init__(
        self,
        mapping: Mapping,
        paths: dict[str, Path | None],
        known_items: set[str],
        progress: ProgressFactory,
        sink: RowSink | None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ):
        self.max_line_bytes = max_line_bytes
        self.mapping = mapping
        self.paths = paths
        self.progress = progress
        self.sink = sink
        self.ds = Dataset(name=mapping.name, item_labels=list(mapping.item_labels))
        self.catalogue: set[str] = set(known_items)
        self.users: dict[str, UserRow] = {}
        self._buffers: dict[str, list] = {}  # type: ignore[type-arg]

    def emit(self, kind: str, row: object) -> None:
        """Pass a validated row on to the sink in chunks and count it; without a sink, keep it in the dataset."""
        self.ds.emitted[kind] += 1
        if self.sink is None:
            getattr(self.ds, kind).append(row)
        else:
            buffer = self._buffers.setdefault(kind, [])
            buffer.append(row)
            if len(buffer) >= SINK_CHUNK:
                self.flush(kind)

    def flush(self, kind: str) -> None:
        buffer = self._buffers.pop(kind, None)
        if buffer and self.sink is not None:
            self.sink(kind, buffer)

    def records(self, section: str, file_name: str, spec: object = None) -> Iterable[RawRecord] | None:
        path = self.paths.get(file_name)
        if path is None:
            log.info("%s: skipped, file %r not given", section, file_name)
            return None
        if not path.is_file():
            raise DataError(f"{section}: file not found: {path}")
        spec_file = self.mapping.files[file_name]
        stats = ReadStats()
        tick = self.progress(f"read {section}", _count_lines(path))
        where = spec if isinstance(spec, _Section) and spec.where else None
        return self._iterate(section, file_name, path, spec_file.file_format(self.max_line_bytes), stats, tick, where)

    def _iterate(self, section, file_name, path, fmt, stats, tick, where):  # noqa: ANN001, ANN202 - internal generator
        pending = 0
        for item in read_records(path, fmt, section, stats):
            pending += 1
            if pending == 2048:
                tick(pending)
                pending = 0
            self.ds.source_rows[section] += 1
            if isinstance(item, Reject):
                self.ds.rejects.append(item)
                continue
            self.ds.read[section] += 1
            if where is not None and not where.selects(item.fields):
                self.ds.skipped[f"{section} (where)"] += 1
                continue
            yield item
        tick(pending)
        self.ds.blank[file_name] = stats.blank

    def reject(self, section: str, record: RawRecord, reason: str) -> None:
        path = self.paths.get(section.split(":", 1)[1]) if ":" in section else None
        raw = "|".join(record.fields.values())[:300]
        self.ds.rejects.append(Reject(section, str(path or ""), record.line, reason, raw))

    def add_user(self, user_id: str) -> None:
        if user_id not in self.users:
            self.users[user_id] = UserRow(user_id=user_id)


def build_from_mapping(
    mapping: Mapping,
    paths: dict[str, Path | None],
    known_items: Iterable[str] = (),
    progress: ProgressFactory = no_progress,
    sink: RowSink | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Dataset:
    """Read and transform every section of ``mapping``.

    Args:
        mapping: A validated mapping.
        paths: Resolved path per file name (``None`` = optional file not given: its sections are skipped).
        known_items: Item ids already in the graph; they may be referenced like catalogue items.
        progress: Factory of progress callbacks ``(name, total) -> tick(n)``.
        sink: Optional receiver of row chunks while reading goes on (items, interactions, genres,
            people, follows as they come; tags once summed; users last); the dataset then counts the rows
            (``Dataset.emitted``) instead of keeping them.
        max_line_bytes: Longest line of a file whose mapping does not set ``max_line_bytes``.

    Returns:
        The dataset, with rejects (bad rows, unknown items in interactions, duplicates) and skipped
        counts (knowledge about items outside the catalogue).

    Raises:
        DataError: A file is missing or lacks a column the mapping names (:func:`check_sources`).
    """
    check_sources(mapping, paths, max_line_bytes)
    b = _Builder(mapping, paths, set(known_items), progress, sink, max_line_bytes)
    ds = b.ds

    for spec in mapping.users:
        section = f"users:{spec.file}"
        for record in b.records(section, spec.file, spec) or ():
            try:
                b.add_user(to_user(record, spec).user_id)
            except RowError as exc:
                b.reject(section, record, str(exc))

    first_item_line: dict[str, tuple[str, int]] = {}
    for spec in mapping.items:
        section = f"items:{spec.file}"
        imdb = _read_lookup(b, spec.imdb_id) if isinstance(spec.imdb_id, LookupSpec) else None
        for record in b.records(section, spec.file, spec) or ():
            try:
                row = to_item(record, spec, imdb)
            except RowError as exc:
                b.reject(section, record, str(exc))
                continue
            if row.item_id in first_item_line and not spec.unique:
                b.ds.merged[section] += 1
                continue
            if row.item_id in first_item_line:
                where = first_item_line[row.item_id]
                b.reject(section, record, f"duplicate item id {row.item_id!r} (first at {where[0]} line {where[1]})")
                continue
            first_item_line[row.item_id] = (spec.file, record.line)
            b.emit("items", row)
            b.catalogue.add(row.item_id)
    b.flush("items")

    _interactions(b, mapping)

    _knowledge(b, "genres", mapping.genres, to_genres, lambda row: (row.item_id, row.genre))
    _knowledge(b, "people", mapping.people, to_people, lambda row: (row.item_id, row.person_id, row.role))
    item_attributes = [spec for spec in mapping.attributes if spec.owner == "items"]
    trees = {id(spec): _read_tree(b, spec.parents) for spec in mapping.attributes if spec.parents is not None}

    def attributes(record: RawRecord, spec: AttributesSpec) -> list[AttributeRow]:
        return to_attributes(record, spec, trees.get(id(spec)))

    _knowledge(b, "item_attributes", item_attributes, attributes, lambda row: (row.owner_id, row.kind, row.value))
    for row in _tags(b, mapping.tags):
        b.emit("tags", row)
    b.flush("tags")

    seen_follows: set[tuple[str, str]] = set()
    for spec in mapping.follows:
        section = f"follows:{spec.file}"
        for record in b.records(section, spec.file, spec) or ():
            try:
                rows = to_follows(record, spec)
            except RowError as exc:
                b.reject(section, record, str(exc))
                continue
            for row in rows:
                key = (row.follower_id, row.followee_id)
                if key in seen_follows:
                    ds.merged[section] += 1
                    continue
                seen_follows.add(key)
                b.add_user(row.follower_id)
                b.add_user(row.followee_id)
                b.emit("follows", row)
    b.flush("follows")

    user_attributes = [spec for spec in mapping.attributes if spec.owner == "users"]
    _user_attributes(b, user_attributes, attributes)

    for user in b.users.values():
        b.emit("users", user)
    b.flush("users")
    b.flush("user_attributes")
    return ds


def _interactions(b: _Builder, mapping: Mapping) -> None:
    """Read every interaction section. Without kinds, a second row of a (user, item) pair is a duplicate (reject
    naming both places). With kinds, rows of a pair that all have a kind are events combined into one interaction by
    the mapping's rule (:func:`schema.kinds.combine`); a row without a kind still collides with any other row."""
    # pair → (line << 8) | (file number << 1) | (1 if the row has no kind), the pair an int of the user's and the
    # item's numbers: about 100 bytes a pair instead of the ~300 of tuples of strings, so ten million fit in ~1 GB.
    first: dict[int, int] = {}
    user_numbers: dict[str, int] = {}
    item_numbers: dict[str, int] = {}
    file_names: list[str] = []
    events: dict[tuple[str, str], list[tuple[InteractionRow, Event]]] = {}
    kinded = bool(mapping.interaction_kinds)
    for spec in mapping.interactions:
        section = f"interactions:{spec.file}"
        where = Path(str(b.paths.get(spec.file) or spec.file)).name
        if where not in file_names:
            file_names.append(where)
        file_number = file_names.index(where)
        for record in b.records(section, spec.file, spec) or ():
            try:
                kind = interaction_kind(record, spec)
                row = to_interaction(record, spec)
            except SkipRow as skip:
                b.ds.skipped[f"{section} ({skip})"] += 1
                continue
            except RowError as exc:
                b.reject(section, record, str(exc))
                continue
            if kind is not None and kind not in mapping.interaction_kinds:
                declared = ", ".join(map(repr, mapping.interaction_kinds))
                b.reject(section, record, f"interaction kind {kind!r} is not declared (interaction_kinds: {declared})")
                continue
            if row.item_id not in b.catalogue:
                b.reject(section, record, f"unknown item {row.item_id!r} (not in the item catalogue)")
                continue
            user = user_numbers.setdefault(row.user_id, len(user_numbers))
            key = (user << 32) | item_numbers.setdefault(row.item_id, len(item_numbers))
            previous = first.get(key)
            if previous is not None and (kind is None or previous & 1):
                first_file = file_names[(previous >> 1) & 0x7F]
                hint = "" if first_file == where else "; give both sections a kind to combine them"
                b.reject(
                    section,
                    record,
                    f"duplicate interaction of user {row.user_id!r} with item {row.item_id!r} (first at {first_file} "
                    f"line {previous >> 8}){hint}",
                )
                continue
            if previous is None:
                first[key] = (record.line << 8) | (file_number << 1) | (kind is None)
            b.add_user(row.user_id)
            if not kinded:
                b.emit("interactions", row)
                continue
            if previous is not None:
                b.ds.merged[section] += 1
            events.setdefault((row.user_id, row.item_id), []).append((row, _event(mapping, spec, kind, row)))
    for pair in events.values():
        b.emit("interactions", _combined(mapping, pair))
    b.flush("interactions")


def _event(mapping: Mapping, spec: InteractionsSpec, kind: str | None, row: InteractionRow) -> Event:
    if kind is None:
        return Event("", row.weight, row.polarity, row.timestamp)
    rule = mapping.interaction_kinds[kind]
    sign = min(rule.polarity.sign, row.polarity)
    return Event(kind, rule.weight * row.weight, sign, row.timestamp)


def _combined(mapping: Mapping, pair: list[tuple[InteractionRow, Event]]) -> InteractionRow:
    """One interaction from a pair's rows: a lone row without a kind as it is; otherwise the rule's weight and
    polarity, the latest rating and timestamp, and the kinds with their counts."""
    row, event = pair[0]
    if len(pair) == 1 and not event.kind:
        return row
    result = combine([e for _, e in pair], mapping.combine)
    stamps = [r.timestamp for r, _ in pair if r.timestamp is not None]
    rated = [(r.timestamp if r.timestamp is not None else -1, n, r.rating) for n, (r, _) in enumerate(pair)]
    ratings = [x for x in rated if x[2] is not None]
    return InteractionRow(
        user_id=row.user_id,
        item_id=row.item_id,
        rating=max(ratings)[2] if ratings else None,
        weight=result.weight,
        timestamp=max(stamps) if stamps else None,
        polarity=result.polarity,
        kinds=result.kinds,
        kind_counts=result.counts,
    )


def _user_attributes(
    b: _Builder, specs: list[AttributesSpec], convert: Callable[[RawRecord, AttributesSpec], list[AttributeRow]]
) -> None:
    seen: set[tuple[str, str, str]] = set()
    for spec in specs:
        section = f"user_attributes:{spec.file}"
        for record in b.records(section, spec.file, spec) or ():
            try:
                rows = convert(record, spec)
            except RowError as exc:
                b.reject(section, record, str(exc))
                continue
            for row in rows:
                key = (row.owner_id, row.kind, row.value)
                if key in seen:
                    b.ds.merged[section] += 1
                    continue
                seen.add(key)
                b.add_user(row.owner_id)
                b.emit("user_attributes", row)


def check_sources(mapping: Mapping, paths: dict[str, Path | None], max_line_bytes: int = MAX_LINE_BYTES) -> None:
    """Check, before anything is loaded, that every file given exists and has every column its sections name.

    Only the first lines of each file are read (up to its first data record).

    Raises:
        DataError: A file is missing, or a column named by a section is not among the file's columns (the message
            names the column, the section and the columns found).
    """
    needed: dict[str, dict[str, str]] = {}  # file name → column → the section naming it
    for kind, spec in mapping.sections_by_kind():
        for column in spec.columns():
            needed.setdefault(spec.file, {}).setdefault(column, f"{kind}:{spec.file}")
        lookups = [getattr(spec, "lookup", None), getattr(spec, "imdb_id", None)]
        for lookup in (x for x in lookups if isinstance(x, LookupSpec)):
            for column in (lookup.key, lookup.value):
                needed.setdefault(lookup.file, {}).setdefault(column, f"{kind}:{spec.file} lookup")
        tree = getattr(spec, "parents", None)
        if isinstance(tree, TreeSpec):
            for column in (tree.id, tree.parent):
                needed.setdefault(tree.file, {}).setdefault(column, f"{kind}:{spec.file} parents")
    for name, columns in needed.items():
        path = paths.get(name)
        if path is None:
            continue
        if not path.is_file():
            raise DataError(f"file {name!r} not found: {path}")
        fmt = mapping.files[name].file_format(max_line_bytes)
        found = _first_columns(path, fmt, name)
        missing = [column for column in columns if found is not None and column not in found]
        if missing:
            utf16 = any("\x00" in column for column in found or ())
            hint = " (the header holds NUL bytes: the file looks UTF-16; convert it to UTF-8)" if utf16 else ""
            raise DataError(
                f"{columns[missing[0]]}: column {missing[0]!r} is not in {path} (its columns: "
                f"{', '.join(map(repr, found or ()))}); check the column names, the delimiter {fmt.delimiter!r} "
                f"and the encoding {fmt.encoding}{hint}"
            )


def _first_columns(path: Path, fmt: FileFormat, name: str, lines: int = 1000) -> tuple[str, ...] | None:
    """The columns of the first data record among the first ``lines`` lines (None when there is none)."""
    with closing(read_records(path, fmt, name)) as items:
        for seen, item in enumerate(items):
            if isinstance(item, RawRecord):
                return tuple(item.fields)
            if seen >= lines:
                break
    return None


def _knowledge(b: _Builder, kind: str, specs: list, convert: Callable, key: Callable) -> None:  # type: ignore[type-arg]
    seen: set = set()  # type: ignore[type-arg]
    for spec in specs:
        section = f"{kind}:{spec.file}"
        for record in b.records(section, spec.file, spec) or ():
            try:
                rows = convert(record, spec)
            except RowError as exc:
                b.reject(section, record, str(exc))
                continue
            for row in rows:
                if (row.owner_id if isinstance(row, AttributeRow) else row.item_id) not in b.catalogue:
                    b.ds.skipped[section] += 1
                    continue
                k = key(row)
                if k in seen:
                    b.ds.merged[section] += 1
                    continue
                seen.add(k)
                b.emit(kind, row)
    b.flush(kind)


def _tags(b: _Builder, specs: list[TagsSpec]) -> list[ItemTagRow]:
    weights: dict[tuple[str, str], float] = {}
    for spec in specs:
        section = f"tags:{spec.file}"
        lookup = _read_lookup(b, spec.lookup) if spec.lookup is not None else None
        if spec.lookup is not None and lookup is None:
            continue
        for record in b.records(section, spec.file, spec) or ():
            try:
                rows = to_tags(record, spec, lookup)
            except RowError as exc:
                b.reject(section, record, str(exc))
                continue
            for row in rows:
                if row.item_id not in b.catalogue:
                    b.ds.skipped[section] += 1
                    continue
                key = (row.item_id, row.tag)
                if key in weights:
                    b.ds.merged[section] += 1
                weights[key] = weights.get(key, 0.0) + row.weight
    return [ItemTagRow(item_id=item, tag=tag, weight=w) for (item, tag), w in weights.items()]


def _read_lookup(b: _Builder, lookup: LookupSpec) -> dict[str, str] | None:
    section = f"lookup:{lookup.file}"
    records = b.records(section, lookup.file)
    if records is None:
        return None
    table: dict[str, str] = {}
    for record in records:
        key = record.fields.get(lookup.key, "").strip()
        value = record.fields.get(lookup.value, "").strip()
        if not key or not value:
            b.reject(section, record, f"lookup row without {lookup.key!r} or {lookup.value!r}")
            continue
        table.setdefault(key, value)
    return table


def _read_tree(b: _Builder, tree: TreeSpec) -> dict[str, tuple[str, ...]] | None:
    """Value → ancestors from a parent table (:func:`etl.transform.tree_ancestors`); rows without a value, values
    listed twice, unknown parents and cycles are rejected with their reason. None when the file is not given."""
    section = f"tree:{tree.file}"
    records = b.records(section, tree.file)
    if records is None:
        return None
    parents: dict[str, str | None] = {}
    rows: dict[str, RawRecord] = {}
    for record in records:
        child = record.fields.get(tree.id, "").strip()
        parent = record.fields.get(tree.parent, "").strip() or None
        if not child:
            b.reject(section, record, f"parent table row without {tree.id!r}")
            continue
        if child in parents:
            b.reject(section, record, f"{child!r} is listed twice (first at line {rows[child].line})")
            continue
        parents[child] = parent
        rows[child] = record
    ancestors, refused = tree_ancestors(parents)
    for child, reason in refused.items():
        b.reject(section, rows[child], reason)
    return ancestors


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
