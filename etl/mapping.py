"""The YAML mapping format: any delimited files onto the canonical graph model.

A mapping names its files once, then says which columns make which facts. Example (abridged from
``etl/mappings/movielens.yaml``)::

    name: movielens
    item_labels: [Movie]
    files:
      movies:  {path: "{movielens}/movies.csv"}
      ratings: {path: "{movielens}/ratings.csv"}
      directors:
        path: "{hetrec}/movie_directors.dat"
        delimiter: "\\t"
        encoding: utf-8
        optional: true          # dropped, with its sections, when {hetrec} is not given
    items:
      - {file: movies, id: movieId, title: title, year_from_title: true}
    interactions:
      - {file: ratings, user: userId, item: movieId, rating: rating, rating_range: [0.5, 5.0],
         timestamp: timestamp}
    genres:
      - {file: movies, item: movieId, genre: genres, split: "|", ignore: ["(no genres listed)"]}
    people:
      - {file: directors, item: movieID, name: directorName, role: director}

``{name}`` in a path is replaced by a variable given on the command line (``--var name=DIR``); a
relative path is resolved against the YAML file's folder. Every section lists a ``file`` and column
names; everything else is optional. See ``docs/mapping.md`` for every field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from etl.extract import MAX_LINE_BYTES, FileFormat
from schema.errors import ConfigError
from schema.kinds import CombineRule
from schema.model import Polarity, Role, check_item_label

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSpec(_Spec):
    """One delimited file."""

    path: str = Field(description="File path; may contain {variables}; relative to the YAML's folder.")
    delimiter: str = Field(",", description='Field separator; write "\\t" for tab.')
    encoding: str = Field("utf-8", description="Text encoding, e.g. utf-8 or latin-1.")
    header: bool = Field(True, description="The first line is a header.")
    columns: list[str] | None = Field(None, description="Column names (required without a header; overrides one).")
    quoting: bool | None = Field(None, description="CSV double-quote handling; default on for ',' and off otherwise.")
    optional: bool = Field(
        False, description="Skip this file and the sections that use it when its path variables are not set."
    )
    max_line_bytes: int | None = Field(
        None,
        ge=64,
        description="Longest line accepted; a longer one is rejected without being read whole [default: the "
        "loader's, KGREC_MAX_LINE_BYTES, 1 MiB].",
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        value = value.encode().decode("unicode_escape") if "\\" in value else value
        if len(value) != 1:
            raise ValueError("delimiter must be a single character")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        if "\n".encode(value) != b"\n":
            raise ValueError(f"encoding {value!r} is not read line by line (convert the file to UTF-8)")
        return value

    def file_format(self, max_line_bytes: int = MAX_LINE_BYTES) -> FileFormat:
        """The file's layout; ``max_line_bytes`` applies when the mapping does not set one."""
        quoting = self.quoting if self.quoting is not None else self.delimiter == ","
        return FileFormat(
            delimiter=self.delimiter,
            encoding=self.encoding,
            header=self.header,
            columns=tuple(self.columns) if self.columns else None,
            quoting=quoting,
            max_line_bytes=self.max_line_bytes or max_line_bytes,
        )


#: Keys of a section whose value names a column of the section's file.
_COLUMN_KEYS = frozenset(
    ("id", "title", "year", "imdb_id", "user", "item", "rating", "weight", "timestamp", "genre", "name", "tag")
    + ("follower", "followee", "value", "kind_column")
)

#: How a timestamp cell is read: ``auto`` (a number is epoch seconds, anything else ISO-8601: ``2011-03-05``,
#: ``2011-03-05T14:02:11Z``, ``2011-03-05 14:02:11+01:00``), ``s`` / ``ms`` (epoch seconds / milliseconds),
#: ``iso`` (ISO-8601 only), or a strptime format such as ``"%d/%m/%Y %H:%M"``. Times without a zone are UTC.
TimestampFormat = str


