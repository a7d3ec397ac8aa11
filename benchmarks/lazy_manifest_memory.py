"""Resident memory of the training data path on a lazily read manifest, as the manifest grows.

Writes manifests of N cuts (copies of the cuts of a 40-utterance mini corpus under new ids, pointing at its few real
audio files), then, in a fresh process per N, does what ``jstip train`` does with ``data.train_cuts``: opens the
manifest (:class:`jstip.data.sources.TrainCuts`: one screening pass over the metadata), builds the epoch's loader
(DynamicBucketingSampler, rendering, packing) and trains on nothing but takes ``--batches`` batches from it (their
audio read and rendered). Reported per N: resident memory after the imports, after the screening pass, and the peak
while the batches are taken (sampled every batch, and the process's high-water mark), in MB. The same for the eager
path (the whole manifest in memory, as before) as the reference.

The bound: beyond the sampler's buffer (``data.buffer_size``, 20000 cuts by default) the loader's memory does not
grow with the manifest. The script checks that the peak at the largest N is within 10% (and 40 MB) of the peak at the
smallest N above the buffer, and says PASS or FAIL.

    python benchmarks/lazy_manifest_memory.py                     # N = 25k, 50k, 100k; 200 batches
    python benchmarks/lazy_manifest_memory.py --sizes 30000 100000 --batches 100 --out mem.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``: resident now, ``VmHWM``: the high-water mark) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def hwm_mb() -> float:
    return _status_mb("VmHWM")


def write_manifest(corpus: Path, n: int, out: Path) -> Path:
    """``n`` cuts: the mini corpus's train cuts over and over, each copy under a new id."""
    with gzip.open(corpus / "train" / "cuts.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    with gzip.open(out, "wt") as f:
        for k in range(n):
            row = json.loads(json.dumps(rows[k % len(rows)]))
            new = f"{row['id']}-{k:07d}"
            row["id"] = new
            for sup in row["supervisions"]:
                sup["id"] = new
            f.write(json.dumps(row) + "\n")
    return out


def measure(manifest: Path, corpus: Path, batches: int, eager: bool) -> dict:
    """In this process: open, screen, build the loader, take ``batches`` batches; the memory figures."""
    import time

    from jstip.data.dataset import DataConfig, build_dataloader
    from jstip.data.toy_tokenizer import toy_tokenizer

    texts = (corpus / "text" / "domain.txt").read_text().splitlines()
    tok = toy_tokenizer(texts, 400)
    cfg = DataConfig(max_duration=20.0, max_row_tokens=1024)
    out = {"rss_after_imports": rss_mb()}
    t0 = time.perf_counter()
    if eager:
        from jstip.cuts import screen_cuts
        from jstip.rejects import RejectLog
        from jstip.train.data import load_cuts

        rejects = RejectLog(Path(tempfile.mkdtemp()) / "rejected.jsonl", "train")
        cuts = screen_cuts(load_cuts(manifest, rejects), rejects, cfg.max_duration)
        epoch = cuts
    else:
        from jstip.data.sources import TrainCuts

        cuts = TrainCuts.open(manifest, max_duration=cfg.max_duration)
        epoch = cuts.epoch(0, seed=0)
    out["open_s"] = round(time.perf_counter() - t0, 1)
    out["rss_after_open"] = rss_mb()
    loader = build_dataloader(cfg, epoch, tok, [corpus / "text" / "domain.txt"], epoch=0, seed=0)
    peak, taken = 0.0, 0
    t0 = time.perf_counter()
    for batch in loader:
        taken += 1
        peak = max(peak, rss_mb())
        if taken >= batches:
            break
    out["batches"] = taken
    out["batches_s"] = round(time.perf_counter() - t0, 1)
    out["rss_peak_loader"] = peak
    out["hwm"] = hwm_mb()
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[25000, 50000, 100000])
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--no-eager", action="store_true", help="skip the eager reference")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--child", nargs=4, metavar=("MANIFEST", "CORPUS", "BATCHES", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        manifest, corpus, batches, mode = args.child
        print(json.dumps(measure(Path(manifest), Path(corpus), int(batches), mode == "eager")))
        return

    from jstip.corpora.mini import prepare_mini

    work = Path(tempfile.mkdtemp(prefix="jstip-mem-"))
    corpus = work / "mini"
    prepare_mini(corpus, num_utterances=40, seed=0, num_jobs=1, progress=False)
    rows = []
    for n in args.sizes:
        manifest = write_manifest(corpus, n, work / f"cuts{n}.jsonl.gz")
        for mode in ("lazy",) + (() if args.no_eager else ("eager",)):
            run = subprocess.run([sys.executable, __file__, "--child", str(manifest), str(corpus), str(args.batches),
                                  mode], capture_output=True, text=True, check=True)
            row = {"cuts": n, "mode": mode, **json.loads(run.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'cuts':>8} {'mode':>6} {'imports':>8} {'opened':>8} {'loader peak':>12} {'high-water':>11} "
          f"{'open s':>7} {'batches':>8}")
    for r in rows:
        print(f"{r['cuts']:>8} {r['mode']:>6} {r['rss_after_imports']:>8.0f} {r['rss_after_open']:>8.0f} "
              f"{r['rss_peak_loader']:>12.0f} {r['hwm']:>11.0f} {r['open_s']:>7} {r['batches']:>8}")
    lazy = [r for r in rows if r["mode"] == "lazy" and r["cuts"] > 20000]
    verdict = None
    if len(lazy) >= 2:
        small, large = lazy[0], lazy[-1]
        grow = large["hwm"] - small["hwm"]
        verdict = grow <= max(0.10 * small["hwm"], 40.0)
        print(f"\nlazy: high-water {small['hwm']:.0f} MB at {small['cuts']} cuts, {large['hwm']:.0f} MB at "
              f"{large['cuts']} ({grow:+.0f} MB): {'PASS' if verdict else 'FAIL'} (bound: +10% or +40 MB)")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "pass": verdict}, indent=1))


if __name__ == "__main__":
    main()
