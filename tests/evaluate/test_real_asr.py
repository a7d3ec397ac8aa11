"""jstip score on real manifests: speech by a real TTS engine, hypotheses from a real recogniser (pocketsphinx)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from jstip.scoring.commands import cli

ITEMS = [
    ("The doctor prescribed Metformin for the patient.", "Metformin", "drug"),
    ("We flew to Boston on Monday morning.", "Boston", "city"),
    ("Her mother takes Lisinopril every day.", "Lisinopril", "drug"),
]


@pytest.fixture(scope="module")
def spoken_cuts(tmp_path_factory):
    from jstip.tts.corpus import synthesize_items

    out = tmp_path_factory.mktemp("spoken")
    items = []
    for k, (text, entity, category) in enumerate(ITEMS):
        start = text.index(entity)
        items.append({"id": f"utt{k}", "text": text, "voice": "espeak:en-us@150", "custom": {"domain": "test"},
                      "entities": [{"text": entity, "category": category, "start": start, "end": start + len(entity)}]})
    cuts = synthesize_items(items, out, num_jobs=1, progress=False)
    assert len(cuts) == len(ITEMS)
    return out / "cuts.jsonl.gz", cuts


def write_hyps(path, hyps):
    path.write_text("".join(json.dumps({"id": k, "hyp": v}) + "\n" for k, v in hyps.items()))
    return path


def test_oracle_hypotheses_score_zero_on_real_manifests(spoken_cuts, tmp_path):
    manifest, cuts = spoken_cuts
    hyps = write_hyps(tmp_path / "oracle.jsonl", {c.id: c.supervisions[0].text for c in cuts})
    result = CliRunner().invoke(cli, ["--ref", str(manifest), "--hyp", str(hyps), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["wer"] == 0 and metrics["ter"] == 0 and metrics["eer"] == 0
    assert metrics["eer_counts"]["entities"] == len(ITEMS) and metrics["invalid_entities"] == []


def test_pocketsphinx_hypotheses_are_scored_consistently(spoken_cuts, tmp_path):
    from pocketsphinx import Decoder

    manifest, cuts = spoken_cuts
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    hyps = {}
    for cut in cuts:
        audio = cut.resample(16000).load_audio()[0]
        decoder.start_utt()
        decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        hyps[cut.id] = decoder.hyp().hypstr if decoder.hyp() else ""
    del hyps[cuts[0].id]  # one utterance without hypothesis: reported, scored as empty
    out = tmp_path / "ps"
    result = CliRunner().invoke(cli, ["--ref", str(manifest), "--hyp", str(write_hyps(tmp_path / "ps.jsonl", hyps)),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(line) for line in (out / "hyps.jsonl").read_text().splitlines()]
    assert metrics["missing_ids"] == [cuts[0].id]
    counts = metrics["wer_counts"]
    assert counts["ref_words"] == sum(len(text.split()) for text, _, _ in ITEMS)
    assert counts["errors"] == sum(r["wer_counts"]["errors"] for r in rows) > 0
    assert metrics["wer"] == pytest.approx(counts["errors"] / counts["ref_words"])
    assert rows[0]["wer_counts"]["dels"] == len(ITEMS[0][0].split())  # the missing one: all deleted
    assert metrics["eer_counts"]["entities"] == len(ITEMS)
    # pocketsphinx writes lowercase, so no entity's exact surface form can be found: every one is a miss
    assert metrics["eer"] == 1.0 and len(metrics["entity_misses"]) == len(ITEMS)
    assert metrics["per_domain"]["test"]["entities"] == len(ITEMS)
