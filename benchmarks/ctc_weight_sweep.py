"""Tune ``jstip evaluate --ctc-weight`` on a dev set: WER, TER and EER of the n-best choice at each weight.

``jstip evaluate --ctc-weight W`` (any W > 0) writes OUT/nbest.jsonl: per utterance the beam's hypotheses and the
CTC draft with their LLM and CTC log-probabilities (:mod:`jstip.evaluate.rescore`). The choice at another weight needs
no decoding, so this script re-chooses from that file for every weight of a grid and scores each choice against the
cuts' references. Rows: the beam's own best (no rescoring), then each weight; the lowest WER is marked. Pick the weight
on dev, then evaluate test with it.

    jstip evaluate --checkpoint exp/stage2/checkpoints/last.ckpt --cuts data/dev/cuts.jsonl.gz --out exp/dev_nbest \\
        --beam 4 --ctc-weight 0.3 --no-spoken-tasks --listen-utterances 0
    python benchmarks/ctc_weight_sweep.py --nbest exp/dev_nbest/nbest.jsonl --cuts data/dev/cuts.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def sweep(nbest: Path, cuts: Path, weights: list[float]) -> list[dict]:
    """One row per choice: ``{"weight", "wer", "ter", "eer", "from_ctc"}`` (weight None: the beam's own best)."""
    from jstip.evaluate.decode import load_cuts
    from jstip.evaluate.rescore import rechoose
    from jstip.scoring.files import refs_from_cuts
    from jstip.scoring.score import score

    rows = [json.loads(line) for line in nbest.read_text(encoding="utf-8").splitlines() if line.strip()]
    refs = refs_from_cuts(load_cuts(cuts))
    decoded = {r["id"] for r in rows}
    refs = [r for r in refs if r["id"] in decoded]  # a partial decoding (--max-utterances) scores what it decoded
    out = []
    for weight in [None] + weights:
        hyps = {}
        drafts = 0
        for row in rows:
            if weight is None:
                beam = next(c for c in row["candidates"] if c["source"].startswith("beam1"))
                hyps[row["id"]] = beam["text"]
            else:
                hyps[row["id"]] = rechoose(row, weight)
                drafts += any(c["text"] == hyps[row["id"]] and c["source"] == "ctc" for c in row["candidates"])
        m = score(refs, hyps)
        out.append({"weight": weight, "wer": m["wer"], "ter": m["ter"], "eer": m["eer"], "from_ctc": drafts})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nbest", type=Path, required=True, help="nbest.jsonl of `jstip evaluate --ctc-weight`.")
    parser.add_argument("--cuts", type=Path, required=True, help="The cuts it decoded (references).")
    parser.add_argument("--weights", type=float, nargs="+",
                        default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    parser.add_argument("--out", type=Path, help="Also write the rows as JSON.")
    args = parser.parse_args()
    rows = sweep(args.nbest, args.cuts, args.weights)
    best = min((r for r in rows if r["weight"] is not None), key=lambda r: r["wer"])
    pct = lambda x: "n/a" if x is None else f"{100 * x:.2f}"  # noqa: E731
    print(f"{'choice':<22s} {'WER %':>7s} {'TER %':>7s} {'EER %':>7s} {'CTC draft chosen':>17s}")
    for r in rows:
        name = "beam's own best" if r["weight"] is None else f"ctc weight {r['weight']:.2f}"
        mark = "  <- lowest WER" if r is best else ""
        print(f"{name:<22s} {pct(r['wer']):>7s} {pct(r['ter']):>7s} {pct(r['eer']):>7s} {r['from_ctc']:>17d}{mark}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
