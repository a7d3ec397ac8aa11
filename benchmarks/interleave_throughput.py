"""Interleaving cost and padding efficiency, measured in one run on the same cuts.

For the same cuts, sampler and tokenizer, builds every batch of one epoch with plain ASR documents (the baseline) and
with word-, segment- and mixed-level interleaved documents, and prints:

* batches/s of each (the dataset's ``__getitem__`` in this process: audio read, interleaving, tokenising, packing) and
  the time ratio interleaved/ASR (target: <= 1.10), wall and CPU time. Timing runs the configurations round robin,
  batch by batch, ``--repeats`` times and sums the fastest time of every batch, so that other processes on a shared
  machine disturb every configuration alike;
* padding efficiency = real / allocated positions on the LLM side (B x L) and on the encoder side (S x T samples),
  with packing (rows of ``--max-row-tokens``) and without (one document per row); target >= 0.90 with packing.

Cuts: ``--cuts CUTS.jsonl.gz`` (aligned), or by default the train split of a mini corpus built (once, cached) in
``--work-dir`` with ``--num-utterances`` utterances.

    python benchmarks/interleave_throughput.py --num-utterances 600 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def _cuts(args):
    from lhotse import CutSet

    if args.cuts:
        return CutSet.from_file(args.cuts).to_eager(), None
    from jstip.corpora.mini import prepare_mini

    work = Path(args.work_dir)
    if not (work / "train" / "cuts.jsonl.gz").exists():
        prepare_mini(work, num_utterances=args.num_utterances, seed=0, num_jobs=args.num_jobs, progress=True)
    text = work / "text" / "domain.txt"
    return CutSet.from_file(work / "train" / "cuts.jsonl.gz").to_eager(), text


def _tokenizer(cuts, text_path):
    from jstip.data.toy_tokenizer import toy_tokenizer

    texts = [c.supervisions[0].text for c in cuts]
    if text_path and Path(text_path).exists():
        texts += Path(text_path).read_text().splitlines()
    return toy_tokenizer(texts, vocab_size=2000)


def _setup(name, weights, cuts, tokenizer, args, stream_per="document", packing=True):
    """A dataset and the cut batches of one epoch (the same cut batches for every configuration)."""
    from jstip.data.dataset import DataConfig, SpeechLMDataset, build_sampler

    cfg = DataConfig(weights=weights, max_duration=args.max_duration, max_row_tokens=args.max_row_tokens,
                     bucketing=True, num_buckets=args.num_buckets, stream_per=stream_per, pad_to_multiple=8)
    if not packing:
        cfg.max_row_tokens = None
    ds = SpeechLMDataset(tokenizer, cfg, seed=0, epoch=0)
    batches = list(build_sampler(cuts, cfg, seed=0, epoch=0))
    return {"name": name, "ds": ds, "batches": batches, "stream_per": stream_per, "packing": packing,
            "times": {}, "cpu_times": {}}


def _time_batch(run, k: int) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    run["ds"][run["batches"][k]]
    run["times"].setdefault(k, []).append(time.perf_counter() - t0)
    run["cpu_times"].setdefault(k, []).append(time.process_time() - c0)


def _summary(run) -> dict:
    from jstip.data.packing import padding_efficiency
    from jstip.model.config import EncoderConfig

    totals = dict(llm_real=0, llm_alloc=0, enc_real=0, enc_alloc=0, enc_one_call=0)
    rows = docs = 0
    for cb in run["batches"]:
        batch = run["ds"][cb]
        batch.validate()
        eff = padding_efficiency(batch, EncoderConfig.min_efficiency)  # the model's grouped encoder calls
        for k in ("llm_real", "llm_alloc", "enc_real", "enc_alloc"):
            totals[k] += eff[k]
        totals["enc_one_call"] += padding_efficiency(batch, encoder_min_efficiency=0)["enc_alloc"]
        rows += batch.input_ids.shape[0]
        docs += len(batch.example_ids)
    # Per batch, the fastest of the repeats (the least disturbed by other processes), summed over the epoch.
    best = sum(min(t) for t in run["times"].values())
    cpu = sum(min(t) for t in run["cpu_times"].values())
    return {
        "name": run["name"], "batches": len(run["batches"]), "rows": rows, "documents": docs,
        "seconds": round(best, 4),
        "batches_per_s": round(len(run["batches"]) / best, 2),
        "cpu_seconds": round(cpu, 4), "batches_per_cpu_s": round(len(run["batches"]) / cpu, 2),
        "llm_eff": round(totals["llm_real"] / totals["llm_alloc"], 4),
        "enc_eff": round(totals["enc_real"] / totals["enc_alloc"], 4) if totals["enc_alloc"] else 1.0,
        "enc_eff_one_call": round(totals["enc_real"] / totals["enc_one_call"], 4) if totals["enc_one_call"] else 1.0,
        "stream_per": run["stream_per"], "packing": run["packing"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", help="aligned cuts (.jsonl.gz); default: a mini corpus in --work-dir")
    p.add_argument("--work-dir", default="/tmp/jstip_bench_mini")
    p.add_argument("--num-utterances", type=int, default=200)
    p.add_argument("--num-jobs", type=int, default=1)
    p.add_argument("--max-duration", type=float, default=200.0, help="seconds of audio per batch")
    p.add_argument("--max-row-tokens", type=int, default=1024)
    p.add_argument("--num-buckets", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5, help="timing = best of this many passes")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(1)

    cuts, text_path = _cuts(args)
    tokenizer = _tokenizer(cuts, text_path)
    print(f"{len(cuts)} cuts, {sum(c.duration for c in cuts) / 60:.1f} min of audio; max_duration={args.max_duration}s, "
          f"rows of {args.max_row_tokens} positions, best of {args.repeats}")
    mix = {"asr": 0.4, "word_il": 0.2, "segment_il": 0.2, "mixed_il": 0.2}
    setups = [
        _setup("asr", {"asr": 1}, cuts, tokenizer, args),
        _setup("word_il", {"word_il": 1}, cuts, tokenizer, args),
        _setup("segment_il", {"segment_il": 1}, cuts, tokenizer, args),
        _setup("mixed_il", {"mixed_il": 1}, cuts, tokenizer, args),
        _setup("mix (asr .4 word .2 seg .2 mixed .2)", mix, cuts, tokenizer, args),
        _setup("asr, stream per row", {"asr": 1}, cuts, tokenizer, args, stream_per="row"),
        _setup("word_il, stream per row", {"word_il": 1}, cuts, tokenizer, args, stream_per="row"),
        _setup("mix, stream per row", mix, cuts, tokenizer, args, stream_per="row"),
        _setup("asr, streams packed", {"asr": 1}, cuts, tokenizer, args, stream_per="packed"),
        _setup("word_il, streams packed", {"word_il": 1}, cuts, tokenizer, args, stream_per="packed"),
        _setup("mix, streams packed", mix, cuts, tokenizer, args, stream_per="packed"),
        _setup("asr, no packing", {"asr": 1}, cuts, tokenizer, args, packing=False),
        _setup("mix, no packing", mix, cuts, tokenizer, args, packing=False),
    ]
    for s in setups:  # warm-up: page cache, tokenizer caches
        s["ds"][s["batches"][0]]
    for _ in range(args.repeats):
        # Round robin batch by batch, so that load from other processes hits every configuration alike.
        for k in range(len(setups[0]["batches"])):
            for s in setups:
                _time_batch(s, k)
    runs = [_summary(s) for s in setups]
    base, base_cpu = runs[0]["seconds"], runs[0]["cpu_seconds"]
    print(f"{'configuration':32s} {'batches':>7s} {'rows':>5s} {'batches/s':>9s} {'wall/ASR':>8s} {'cpu/ASR':>8s} "
          f"{'LLM eff':>8s} {'enc eff':>8s}")
    for r in runs:
        r["time_ratio_vs_asr"] = round(r["seconds"] / base, 3)
        r["cpu_ratio_vs_asr"] = round(r["cpu_seconds"] / base_cpu, 3)
        print(f"{r['name']:32s} {r['batches']:7d} {r['rows']:5d} {r['batches_per_s']:9.2f} "
              f"{r['time_ratio_vs_asr']:8.3f} {r['cpu_ratio_vs_asr']:8.3f} {r['llm_eff']:8.3f} {r['enc_eff']:8.3f}")
    il = [r for r in runs if r["name"] in ("word_il", "segment_il", "mixed_il", "mix (asr .4 word .2 seg .2 mixed .2)")]
    print(f"interleaving cost: worst ratio vs ASR over word/segment/mixed/mix: wall "
          f"{max(r['time_ratio_vs_asr'] for r in il):.3f}, CPU {max(r['cpu_ratio_vs_asr'] for r in il):.3f} "
          "(target <= 1.10)")
    packed = [r for r in runs if r["packing"] and r["stream_per"] != "document"]
    print(f"padding efficiency with packing: LLM >= {min(r['llm_eff'] for r in runs if r['packing']):.3f}; encoder "
          f">= {min(r['enc_eff'] for r in packed):.3f} with streams per row/packed, "
          f">= {min(r['enc_eff'] for r in runs if r['stream_per'] == 'document'):.3f} with one stream per document "
          f"in the model's grouped encoder calls (>= {min(r['enc_eff_one_call'] for r in runs):.3f} in one padded call "
          "per batch) (target >= 0.95)")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
