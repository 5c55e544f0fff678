"""The `kgrec` command against the real test server, the way a user runs it."""

import json
import os
import socket
from pathlib import Path

import pytest
from neo4j import Driver
from typer.testing import CliRunner

from graph.impressions import SqliteImpressionStore
from graph.settings import Neo4jSettings
from graph.writers import impression_batches
from kgrec.cli import app

MINI = Path(__file__).parents[1] / "fixtures" / "mini_movielens"
runner = CliRunner()


def test_cli_load_synthetic_prints_summary(cli_env: Neo4jSettings) -> None:
    result = runner.invoke(app, ["load", "synthetic", "--users", "30", "--items", "60", "--replace", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "INTERACTED" in result.output and "write phases" in result.output
    assert "no rejected rows" in result.output


def test_cli_load_replace_empties_the_sqlite_impression_file(cli_env: Neo4jSettings) -> None:
    store = SqliteImpressionStore(Path(os.environ["KGREC_IMPRESSION_DB"]))  # the test's own file (tests/conftest.py)
    row = {
        "recommendation_id": "r1",
        "user_id": "u1",
        "variant": "A",
        "model_version": "m",
        "shown_at": 1,
        "item_ids": ["i1"],
    }
    for part in impression_batches([row], 50):
        store.write(part)
    load = ["load", "synthetic", "--users", "30", "--items", "60", "--no-progress"]
    assert runner.invoke(app, load).exit_code == 0  # a load on top keeps the lists
    assert [f.lists for f in store.variant_report()] == [1] and store.lists_shown("u1", 0) == 1
    result = runner.invoke(app, [*load, "--replace"])
    assert result.exit_code == 0, result.output
    assert "emptied the impression store" in result.output
    assert store.variant_report() == [] and store.lists_shown("u1", 0) == 0 and store.item_exposure() == {}
    store.close()


def test_cli_load_world_writes_the_files_once_then_loads_them(
    cli_env: Neo4jSettings, driver: Driver, tmp_path: Path
) -> None:
    folder = tmp_path / "world"
    sizes = ["--users", "40", "--items", "30", "--interactions", "400"]
    result = runner.invoke(app, ["load", "world", str(folder), *sizes, "--generate-only", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "wrote 40 users, 30 items" in " ".join(result.output.split()) and "write phases" not in result.output
    written = json.loads((folder / "world.json").read_text())
    result = runner.invoke(app, ["load", "world", str(folder), "--users", "99", "--replace", "--no-progress"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert f"holds a world of {written['interactions']:,} interactions" in said  # not rewritten
    assert "no rejected rows" in result.output
    records, _, _ = driver.execute_query(
        "MATCH (u:User) RETURN count(u) AS users, COUNT { ()-[:INTERACTED]->() } AS interactions"
    )
    assert (records[0]["users"], records[0]["interactions"]) == (40, written["interactions"])


def test_cli_load_movielens_reports_rejects_and_file(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    load = [
        "load",
        "movielens",
        str(MINI),
        "--actors",
        str(MINI / "actors.csv"),
        "--hetrec",
        str(MINI / "hetrec"),
        "--replace",
        "--no-progress",
        "--rejects-dir",
        str(tmp_path),
        "--max-reject-rate",
        "0.2",  # the fixture rejects 8 of its 58 rows on purpose
    ]
    result = runner.invoke(app, load)
    assert result.exit_code == 0, result.output
    assert "rejected 8 rows" in result.output
    assert (tmp_path / "movielens.rejects.csv").is_file()
    assert "skipped" in result.output
    assert "created " in result.output and "unchanged" not in result.output

    again = runner.invoke(app, [arg for arg in load if arg != "--replace"])  # the same files once more
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert "unchanged: every row was already in the graph" in said and "created " not in said

    stats = runner.invoke(app, ["stats"])
    assert stats.exit_code == 0
    assert "ACTED_IN" in stats.output
    # the counts alone: stats loads nothing, so it reports no load and no rejects
    assert "after loading" not in stats.output and "rejected" not in stats.output


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


def test_cli_train_retrain_models_evaluate(
    cli_env: Neo4jSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The learning jobs as a user runs them: train (test figures), retrain (promotion), models, evaluate."""
    monkeypatch.setenv("KGREC_SNAPSHOTS_DIR", str(tmp_path / "snapshots"))
    artifacts = tmp_path / "artifacts"
    fast = ["--max-epochs", "3", "--device", "cpu", "--no-progress", "--artifacts", str(artifacts)]
    assert (
        runner.invoke(
            app, ["load", "synthetic", "--users", "40", "--items", "60", "--replace", "--no-progress"]
        ).exit_code
        == 0
    )

    trained = runner.invoke(app, ["train", "--model", "lightgcn", *fast, "--embedding-dim", "8"])
    assert trained.exit_code == 0, trained.output
    assert "validation" in trained.output and "test" in trained.output and "curves.png" in trained.output

    retrained = runner.invoke(app, ["retrain", "--model", "lightgcn", *fast])
    assert retrained.exit_code == 0, retrained.output
    assert "promoted" in retrained.output and "embeddings in Neo4j" in retrained.output

    listing = runner.invoke(app, ["models", "--artifacts", str(artifacts)])
    assert listing.exit_code == 0, listing.output
    assert listing.output.count("lightgcn") >= 2 and "*" in listing.output and "all" in listing.output

    evaluated = runner.invoke(app, ["evaluate", "--model", "lightgcn", "--artifacts", str(artifacts)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "NDCG@20" in evaluated.output and "scoring all test users" in evaluated.output

    bad = runner.invoke(app, ["train", "--model", "transformer", *fast])
    assert bad.exit_code != 0 and "unknown model" in bad.output
    assert runner.invoke(app, ["train", "--help"]).exit_code == 0


def test_cli_blend_train_and_retrain(cli_env: Neo4jSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default model, the blend: train measures test figures, retrain promotes and publishes embeddings."""
    monkeypatch.setenv("KGREC_SNAPSHOTS_DIR", str(tmp_path / "snapshots"))
    artifacts = tmp_path / "artifacts"
    fast = ["--max-epochs", "3", "--device", "cpu", "--no-progress", "--artifacts", str(artifacts)]
    assert (
        runner.invoke(
            app, ["load", "synthetic", "--users", "40", "--items", "60", "--replace", "--no-progress"]
        ).exit_code
        == 0
    )
    trained = runner.invoke(app, ["train", *fast])
    assert trained.exit_code == 0, trained.output
    assert "blend" in trained.output and "test" in trained.output
    flat = " ".join(trained.output.split())  # rich wraps lines at the terminal width
    assert "components: EASE^R λ" in flat and "searched on validation" in flat, trained.output
    blend_yaml = tmp_path / "blend.yaml"  # RankerConfig fields; the flag still wins over the file
    blend_yaml.write_text("component_search: false\nals_factors: 8\ncold_slots: 2\n", encoding="utf-8")
    retrained = runner.invoke(app, ["retrain", *fast, "--cold-slots", "0", "--config", str(blend_yaml)])
    assert retrained.exit_code == 0, retrained.output
    assert "promoted" in retrained.output and "embeddings in Neo4j" in retrained.output
    from gnn.serving import current_version

    current = current_version(artifacts, "blend")
    saved = json.loads((current / "ranker.json").read_text())["config"] if current is not None else {}
    assert (saved["cold_slots"], saved["component_search"], saved["als_factors"]) == (0, False, 8)
    blend_yaml.write_text("als_factorz: 8\n", encoding="utf-8")
    typo = runner.invoke(app, ["train", *fast, "--config", str(blend_yaml)])
    assert typo.exit_code == 1 and "invalid blend config" in typo.output and "als_factorz" in typo.output
    assert (current / "catalog.json").is_file()  # the filters of degraded answers
    wrong = runner.invoke(app, ["retrain", "--model", "lightgcn", "--cold-slots", "1", *fast])
    assert wrong.exit_code != 0 and "only the blend" in wrong.output
    evaluated = runner.invoke(app, ["evaluate", "--artifacts", str(artifacts)])
    assert evaluated.exit_code == 0, evaluated.output  # the current blend, on its own snapshot
    assert (artifacts / "blend" / "current.json").is_file()
    shown = runner.invoke(app, ["recommend", "u1", "-k", "5"])  # KGREC_ARTIFACTS_DIR is this artifacts root
    assert shown.exit_code == 0, shown.output
    assert "blend-" in shown.output and "Because" in shown.output


def test_cli_retrain_off_a_terminal_writes_plain_lines(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    """`kgrec retrain >> retrain.log 2>&1` (cron): no progress bars or control codes, one line per phase."""
    import os
    import re
    import subprocess
    import sys

    assert (
        runner.invoke(
            app, ["load", "synthetic", "--users", "40", "--items", "60", "--replace", "--no-progress"]
        ).exit_code
        == 0
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kgrec.cli",
            "retrain",
            "--model",
            "lightgcn",
            "--max-epochs",
            "3",
            "--device",
            "cpu",
            "--artifacts",
            str(tmp_path / "artifacts"),
        ],
        cwd=Path(__file__).parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
        check=False,
    )
    log = done.stdout.decode("utf-8")
    assert done.returncode == 0, log
    assert "\r" not in log and "\x1b" not in log, log
    for name in ("export", "split", "fit", "promote", "publish"):
        assert len(re.findall(rf"^retrain: {name} \d+\.\d s$", log, flags=re.MULTILINE)) == 1, (name, log)
    assert "promoted" in log and "embeddings in Neo4j" in log


SHOP_MAPPING = """
name: shop
item_labels: [Movie]
files:
  items: {path: items.csv}
  clicks: {path: clicks.csv}
items:
  - {file: items, id: sku, title: name}
interactions:
  - {file: clicks, user: %s, item: sku}
"""


def _shop(folder: Path, clicks: bytes, user_column: str = "user") -> Path:
    """A two-item shop whose clicks file is ``clicks``; returns its mapping file."""
    (folder / "items.csv").write_text("sku,name\ns1,One\ns2,Two\n", encoding="utf-8")
    (folder / "clicks.csv").write_bytes(clicks)
    mapping = folder / "shop.yaml"
    mapping.write_text(SHOP_MAPPING % user_column, encoding="utf-8")
    return mapping


def _clicks(separator: str = ",", extra: str = "") -> str:
    return "\n".join([f"user{separator}sku"] + [f"u{i}{separator}s{1 + i % 2}{extra}" for i in range(1000)]) + "\n"


def test_cli_load_past_max_reject_rate_writes_valid_rows_and_exits_4(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    mapping = _shop(tmp_path, _clicks(extra=",oops").encode())  # every click has a third field
    result = runner.invoke(app, ["load", "mapping", str(mapping), "--replace", "--no-progress"])
    assert result.exit_code == 4, result.output
    rejects = tmp_path / "rejects" / "shop.rejects.csv"
    line = f"error: rejected 1,000 of 1,002 rows (99.8%) > --max-reject-rate 5%: see {rejects}"
    assert result.stderr.strip() == line, result.stderr
    assert "Item" in result.output and "│     2 │" in result.output  # the valid rows (the items) were written
    assert "Traceback" not in result.output

    allowed = runner.invoke(app, ["load", "mapping", str(mapping), "--no-progress", "--max-reject-rate", "1.0"])
    assert allowed.exit_code == 0, allowed.output
    assert "rejected 1,000 rows of 1,002 source rows (99.8%)" in " ".join(allowed.output.split())
    assert "--max-reject-rate" in runner.invoke(app, ["load", "movielens", "--help"]).output


@pytest.mark.parametrize(
    ("clicks", "user_column", "named"),
    [
        (_clicks(";").encode(), "user", "'user'"),  # wrong delimiter
        (_clicks().encode(), "customer", "'customer'"),  # a column the file does not have
        (_clicks().encode("utf-16"), "user", "'user'"),  # UTF-16 read as the default UTF-8
    ],
    ids=["wrong-delimiter", "wrong-column", "undeclared-utf16"],
)
def test_cli_load_mapping_with_wrong_layout_fails_naming_the_column(
    cli_env: Neo4jSettings, tmp_path: Path, clicks: bytes, user_column: str, named: str
) -> None:
    mapping = _shop(tmp_path, clicks, user_column)
    result = runner.invoke(app, ["load", "mapping", str(mapping), "--replace", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: interactions:clicks: column " + named), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_cli_load_missing_file_is_one_clear_line(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    mapping = _shop(tmp_path, _clicks().encode())
    (tmp_path / "clicks.csv").unlink()
    result = runner.invoke(app, ["load", "mapping", str(mapping), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"error: file 'clicks' not found: {tmp_path / 'clicks.csv'}", result.stderr
    lastfm = runner.invoke(app, ["load", "lastfm", str(tmp_path), "--no-progress"])
    assert lastfm.exit_code == 1 and lastfm.stderr.startswith("error: file 'artists' not found"), lastfm.output
    assert "Traceback" not in result.output + lastfm.output


def test_cli_load_counts_blank_lines_apart_from_rejects(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    mapping = _shop(tmp_path, b"user,sku\nu1,s1\n\n  \nu2,s2\n\n")
    result = runner.invoke(app, ["load", "mapping", str(mapping), "--replace", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "skipped blank lines (not rejects): clicks 3" in result.output
    assert "no rejected rows" in result.output


def test_cli_crash_during_replace_wipe_is_one_clear_line(
    cli_env: Neo4jSettings, driver: Driver, tmp_path: Path
) -> None:
    """The wipe is terminated by the server while it waits for a lock another transaction holds."""
    import os
    import subprocess
    import sys
    import time

    assert runner.invoke(app, ["load", "synthetic", "--users", "20", "--items", "40", "--no-progress"]).exit_code == 0
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    with driver.session(database=cli_env.database) as session:
        blocker = session.begin_transaction()
        blocker.run("MATCH (n) SET n.blockedByTest = true").consume()  # write locks on every node
        load: subprocess.Popen[bytes] | None = None
        try:
            load = subprocess.Popen(
                [sys.executable, "-m", "kgrec.cli", "load", "synthetic", "--users", "10", "--items", "20", "--replace"],
                cwd=Path(__file__).parents[2],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 120
            while True:
                assert load.poll() is None and time.monotonic() < deadline, "the wipe never started"
                rows, _, _ = driver.execute_query(
                    "SHOW TRANSACTIONS YIELD transactionId AS id, currentQuery AS query "
                    "WHERE query CONTAINS 'DETACH' + ' DELETE' RETURN collect(id) AS ids",  # not this query itself
                    database_=cli_env.database,
                )
                if rows[0]["ids"]:
                    driver.execute_query("TERMINATE TRANSACTIONS $ids", {"ids": rows[0]["ids"]})
                    break
                time.sleep(0.2)
            _, stderr = load.communicate(timeout=120)
        finally:
            blocker.rollback()
            if load is not None and load.poll() is None:
                load.kill()
    message = stderr.decode("utf-8").strip()
    assert load is not None and load.returncode == 1, message
    assert message.startswith("error: Neo4j refused to wipe the graph (the graph may be partly wiped"), message
    assert len(message.splitlines()) == 1 and "Traceback" not in message
