"""The `kgrec` command against the real test server, the way a user runs it."""

import json
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
        [
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
        ],
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
