from pathlib import Path

import pytest

from etl.extract import FileFormat, RawRecord, ReadStats, Reject, read_records
from schema.errors import DataError


def _read(path: Path, fmt: FileFormat) -> tuple[list[RawRecord], list[Reject], ReadStats]:
    stats = ReadStats()
    out = list(read_records(path, fmt, "test", stats))
    return [r for r in out if isinstance(r, RawRecord)], [r for r in out if isinstance(r, Reject)], stats


def test_read_records_handles_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbfid,name\r\n1,Ann\r\n\r\n2,Bob\r\n")
    records, rejects, stats = _read(path, FileFormat())
    assert [r.fields for r in records] == [{"id": "1", "name": "Ann"}, {"id": "2", "name": "Bob"}]
    assert [r.line for r in records] == [2, 4]
    assert rejects == []
    assert stats.blank == 1


def test_read_records_keeps_quoted_delimiters(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('movieId,title\n2,"American President, The (1995)"\n', encoding="utf-8")
    records, _, _ = _read(path, FileFormat())
    assert records[0].fields["title"] == "American President, The (1995)"


def test_read_records_rejects_undecodable_line_only(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"a,b\n1,x\n2,\xff\n3,z\n")
    records, rejects, _ = _read(path, FileFormat())
    assert [r.fields["a"] for r in records] == ["1", "3"]
    assert len(rejects) == 1
    assert rejects[0].line == 3
    assert "undecodable bytes for encoding utf-8" in rejects[0].reason


def test_read_records_latin1(tmp_path: Path) -> None:
    path = tmp_path / "t.dat"
    path.write_bytes("id\tvalue\r\n13\tcafé\r\n".encode("latin-1"))
    records, rejects, _ = _read(path, FileFormat(delimiter="\t", encoding="latin-1", quoting=False))
    assert records[0].fields == {"id": "13", "value": "café"}
    assert rejects == []


def test_read_records_rejects_wrong_column_count(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n1,2\n1,2,3,4\n", encoding="utf-8")
    records, rejects, _ = _read(path, FileFormat())
    assert len(records) == 1
    assert [(r.line, r.reason) for r in rejects] == [
        (3, "expected 3 columns, found 2"),
        (4, "expected 3 columns, found 4"),
    ]


def test_read_records_repairs_header_with_space_for_tab(tmp_path: Path) -> None:
    path = tmp_path / "movie_directors.dat"
    path.write_bytes(b"movieID directorID\tdirectorName\r\n1\tjohn_lasseter\tJohn Lasseter\r\n")
    records, rejects, _ = _read(path, FileFormat(delimiter="\t", quoting=False))
    assert rejects == []
    assert records[0].fields == {"movieID": "1", "directorID": "john_lasseter", "directorName": "John Lasseter"}


def test_read_records_explicit_columns_without_header(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("1\t2\n", encoding="utf-8")
    records, _, _ = _read(path, FileFormat(delimiter="\t", header=False, columns=("u", "i")))
    assert records[0].fields == {"u": "1", "i": "2"}


def test_read_records_missing_file_is_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        list(read_records(tmp_path / "nope.csv", FileFormat(), "test"))


def test_read_records_rejects_a_line_longer_than_the_limit_without_reading_it_whole(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "long.csv"
    with path.open("wb") as handle:
        handle.write(b"id,name\n1,Ann\n")
        handle.write(b"2," + b"x" * (4 << 20) + b"\n")  # a 4 MiB line
        handle.write(b"3,Cid\n")
    tracemalloc.start()
    try:
        records, rejects, stats = _read(path, FileFormat(max_line_bytes=64 << 10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.fields["id"] for r in records] == ["1", "3"]
    assert [(r.line, r.reason) for r in rejects] == [(3, "line longer than 65,536 bytes (max_line_bytes)")]
    assert len(rejects[0].raw) <= 300 and stats.lines == 4
    assert peak < 1 << 20, peak


def test_read_records_line_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "edge.csv"
    path.write_bytes(b"id,name\r\n1," + b"y" * 62 + b"\r\n2,Bo\n")
    records, rejects, _ = _read(path, FileFormat(max_line_bytes=64))
    assert [r.fields["id"] for r in records] == ["1", "2"] and rejects == []


def test_mapping_refuses_an_encoding_that_is_not_line_based() -> None:
    from etl.mapping import FileSpec

    with pytest.raises(ValueError, match="convert the file to UTF-8"):
        FileSpec(path="a.csv", encoding="utf-16")
    assert FileSpec(path="a.csv", max_line_bytes=4096).file_format().max_line_bytes == 4096


def test_read_records_header_longer_than_the_limit_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    with path.open("wb") as handle:
        handle.write(b",".join(b"c%d" % i for i in range(400_000)) + b"\n1,2\n")  # a 3 MB header
    with pytest.raises(DataError, match=r"header \(line 1\) of .* is longer than 65,536 bytes"):
        list(read_records(path, FileFormat(max_line_bytes=64 << 10), "test"))
