"""Reading delimited text files into raw records, line by line, without losing a line.

Every physical line ends up as exactly one of: the header, a blank line, a :class:`RawRecord`, or a
:class:`Reject` (undecodable bytes, wrong number of columns). Files are read as bytes and decoded
line by line so that one bad byte rejects one line, not the file; a line is never held longer than the
format's ``max_line_bytes`` (a longer one is a reject). CRLF and a UTF-8 BOM are handled.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from schema.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reject:
    """A source row that could not become a graph fact, with the reason.

    Attributes:
        source: Name of the mapping section or file that read it.
        path: File it came from.
        line: 1-based physical line number in that file (0 when not tied to a line).
        reason: Why it was rejected, in words.
        raw: The offending line (truncated), for the reject file.
    """

    source: str
    path: str
    line: int
    reason: str
    raw: str = ""


@dataclass(frozen=True)
class RawRecord:
    """One data row: its line number and its fields by column name."""

    line: int
    fields: dict[str, str]


#: Longest line a file may hold by default (1 MiB); a longer line is rejected without being read whole.
MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class FileFormat:
    """How a delimited file is laid out.

    Attributes:
        delimiter: Field separator, e.g. "," or "\\t".
        encoding: Text encoding, e.g. "utf-8" or "latin-1".
        header: Whether the first non-blank line is a header.
        columns: Column names to use instead of (or, without a header, in the absence of) the header.
        quoting: Honour double quotes (CSV style). Off for tab files whose text may contain quotes.
        max_line_bytes: Longest line accepted; a longer one is rejected without being read whole.
    """

    delimiter: str = ","
    encoding: str = "utf-8"
    header: bool = True
    columns: tuple[str, ...] | None = None
    quoting: bool = True
    max_line_bytes: int = MAX_LINE_BYTES


@dataclass
class ReadStats:
    """Counts of what a file held."""

    lines: int = 0
    records: int = 0
    blank: int = 0
    rejects: int = 0
    columns: tuple[str, ...] = field(default_factory=tuple)


_RAW_LIMIT = 300
_SKIP_CHUNK = 1 << 16


def read_records(
    path: Path,
    fmt: FileFormat,
    source: str,
    stats: ReadStats | None = None,
    *,
    max_line_bytes: int | None = None,
) -> Iterator[RawRecord | Reject]:
    """Yield a record or a reject for every non-blank data line of ``path``, reading one line at a time.

    Args:
        path: The file.
        fmt: Its layout.
        source: Name recorded on rejects.
        stats: Filled in while reading, if given.
        max_line_bytes: Longest line accepted (default: ``fmt.max_line_bytes``); a longer line is rejected and
            skipped in chunks, so memory stays bounded whatever the file holds.

    Raises:
        DataError: The file does not exist, has no usable header, or its header is longer than the limit.
    """
    stats = stats if stats is not None else ReadStats()
    limit = max_line_bytes if max_line_bytes is not None else fmt.max_line_bytes
    if not path.is_file():
        raise DataError(f"{source}: file not found: {path}")
    columns: tuple[str, ...] | None = tuple(fmt.columns) if fmt.columns else None
    header_pending = fmt.header
    header_fields: list[str] | None = None
    quoting = csv.QUOTE_MINIMAL if fmt.quoting else csv.QUOTE_NONE
    delimiter = fmt.delimiter

    with path.open("rb") as handle:
        for number, raw, too_long in _lines(handle, limit):
            stats.lines = number
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if too_long and header_pending:
                raise DataError(
                    f"{source}: the header (line {number}) of {path} is longer than {limit:,} bytes (max_line_bytes)"
                )
            if too_long:
                stats.rejects += 1
                yield Reject(
                    source,
                    str(path),
                    number,
                    f"line longer than {limit:,} bytes (max_line_bytes)",
                    raw[:_RAW_LIMIT].decode(fmt.encoding, errors="replace"),
                )
                continue
            try:
                text = raw.decode(fmt.encoding)
            except UnicodeDecodeError as exc:
                stats.rejects += 1
                yield Reject(
                    source,
                    str(path),
                    number,
                    f"undecodable bytes for encoding {fmt.encoding} at byte {exc.start + 1}",
                    raw.decode(fmt.encoding, errors="replace")[:_RAW_LIMIT],
                )
                continue
            if not text.strip():
                stats.blank += 1
                continue
            if fmt.quoting and '"' in text:
                fields = next(csv.reader([text], delimiter=delimiter, quoting=quoting))
            else:
                fields = text.split(delimiter)
            if header_pending:
                header_pending = False
                header_fields = [f.strip() for f in fields]
                if columns is None:
                    columns = tuple(header_fields)
                continue
            if columns is None:
                raise DataError(f"{source}: {path} has no header; give its column names with `columns:`")
            if len(fields) != len(columns) and header_fields is not None and not fmt.columns:
                repaired = _repair_header(header_fields, len(fields))
                if repaired is not None:
                    log.warning("%s: header of %s repaired to %s (mixed separators)", source, path.name, list(repaired))
                    columns = repaired
                    header_fields = None
            stats.columns = columns
            if len(fields) != len(columns):
                stats.rejects += 1
                yield Reject(
                    source,
                    str(path),
                    number,
                    f"expected {len(columns)} columns, found {len(fields)}",
                    text[:_RAW_LIMIT],
                )
                continue
            stats.records += 1
            yield RawRecord(number, dict(zip(columns, fields, strict=True)))


def _repair_header(header: list[str], wanted: int) -> tuple[str, ...] | None:
    """Split a header on any whitespace when that gives the data's column count (e.g. 'a b<TAB>c')."""
    parts = [p for field in header for p in field.split()]
    return tuple(parts) if len(parts) == wanted else None


def _lines(handle: BinaryIO, limit: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, bytes without CR/LF, longer than ``limit``) for each line, holding at most ``limit`` bytes.

    A longer line yields its first ``limit`` bytes; the rest of it is read in chunks and dropped.
    """
    number = 0
    while line := handle.readline(limit + 2):  # room for CR LF after a line of exactly ``limit`` bytes
        number += 1
        ended = line.endswith(b"\n")
        body = line[:-1].rstrip(b"\r") if ended else line
        if len(body) > limit:
            while not ended:
                rest = handle.readline(_SKIP_CHUNK)
                ended = not rest or rest.endswith(b"\n")
            yield number, body[:limit], True
            continue
        yield number, body, False
