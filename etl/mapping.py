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
from schema.model import ITEM_DOMAIN_LABELS, Label, Role

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
    + ("follower", "followee")
)


class _Section(_Spec):
    file: str = Field(description="Name of a file under `files:`.")

    def columns(self) -> list[str]:
        """The columns of ``file`` this section reads."""
        return [value for key, value in self if key in _COLUMN_KEYS and isinstance(value, str)]


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
    year: str | None = None
    year_from_title: bool = Field(False, description="Read the year from a trailing '(1995)' in the title.")
    imdb_id: str | LookupSpec | None = Field(
        None, description="IMDb id: a column, or a lookup by item id in another file (leading zeros kept)."
    )


class InteractionsSpec(_Section):
    """User–item interactions."""

    user: str
    item: str
    rating: str | None = None
    rating_range: tuple[float, float] | None = Field(None, description="Inclusive [min, max]; outside is a reject.")
    weight: str | None = Field(None, description="Column with a non-negative weight (e.g. play count); default 1.")
    timestamp: str | None = None
    timestamp_unit: Literal["s", "ms"] = "s"


class GenresSpec(_Section):
    """Item → genre."""

    item: str
    genre: str
    split: str | None = Field(None, description="Separator when one cell holds several genres.")
    ignore: list[str] = Field(default_factory=list, description="Values that mean 'no genre'.")


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
    item_labels: list[Label] = Field(default_factory=list, description="Domain labels for the items, e.g. [Movie].")
    files: dict[str, FileSpec]
    users: list[UsersSpec] = Field(default_factory=list)
    items: list[ItemsSpec] = Field(default_factory=list)
    interactions: list[InteractionsSpec] = Field(default_factory=list)
    genres: list[GenresSpec] = Field(default_factory=list)
    people: list[PeopleSpec] = Field(default_factory=list)
    tags: list[TagsSpec] = Field(default_factory=list)
    follows: list[FollowsSpec] = Field(default_factory=list)

    @field_validator("item_labels")
    @classmethod
    def _domain_labels(cls, value: list[Label]) -> list[Label]:
        bad = [v for v in value if v not in ITEM_DOMAIN_LABELS]
        if bad:
            raise ValueError(f"item_labels may only hold {sorted(map(str, ITEM_DOMAIN_LABELS))}")
        return value

    @model_validator(mode="after")
    def _files_exist(self) -> Mapping:
        for section in self.sections():
            names = [section.file]
            if isinstance(section, TagsSpec) and section.lookup is not None:
                names.append(section.lookup.file)
            if isinstance(section, ItemsSpec) and isinstance(section.imdb_id, LookupSpec):
                names.append(section.imdb_id.file)
            for name in names:
                if name not in self.files:
                    raise ValueError(f"section uses file {name!r}, which is not listed under `files:`")
        return self

    def sections_by_kind(self) -> list[tuple[str, _Section]]:
        """Every section with its kind (``"items"``, ``"interactions"``, ...), in reading order."""
        kinds = ("users", "items", "interactions", "genres", "people", "tags", "follows")
        return [(kind, section) for kind in kinds for section in getattr(self, kind)]

    def sections(self) -> list[_Section]:
        return [*self.users, *self.items, *self.interactions, *self.genres, *self.people, *self.tags, *self.follows]


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
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid mapping:\n{exc}") from exc


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
