"""The house: packages import one way (floor by floor), the rules of DESIGN.md hold, docs/house.md is current, and no
module outgrows a reviewer's sitting."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def house():
    spec = importlib.util.spec_from_file_location("house", REPO / "tools" / "house.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["house"] = module
    spec.loader.exec_module(module)
    return module


def test_rooms_import_one_way_and_the_drawing_is_current(house):
    edges = house.graph()
    floors = house.floors(edges)  # raises on a cycle, naming it
    assert all(floors[t] < floors[r] for r in edges for t in edges[r])
    assert (REPO / "docs" / "house.md").read_text(encoding="utf-8") == house.drawing(), \
        "docs/house.md is out of date: run python tools/house.py --write"


def test_the_rules_of_the_house(house):
    edges = house.graph()
    importers = {room: {r for r in edges if room in edges[r]} for room in edges}
    # scoring is a library anyone can use on any system's output: it imports no stage
    assert edges["scoring"] <= {"entities", "jsonl", "rejects", "text"}, edges["scoring"]
    # reports read what scoring wrote; no stage depends on them, and they depend on no stage
    assert importers["report"] == set(), importers["report"]
    assert not edges["report"] & {"evaluate", "train", "model", "data", "pretrain", "align"}, edges["report"]
    # the priors and warm starts (pretrain) score with scoring, not with evaluation or reports
    assert not edges["pretrain"] & {"evaluate", "report"}, edges["pretrain"]
    # evaluation is the top floor's: nothing below imports it
    assert importers["evaluate"] == set(), importers["evaluate"]
    # the audio loader, the cut checks and the jsonl reader are ground rooms every stage may use
    assert house.floors(edges)["audio"] == 0 and house.floors(edges)["jsonl"] == 0


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in (REPO / "jstip").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, f"split these by job: {long}"


def test_every_command_lives_in_its_rooms_commands_module():
    from jstip.cli import SUBCOMMANDS, _target

    for name in SUBCOMMANDS:
        module, attribute = _target(name)
        assert module.startswith("jstip.") and module.endswith(".commands"), (name, module)
        assert getattr(importlib.import_module(module), attribute).name == name
    stray = sorted(str(p.relative_to(REPO)) for p in (REPO / "jstip").rglob("*_command.py"))
    assert not stray, stray
