"""The shipped mappings (MovieLens, Last.fm) and one entry point for any mapping file.

The named loaders are thin: each picks its YAML under ``etl/mappings/`` and fills its path variables.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from etl.dataset import Dataset, ProgressFactory, RowSink, build_from_mapping, check_sources, no_progress
from etl.extract import MAX_LINE_BYTES
from etl.mapping import load_mapping, resolve_paths
from schema.errors import DataError


def shipped_mapping_path(name: str) -> Path:
    """Path of a mapping shipped with kgrec (``movielens`` or ``lastfm``)."""
    return Path(str(resources.files("etl.mappings").joinpath(f"{name}.yaml")))


def read_mapping_dataset(
    mapping_file: Path,
    variables: dict[str, str] | None = None,
    *,
    base_dir: Path | None = None,
    known_items: set[str] | frozenset[str] = frozenset(),
    progress: ProgressFactory = no_progress,
    sink: RowSink | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[Dataset, float]:
    """Read every file a mapping names and transform it.

    Args:
        mapping_file: The YAML mapping.
        variables: Values for ``{name}`` placeholders in file paths.
        base_dir: Folder that relative paths are resolved against (default: the YAML's folder).
        known_items: Item ids already in the graph (valid references besides the catalogue).
        progress: Progress callback factory.
        sink: Receives row chunks while reading goes on (see :func:`etl.dataset.build_from_mapping`).
        max_line_bytes: Longest line of a file whose mapping does not set ``max_line_bytes``.

    Returns:
        The dataset and the seconds spent reading and transforming.
    """
    started = time.perf_counter()
    mapping = load_mapping(mapping_file)
    paths = resolve_paths(mapping, base_dir or mapping_file.parent, dict(variables or {}))
    dataset = build_from_mapping(mapping, paths, known_items, progress, sink, max_line_bytes)
    return dataset, time.perf_counter() - started


def check_mapping(
    mapping_file: Path,
    variables: dict[str, str] | None = None,
    *,
    base_dir: Path | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> None:
    """Check a mapping and its files before a load touches the graph (arguments as :func:`read_mapping_dataset`).

    Raises:
        ConfigError: The mapping is invalid or a required path variable is missing.
        DataError: A file is missing or lacks a column the mapping names.
    """
    mapping = load_mapping(mapping_file)
    paths = resolve_paths(mapping, base_dir or mapping_file.parent, dict(variables or {}))
    check_sources(mapping, paths, max_line_bytes)


def movielens_variables(directory: Path, actors: Path | None = None, hetrec: Path | None = None) -> dict[str, str]:
    """Path variables of ``movielens.yaml``; checks the folders exist so the error names the option."""
    _require_dir(directory, "MovieLens folder (movies.csv, ratings.csv, tags.csv)")
    variables = {"movielens": str(directory.resolve())}
    if actors is not None:
        if not actors.is_file():
            raise DataError(f"--actors: not a file: {actors}")
        variables["actors"] = str(actors.resolve())
    if hetrec is not None:
        _require_dir(hetrec, "--hetrec folder (hetrec2011-movielens-2k)")
        variables["hetrec"] = str(hetrec.resolve())
    return variables


def lastfm_variables(directory: Path) -> dict[str, str]:
    """Path variables of ``lastfm.yaml``."""
    _require_dir(directory, "Last.fm folder (artists.dat, user_artists.dat, user_friends.dat)")
    return {"lastfm": str(directory.resolve())}


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DataError(f"{what}: not a directory: {path}")
