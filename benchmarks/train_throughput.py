"""Training throughput of the speech-LLM, in one run on one model and one set of cuts: the tiny model by default, or
a real-size preset (``--preset smollm2-whisper-tiny`` / ``smollm2-whisper-base``: the demo's Whisper encoder with its
feature cache, 160 ms adapter, SmolLM2-135M with LoRA, as ``whisper_smollm2`` trains them). Batches follow the data
settings of the model's packaged config (``tiny`` or ``whisper_smollm2``: seconds per batch, row length, bucketing)
unless ``--max-row-tokens`` says otherwise.

Measures (training steps: forward + backward + AdamW step, model in train mode, data rendered ahead of time):

1. tokens/s on interleaved batches (word, segment and mixed levels) vs ASR-only batches of the same cuts; tokens are
   non-padding LLM positions (text and speech placeholders). Target: ratio >= 0.95. Interleaved batches of the same
   seconds of audio hold about half the tokens of ASR ones (text is denser than speech), so a step's fixed costs
   weigh more on them: ``interleaved_same_tokens`` is interleaved batches with the ASR batches' tokens per batch.
   Also ASR-only batches with one document per row (no packing), the layout SALM uses.
2. padding: real / allocated positions on the LLM side (B x L) and on the encoder side (the samples the encoder
   reads: its calls on groups of similar stream length, ``model.encoder.min_efficiency``; and what one padded call
   would read), for the ASR and the interleaved batches. Target: >= 0.95 on both sides.
3. Speech encoding, forward + backward of encoder + adapter on the interleaved batches:
   - concat: the spans of each document concatenated into one stream, encoded once, scattered (what SpeechLM does),
     in grouped calls (the default) and in one padded call;
   - row: the streams of a whole packed row concatenated (``DataConfig.stream_per="row"``);
   - per-span batch: every span its own padded stream in one encoder call;
   - per-span loop: one encoder call per span.
4. Baseline: NeMo speechlm2 ``SALM`` training steps on the same cuts (ASR format, one utterance per row), built from
   the same parts (``salm_baseline.py``): our ASR-only step time over SALM's on the same cuts (packed, and one
   document per row). With a preset, SALM gets our frozen Whisper and adapter modules, our LLM's weights and the same
   LoRA; ``salm`` runs the frozen encoder every step, as NeMo does, ``salm_cached`` reads our feature cache instead.

    python benchmarks/train_throughput.py                       # builds a 40-utterance mini corpus
    python benchmarks/train_throughput.py --cuts mini/train/cuts.jsonl.gz --rounds 3 --device cuda --dtype bf16
    python benchmarks/train_throughput.py --preset smollm2-whisper-tiny --dtype bf16 --threads 2 --rounds 1

Memory: ``memory`` after our steps (before SALM is built) and ``memory_with_salm`` at the end: the process's
``peak_rss_mb`` and, on a GPU, ``peak_gpu_mb`` (torch's max allocated since the previous reading).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def data_settings(cfg) -> dict:
    """The batch-shaping settings of a run config's ``data`` section."""
    d = cfg.data
    return {"max_duration": float(d.max_duration), "max_row_tokens": int(d.max_row_tokens),
            "pad_to_multiple": int(d.pad_to_multiple), "bucketing": bool(d.bucketing)}


def render_batches(cuts, tokenizer, weights: dict, settings: dict, stream_per: str = "document", render=None,
                   max_row_tokens: int | None = None):
    from jstip.data.dataset import DataConfig, SpeechLMDataset, build_sampler
    from jstip.data.render import RenderConfig

    shape = dict(settings, **({"max_row_tokens": max_row_tokens} if max_row_tokens else {}))
    cfg = DataConfig(weights=weights, shuffle=False, stream_per=stream_per, render=render or RenderConfig(), **shape)
    dataset = SpeechLMDataset(tokenizer, cfg, text_sources=None, epoch=0, seed=0)
    return [b for b in (dataset[c] for c in build_sampler(cuts, cfg, seed=0)) if b is not None]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_round_robin(step, sets: dict, rounds: int, device, warm_all: bool = False) -> dict:
    """Seconds of one pass over each set of items: the fastest of ``rounds`` passes (robust to a busy shared CPU), the
    sets measured in turn within each round so that a slow spell of a shared host weighs on every set alike. Warm-up:
    one step of each set (``warm_all``: a pass over each, which fills a frozen encoder's feature cache as the first
    epochs of a run do: the steady state of training is timed)."""
    for items in sets.values():
        for it in items if warm_all else items[:1]:
            step(it)
    best = {name: float("inf") for name in sets}
    for _ in range(rounds):
        for name, items in sets.items():
            sync(device)
            t = time.perf_counter()
            for it in items:
                step(it)
            sync(device)
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def training_step_fn(model, device, dtype):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(batch):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def split_spans(batch):
    """The batch's streams cut into one stream per span (same frames, same order)."""
    spf = 1280
    pieces = []
    for s, frames in enumerate(batch.span_frames):
        start = 0
        for n in frames:
            pieces.append(batch.audio[s, start * spf:(start + n) * spf])
            start += n
    T = max(len(p) for p in pieces)
    audio = torch.zeros(len(pieces), T)
    for i, p in enumerate(pieces):
        audio[i, :len(p)] = p
    lens = torch.tensor([len(p) for p in pieces])
    return audio, lens, lens // spf


