"""Text-LM prior under a wall-clock budget: held-out per-token perplexity after N minutes, per learning rate.

One run per (learning rate, budget), each annealing to its own deadline; the baseline in the same run is the
untrained model's perplexity on the same held-out sentences (and with the same tokenizer).

    python benchmarks/priors_text_lm.py --text /tmp/minifull/text/general.txt --text /tmp/minifull/text/domain.txt \
        --text /tmp/minifull/train/cuts.jsonl.gz --lr 3e-3 --lr 1e-2 --minutes 1 --minutes 2 --out exp/priors_lm
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("--text", "texts", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--lr", "lrs", multiple=True, type=float, default=[3e-3], show_default=True)
@click.option("--minutes", "budgets", multiple=True, type=float, default=[1.0, 2.0], show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def main(texts, lrs, budgets, threads, out_dir):
    from jstip.pretrain.text_lm import train_text_lm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for lr in lrs:
        for minutes in budgets:
            run_dir = out_dir / f"lr{lr:g}_{minutes:g}min"
            r = train_text_lm(texts, run_dir, max_minutes=minutes, lr=lr, num_threads=threads, progress=False)
            stats = json.loads((run_dir / "perplexity.json").read_text())
            last = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
            row = {"lr": lr, "minutes": minutes, "steps": r.steps, "elapsed_s": round(r.elapsed, 1),
                   "cpu_s": last["cpu_s"], "sentences_seen": last["items"], "held_out_ppl": r.held_out_ppl,
                   "untrained_ppl": r.untrained_ppl, "held_out_sentences": stats["held_out_sentences"],
                   "vocab_size": stats["vocab_size"], "parameters": stats["parameters"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            with (out_dir / "results.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
    print("\nlr\tmin\tsteps\tcpu_s\tppl\tuntrained ppl")
    for r in rows:
        print(f"{r['lr']:g}\t{r['minutes']:g}\t{r['steps']}\t{r['cpu_s']}\t{r['held_out_ppl']:.2f}\t"
              f"{r['untrained_ppl']:.1f}")


if __name__ == "__main__":
    main()
