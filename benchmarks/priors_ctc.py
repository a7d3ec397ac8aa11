"""CTC encoder pretraining under a wall-clock budget: dev/test WER after N minutes, per learning rate.

One training run per (learning rate, budget): each run anneals its own schedule to its own deadline, so the 3-minute
figure is a real 3-minute run, not a snapshot of a longer one. The learning rate is chosen on dev; test is reported
beside it. The baseline in the same run is the untrained model of the same config. The machine is shared, so each
row reports wall-clock minutes, optimiser steps and this process's CPU seconds.

    python benchmarks/priors_ctc.py --corpus /tmp/minifull --lr 2e-3 --lr 5e-3 --minutes 3 --minutes 5 \
        --out exp/priors_ctc
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch


@click.command()
@click.option("--corpus", required=True, type=click.Path(exists=True, file_okay=False),
              help="A mini corpus folder (train/dev/test cuts.jsonl.gz).")
@click.option("--lr", "lrs", multiple=True, type=float, default=[2e-3], show_default=True)
@click.option("--minutes", "budgets", multiple=True, type=float, default=[3.0, 5.0], show_default=True)
@click.option("--max-duration", default=60.0, show_default=True, help="Seconds of audio per batch.")
@click.option("--subsampling-factor", type=int, help="Override the config's encoder subsampling.")
@click.option("--threads", default=2, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def main(corpus, lrs, budgets, max_duration, subsampling_factor, threads, out_dir):
    import lightning as L
    from nemo.collections.asr.models import ASRModel, EncDecCTCModel

    from jstip.pretrain.ctc import evaluate_ctc, load_cuts, train_ctc

    torch.set_num_threads(threads)
    corpus, out_dir = Path(corpus), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev, test = load_cuts(corpus / "dev" / "cuts.jsonl.gz"), load_cuts(corpus / "test" / "cuts.jsonl.gz")
    rows = []

    def record(row):
        rows.append(row)
        print(json.dumps(row), flush=True)
        with (out_dir / "results.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")

    for lr in lrs:
        for minutes in budgets:
            t0 = time.perf_counter()
            run_dir = out_dir / f"lr{lr:g}_{minutes:g}min_x{subsampling_factor or 'cfg'}"
            result = train_ctc(corpus / "train" / "cuts.jsonl.gz", run_dir,
                               max_minutes=minutes, lr=lr, max_duration=max_duration, num_threads=threads,
                               subsampling_factor=subsampling_factor, progress=False)
            wall = time.perf_counter() - t0
            model = ASRModel.restore_from(str(result.nemo_path), map_location="cpu")
            last = [json.loads(x) for x in result.metrics_path.read_text().splitlines()][-1]
            record({"lr": lr, "minutes": minutes, "steps": result.steps, "elapsed_s": round(result.elapsed, 1),
                    "cpu_s": last["cpu_s"], "utterances_seen": last["items"], "max_duration": max_duration,
                    "subsampling_factor": int(model.cfg.encoder.subsampling_factor),
                    "dev_wer": evaluate_ctc(model, dev)["wer"], "test_wer": evaluate_ctc(model, test)["wer"],
                    "run_wall_s": round(wall, 1)})
    L.seed_everything(0, verbose=False)
    untrained = EncDecCTCModel(cfg=model.cfg)
    record({"lr": None, "minutes": 0, "steps": 0, "dev_wer": evaluate_ctc(untrained, dev)["wer"],
            "test_wer": evaluate_ctc(untrained, test)["wer"]})

    print("\nlr\tmin\tsteps\tcpu_s\tdev WER\ttest WER")
    for r in rows:
        print(f"{r['lr']}\t{r['minutes']:g}\t{r['steps']}\t{r.get('cpu_s', 0)}\t{100 * r['dev_wer']:.1f}%\t"
              f"{100 * r['test_wer']:.1f}%")
    for minutes in budgets:
        best = min((r for r in rows if r["minutes"] == minutes), key=lambda r: r["dev_wer"])
        print(f"best on dev after {minutes:g} min: lr {best['lr']:g}: dev {100 * best['dev_wer']:.1f}%, "
              f"test {100 * best['test_wer']:.1f}% ({best['steps']} steps)")


if __name__ == "__main__":
    main()
