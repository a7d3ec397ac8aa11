"""`jstip synthesize` through the real command: manifests, rejected lines with reasons, restart."""

import json
import subprocess
import sys
from pathlib import Path

from lhotse import CutSet

from jstip.text import words


def run(*args):
    jstip = Path(sys.executable).with_name("jstip")  # the installed console script, as a user types it
    return subprocess.run([str(jstip), *args], capture_output=True, text=True, check=True)


def test_bad_lines_are_rejected_and_every_other_line_spoken(tmp_path):
    src = tmp_path / "in.txt"
    good = ["The patient takes metformin twice a day.", "Hello world.", "Call me at 5 o'clock."]
    lines = [good[0].encode(), b"", "caf\u00e9 latte please.".encode(), b"\xff\xfe broken bytes",
             " ".join(["word"] * 2000).encode(), "\u65e5\u672c\u8a9e is Japanese".encode(), good[1].encode(),
             "snow \u2603 man".encode(), b"   ", good[2].encode()]
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    r = run("synthesize", "--in", str(src), "--out", str(out), "-j", "2", "--voice", "espeak:en-us+f1@170")
    cuts = CutSet.from_file(out / "cuts.jsonl.gz")
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(cuts) + len(rejected) == len(lines), r.stdout
    assert {c.supervisions[0].text for c in cuts} == set(good) | {"caf\u00e9 latte please."}
    reasons = {r["id"].rsplit("-", 1)[1]: r["reason"] for r in rejected}
    assert "empty" in reasons["000002"]
    assert "UTF-8" in reasons["000004"]
    assert "2000 words" in reasons["000005"]
    assert "CJK" in reasons["000006"]
    assert "SNOWMAN" in reasons["000008"]
    assert all(r["stage"] == "synthesize" for r in rejected)
    for c in cuts:
        sup = c.supervisions[0]
        assert [a.symbol for a in sup.alignment["word"]] == words(sup.text)
        assert c.recording.sampling_rate == 16000
    # Restart: nothing is redone, nothing is lost, rejected lines are not logged twice.
    run("synthesize", "--in", str(src), "--out", str(out), "--voice", "espeak:en-us+f1@170")
    assert len(CutSet.from_file(out / "cuts.jsonl.gz")) == len(cuts)
    assert len((out / "rejected.jsonl").read_text().splitlines()) == len(rejected)


def test_jsonl_with_entities(tmp_path):
    src = tmp_path / "in.jsonl"
    recs = [
        {"id": "a", "text": "Start lisinopril today.", "entities": [
            {"text": "lisinopril", "category": "drug", "start": 6, "end": 16}]},
        {"id": "b", "text": "Start lisinopril today.", "entities": [
            {"text": "lisinopril", "category": "drug", "start": 0, "end": 10}]},
        "not an object",
    ]
    src.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out = tmp_path / "out"
    run("synthesize", "--in", str(src), "--out", str(out))
    cuts = CutSet.from_file(out / "cuts.jsonl.gz")
    assert [c.id for c in cuts] == ["a"]
    assert cuts[0].supervisions[0].custom["entities"][0]["text"] == "lisinopril"
    rejected = (out / "rejected.jsonl").read_text()
    assert "does not match the text" in rejected and "not a JSON object" in rejected