def _check_time_format(value: str) -> str:
    if value in ("auto", "s", "ms", "iso") or "%" in value:
        return value
    raise ValueError(
        f"{value!r} is not a timestamp format: use auto, s, ms, iso or a strptime format such as '%d/%m/%Y %H:%M'"
    )


class _Section(_Spec):
    file: str = Field(description="Name of a file under `files:`.")
    where: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Only rows whose column holds this value (or one of these values); others are skipped, counted.",
    )

    def columns(self) -> list[str]:
        """The columns of ``file`` this section reads."""
        named = [value for key, value in self if key in _COLUMN_KEYS and isinstance(value, str)]
        flags = getattr(self, "flags", None)
        return named + (list(flags) if flags else []) + list(self.where)

    def selects(self, fields: dict[str, str]) -> bool:
        """Whether a row passes ``where``."""
        for column, wanted in self.where.items():
            value = fields.get(column, "").strip()
            if value != wanted if isinstance(wanted, str) else value not in wanted:
                return False
        return True


#: Cell values a flag column treats as "set" (compared case-insensitively, spaces trimmed); anything else is unset.
FLAG_TRUE = frozenset({"1", "true", "yes", "y", "t", "x"})


class LookupSpec(_Spec):
    """Replace a code by its value from another file (e.g. tagID → tag text)."""

    file: str
    key: str
    value: str


class UsersSpec(_Section):
    """Users listed in a file of their own (users also appear through interactions and follows)."""

    id: str


class ItemsSpec(_Section):
    """The item catalogue: only these items (and items already in the graph) may be referenced."""

    id: str
    title: str | None = None
    year: str | None = Field(
        None, description="Year column: a whole number, or a date holding one (1995-01-01, 01-Jan-1995, 3/1/1995)."
    )
    year_format: str | None = Field(None, description="strptime format of the year column when it is a date.")
    year_from_title: bool = Field(False, description="Read the year from a trailing '(1995)' in the title.")
    unique: bool = Field(
        True,
        description="Each id appears once (a repeat is a reject); false for files with several rows per item "
        "(an event log, a property table): repeats are merged into the first.",
    )
    imdb_id: str | LookupSpec | None = Field(
        None, description="IMDb id: a column, or a lookup by item id in another file (leading zeros kept)."
    )


