import json
import subprocess
import sys

from click.testing import CliRunner

from jstip.scoring.commands import cli
from jstip.scoring.score import score


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_command_writes_metrics_and_hyps(tmp_path):
    text = "Give Metformin to Anna."
    refs = write_jsonl(tmp_path / "ref.jsonl", [
        {"id": "a", "text": text, "entities": [{"text": "Metformin", "category": "drug", "start": 5, "end": 14}],
         "biasing_words": ["metformin"]},
        {"id": "b", "text": "Nothing else."},
        {"id": "c", "text": "A third one."},
    ])
    hyps = write_jsonl(tmp_path / "hyp.jsonl", [{"id": "a", "hyp": "give metformin to anna"},
                                                {"id": "b", "hyp": "nothing else"}, {"id": "x", "hyp": "extra"}])
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["--ref", str(refs), "--hyp", str(hyps), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "missing" in result.output and "c" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("wer", "cer", "ter", "eer", "u_wer", "b_wer"):
        assert key in metrics and f"{key}_counts" in metrics
    assert metrics["missing_ids"] == ["c"] and metrics["extra_ids"] == ["x"]
    assert metrics["eer"] == 1.0  # "metformin" is not the surface form "Metformin"
    assert metrics["wer"] == 3 / 9  # the three words of the missing utterance are deletions
    assert "utterances" not in metrics
    rows = [json.loads(line) for line in (out / "hyps.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["ref"] == text and rows[0]["hyp"] == "give metformin to anna"
    assert rows[0]["entities"][0]["hit"] is False


def test_score_command_skips_bad_lines_naming_file_and_line(tmp_path):
    """Bad lines in either file (not UTF-8, not JSON, not an object, a key missing) and repeated ids are reported
    with file:line and skipped; the good lines are scored; every line is accounted for in rejected.jsonl."""
    from jstip.rejects import read_rejected

    refs = tmp_path / "ref.jsonl"
    refs.write_bytes(b'{"id": "a", "text": "one two"}\n{"id": "b", "text": "three"}\n{"id": "a", "text": "other"}\n'
                     b'{"id": "c", "text": "caf\xff"}\n[1, 2]\n')
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_bytes(b'{"id": "a", "hyp": "one two"}\n{"id": "b"}\n{"id": "b", "hyp": "thr\xffee"}\n'
                    b'{"id": "b", "hyp": "three"}\n{"id": "a", "hyp": "wrong"}\nnot json\n')
    result = CliRunner().invoke(cli, ["--ref", str(refs), "--hyp", str(hyp), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "hyp.jsonl:2" in result.output or "ref.jsonl:4" in result.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["num_utterances"] == 2 and metrics["wer"] == 0.0  # a: "one two" (first line), b: "three"
    rejected = {r["id"]: r["reason"] for r in read_rejected(tmp_path / "o" / "rejected.jsonl")}
    assert "not UTF-8 (byte 0xff" in rejected[f"{refs}:4"] and "JSON object" in rejected[f"{refs}:5"]
    assert "missing key(s) ['hyp']" in rejected[f"{hyp}:2"] and "not UTF-8" in rejected[f"{hyp}:3"]
    assert "not valid JSON" in rejected[f"{hyp}:6"]
    assert metrics["duplicate_ref_ids"] == ["a"] and metrics["duplicate_hyp_ids"] == ["a"]
    assert "first line is scored" in rejected["a"]
    # in = kept + rejected: 5 reference lines = 2 scored + 3 rejected; 6 hypothesis lines = 2 + 4
    assert len(rejected) + 1 == 3 + 4  # the two duplicate-id records share the id "a"


def test_entities_match_across_unicode_normal_forms(tmp_path):
    import unicodedata

    nfc = unicodedata.normalize("NFC", "Give Métformin now.")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    for ref_text, hyp_text in ((nfc, nfd), (nfd, nfc)):
        start = ref_text.index("M")
        end = start + len(unicodedata.normalize("NFC" if ref_text == nfc else "NFD", "Métformin"))
        ref = {"id": "u", "text": ref_text, "entities": [{"text": ref_text[start:end], "category": "drug",
                                                           "start": start, "end": end}]}
        result = score([ref], [{"id": "u", "hyp": hyp_text}])
        assert result["eer"] == 0.0 and result["wer"] == 0.0 and not result["invalid_entities"]


def test_jstip_score_help_through_the_real_command():
    out = subprocess.run([sys.executable, "-m", "jstip.cli", "score", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Example" in out.stdout and "--ref" in out.stdout


def test_score_reads_references_from_a_lhotse_cut_manifest(tmp_path):
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet, Recording, SupervisionSegment

    cuts = []
    for k, (text, entity) in enumerate([("Take Metformin daily.", "Metformin"), ("Call Dr. Patel.", "Patel")]):
        wav = tmp_path / f"u{k}.wav"
        sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
        rec = Recording.from_file(wav, recording_id=f"u{k}")
        start = text.index(entity)
        sup = SupervisionSegment(id=f"u{k}", recording_id=f"u{k}", start=0, duration=0.1, text=text,
                                 custom={"domain": "medical",
                                         "entities": [{"text": entity, "category": "drug", "start": start,
                                                       "end": start + len(entity)}]})
        cuts.append(rec.to_cut().with_id(f"u{k}"))
        cuts[-1].supervisions = [sup]
    manifest = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    hyps = write_jsonl(tmp_path / "hyp.jsonl", [{"id": "u0", "hyp": "take Metformin daily"},
                                                {"id": "u1", "hyp": "call doctor patel"}])
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["--ref", str(manifest), "--hyp", str(hyps), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eer_counts"] == {"entities": 2, "hits": 1, "misses": 1}
    assert metrics["per_domain"]["medical"]["entities"] == 2


def test_the_same_hypotheses_in_four_formats_give_the_same_figures(tmp_path):
    refs = write_jsonl(tmp_path / "ref.jsonl", [
        {"id": "utt-1", "text": "Give Metformin to Anna.",
         "entities": [{"text": "Metformin", "category": "drug", "start": 5, "end": 14}]},
        {"id": "utt-2", "text": "The flight was delayed by three hours."},
        {"id": "utt-3", "text": "See you at noon."}])
    hyps = {"utt-1": "give metformin to anna", "utt-2": "the flight was delayed by 3 hours", "utt-3": "see you at"}
    files = {
        "jsonl": "".join(json.dumps({"id": k, "hyp": v}) + "\n" for k, v in hyps.items()),
        "nemo": "".join(json.dumps({"audio_filepath": f"/data/wav/{k}.wav", "duration": 1.0, "text": "",
                                    "pred_text": v}) + "\n" for k, v in hyps.items()),
        "kaldi": "".join(f"{k} {v}\n" for k, v in hyps.items()),
        "trn": "".join(f"{v} ({k})\n" for k, v in hyps.items()),
    }
    figures = {}
    for fmt, text in files.items():
        path = tmp_path / f"hyp.{fmt}"
        path.write_text(text)
        result = CliRunner().invoke(cli, ["--ref", str(refs), "--hyp", str(path), "--hyp-format", fmt,
                                          "--out", str(tmp_path / fmt)])
        assert result.exit_code == 0, result.output
        m = json.loads((tmp_path / fmt / "metrics.json").read_text())
        assert not m["missing_ids"] and not m["extra_ids"]
        figures[fmt] = {k: m[k] for k in ("wer", "cer", "ter", "eer", "wer_counts")}
    assert figures["jsonl"]["wer_counts"]["errors"] == 2  # "three" vs "3", and the deleted "noon"
    assert figures["nemo"] == figures["kaldi"] == figures["trn"] == figures["jsonl"]
    bad = tmp_path / "bad.trn"
    bad.write_text("no id here\ngive metformin to anna (utt-1)\n")
    result = CliRunner().invoke(cli, ["--ref", str(refs), "--hyp", str(bad), "--hyp-format", "trn",
                                      "--out", str(tmp_path / "bad")])
    assert result.exit_code == 0 and f"{bad}:1" in result.output
