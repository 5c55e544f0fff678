from __future__ import annotations

import pytest

from gnn.phases import PhaseEvent, listening, phase


def test_phases_reach_listeners_with_nesting_data_and_failure() -> None:
    events: list[PhaseEvent] = []
    with listening(events.append):
        with phase("fit") as data:
            with phase("ease", items=3):
                pass
            data["epochs"] = 7
        with pytest.raises(ValueError), phase("publish"):
            raise ValueError("boom")
    with phase("unheard"):
        pass
    assert [(e.name, e.kind, e.path) for e in events] == [
        ("fit", "start", ()),
        ("ease", "start", ("fit",)),
        ("ease", "end", ("fit",)),
        ("fit", "end", ()),
        ("publish", "start", ()),
        ("publish", "failed", ()),
    ]
    assert events[1].data == {"items": 3} and events[3].data == {"epochs": 7}
    assert all(e.seconds >= 0 for e in events) and events[0].seconds == 0.0
