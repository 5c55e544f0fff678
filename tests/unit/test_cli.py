"""The kgrec CLI without a server: the --config help of each model, the plain phase lines off a terminal."""

from __future__ import annotations

import re

import pytest

from gnn.blend.config import RankerConfig
from gnn.config import TrainConfig
from gnn.phases import phase
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
