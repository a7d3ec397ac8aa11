"""--shard i/N on the per-item stages, and `jstip shards combine`: all shards combined give the same items as one
unsharded run; a missing, doubled or unfinished shard, or an item in two shards, is an error naming it."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from jstip.cli import main

LINES = [
    "The patient takes metformin twice a day.",
    "",  # an empty line: rejected
    "Her appointment is on Monday morning.",
    "We had bread for dinner with Maria last night.",
    " ".join(["word"] * 130),  # too many words: rejected
    "Please refill the lisinopril prescription.",
    "My brother lost his green bottle on the bus.",
]


def run(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def rows(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def rejected(folder: Path) -> list[str]:
    path = folder / "rejected.jsonl"
    return sorted(r["id"] for r in rows(path)) if path.exists() else []


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("shards") / "notes.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def synthesized(text_file) -> Path:
    """One unsharded run, 3 shards and their combination."""
    root = text_file.parent
    voice = ["--voice", "espeak:en-us"]
    run("synthesize", "--in", text_file, "--out", root / "all", *voice)
    for i in range(3):
        run("synthesize", "--in", text_file, "--out", root / f"s{i}", "--shard", f"{i}/3", *voice)
    out = run("shards", "combine", root / "combined", *(root / f"s{i}" for i in range(3)))
    assert "7 items = 5 kept + 2 rejected" in out
    return root


def test_synthesize_in_shards_equals_one_run(synthesized):
    one, combined = synthesized / "all", synthesized / "combined"
    for name in ("cuts.jsonl.gz", "recordings.jsonl.gz", "supervisions.jsonl.gz"):
        assert sorted(r["id"] for r in rows(combined / name)) == sorted(r["id"] for r in rows(one / name)), name
    texts = {r["id"]: r["text"] for r in rows(combined / "supervisions.jsonl.gz")}
    assert texts == {r["id"]: r["text"] for r in rows(one / "supervisions.jsonl.gz")}
    assert rejected(combined) == rejected(one) and len(rejected(one)) == 2
    # the combined manifests point at the shards' audio, which is there
    from lhotse import CutSet

    for cut in CutSet.from_file(combined / "cuts.jsonl.gz"):
        assert cut.load_audio().shape[1] > 0


@pytest.mark.parametrize("stage", ["prepare", "align", "interleave"])
def test_the_other_per_item_stages_in_shards_equal_one_run(synthesized, tmp_path, stage):
    """...on an input that repeats a cut id: the copy is rejected as a duplicate in a shard as in one run."""
    source = tmp_path / "input"
    source.mkdir()
    lines = gzip.open(synthesized / "all" / "cuts.jsonl.gz", "rt", encoding="utf-8").read().splitlines()
    with gzip.open(source / "cuts.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines + [lines[0]]) + "\n")
    cuts = source / "cuts.jsonl.gz"

    def stage_args(out: Path) -> list:
        if stage == "prepare":
            return ["prepare", "import", "--lhotse-dir", source, "--out", out]
        if stage == "align":
            return ["align", "--aligner", "tts", "--in", cuts, "--out", out / "cuts.jsonl.gz", "--quiet"]
        return ["interleave", "--in", cuts, "--out", out / "examples.jsonl", "--level", "word"]

    def output(folder: Path) -> Path:
        return folder if stage == "prepare" else folder / ("examples.jsonl" if stage == "interleave" else "cuts.jsonl.gz")

    run(*stage_args(tmp_path / "one"))
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, folder in enumerate(shards):
        run(*stage_args(folder), "--shard", f"{i}/2")
    run("shards", "combine", output(tmp_path / "combined"), *(output(f) for f in shards))
    main_file = "cuts.jsonl.gz" if stage != "interleave" else "examples.jsonl"
    got = rows(tmp_path / "combined" / main_file)
    want = rows(tmp_path / "one" / main_file)
    assert len(got) == len(want) > 0
    key = "cut_id" if stage == "interleave" else "id"
    assert sorted(r[key] for r in got) == sorted(r[key] for r in want)
    assert rejected(tmp_path / "combined") == rejected(tmp_path / "one")
    assert json.loads(lines[0])["id"] in rejected(tmp_path / "one")  # the duplicate


def test_combine_refuses_a_missing_doubled_or_unfinished_shard(synthesized, tmp_path):
    shards = [synthesized / f"s{i}" for i in range(3)]

    def combine(*outputs) -> str:
        result = CliRunner().invoke(main, ["shards", "combine", str(tmp_path / "out"), *map(str, outputs)])
        assert result.exit_code == 2, result.output
        return result.output

    assert "missing 2/3" in combine(shards[0], shards[1])
    assert "given twice 1/3" in combine(shards[0], shards[1], shards[1], shards[2])
    # a shard whose output lost an item (killed before it wrote it): named, with the fix
    full = max(range(3), key=lambda i: len(rows(shards[i] / "cuts.jsonl.gz")))
    others = [shards[i] for i in range(3) if i != full]
    broken = tmp_path / f"s{full}"
    shutil.copytree(shards[full], broken)
    cuts = rows(broken / "cuts.jsonl.gz")
    assert len(cuts) >= 2
    with gzip.open(broken / "cuts.jsonl.gz", "wt", encoding="utf-8") as f:
        for r in cuts[1:]:
            f.write(json.dumps(r) + "\n")
    out = combine(broken, *others)
    assert cuts[0]["id"] in out and "did not finish" in out
    record = json.loads((broken / "shard.json").read_text())
    assert cuts[0]["id"] in record["items"] and record["shard"] == [full, 3]
    # an item in two shards' outputs (a shard run on an edited input): doubled, named
    doubled = tmp_path / "doubled"
    shutil.copytree(others[0], doubled)
    with gzip.open(doubled / "cuts.jsonl.gz", "at", encoding="utf-8") as f:
        f.write(json.dumps(cuts[0]) + "\n")
    assert cuts[0]["id"] in combine(shards[full], doubled, others[1])
    # shards run with other options
    other_opts = tmp_path / "opts"
    shutil.copytree(others[0], other_opts)
    record = json.loads((other_opts / "shard.json").read_text())
    record["options"]["seed"] = 7
    (other_opts / "shard.json").write_text(json.dumps(record))
    assert "other options" in combine(shards[full], other_opts, others[1]) and "seed" in combine(
        shards[full], other_opts, others[1])
    # a shard of another input
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x\n")
    assert "not of the same split" in combine(shards[0], shards[1], _with_input(shards[2], tmp_path / "s2x", other))
    assert not (tmp_path / "out").exists()


def _with_input(shard: Path, copy: Path, source: Path) -> Path:
    shutil.copytree(shard, copy)
    record = json.loads((copy / "shard.json").read_text())
    record["input"] = str(source / "notes.txt")
    (copy / "shard.json").write_text(json.dumps(record))
    return copy


def test_prepare_mini_in_shards_equals_one_run(tmp_path):
    """The plan is the same in every shard; terms.json and summary.json (which need the whole train split) are
    written when the shards are combined, and equal one run's."""
    common = ["prepare", "mini", "--num-utterances", 40, "-j", 1]
    run(*common, "--out", tmp_path / "one")
    for i in range(2):
        out = run(*common, "--out", tmp_path / f"s{i}", "--shard", f"{i}/2")
        assert "written by `jstip shards combine`" in out and not (tmp_path / f"s{i}" / "terms.json").exists()
    run("shards", "combine", tmp_path / "combined", tmp_path / "s0", tmp_path / "s1")
    one, combined = tmp_path / "one", tmp_path / "combined"
    for split in ("train", "dev", "test"):
        assert sorted(r["id"] for r in rows(combined / split / "cuts.jsonl.gz")) == \
            sorted(r["id"] for r in rows(one / split / "cuts.jsonl.gz")), split
        assert rejected(combined / split) == rejected(one / split)
    for name in ("terms.json", "text/domain.txt"):
        assert (combined / name).read_text() == (one / name).read_text(), name
    # summary.json: the same counts (its hours may differ in the last digit: espeak-ng's audio varies between runs)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (combined, one))
    for split in ("train", "dev", "test"):
        for key in ("utterances", "planned", "voices", "entities"):
            assert a["splits"][split][key] == b["splits"][split][key], (split, key)
