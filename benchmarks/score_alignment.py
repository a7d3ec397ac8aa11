"""Speed of jstip's word alignment against baselines measured in the same run.

Aligns every (reference, hypothesis) pair of the biasing conformance set (LibriSpeech test-clean + test-other, two
systems each: ~11k utterances, ~210k reference words) with:

- ``jstip``: the numpy-vectorised, batched dynamic programme of ``jstip.scoring.edit_distance.edit_align_batch``;
- ``python``: the same weights and tie-breaking as a plain Python double loop (the published scorer's approach);
- ``kaldialign``: kaldialign's C++ ``align(..., sclite_mode=True)``: same weights, different ties (not exact);
- ``jiwer``: jiwer's unit-cost alignment (different S/I/D split).

Prints seconds, the ratio to the Python baseline and whether the S/I/D totals equal the published ones; then the
same on 300 synthetic long utterances (150-300 words), where the table is large and vectorisation pays most.
Without the conformance set (../shared/conformance/biasing), uses 11k synthetic utterances instead.

    .venv/bin/python benchmarks/score_alignment.py
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from jstip.scoring.edit_distance import count_errors, edit_align_batch

BIASING = Path(__file__).resolve().parents[1] / ".." / "shared" / "conformance" / "biasing"


def load_pairs() -> tuple[list[tuple[list[str], list[str]]], dict | None]:
    if (BIASING / "expected.json").exists():
        pairs, expected = [], {"subs": 0, "ins": 0, "dels": 0}
        published = json.loads((BIASING / "expected.json").read_text())
        for system in published:
            split = system.split(".")[0]
            refs = [json.loads(line) for line in open(BIASING / f"{split}.ref.jsonl")]
            hyps = {d["id"]: d["hyp"] for d in map(json.loads, open(BIASING / f"{system}.hyp.jsonl"))}
            pairs += [(r["text"].split(), hyps[r["id"]].split()) for r in refs]
            for key in expected:
                expected[key] += published[system]["wer"][key]
        return pairs, expected
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    pairs = []
    for _ in range(11000):
        ref = [rng.choice(words) for _ in range(rng.randint(3, 60))]
        hyp = [w if rng.random() > 0.08 else rng.choice(words) for w in ref if rng.random() > 0.02]
        pairs.append((ref, hyp))
    return pairs, None


def python_dp(ref, hyp):
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    back = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(1, m + 1):
        cost[0][j], back[0][j] = 3 * j, 1
    for i in range(1, n + 1):
        cost[i][0], back[i][0] = 3 * i, 2
        for j in range(1, m + 1):
            best, step = cost[i - 1][j - 1] + (0 if ref[i - 1] == hyp[j - 1] else 4), 0
            if cost[i][j - 1] + 3 < best:
                best, step = cost[i][j - 1] + 3, 1
            if cost[i - 1][j] + 3 < best:
                best, step = cost[i - 1][j] + 3, 2
            cost[i][j], back[i][j] = best, step
    s = ins = dels = 0
    i, j = n, m
    while i or j:
        step = back[i][j]
        if step == 0:
            s += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif step == 1:
            ins, j = ins + 1, j - 1
        else:
            dels, i = dels + 1, i - 1
    return s, ins, dels


def long_pairs() -> list[tuple[list[str], list[str]]]:
    rng = random.Random(1)
    words = [f"w{i}" for i in range(5000)]
    pairs = []
    for _ in range(300):
        ref = [rng.choice(words) for _ in range(rng.randint(150, 300))]
        hyp = [w if rng.random() > 0.1 else rng.choice(words) for w in ref if rng.random() > 0.03]
        pairs.append((ref, hyp))
    return pairs


def main() -> None:
    pairs, expected = load_pairs()
    run("conformance set" if expected else "synthetic short utterances", pairs, expected)
    run("synthetic long utterances (150-300 words)", long_pairs(), None)


def run(title: str, pairs, expected) -> None:
    words = sum(len(r) for r, _ in pairs)
    print(f"{title}: {len(pairs)} utterances, {words} reference words; published totals: {expected}")
    results = {}

    start = time.perf_counter()
    totals = [0, 0, 0]
    for ref, hyp in pairs:
        for k, v in enumerate(python_dp(ref, hyp)):
            totals[k] += v
    results["python"] = (time.perf_counter() - start, totals)

    start = time.perf_counter()
    totals = [0, 0, 0]
    for alignment in edit_align_batch(pairs):
        c = count_errors(alignment)
        totals = [totals[0] + c.subs, totals[1] + c.ins, totals[2] + c.dels]
    results["jstip"] = (time.perf_counter() - start, totals)

    import kaldialign

    start = time.perf_counter()
    totals = [0, 0, 0]
    for ref, hyp in pairs:
        for a, b in kaldialign.align(ref, hyp, "*", sclite_mode=True):
            totals[0] += a != "*" and b != "*" and a != b
            totals[1] += a == "*"
            totals[2] += b == "*"
    results["kaldialign"] = (time.perf_counter() - start, totals)

    import jiwer

    start = time.perf_counter()
    out = jiwer.process_words([" ".join(r) or "x" for r, _ in pairs], [" ".join(h) for _, h in pairs])
    results["jiwer"] = (time.perf_counter() - start, [out.substitutions, out.insertions, out.deletions])

    baseline = results["python"][0]
    for name, (seconds, totals) in results.items():
        exact = "" if expected is None else ("exact" if totals == [expected["subs"], expected["ins"], expected["dels"]]
                                             else "differs")
        print(f"{name:>10}: {seconds:7.3f} s  x{baseline / seconds:6.1f} vs python  S/I/D {totals} {exact}")


if __name__ == "__main__":
    main()