def build_preset(preset: str, cuts, work: Path):
    """(model, tokenizer, render config) of the whisper_smollm2 config as the demo trains it: adapter + LoRA on
    SmolLM2-135M, Whisper frozen with its feature cache, 160 ms positions."""
    from omegaconf import OmegaConf

    from jstip.conf import compose
    from jstip.data.render import RenderConfig
    from jstip.train.module import set_trainable
    from jstip.train.run import build_model_and_tokenizer, sync_frame_shift

    whisper = {"smollm2-whisper-tiny": "tiny.en", "smollm2-whisper-base": "base"}[preset]
    cfg = compose("whisper_smollm2", [f"exp_dir={work / 'exp'}", "data.train_cuts=unused", "logger.wandb=false",
                                      f"model.encoder.path={whisper}", f"model.encoder.cache_dir={work / 'features'}",
                                      "train.lora.enabled=true", "train.trainable=[adapter,llm]"])
    sync_frame_shift(cfg)
    model, tokenizer, lora = build_model_and_tokenizer(cfg, work / "exp", cuts)
    set_trainable(model, ("adapter", "llm"), lora)
    render = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RenderConfig), cfg.data.get("render") or {}))
    return model, tokenizer, render, cfg


def tokens(batches) -> int:
    """Non-padding LLM positions of ``batches``."""
    return sum(int((b.document_ids >= 0).sum()) for b in batches)


def padding(batches, min_efficiency: float) -> dict:
    """Real / allocated positions over ``batches``: LLM side, encoder side as the model's grouped calls read it and as
    one padded call per batch would, and encoder calls per batch."""
    from jstip.data.packing import padding_efficiency

    tot = {"llm_real": 0, "llm_alloc": 0, "enc_real": 0, "enc_alloc": 0, "enc_alloc_one_call": 0, "calls": 0}
    for b in batches:
        e = padding_efficiency(b, min_efficiency)
        for k in ("llm_real", "llm_alloc", "enc_real", "enc_alloc"):
            tot[k] += e[k]
        tot["enc_alloc_one_call"] += int(b.audio.numel())
        tot["calls"] += e["enc_calls"]
    return {"llm": tot["llm_real"] / max(1, tot["llm_alloc"]), "encoder": tot["enc_real"] / max(1, tot["enc_alloc"]),
            "encoder_one_call": tot["enc_real"] / max(1, tot["enc_alloc_one_call"]),
            "encoder_calls_per_batch": tot["calls"] / max(1, len(batches)), "batches": len(batches)}


def peak_memory(device) -> dict:
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        torch.cuda.reset_peak_memory_stats(device)
    return out


