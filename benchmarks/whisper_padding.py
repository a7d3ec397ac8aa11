"""What running the Whisper encoder on the utterance alone (position table sliced, jstip's default) costs against
Whisper's own 30 s padding: accuracy and encoder time, on the same utterances in the same run.

Accuracy is read through Whisper's own decoder: greedy transcripts decoded from the padded encoder output and from
the sliced one (one utterance per batch, so no stream sees another's padding), scored against the references.

    .venv/bin/python benchmarks/whisper_padding.py --cuts exp/mini/data/aligned/dev/cuts.jsonl.gz --max 100
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuts", required=True, help="lhotse cuts with transcripts (e.g. the mini corpus' dev set)")
    ap.add_argument("--whisper", default="tiny.en", help="tiny.en, base, a Hugging Face folder or a model.bin")
    ap.add_argument("--max", type=int, default=100, help="utterances")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from lhotse import CutSet

    from jstip.audio import load_cut_audio as load_audio
    from jstip.scoring.files import refs_from_cuts
    from jstip.scoring.score import score
    from jstip.model.whisper import WhisperSpeechEncoder, load_whisper
    from jstip.model.whisper_decode import WhisperTranscriber

    torch.set_num_threads(args.threads)
    cuts = CutSet.from_file(args.cuts).subset(first=args.max).to_eager()
    refs = refs_from_cuts(cuts)
    whisper = load_whisper(args.whisper)
    transcriber = WhisperTranscriber(whisper, temperatures=(0.0,), engine="torch")
    engine = transcriber.engine
    encoders = {"padded to 30 s": engine.encoder,
                "sliced (jstip)": WhisperSpeechEncoder(whisper.model.model.encoder, pad_to_30s=False)}
    audios = {c.id: torch.from_numpy(load_audio(c)) for c in cuts}
    results = {}
    for name, encoder in encoders.items():
        engine.encoder = encoder
        hyps, enc_time = {}, 0.0
        with torch.no_grad():
            for cut_id, audio in audios.items():
                t0 = time.perf_counter()
                enc = encoder(audio[None], torch.tensor([len(audio)]))[0]
                enc_time += time.perf_counter() - t0
                max_tokens = 10 + int(25 * len(audio) / 16000) + 1
                hyps[cut_id] = engine.decode(enc, [0], 1, max_tokens, 0.0)[0][0].text
        results[name] = (score(refs, hyps), enc_time)
    base_time = results["padded to 30 s"][1]
    print(f"{whisper.name}, {len(cuts)} utterances of {args.cuts}, greedy, Whisper's own decoder")
    print(f"{'encoder input':<16} {'WER %':>7} {'CER %':>7} {'encoder s':>10} {'time ratio':>10}")
    for name, (metrics, seconds) in results.items():
        print(f"{name:<16} {100 * metrics['wer']:7.2f} {100 * metrics['cer']:7.2f} {seconds:10.1f} "
              f"{seconds / base_time:10.2f}")


if __name__ == "__main__":
    main()
