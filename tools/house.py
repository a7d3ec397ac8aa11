"""Draw the house: jstip's packages as floors, each importing only from the floors below it.

    python tools/house.py            # print the drawing (docs/house.md holds the current one)
    python tools/house.py --write    # rewrite docs/house.md

A "room" is a subpackage of jstip (``jstip/scoring/``) or a top-level module (``jstip/audio.py``). An edge A -> B means
some module of A imports (at module level or inside a function) something of B. A room's floor is one more than the
highest floor it imports from; the ground floor imports no other room. tests/test_house.py checks that the graph
has no cycle, that the rules of DESIGN.md hold, and that docs/house.md is this script's current output.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jstip"
DRAWING = ROOT / "docs" / "house.md"
ENTRY = {"cli"}
"""Rooms that only dispatch to the others (the `jstip` command); drawn on the roof, not counted as dependencies."""
CONCEPTS = (
    ("a cut's audio as mono 16 kHz samples; the sample rate; speech positions per second of audio", "jstip/audio.py"),
    ("which cuts a stage can use (transcript, duration, encoder limit), each refused one rejected", "jstip/cuts.py"),
    ("the rejected-items log (`rejected.jsonl`)", "jstip/rejects.py"),
    ("reading and writing jsonl files (bad lines named as FILE:LINE)", "jstip/jsonl.py"),
    ("reading lhotse manifests line by line", "jstip/manifests.py"),
    ("writing a small output file atomically; the shipped resources", "jstip/paths.py"),
    ("what a word is; markup tokens", "jstip/text.py"),
    ("composing a run config (Hydra); the packaged configs", "jstip/conf/"),
    ("what a config must give (`required:`), checked once", "jstip/train/run.py: check_required"),
    ("what trains (`train.trainable`: adapter_only, all, or parts)", "jstip/train/module.py: trainable_parts"),
    ("edit-distance alignment and error counts (WER, CER, TER, B-WER)", "jstip/scoring/edit_distance.py"),
    ("the entity error rate's hit test", "jstip/scoring/entity_match.py"),
    ("references and hypotheses in, metrics.json and hyps.jsonl out", "jstip/scoring/score.py, files.py"),
    ("figures as text: percent, signed points, intervals", "jstip/scoring/figures.py"),
    ("tables and a report as HTML and Markdown (one list of blocks)", "jstip/report/document.py"),
    ("running a per-item stage in shards (`--shard i/N`, the shard record)", "jstip/sharding.py"),
    ("combining the shards of a stage, nothing lost or doubled", "jstip/shards/"),
    ("frozen encoder outputs per cut, cached on disk", "jstip/model/feature_cache.py"),
    ("the export folder (write and read)", "jstip/model/export.py"),
    ("a command: `jstip X` lives in its room's commands.py", "jstip/cli.py: SUBCOMMANDS"),
)
"""One home per concept: where to look before writing a helper (drawn below the floors)."""


def room_of(module: str) -> str | None:
    """``jstip.scoring.score`` -> ``scoring``; ``jstip.audio`` -> ``audio``; None outside jstip."""
    parts = module.split(".")
    if parts[0] != "jstip" or len(parts) < 2:
        return None
    return parts[1]


def rooms() -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "resources":
            continue
        name = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if name == "__init__":  # jstip/__init__.py: the version
            continue
        out[name].append(path)
    return dict(out)


def imports(path: Path) -> set[str]:
    """The jstip modules ``path`` imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.startswith("jstip.")}


def graph() -> dict[str, set[str]]:
    """room -> the rooms it imports from (itself and the entry point left out)."""
    edges: dict[str, set[str]] = {}
    for room, paths in rooms().items():
        targets = set()
        for path in paths:
            for module in imports(path):
                other = room_of(module)
                if other is not None and other != room and other in rooms() and other not in ENTRY:
                    targets.add(other)
        edges[room] = targets
    return edges


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each room's floor (0: imports no other room).

    Raises:
        ValueError: naming a cycle.
    """
    floor: dict[str, int] = {}
    visiting: list[str] = []

    def visit(room: str) -> int:
        if room in floor:
            return floor[room]
        if room in visiting:
            cycle = visiting[visiting.index(room):] + [room]
            raise ValueError("import cycle between rooms: " + " -> ".join(cycle))
        visiting.append(room)
        floor[room] = 1 + max((visit(t) for t in edges[room]), default=-1)
        visiting.pop()
        return floor[room]

    for room in sorted(edges):
        visit(room)
    return floor


def lines_of(room: str) -> int:
    return sum(len(p.read_text(encoding="utf-8").splitlines()) for p in rooms()[room])


def drawing() -> str:
    edges = graph()
    floor = floors(edges)
    top = max(floor[r] for r in floor if r not in ENTRY)
    out = ["# The house: jstip's packages, floor by floor", "",
           "Made by `python tools/house.py --write`; `tests/test_house.py` fails when this drawing is out of date, or "
           "when an import goes sideways or up (a cycle, or a rule below broken). A room is a subpackage of `jstip/` "
           "or a top-level module; it imports only from lower floors. Lines: all its Python lines.", "",
           "```"]
    out.append(f"roof      {'  '.join(sorted(ENTRY))}  (the `jstip` command: dispatches to every room's commands.py)")
    for level in range(top, -1, -1):
        here = sorted(r for r in floor if floor[r] == level and r not in ENTRY)
        out.append(f"floor {level:<3} " + "  ".join(f"{r} ({lines_of(r)})" for r in here))
    out.append("```")
    out += ["", "| room | imports from |", "|---|---|"]
    for room in sorted((r for r in edges if r not in ENTRY), key=lambda r: (-floor[r], r)):
        out.append(f"| {room} | {', '.join(sorted(edges[room], key=lambda r: (-floor[r], r))) or '—'} |")
    out += ["", "## One home per concept", "", "| concept | home |", "|---|---|"]
    out += [f"| {concept} | `{home}` |" for concept, home in CONCEPTS]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = drawing()
    if "--write" in argv:
        DRAWING.write_text(text, encoding="utf-8")
        print(f"wrote {DRAWING}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
