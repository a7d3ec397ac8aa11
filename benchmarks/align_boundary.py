"""Boundary accuracy and speed of the aligners on synthetic speech, with the TTS engine's word times as truth.

For each voice, sentences are synthesised (jstip.tts: espeak-ng and festival, which report their own word times),
aligned, and compared with ``compare_alignments(trim_to_voiced=True)``: both alignments' word edges are moved off
silence to the first/last voiced 5 ms frame, so a word next to a pause is compared on its spoken part only. Speed is
the real-time factor per core: seconds of audio aligned per second of CPU time of this single process.

A baseline measured in the same run: ``even`` splits the voiced region of each utterance between its words in
proportion to their letters (no acoustics). Its error is the ratio's denominator.

Usage:
    .venv/bin/python benchmarks/align_boundary.py                 # pocketsphinx, 4 voices x 12 sentences
    .venv/bin/python benchmarks/align_boundary.py --phones        # pocketsphinx with its phone pass
    .venv/bin/python benchmarks/align_boundary.py --ctc-model m.nemo --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCES = [
    "The patient took 20 milligrams of atorvastatin every evening.",
    "She walked to the market, and bought three apples and a loaf of bread.",
    "Please call the doctor before noon tomorrow!",
    "After the storm, the river rose quickly and flooded the lower fields.",
    "His blood pressure was 140 over 90, so the nurse repeated the measurement.",
    "We will meet at the station at half past seven.",
    "The committee approved the budget for the next fiscal year.",
    "Metformin is often the first medicine prescribed for type 2 diabetes.",
    "Could you tell me where the nearest pharmacy is?",
    "The children played in the garden until the sun went down.",
    "In 1998, the company opened its first office in Chicago.",
    "Take one tablet twice a day, with food, for ten days.",
]
VOICES = ["espeak:en-us+m1@160", "espeak:en-gb-scotland+f2@195", "espeak:en-us+f3@140", "festival:kal_diphone",
          "festival:cmu_us_slt_arctic_hts"]


class EvenSplit:
    """Baseline: words share the voiced region of the utterance in proportion to their letter counts."""

    name = "even"

    def align_cut(self, cut):
        from jstip.align.base import WordSpanTime, load_cut_audio
        from jstip.align.textgrid import _with_word_spans
        from jstip.text import words as split_words
        from jstip.tts.timing import tighten_to_voiced

        audio = load_cut_audio(cut)
        sup = cut.supervisions[0]
        words = split_words(sup.text)
        (start, end), = tighten_to_voiced(audio, 16000, [(0.0, len(audio) / 16000)])
        weights = np.array([max(1, sum(c.isalnum() for c in w)) for w in words], dtype=float)
        edges = start + (end - start) * np.concatenate([[0], np.cumsum(weights) / weights.sum()])
        spans = [WordSpanTime(w, float(a), float(b)) for w, a, b in zip(words, edges[:-1], edges[1:])]
        return _with_word_spans(cut, [spans])


def synthesize_cuts(folder: Path, voice: str, n: int):
    import soundfile as sf
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    from jstip.tts import SynthesisError, synthesize

    cuts = []
    for i, text in enumerate(SENTENCES[:n]):
        try:
            syn = synthesize(text, voice)
        except SynthesisError as e:  # an engine's own failure is not the aligner's: skip the sentence, say so
            print(f"# {voice}: TTS skipped sentence {i}: {e}")
            continue
        cut_id = f"{voice.replace(':', '_').replace('+', '_').replace('@', '_')}-{i:03d}"
        path = folder / f"{cut_id}.flac"
        sf.write(path, syn.audio, 16000)
        rec = Recording.from_file(path, recording_id=cut_id)
        items = [AlignmentItem(w.word, round(w.start, 4), round(w.end - w.start, 4)) for w in syn.words]
        sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=rec.duration, text=text,
                                 alignment={"word": items})
        cuts.append(MonoCut(id=cut_id, start=0.0, duration=rec.duration, channel=0, recording=rec,
                            supervisions=[sup]))
    return cuts


def run_aligner(aligner, cuts):
    """(aligned cuts, rejected count, real-time factor per core)."""
    from jstip.align.base import AlignmentError

    # Warm-up (decoder / model creation is a one-off per worker, not per utterance).
    try:
        aligner.align_cut(cuts[0])
    except AlignmentError:
        pass
    out, rejected = [], 0
    cpu0 = time.process_time()
    for cut in cuts:
        try:
            out.append(aligner.align_cut(cut))
        except AlignmentError:
            rejected += 1
    cpu = time.process_time() - cpu0
    audio = sum(c.duration for c in cuts)
    return out, rejected, audio / max(cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="+", default=VOICES)
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    parser.add_argument("--phones", action="store_true", help="pocketsphinx with its phone pass")
    parser.add_argument("--ctc-model", help="also run the CTC aligner with this .nemo model")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from lhotse import CutSet

    from jstip.align import compare_alignments, get_aligner

    aligners = [EvenSplit(), get_aligner("pocketsphinx", phones=args.phones)]
    if args.ctc_model:
        aligners.append(get_aligner("ctc", model_path=args.ctc_model))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in args.voices:
            cuts = synthesize_cuts(Path(tmp), voice, args.sentences)
            ref = CutSet.from_cuts(cuts)
            for aligner in aligners:
                hyp, rejected, rtf = run_aligner(aligner, cuts)
                report = compare_alignments(ref, CutSet.from_cuts(hyp), trim_to_voiced=True)["overall"]
                rows.append(dict(voice=voice, aligner=aligner.name, utterances=len(cuts), rejected=rejected,
                                 mean_abs_ms=report.get("mean_abs_ms"), within_20ms=report.get("within_20ms"),
                                 within_50ms=report.get("within_50ms"), rtf_per_core=round(rtf, 1),
                                 ref_pauses=report.get("ref_pauses"), pause_recall=report.get("pause_recall"),
                                 spurious_pauses=report.get("spurious_pauses"),
                                 audio_s=round(sum(c.duration for c in cuts), 1)))
    # Overall per aligner (boundary-weighted means over voices).
    names = list(dict.fromkeys(r["aligner"] for r in rows))
    baseline = {}
    print(f"{'voice':34s} {'aligner':13s} {'utts':>4s} {'rej':>3s} {'mean ms':>8s} {'<=20ms':>7s} {'<=50ms':>7s} "
          f"{'x RT/core':>9s} {'err/even':>8s} {'pauses kept':>11s} {'spurious':>8s}")
    for r in rows:
        if r["aligner"] == "even":
            baseline[r["voice"]] = r["mean_abs_ms"]
        ratio = (r["mean_abs_ms"] / baseline[r["voice"]]) if baseline.get(r["voice"]) else float("nan")
        print(f"{r['voice']:34s} {r['aligner']:13s} {r['utterances']:4d} {r['rejected']:3d} {r['mean_abs_ms']:8.1f} "
              f"{r['within_20ms']:7.3f} {r['within_50ms']:7.3f} {r['rtf_per_core']:9.1f} {ratio:8.2f} "
              f"{r['pause_recall'] if r['pause_recall'] is not None else float('nan'):11.2f} {r['spurious_pauses']:8d}")
    print()
    summary = {}
    for name in names:
        mine = [r for r in rows if r["aligner"] == name]
        audio = sum(r["audio_s"] for r in mine)
        summary[name] = dict(
            mean_abs_ms=round(float(np.mean([r["mean_abs_ms"] for r in mine])), 1),
            within_20ms=round(float(np.mean([r["within_20ms"] for r in mine])), 3),
            within_50ms=round(float(np.mean([r["within_50ms"] for r in mine])), 3),
            rtf_per_core=round(audio / sum(r["audio_s"] / r["rtf_per_core"] for r in mine), 1),
            rejected=sum(r["rejected"] for r in mine),
            pause_recall=round(sum(r["pause_recall"] * r["ref_pauses"] for r in mine if r["ref_pauses"])
                               / max(1, sum(r["ref_pauses"] for r in mine)), 3),
            spurious_pauses=sum(r["spurious_pauses"] for r in mine),
        )
        s = summary[name]
        print(f"ALL {name:13s} mean {s['mean_abs_ms']:.1f} ms, {100 * s['within_20ms']:.1f}% <=20 ms, "
              f"{100 * s['within_50ms']:.1f}% <=50 ms, {s['rtf_per_core']:.0f}x real time per core, "
              f"{s['rejected']} rejected, {100 * s['pause_recall']:.0f}% of pauses kept, "
              f"{s['spurious_pauses']} spurious")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
