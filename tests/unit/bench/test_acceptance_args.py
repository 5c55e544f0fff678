"""bench.acceptance's --reference-params: checked before any server starts, and honoured without a search."""

from __future__ import annotations

import sys

import pytest

import bench.acceptance as acceptance


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reference-params", 'implicit BPR={"factors": 8}'], "not among --references"),
        (["--reference-params", "implicit ALS={factors: 8}"], "not JSON"),
        (["--reference-params", "implicit ALS=[8]"], "JSON object"),
    ],
)
def test_bad_reference_params_are_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    def no_server(*_: object, **__: object) -> None:
        raise AssertionError("a server was started for a bad command line")

    monkeypatch.setattr(acceptance.launcher, "start", no_server)
    monkeypatch.setattr(sys, "argv", ["bench.acceptance", *argv])
    with pytest.raises(SystemExit) as exit_info:
        acceptance.main()
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
