"""The `kgrec` command against the real test server, the way a user runs it."""

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph.settings import Neo4jSettings
from kgrec.cli import app

MINI = Path(__file__).parents[1] / "fixtures" / "mini_movielens"
runner = CliRunner()


def test_cli_load_synthetic_prints_summary(cli_env: Neo4jSettings) -> None:
    result = runner.invoke(app, ["load", "synthetic", "--users", "30", "--items", "60", "--replace", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "INTERACTED" in result.output and "write phases" in result.output
    assert "no rejected rows" in result.output


def test_cli_load_movielens_reports_rejects_and_file(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["load", "movielens", str(MINI), "--actors", str(MINI / "actors.csv"), "--hetrec", str(MINI / "hetrec"),
         "--replace", "--no-progress", "--rejects-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "rejected 8 rows" in result.output
    assert (tmp_path / "movielens.rejects.csv").is_file()
    assert "skipped" in result.output

    stats = runner.invoke(app, ["stats"])
    assert stats.exit_code == 0
    assert "ACTED_IN" in stats.output


def test_cli_missing_folder_is_a_clear_error(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    result = runner.invoke(app, ["load", "movielens", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "not a directory" in result.output
    assert "Traceback" not in result.output


def test_cli_unreachable_neo4j_is_a_clear_error(cli_env: Neo4jSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from graph.settings import get_neo4j_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{port}")
    get_neo4j_settings.cache_clear()
    result = runner.invoke(app, ["load", "synthetic", "--users", "10", "--items", "20"])
    assert result.exit_code == 1
    assert "not reachable" in result.output and "kgrec neo4j start" in result.output


def test_cli_neo4j_status_reports_version(cli_env: Neo4jSettings) -> None:
    result = runner.invoke(app, ["neo4j", "status"])
    assert result.exit_code == 0, result.output
    assert "5.26" in result.output


def test_cli_schema_show_lists_constraints() -> None:
    result = runner.invoke(app, ["schema", "show"])
    assert result.exit_code == 0
    assert "user_user_id" in result.output and "(:User)-[:FOLLOWS]->(:User)" in result.output