class InteractionsSpec(_Section):
    """User–item interactions."""

    user: str
    item: str
    rating: str | None = None
    rating_range: tuple[float, float] | None = Field(None, description="Inclusive [min, max]; outside is a reject.")
    rating_optional: bool = Field(False, description="An empty rating cell means 'no rating' instead of a reject.")
    negative_below: float | None = Field(
        None, description="A rating below this makes the interaction negative (a dislike in the file's own scale)."
    )
    weight: str | None = Field(None, description="Column with a non-negative weight (e.g. play count); default 1.")
    timestamp: str | None = None
    timestamp_format: TimestampFormat | None = Field(None, description="auto (default), s, ms, iso or strptime.")
    timestamp_unit: Literal["s", "ms"] | None = Field(None, description="Older spelling of timestamp_format: s or ms.")
    kind: str | None = Field(None, description="Interaction kind of every row (a name under interaction_kinds).")
    kind_column: str | None = Field(None, description="Column holding each row's interaction kind.")
    kind_values: dict[str, str | None] = Field(
        default_factory=dict,
        description="Cell value → kind name for kind_column (null = skip such rows, counted); default: the value.",
    )

    @field_validator("timestamp_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return None if value is None else _check_time_format(value)

    @model_validator(mode="after")
    def _one_kind_source(self) -> InteractionsSpec:
        if self.kind is not None and self.kind_column is not None:
            raise ValueError("give either kind (one kind for every row) or kind_column, not both")
        if self.kind_values and self.kind_column is None:
            raise ValueError("kind_values needs kind_column")
        if self.timestamp_format is not None and self.timestamp_unit is not None:
            raise ValueError("give either timestamp_format or timestamp_unit, not both")
        return self

    @property
    def time_format(self) -> str:
        return self.timestamp_format or self.timestamp_unit or "auto"

    def kind_names(self) -> set[str]:
        """Every kind name this section can produce."""
        if self.kind is not None:
            return {self.kind}
        return {v for v in self.kind_values.values() if v is not None}


def _flag_columns(value: list[str] | dict[str, str] | None) -> dict[str, str] | None:
    """Flag columns as column → value; a list names columns whose names are the values."""
    if value is None:
        return None
    flags = {c: c for c in value} if isinstance(value, list) else dict(value)
    if not flags:
        raise ValueError("flags must name at least one column")
    return flags


class GenresSpec(_Section):
    """Item → genre: from a column (optionally multi-valued), or from one 0/1 flag column per genre."""

    item: str
    genre: str | None = Field(None, description="Genre column.")
    flags: dict[str, str] | None = Field(
        None, description="0/1 flag columns: a list of columns named after their genre, or {column: genre}."
    )
    split: str | None = Field(None, description="Separator when one cell holds several genres.")
    ignore: list[str] = Field(default_factory=list, description="Values that mean 'no genre'.")

    @field_validator("flags", mode="before")
    @classmethod
    def _flags(cls, value: object) -> object:
        return _flag_columns(value) if isinstance(value, list | dict) else value

    @model_validator(mode="after")
    def _one_source(self) -> GenresSpec:
        if (self.genre is None) == (self.flags is None):
            raise ValueError("give either genre (a column) or flags (0/1 columns), exactly one")
        return self


class TreeSpec(_Spec):
    """A parent table that expands an attribute value to its ancestors, such as RetailRocket's ``category_tree.csv``
    (``categoryid,parentid``, the parent empty for a root): an item in category 1173 whose parent is 395, itself a
    child of 231, gets the values 1173, 395 and 231. A row whose parent is not in the table, a value listed twice and
    the rows of a cycle of parents are rejected with their reason (counted like any reject); their value is then a
    root."""

    file: str = Field(description="Name of a file under `files:` with one row per value.")
    id: str = Field("categoryid", description="Column of the value (the child).")
    parent: str = Field("parentid", description="Column of its parent value (empty for a root).")


class AttributesSpec(_Section):
    """Item or user → attribute (:Attribute {kind, value}): a brand, a category, a price band; an age band, a
    country, an occupation. Give ``item`` or ``user`` (the id column), ``kind`` (the attribute's name) and the values
    from ``value`` (a column) or ``flags`` (0/1 columns)."""

    item: str | None = Field(None, description="Item id column (item attributes).")
    user: str | None = Field(None, description="User id column (user attributes).")
    kind: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Attribute name, e.g. brand, country, age_band.")
    value: str | None = Field(None, description="Column holding the value.")
    flags: dict[str, str] | None = Field(None, description="0/1 flag columns: a list, or {column: value}.")
    split: str | None = Field(None, description="Separator when one cell holds several values.")
    path: bool = Field(
        False,
        description="With split: the parts are a path (Books > Fiction > Crime) and each prefix is a value "
        "('Books', 'Books > Fiction', 'Books > Fiction > Crime').",
    )
    bands: list[float] | None = Field(
        None, description="Ascending bounds that turn a number into a band: [18, 25] gives '<18', '18-25', '25+'."
    )
    ignore: list[str] = Field(default_factory=list, description="Values that mean 'none'.")
    parents: TreeSpec | None = Field(
        None, description="A parent table (categoryid,parentid): each value also gives its ancestors as values."
    )

    @field_validator("flags", mode="before")
    @classmethod
    def _flags(cls, value: object) -> object:
        return _flag_columns(value) if isinstance(value, list | dict) else value

    @field_validator("bands")
    @classmethod
    def _ascending(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(b <= a for a, b in zip(value, value[1:], strict=False))):
            raise ValueError("bands must be a non-empty list of ascending numbers")
        return value

    @model_validator(mode="after")
    def _owner_and_source(self) -> AttributesSpec:
        if (self.item is None) == (self.user is None):
            raise ValueError("give either item or user (the id column of the attribute's owner), exactly one")
        if (self.value is None) == (self.flags is None):
            raise ValueError("give either value (a column) or flags (0/1 columns), exactly one")
        if self.path and self.split is None:
            raise ValueError("path needs split (the separator between the levels)")
        if self.parents is not None and (self.path or self.bands is not None):
            raise ValueError("parents expands values by a parent table: do not combine it with path or bands")
        return self

    @property
    def owner(self) -> str:
        """``"items"`` or ``"users"``."""
        return "items" if self.item is not None else "users"


class KindSpec(_Spec):
    """One interaction kind: the weight of one event and whether it is positive or negative."""

    weight: float = Field(1.0, gt=0, description="Weight of one event of this kind (a purchase 5, a view 1).")
    polarity: Polarity = Field(Polarity.POSITIVE, description="positive or negative (a return, a dislike).")


class PeopleSpec(_Section):
    """Item ← person (actor or director)."""

    item: str
    name: str
    role: Role
    id: str | None = Field(None, description="Person id column; default: a slug of the name, so sources merge.")
    split: str | None = None


class TagsSpec(_Section):
    """Item → tag, weighted; repeated (item, tag) pairs are summed over all tag sections of a load."""

    item: str
    tag: str
    weight: str | None = Field(None, description="Weight column; default 1 per row (so user tags count).")
    lookup: LookupSpec | None = None
    split: str | None = None


class FollowsSpec(_Section):
    """User → user."""

    follower: str
    followee: str
    mutual: bool = Field(False, description="Also add the reverse direction (friendship).")


class Mapping(_Spec):
    """A whole mapping file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    item_labels: list[str] = Field(
        default_factory=list, description="Labels for the items besides Item, e.g. [Movie] or [Product, Book]."
    )
    interaction_kinds: dict[str, KindSpec] = Field(
        default_factory=dict,
        description="Kinds of interaction (view, purchase, return, ...), with weight and polarity.",
    )
    combine: CombineRule = Field(
        CombineRule.SUM, description="How several kinds of one (user, item) pair combine: sum, strongest or latest."
    )
    files: dict[str, FileSpec]
    users: list[UsersSpec] = Field(default_factory=list)
    items: list[ItemsSpec] = Field(default_factory=list)
    interactions: list[InteractionsSpec] = Field(default_factory=list)
    genres: list[GenresSpec] = Field(default_factory=list)
    people: list[PeopleSpec] = Field(default_factory=list)
    tags: list[TagsSpec] = Field(default_factory=list)
    follows: list[FollowsSpec] = Field(default_factory=list)
    attributes: list[AttributesSpec] = Field(default_factory=list)

    @field_validator("item_labels")
    @classmethod
    def _item_labels(cls, value: list[str]) -> list[str]:
        return [check_item_label(v) for v in value]

    @model_validator(mode="after")
    def _files_exist(self) -> Mapping:
        for kind, number, section in self._numbered():
            names = [("file", section.file)]
            if isinstance(section, TagsSpec) and section.lookup is not None:
                names.append(("lookup.file", section.lookup.file))
            if isinstance(section, ItemsSpec) and isinstance(section.imdb_id, LookupSpec):
                names.append(("imdb_id.file", section.imdb_id.file))
            if isinstance(section, AttributesSpec) and section.parents is not None:
                names.append(("parents.file", section.parents.file))
            for key, name in names:
                if name not in self.files:
                    raise ValueError(
                        f"{kind}[{number}].{key}: file {name!r} is not listed under files: "
                        f"(listed: {', '.join(map(repr, self.files)) or 'none'})"
                    )
        return self

    @model_validator(mode="after")
    def _kinds_declared(self) -> Mapping:
        for number, section in enumerate(self.interactions):
            if section.kind_column is not None and not self.interaction_kinds:
                raise ValueError(f"interactions[{number}].kind_column: declare the kinds under interaction_kinds:")
            for name in sorted(section.kind_names()):
                if name not in self.interaction_kinds:
                    declared = ", ".join(map(repr, self.interaction_kinds)) or "none"
                    raise ValueError(
                        f"interactions[{number}]: kind {name!r} is not declared under interaction_kinds: "
                        f"(declared: {declared})"
                    )
        return self

    def _numbered(self) -> list[tuple[str, int, _Section]]:
        return [(kind, n, s) for kind in _SECTION_KINDS for n, s in enumerate(getattr(self, kind))]

    def sections_by_kind(self) -> list[tuple[str, _Section]]:
        """Every section with its kind (``"items"``, ``"interactions"``, ...), in reading order."""
        return [(kind, section) for kind in _SECTION_KINDS for section in getattr(self, kind)]

    def sections(self) -> list[_Section]:
        return [section for _, section in self.sections_by_kind()]


_SECTION_KINDS = ("users", "items", "interactions", "genres", "people", "tags", "follows", "attributes")


def load_mapping(path: Path) -> Mapping:
    """Parse and validate a mapping YAML file.

    Raises:
        ConfigError: The file is missing, is not YAML, or does not match the format (with the field).
    """
    if not path.is_file():
        raise ConfigError(f"mapping file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: invalid mapping: the file must hold keys such as name:, files: and items:")
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid mapping:\n" + "\n".join(plain_errors(exc))) from exc


#: Union members pydantic adds to an error's location (``imdb_id.str``, ``imdb_id.LookupSpec.file``).
_UNION_PARTS = re.compile(r"^(str|int|float|bool|list\[.*|dict\[.*|tuple\[.*|[A-Z][A-Za-z]*Spec|none)$")


def plain_errors(exc: ValidationError) -> list[str]:
    """One line per mistake in ``exc``: the YAML path of the mistake (``interactions[0].timestamp_format``), then
    what is wrong in words, without the validation library's format or links."""
    lines: list[str] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        parts = [p for p in error["loc"] if not (isinstance(p, str) and _UNION_PARTS.match(p))]
        where = ""
        for part in parts:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        kind = error["type"]
        value = error.get("input")
        if kind == "extra_forbidden":
            text = f"unknown key {parts[-1]!r}; see docs/mapping.md for the keys this section takes"
            where = where.rsplit(".", 1)[0] if "." in where else "top level"
        elif kind == "missing":
            text = f"missing required key {parts[-1]!r}"
            where = where.rsplit(".", 1)[0] if "." in where else "top level"
        elif kind in ("enum", "literal_error"):
            text = f"{value!r} is not allowed; expected {error.get('ctx', {}).get('expected', '')}"
        elif kind == "value_error":
            text = str(error.get("ctx", {}).get("error", error["msg"]))
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            wanted = kind.removesuffix("_type").removesuffix("_parsing").replace("_", " ")
            text = (
                f"{value!r} is not a {wanted}"
                if not isinstance(value, dict)
                else f"expected a {wanted}, found a mapping"
            )
        else:
            text = f"{error['msg'].replace('Input should be', 'must be')} (found {value!r})"
        line = f"  {where}: {text}" if where else f"  {text}"
        if where not in seen or kind == "value_error":
            lines.append(line)
            seen.add(where)
    return lines


def resolve_paths(mapping: Mapping, base_dir: Path, variables: dict[str, str]) -> dict[str, Path | None]:
    """Resolve every file's path; ``None`` for an optional file whose variables are not set.

    Raises:
        ConfigError: A required file uses a variable that was not given.
    """
    resolved: dict[str, Path | None] = {}
    for name, spec in mapping.files.items():
        missing = [v for v in _VAR.findall(spec.path) if not variables.get(v)]
        if missing:
            if spec.optional:
                resolved[name] = None
                continue
            raise ConfigError(f"file {name!r} needs {', '.join('{' + m + '}' for m in missing)}: pass --var NAME=VALUE")
        text = _VAR.sub(lambda m: variables[m.group(1)], spec.path)
        path = Path(text).expanduser()
        resolved[name] = path if path.is_absolute() else (base_dir / path)
    return resolved