def run_salm(args, model, step, tokenizer, cuts, kinds, work, device, dtype, results, enc_cfg=None,
             preset_cfg=None) -> None:
    """Section 4: SALM steps on the same cuts as our ASR batches (see the module docstring), timed in turn with our
    ASR steps (packed and one document per row) within each round."""
    import salm_baseline as sb

    variants = {"salm": None}
    if preset_cfg is not None:
        variants = {"salm": sb.SALMEncoder(model.encoder), "salm_cached": sb.SALMEncoder(model.encoder,
                                                                                          model.feature_cache())}
    lora = dict(preset_cfg.train.lora) if preset_cfg is not None else None
    ours = {k: [b.to(device) for b in kinds[k]] for k in ("asr", "asr_unpacked")}
    for name, encoder in variants.items():
        try:
            salm = sb.build_salm(model.llm, tokenizer, work, model.adapter, enc_cfg=enc_cfg, encoder=encoder,
                                 lora=lora).to(device).train()
            if preset_cfg is not None:
                sb.freeze_like_ours(salm, encoder_trains=False)
            batches = sb.salm_batches(salm, kinds["asr"], {c.id: c for c in cuts}, tokenizer)
            salm_step = sb.salm_step_fn(salm, device, dtype)
            steps = {"asr": step, "asr_unpacked": step, name: salm_step}
            secs = time_round_robin(lambda item: steps[item[0]](item[1]),
                                    {k: [(k, b) for b in v] for k, v in {**ours, name: batches}.items()},
                                    args.rounds, device, warm_all=preset_cfg is not None)
            results[name] = {"batches": len(batches), "utterances": sum(len(b["audio_lens"]) for b in batches),
                             "seconds": secs[name], "ours_asr_seconds": secs["asr"],
                             "trainable_params": sum(p.numel() for p in salm.parameters() if p.requires_grad),
                             **peak_memory(device)}
            results[f"ours_asr_over_{name}_step_time"] = secs["asr"] / secs[name]
            results[f"ours_asr_unpacked_over_{name}_step_time"] = secs["asr_unpacked"] / secs[name]
            del salm
        except Exception as e:  # the baseline is optional; say why it did not run
            results[name] = {"error": f"{type(e).__name__}: {e}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuts", help="train cuts (default: a fresh 40-utterance mini corpus)")
    ap.add_argument("--rounds", type=int, default=2, help="passes over the batches per measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--d-model", type=int, default=64, help="encoder width")
    ap.add_argument("--llm-hidden", type=int, default=64)
    ap.add_argument("--llm-layers", type=int, default=2)
    ap.add_argument("--no-salm", action="store_true")
    ap.add_argument("--preset", choices=["smollm2-whisper-tiny", "smollm2-whisper-base"], default=None,
                    help="a real-size model (the whisper_smollm2 config) instead of the tiny one")
    ap.add_argument("--max-row-tokens", type=int, default=None,
                    help="packing capacity of a row (positions; default: the config's data.max_row_tokens)")
    ap.add_argument("--max-batches", type=int, default=None, help="measure on at most this many batches of each kind "
                    "(a quick check that every measurement runs)")
    ap.add_argument("--flops", action="store_true",
                    help="count the FLOPs of one ASR training step (torch's FlopCounterMode) by part, and the "
                         "utilisation against --peak-tflops")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's dense peak at --dtype, TFLOP/s (default: a table of known GPUs; none on CPU)")
    ap.add_argument("--out", help="write the numbers as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    from lhotse import CutSet

    from jstip.conf import compose
    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.build import build_speechlm
    from jstip.model.tokenizer import build_tokenizer

    work = Path(tempfile.mkdtemp(prefix="jstip_bench_"))
    if args.cuts:
        cuts = CutSet.from_file(args.cuts).to_eager()
    else:
        from jstip.corpora.mini import prepare_mini

        prepare_mini(work / "mini", num_utterances=40, seed=0, progress=False)
        cuts = CutSet.from_file(work / "mini" / "train" / "cuts.jsonl.gz").to_eager()
    render = RenderConfig()
    enc_cfg = {"n_layers": 2, "d_model": args.d_model, "n_heads": 4, "dropout": 0.1}
    preset_cfg = None
    if args.preset:
        model, tokenizer, render, preset_cfg = build_preset(args.preset, cuts, work)
        model = model.to(device).train()
        model.encoder.eval()  # frozen, as in training (its features come from the cache after the first pass)
        settings = data_settings(preset_cfg)
    else:
        texts = [s.text for c in cuts for s in c.supervisions]
        tokenizer = build_tokenizer(texts, 512)
        add_special_tokens(tokenizer, render)
        model_cfg = {"encoder": enc_cfg, "adapter": {"hidden": 128},
                     "llm": {"hidden_size": args.llm_hidden, "num_layers": args.llm_layers,
                             "intermediate_size": 2 * args.llm_hidden}}
        model = build_speechlm(model_cfg, tokenizer).to(device).train()
        settings = data_settings(compose("tiny", ["exp_dir=unused", "data.train_cuts=unused"]))
    n_params = sum(p.numel() for p in model.parameters())
    results: dict = {"cuts": len(cuts), "params": n_params, "device": str(device), "dtype": args.dtype,
                     "threads": args.threads, "preset": args.preset,
                     "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}

    rows = args.max_row_tokens
    il = {"word_il": 1.0, "segment_il": 1.0, "mixed_il": 1.0}
    asr = render_batches(cuts, tokenizer, {"asr": 1.0}, settings, render=render, max_row_tokens=rows)
    asr_unpacked = render_batches(cuts, tokenizer, {"asr": 1.0}, settings, render=render, max_row_tokens=1)
    inter = render_batches(cuts, tokenizer, il, settings, render=render, max_row_tokens=rows)
    inter_row = render_batches(cuts, tokenizer, il, settings, stream_per="row", render=render, max_row_tokens=rows)
    # Interleaved documents hold fewer positions per second of audio than ASR ones (text is denser than speech), so
    # batches of the same seconds hold fewer tokens; this set has the ASR batches' tokens per batch instead.
    per_batch = [tokens(x) / max(1, len(x)) for x in (asr, inter)]
    inter_tok = render_batches(cuts, tokenizer, il, dict(settings, max_duration=settings["max_duration"] * per_batch[0]
                                                         / max(per_batch[1], 1e-9)), render=render, max_row_tokens=rows)
    if args.max_batches:
        asr, asr_unpacked, inter, inter_row, inter_tok = (x[:args.max_batches] for x in
                                                          (asr, asr_unpacked, inter, inter_row, inter_tok))
    results["data"] = dict(settings, max_row_tokens=rows or settings["max_row_tokens"])
    results["max_row_tokens"] = results["data"]["max_row_tokens"]
    target = model.encoder_min_efficiency
    results["padding"] = {"encoder_min_efficiency": target, "asr": padding(asr, target),
                          "interleaved": padding(inter, target), "asr_unpacked": padding(asr_unpacked, target)}
    step = training_step_fn(model, device, dtype)
    cached = model.feature_cache() is not None
    kinds = {"asr": asr, "interleaved": inter, "interleaved_same_tokens": inter_tok, "asr_unpacked": asr_unpacked}
    seconds = time_round_robin(step, {k: [b.to(device) for b in v] for k, v in kinds.items()}, args.rounds, device,
                               warm_all=cached)
    for name, batches in kinds.items():
        secs = seconds[name]
        results[name] = {"batches": len(batches), "tokens": tokens(batches),
                         "speech_positions": sum(int(b.speech_mask.sum()) for b in batches),
                         "seconds": secs, "tokens_per_s": tokens(batches) / secs,
                         "llm_padding_efficiency": tokens(batches) / sum(b.input_ids.numel() for b in batches)}
    for name in ("interleaved", "interleaved_same_tokens"):
        results[f"{name}_over_asr_tokens_per_s"] = results[name]["tokens_per_s"] / results["asr"]["tokens_per_s"]
    if args.flops:
        from flops import count_flops

        results["flops"] = count_flops(step, model, [b.to(device) for b in asr], results["asr"]["seconds"], device,
                                       args.dtype, args.peak_tflops)
    results["memory"] = peak_memory(device)

    # 3. Speech encoding strategies on the interleaved batches (forward + backward of encoder + adapter); a frozen
    # encoder's cache is set aside, so that the encoder's own work is timed.
    cache_dir, model.feature_cache_dir, model._cache = model.feature_cache_dir, None, None

    def enc_step(audio, lens, frames):
        out = model.encode_streams(audio.to(device), lens.to(device), frames)
        out.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    def one_call(x):
        model.encoder_min_efficiency = 0.0
        try:
            enc_step(*x)
        finally:
            model.encoder_min_efficiency = target

    concat = [(b.audio, b.audio_lens, b.stream_frames) for b in inter]
    spans = [split_spans(b) for b in inter]
    loop_items = [(a[i:i + 1, :int(lens[i])], lens[i:i + 1], fr[i:i + 1]) for a, lens, fr in spans
                  for i in range(len(lens))]
    variants = {"concat": (concat, lambda x: enc_step(*x)), "concat_one_call": (concat, one_call),
                "row": ([(b.audio, b.audio_lens, b.stream_frames) for b in inter_row], one_call),
                "per_span_batch": (spans, one_call), "per_span_loop": (loop_items, lambda x: enc_step(*x))}
    secs = time_round_robin(lambda item: variants[item[0]][1](item[1]),
                            {k: [(k, x) for x in items] for k, (items, _) in variants.items()}, args.rounds, device)
    enc = {k: {"streams": sum(len(x[1]) for x in items), "seconds": secs[k],
               "padding_efficiency": sum(int(x[1].sum()) for x in items) / sum(x[0].numel() for x in items)}
           for k, (items, _) in variants.items()}
    enc["concat"]["padding_efficiency"] = results["padding"]["interleaved"]["encoder"]
    for k in enc:
        enc[k]["time_over_concat"] = enc[k]["seconds"] / enc["concat"]["seconds"]
    results["encoding"] = enc
    model.feature_cache_dir = cache_dir

    # 4. NeMo SALM baseline, same cuts as our ASR-only batches.
    if not args.no_salm:
        run_salm(args, model, step, tokenizer, cuts, kinds, work, device, dtype, results,
                 enc_cfg=None if preset_cfg is not None else enc_cfg, preset_cfg=preset_cfg)
    results["memory_with_salm"] = peak_memory(device)
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
