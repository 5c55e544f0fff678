"""The kgrec CLI without a server: the --config help of each model, the plain phase lines off a terminal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.errors import StyleSyntaxError
from rich.style import Style
from typer.testing import CliRunner

from gnn.blend.config import RankerConfig
from gnn.config import TrainConfig
from gnn.phases import phase
from kgrec.cli import app
from kgrec.cli_serve import api_examples
from kgrec.cli_train import CONFIG_HELP
from kgrec.progress import phase_lines


def test_config_help_names_every_field_of_each_models_schema() -> None:
    lightgcn, blend = CONFIG_HELP.split("[bold]blend[/]")
    listed = {
        name: set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)*\b", text))
        for name, text in (("train", lightgcn), ("blend", blend))
    }
    assert set(TrainConfig.model_fields) <= listed["train"]
    assert set(RankerConfig.model_fields) <= listed["blend"]


def test_phase_lines_print_one_plain_line_per_finished_phase(capsys: pytest.CaptureFixture[str]) -> None:
    with phase_lines("retrain", enabled=True):
        with phase("export"):
            pass
        with phase("fit"), phase("ease"):
            pass
        with pytest.raises(ValueError), phase("publish"):
            raise ValueError("boom")
    with phase_lines("retrain", enabled=False), phase("export"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r"\d+\.\d", "N", line) for line in lines] == [
        "retrain: export N s",
        "retrain: fit/ease N s",
        "retrain: fit N s",
        "retrain: publish failed after N s",
    ]


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:  # noqa: ANN401
    """Every command under ``command`` (typer's own click classes: a group is what has ``commands``)."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_texts_hold_no_bracket_that_rich_would_swallow() -> None:
    """Help is rendered as rich markup: a bracket that is not a style (``[default: 10000]``) vanishes from the output
    ("Bind address ."); every bracketed word must be a style tag."""
    swallowed = []
    commands = list(_commands(typer.main.get_command(app)))
    assert {("serve",), ("load", "mapping"), ("neo4j", "start")} <= {path for path, _ in commands}
    for path, command in commands:
        texts = [command.help, command.epilog, *(getattr(p, "help", None) for p in command.params)]
        for text in filter(None, texts):
            for tag in re.findall(r"(?<!\\)\[([a-z#/@][^\[]*?)\]", text):  # what rich reads as a tag
                try:
                    if not tag.startswith("/"):
                        Style.parse(tag)
                except StyleSyntaxError:
                    swallowed.append(f"kgrec {' '.join(path)}: [{tag}]")
    assert swallowed == []


def test_serve_help_shows_its_defaults() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0
    assert "KGREC_HOST or 127.0.0.1" in result.output and "KGREC_PORT or 8000" in result.output


def test_models_without_any_model_says_how_to_make_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "--artifacts", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "no saved model" in result.output and "kgrec retrain" in result.output
    assert "┃" not in result.output  # no empty table


def test_models_shows_each_version_whole_in_an_80_column_terminal(tmp_path: Path) -> None:
    """Two versions of one day differ only past their first 8 characters: cut to "20261206…" they read the same."""
    versions = ["20261206T203820677221Z-d00c4dafb49b", "20261206T204016387914Z-df6a0dbc7448"]
    for version in versions:
        (tmp_path / "blend" / version).mkdir(parents=True)
        meta = {"snapshot_id": version[-12:], "metrics": {"validation": {"ndcg@20": 0.3}}, "config": {}}
        (tmp_path / "blend" / version / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "blend" / "current.json").write_text(json.dumps({"version": versions[1]}), encoding="utf-8")
    result = CliRunner().invoke(app, ["models", "--artifacts", str(tmp_path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    cells = "".join(line.split("│")[2].strip() for line in result.output.splitlines() if line.startswith("│"))
    assert all(v in cells for v in versions), result.output


def test_importing_the_cli_and_torch_geometric_prints_no_deprecation_warning() -> None:
    """The console script imports kgrec.cli before main() runs, and PyTorch Geometric warns at import: the filter
    must be in place by then."""
    code = "import kgrec.cli, torch_geometric"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch.jit.script" not in run.stderr, run.stderr


def test_serve_refuses_a_variant_naming_a_missing_model_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.settings import get_api_settings

    variants = tmp_path / "variants.yaml"
    variants.write_text(
        "variants:\n  - {name: a, share: 0.5}\n  - {name: ghost, share: 0.5, model_version: v404}\n", encoding="utf-8"
    )
    monkeypatch.setenv("KGREC_VARIANTS", str(variants))
    monkeypatch.setenv("KGREC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_api_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve"], env={"COLUMNS": "200", "TERM": "dumb"})
    finally:
        get_api_settings.cache_clear()
    assert result.exit_code == 1
    assert "variant ghost: model version 'v404' does not exist" in result.output


def test_the_demo_shows_a_write_only_when_the_server_accepts_writes() -> None:
    """Without KGREC_API_KEY the server refuses every write (403): the demo says how to set a key instead."""
    base = "http://127.0.0.1:8000"
    with_key, without = api_examples(base, write_key=True), api_examples(base, write_key=False)
    assert (
        with_key[:2]
        == without[:2]
        == [f"  curl '{base}/users/u1/recommendations?k=5'", f"  curl '{base}/items/i1/similar?k=5'"]
    )
    assert "X-API-Key: $KGREC_API_KEY" in with_key[2] and "-X POST" in with_key[2]
    assert not any("-X POST" in line for line in without)
    assert "export KGREC_API_KEY=$(openssl rand -hex 16)" in without[2]


def test_help_of_every_command_shows_no_type_label_on_a_flag() -> None:
    """A flag takes no value, so its row in the help table has no type: typer 0.29 printed ``<bool>`` beside every
    flag (``--help  <bool>``), hence the version range of typer in pyproject.toml."""
    runner = CliRunner()
    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) > 10
    for path, _ in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output
        assert "<bool>" not in result.output, f"kgrec {' '.join(path)} --help:\n{result.output}"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KGREC_IMPRESSIONS_BATCH", "abc", "KGREC_IMPRESSIONS_BATCH='abc': Input should be a valid integer"),
        ("KGREC_IMPRESSION_STORE", "bogus", "KGREC_IMPRESSION_STORE='bogus': String should match pattern"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [["report"], ["load", "synthetic", "--users", "20", "--items", "40", "--replace", "--no-progress"]],
    ids=["report", "load-replace"],
)
def test_an_invalid_api_setting_is_one_clear_error_not_a_traceback(
    command: list[str], variable: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kgrec report` and `kgrec load --replace` read the API settings (where the impressions are kept); a bad KGREC_*
    value stops them, before any Neo4j is reached, with the variable, its value, what is expected and its default."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:9")  # nothing listens there: the setting must fail first
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert text.startswith("error: invalid API setting in the environment or .env:"), text
    assert expected in text and "default when unset" in text
    assert "Traceback" not in text and "validation error" not in text and "unreachable" not in text.lower()
    assert len(result.output.strip().splitlines()) == 1 or "\n\n" not in result.output  # one paragraph
