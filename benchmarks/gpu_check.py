"""The checks to run on a lent GPU machine, in one go, ending in one summary (``benchmarks/gpu_check.sh`` runs this).

1. throughput: the SmolLM2-135M + Whisper-base speech-LLM (the ``whisper_smollm2`` config: adapter + LoRA, frozen
   Whisper with its feature cache) training on mini-corpus batches packed into 2048-token rows, bf16: tokens/s of ASR
   and interleaved batches, and the model FLOPs utilisation (FLOPs counted by torch's FlopCounterMode over the steps
   as executed; the peak is the GPU's dense bf16 figure from its data sheet, named in the summary);
2. packing: logits of a packed row against each of its documents alone, with the attention path the GPU picks
   (``model.attention=auto``: flash-attention varlen where installed, else flex attention), the largest absolute
   difference at the documents' positions;
3. ddp, fsdp: ``jstip train`` on the tiny config for two steps on one GPU with ``trainer.strategy=ddp`` and ``fsdp``.

The throughput check also times NeMo SALM built from the same parts on the same cuts (``salm_baseline.py``): our
ASR step time over SALM's, with SALM encoding every step as NeMo does, and reading our feature cache.

    python benchmarks/gpu_check.py --out /tmp/gpu-check          # on the GPU machine (about 4-6 minutes on an H100)
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu-dry   # on a CPU: the same steps at toy sizes, fp32

``--dry-run`` exercises every step of the script on a CPU (tiny model, a few cuts, fp32, the mask attention path,
DDP over gloo; FSDP is reported as not run on a CPU), so that a broken check is found before the GPU time is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
JSTIP = str(Path(sys.executable).parent / "jstip")


def environment(device: str) -> dict:
    import torch

    out = {"torch": torch.__version__, "device": device}
    if device == "cuda":
        out.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                   bf16=torch.cuda.is_bf16_supported(), memory_gb=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
        try:
            import flash_attn  # noqa: F401

            out["flash_attn"] = True
        except ImportError:
            out["flash_attn"] = False
    return out


def throughput(corpus: Path, work: Path, dry: bool) -> dict:
    args = [sys.executable, str(HERE / "train_throughput.py"), "--cuts", str(corpus / "train" / "cuts.jsonl.gz"),
            "--flops", "--out", str(work / "throughput.json"), "--rounds", "1" if dry else "2"]
    if dry:
        args += ["--max-row-tokens", "256", "--threads", "2", "--max-batches", "2"]
    else:
        args += ["--preset", "smollm2-whisper-base", "--device", "cuda", "--dtype", "bf16", "--max-row-tokens", "2048"]
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    r = json.loads((work / "throughput.json").read_text())
    f = r["flops"]
    return {"model": r["preset"] or "tiny (dry run)", "dtype": r["dtype"], "row_tokens": r["max_row_tokens"],
            "asr_tokens_per_s": round(r["asr"]["tokens_per_s"]),
            "interleaved_tokens_per_s": round(r["interleaved"]["tokens_per_s"]),
            "interleaved_over_asr": round(r["interleaved_over_asr_tokens_per_s"], 3),
            "padding": {f"{side}_{kind}": round(r["padding"][kind][side], 3) for kind in ("asr", "interleaved")
                        for side in ("llm", "encoder")},
            "achieved_tflops": round(f["achieved_tflops"], 3), "mfu": None if f["mfu"] is None else round(f["mfu"], 4),
            "peak": f["peak_source"], "forward_gflops_by_part": {k: round(v / 1e9, 1) for k, v in
                                                                  f["forward_by_part"].items()},
            "peak_memory_mb": r["memory"].get("peak_gpu_mb", r["memory"]["peak_rss_mb"]),
            "salm": {k: (round(r[f"ours_asr_over_{k}_step_time"], 3) if f"ours_asr_over_{k}_step_time" in r
                         else r[k].get("error")) for k in ("salm", "salm_cached") if k in r}}


def packing(corpus: Path, work: Path, dry: bool) -> dict:
    """Largest |logit difference| between a packed row and its documents alone, at every document position."""
    import torch
    from lhotse import CutSet

    from jstip.data.packing import collate
    from jstip.data.dataset import DataConfig, SpeechLMDataset

    device = torch.device("cpu" if dry else "cuda")
    cuts = list(CutSet.from_file(corpus / "train" / "cuts.jsonl.gz"))[:6]
    if dry:
        from jstip.data.render import RenderConfig, add_special_tokens
        from jstip.model.build import build_speechlm
        from jstip.model.tokenizer import build_tokenizer

        render = RenderConfig()
        tokenizer = build_tokenizer([c.supervisions[0].text for c in cuts], 256)
        add_special_tokens(tokenizer, render)
        model = build_speechlm({"encoder": {"n_layers": 2, "d_model": 64, "n_heads": 4},
                                "llm": {"hidden_size": 64, "num_layers": 2, "intermediate_size": 128}}, tokenizer)
    else:
        sys.path.insert(0, str(HERE))
        from train_throughput import build_preset

        model, tokenizer, render, _ = build_preset("smollm2-whisper-base", CutSet.from_cuts(cuts), work / "preset")
    model = model.to(device).eval()
    dataset = SpeechLMDataset(tokenizer, DataConfig(weights={"asr": 1.0, "word_il": 1.0, "segment_il": 1.0},
                                                    render=render), epoch=0, seed=0)
    rendered = [dataset.render_cut(c) for c in cuts]
    docs, streams = [d for d, _ in rendered], [s for _, s in rendered]
    packed = collate(docs, streams, dataset.renderer.pad_id, max_row_tokens=100_000, pad_to_multiple=8).to(device)
    dtype = torch.bfloat16 if not dry else torch.float32
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=not dry):
        logits = model(packed).logits[0].float()
        worst = 0.0
        for i, d in enumerate(docs):
            alone = collate([d], [streams[i]], dataset.renderer.pad_id, max_row_tokens=None, pad_to_multiple=1)
            ref = model(alone.to(device)).logits[0].float()
            pos = (packed.document_ids[0] == packed.example_ids.index(d.example_id)).nonzero().flatten()
            worst = max(worst, float((logits[pos] - ref).abs().max()))
    scale = float(logits.abs().max())
    return {"attention": _attention_used(model, packed), "documents": len(docs), "positions": int(packed.input_ids.shape[1]),
            "max_abs_diff": worst, "max_abs_logit": scale, "dtype": "bf16" if not dry else "fp32"}


def _attention_used(model, batch) -> str:
    kwargs = model._attention_kwargs(batch)
    if kwargs.get("attention_mask") is None and kwargs.get("position_ids") is not None:
        return "position_ids (flash-attention varlen)"
    mask = kwargs.get("attention_mask")
    return "flex (document BlockMask)" if type(mask).__name__ == "BlockMask" else "4D block-causal mask"


def train_smoke(corpus: Path, work: Path, strategy: str, dry: bool) -> dict:
    exp = work / f"smoke_{strategy}"
    args = [JSTIP, "train", "--config-name", "tiny", f"data.train_cuts={corpus / 'train' / 'cuts.jsonl.gz'}",
            "data.dev_cuts=null", f"exp_dir={exp}", "logger.wandb=false", "trainer.enable_progress_bar=false",
            "trainer.max_steps=2", "trainer.devices=1", f"trainer.strategy={strategy}",
            f"trainer.accelerator={'cpu' if dry else 'gpu'}", "checkpoint.every_n_steps=100",
            "trainer.val_check_interval=100"]
    env = dict(os.environ, WANDB_MODE="offline")
    if dry:
        env["PL_TORCH_DISTRIBUTED_BACKEND"] = "gloo"
    run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    rows = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    return {"steps": len(rows), "losses": [round(r["loss"], 4) for r in rows],
            "checkpoint": (exp / "checkpoints" / "last.ckpt").exists()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="working folder; summary.json is written here")
    ap.add_argument("--dry-run", action="store_true", help="every step at toy sizes on the CPU")
    ap.add_argument("--utterances", type=int, default=None, help="mini corpus size (default 120; dry run 24)")
    args = ap.parse_args()
    import torch

    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("no CUDA device here: run with --dry-run on a CPU", file=sys.stderr)
        return 2
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    summary = {"dry_run": dry, "environment": environment("cpu" if dry else "cuda"), "checks": {}}
    start = time.perf_counter()
    from jstip.corpora.mini import prepare_mini

    corpus = work / "mini"
    if not (corpus / "train" / "cuts.jsonl.gz").exists():
        prepare_mini(corpus, num_utterances=args.utterances or (24 if dry else 120), seed=0, num_jobs=2,
                     progress=False)
    checks = [("throughput", lambda: throughput(corpus, work, dry)),
              ("packing", lambda: packing(corpus, work, dry)),
              ("ddp", lambda: train_smoke(corpus, work, "ddp", dry))]
    if dry:
        summary["checks"]["fsdp"] = {"status": "not run", "why": "FSDP needs a GPU (a dry run on the CPU skips it)"}
    else:
        checks.append(("fsdp", lambda: train_smoke(corpus, work, "fsdp", dry)))
    for name, check in checks:
        t = time.perf_counter()
        try:
            result = {"status": "ok", **check()}
        except Exception as err:  # noqa: BLE001 - one failed check must not hide the others
            result = {"status": "FAILED", "error": f"{type(err).__name__}: {err}",
                      "traceback": traceback.format_exc()[-1500:]}
        result["seconds"] = round(time.perf_counter() - t, 1)
        summary["checks"][name] = result
        print(f"[gpu_check] {name}: {result['status']} ({result['seconds']} s)", flush=True)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary)
    return 0 if all(c["status"] != "FAILED" for c in summary["checks"].values()) else 1


def print_summary(s: dict) -> None:
    env = s["environment"]
    print(f"\n=== jstip gpu_check {'(DRY RUN on CPU)' if s['dry_run'] else ''}: {env.get('gpu', 'cpu')}, torch "
          f"{env['torch']}, {s['seconds']} s ===")
    c = s["checks"]
    t = c.get("throughput", {})
    if t.get("status") == "ok":
        mfu = "n/a (no peak for a CPU)" if t["mfu"] is None else f"{100 * t['mfu']:.1f}%"
        print(f"throughput  {t['model']} {t['dtype']}, {t['row_tokens']}-token rows: ASR {t['asr_tokens_per_s']} "
              f"tokens/s, interleaved {t['interleaved_tokens_per_s']} ({t['interleaved_over_asr']}x); "
              f"{t['achieved_tflops']} TFLOP/s, MFU {mfu} [{t['peak']}]; padding {t['padding']}; forward GFLOPs "
              f"{t['forward_gflops_by_part']}; peak memory {t['peak_memory_mb']} MB")
        print(f"salm        our ASR step time over NeMo SALM's on the same cuts and parts: {t['salm']} "
              "(salm: SALM encodes every step; salm_cached: reads our feature cache)")
    p = c.get("packing", {})
    if p.get("status") == "ok":
        print(f"packing     {p['attention']}, {p['dtype']}: packed vs alone max |diff| {p['max_abs_diff']:.3g} "
              f"(logits up to {p['max_abs_logit']:.3g}) over {p['documents']} documents")
    for name in ("ddp", "fsdp"):
        r = c.get(name, {})
        if r.get("status") == "ok":
            print(f"{name:<11} {r['steps']} steps, losses {r['losses']}, checkpoint {r['checkpoint']}")
    for name, r in c.items():
        if r.get("status") != "ok":
            print(f"{name:<11} {r['status']}: {r.get('why') or r.get('error', '')[:300]}")


if __name__ == "__main__":
    sys.exit(main())
