"""Training throughput of the speech-LLM, in one run on one model and one set of cuts: the tiny model by default, or
a real-size preset (``--preset smollm2-whisper-tiny`` / ``smollm2-whisper-base``: the demo's Whisper encoder with its
feature cache, 160 ms adapter, SmolLM2-135M with LoRA, as ``whisper_smollm2`` trains them).

Measures (training steps: forward + backward + AdamW step, model in train mode, data rendered ahead of time):

1. tokens/s on interleaved batches (word, segment and mixed levels) vs ASR-only batches of the same cuts; tokens are
   non-padding LLM positions (text and speech placeholders). Target: ratio >= 0.9. Also ASR-only batches with one
   document per row (no packing), the layout SALM uses.
2. Speech encoding, forward + backward of encoder + adapter on the interleaved batches:
   - concat: the spans of each document concatenated into one stream, encoded once, scattered (what SpeechLM does);
   - row: the streams of a whole packed row concatenated (``DataConfig.stream_per="row"``);
   - per-span batch: every span its own padded stream in one encoder call;
   - per-span loop: one encoder call per span.
   Time and encoder padding (real / allocated samples).
3. Baseline: NeMo speechlm2 ``SALM`` training step on the same cuts (ASR format, one utterance per row), built from
   the same encoder sizes, the same adapter (wrapped as a SALM modality adapter) and the same LLM; our ASR-only step
   time over SALM's on the same cuts per batch (packed, and one document per row).

    python benchmarks/train_throughput.py                       # builds a 40-utterance mini corpus
    python benchmarks/train_throughput.py --cuts mini/train/cuts.jsonl.gz --rounds 3 --device cuda --dtype bf16
    python benchmarks/train_throughput.py --preset smollm2-whisper-tiny --dtype bf16 --threads 2 --rounds 1

Peak resident memory of the process is reported as ``peak_rss_mb``. The SALM baseline is built from the tiny
model's NeMo Conformer; with a preset it is not built (not measured: see the issue's notes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


def render_batches(cuts, tokenizer, weights: dict, stream_per: str = "document", max_duration: float = 20.0,
                   max_row_tokens: int = 512, render=None):
    from jstip.data.dataset import DataConfig, SpeechLMDataset, build_sampler
    from jstip.data.render import RenderConfig

    cfg = DataConfig(weights=weights, max_duration=max_duration, max_row_tokens=max_row_tokens, bucketing=False,
                     shuffle=False, stream_per=stream_per, render=render or RenderConfig())
    dataset = SpeechLMDataset(tokenizer, cfg, text_sources=None, epoch=0, seed=0)
    return [b for b in (dataset[c] for c in build_sampler(cuts, cfg, seed=0)) if b is not None]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, items, rounds: int, device) -> float:
    """Seconds of one pass over ``items``: the fastest of ``rounds`` passes (robust to a busy shared CPU)."""
    step(items[0])  # warm-up
    best = float("inf")
    for _ in range(rounds):
        sync(device)
        t = time.perf_counter()
        for it in items:
            step(it)
        sync(device)
        best = min(best, time.perf_counter() - t)
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


PEAK_TFLOPS = {"H200": {"bf16": 989.0, "fp32": 67.0}, "H100": {"bf16": 989.0, "fp32": 67.0},
               "A100": {"bf16": 312.0, "fp32": 19.5}, "L40S": {"bf16": 362.0, "fp32": 91.6},
               "A10": {"bf16": 125.0, "fp32": 31.2}}
"""Dense peak TFLOP/s by GPU family and dtype (vendor data sheets; H100/H200: SXM, without sparsity)."""


def peak_tflops(device, dtype: str) -> tuple[float | None, str]:
    """The device's dense peak at ``dtype`` and what it is, from :data:`PEAK_TFLOPS` (None on a CPU or an unknown
    GPU)."""
    if device.type != "cuda":
        return None, "no peak for a CPU"
    name = torch.cuda.get_device_name(device)
    for family, peaks in PEAK_TFLOPS.items():
        if family in name:
            return peaks[dtype], f"{name}: {family} {dtype} dense peak {peaks[dtype]:g} TFLOP/s (data sheet)"
    return None, f"{name}: not in the table; give --peak-tflops"


def count_flops(step, model, batches, seconds: float, device, dtype: str, peak: float | None) -> dict:
    """FLOPs of one pass of training steps over ``batches`` (forward + backward + optimiser, as executed: matmuls and
    attention, counted by torch's FlopCounterMode), the forward FLOPs of each part of the model (encoder, adapter,
    LLM: backward FLOPs are not attributed to modules reliably), and the model FLOPs utilisation of the measured
    ``seconds`` against the device's peak."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        for b in batches:
            step(b)
    total = sum(counter.get_flop_counts().get("Global", {}).values())
    forward = FlopCounterMode(display=False)
    with forward, torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        for b in batches:
            model(b)
    parts = {}
    for name, counts in forward.get_flop_counts().items():
        tail = name.split(".")[-1]
        if name.count(".") == 1 and tail in ("encoder", "adapter", "llm", "first_pass"):
            parts[tail] = sum(counts.values())
    achieved = total / seconds / 1e12
    how = f"--peak-tflops {peak:g}" if peak else None
    if peak is None:
        peak, how = peak_tflops(device, dtype)
    return {"train_total": total, "forward_by_part": parts, "achieved_tflops": achieved, "peak_tflops": peak,
            "peak_source": how, "mfu": achieved / peak if peak else None}


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


class SALMAdapter(nn.Module):
    """Our ``SpeechAdapter`` behind the modality-adapter interface of SALM's perception module."""

    def __init__(self, encoder_dim: int, output_dim: int, stack: int = 2, hidden: int = 128) -> None:
        super().__init__()
        from jstip.model.adapter import SpeechAdapter

        self.subsampling_factor = stack
        self.inner = SpeechAdapter(encoder_dim, output_dim, stack=stack, hidden=hidden)

    def forward(self, audio_signal, length):  # (B, D, T) -> (B, H, T')
        out, lens = self.inner(audio_signal.transpose(1, 2), length)
        return out.transpose(1, 2), lens


def build_salm(llm, tokenizer, enc_cfg: dict, hidden: int, work: Path):
    from nemo.collections.speechlm2.models import SALM

    folder = work / "salm_llm"
    llm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    H = llm.config.hidden_size
    cfg = {
        "pretrained_llm": str(folder), "pretrained_weights": False, "audio_locator_tag": "<|audio|>",
        "freeze_params": [], "prevent_freeze_params": [],
        "perception": {
            "target": "nemo.collections.speechlm2.modules.perception.AudioPerceptionModule",
            "output_dim": H,
            "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                             "sample_rate": 16000, "window_size": 0.025, "window_stride": 0.01, "features": 80,
                             "pad_to": 0, "dither": 1e-5},
            "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 80,
                        "n_layers": enc_cfg["n_layers"], "d_model": enc_cfg["d_model"], "n_heads": enc_cfg["n_heads"],
                        "subsampling": "striding", "subsampling_factor": 4, "ff_expansion_factor": 2,
                        "conv_kernel_size": 9, "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0,
                        "dropout_att": 0.1},
            # NeMo instantiates only allow-listed targets: build with a placeholder, then put our adapter in.
            "modality_adapter": {"_target_": "torch.nn.Identity", "output_dim": H},
        },
    }
    salm = SALM(cfg)
    salm.perception.modality_adapter = SALMAdapter(enc_cfg["d_model"], H, stack=2, hidden=hidden)
    return salm


def salm_batches(salm, our_batches, cuts_by_id, tokenizer):
    """SALM batches of the same cuts as our ASR-only batches: ``BOS <audio> transcript EOS`` per row."""

    pad = salm.text_pad_id
    tag = salm.audio_locator_tag_id
    out = []
    for b in our_batches:
        ids = [e[:-len("_asr")] for e in b.example_ids if e.endswith("_asr")]
        rows, masks, audios = [], [], []
        for cid in ids:
            cut = cuts_by_id[cid]
            text = " ".join(s.text for s in cut.supervisions)
            t = tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append([tokenizer.bos_token_id, tag] + t + [tokenizer.eos_token_id])
            masks.append([False, False] + [True] * (len(t) + 1))
            audios.append(torch.as_tensor(cut.resample(16000).load_audio()[0]))
        L = max(map(len, rows))
        T = max(len(a) for a in audios)
        input_ids = torch.full((len(rows), L), pad)
        loss_mask = torch.zeros((len(rows), L), dtype=torch.bool)
        audio = torch.zeros(len(rows), T)
        for i, (r, m, a) in enumerate(zip(rows, masks, audios)):
            input_ids[i, :len(r)] = torch.tensor(r)
            loss_mask[i, :len(m)] = torch.tensor(m)
            audio[i, :len(a)] = a
        out.append({"input_ids": input_ids, "loss_mask": loss_mask, "audios": audio,
                    "audio_lens": torch.tensor([len(a) for a in audios])})
    return out


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
    return model, tokenizer, render


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
    ap.add_argument("--max-row-tokens", type=int, default=512, help="packing capacity of a row (positions)")
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

    from jstip.data.packing import padding_efficiency
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
    hidden = 128
    if args.preset:
        model, tokenizer, render = build_preset(args.preset, cuts, work)
        model = model.to(device).train()
        model.encoder.eval()  # frozen, as in training (its features come from the cache after the first pass)
        args.no_salm = True
    else:
        texts = [s.text for c in cuts for s in c.supervisions]
        tokenizer = build_tokenizer(texts, 512)
        add_special_tokens(tokenizer, render)
        model_cfg = {"encoder": enc_cfg, "adapter": {"hidden": hidden},
                     "llm": {"hidden_size": args.llm_hidden, "num_layers": args.llm_layers,
                             "intermediate_size": 2 * args.llm_hidden}}
        model = build_speechlm(model_cfg, tokenizer).to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    results: dict = {"cuts": len(cuts), "params": n_params, "device": str(device), "dtype": args.dtype,
                     "threads": args.threads, "preset": args.preset,
                     "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}

    rows = args.max_row_tokens
    asr = render_batches(cuts, tokenizer, {"asr": 1.0}, render=render, max_row_tokens=rows)
    asr_unpacked = render_batches(cuts, tokenizer, {"asr": 1.0}, max_row_tokens=1, render=render)  # one per row
    inter = render_batches(cuts, tokenizer, {"word_il": 1.0, "segment_il": 1.0, "mixed_il": 1.0}, render=render,
                           max_row_tokens=rows)
    inter_row = render_batches(cuts, tokenizer, {"word_il": 1.0, "segment_il": 1.0, "mixed_il": 1.0},
                               stream_per="row", render=render, max_row_tokens=rows)
    if args.max_batches:
        asr, asr_unpacked, inter, inter_row = (x[:args.max_batches] for x in (asr, asr_unpacked, inter, inter_row))
    results["max_row_tokens"] = rows
    step = training_step_fn(model, device, dtype)

    def tokens(batches):
        return sum(int((b.document_ids >= 0).sum()) for b in batches)

    for name, batches in (("asr", asr), ("interleaved", inter), ("asr_unpacked", asr_unpacked)):
        on_device = [b.to(device) for b in batches]
        secs = time_steps(step, on_device, args.rounds, device)
        results[name] = {"batches": len(batches), "tokens": tokens(batches),
                         "speech_positions": sum(int(b.speech_mask.sum()) for b in batches),
                         "seconds": secs, "tokens_per_s": tokens(batches) / secs,
                         "llm_padding_efficiency": tokens(batches) / sum(b.input_ids.numel() for b in batches)}
    results["interleaved_over_asr_tokens_per_s"] = (results["interleaved"]["tokens_per_s"]
                                                    / results["asr"]["tokens_per_s"])
    if args.flops:
        results["flops"] = count_flops(step, model, [b.to(device) for b in asr], results["asr"]["seconds"], device,
                                       args.dtype, args.peak_tflops)

    # 2. Speech encoding strategies on the interleaved batches (forward + backward of encoder + adapter).
    def enc_step(audio, lens, frames):
        out = model.encode_streams(audio.to(device), lens.to(device), frames)
        out.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    enc = {}
    concat = [(b.audio, b.audio_lens, b.stream_frames) for b in inter]
    row = [(b.audio, b.audio_lens, b.stream_frames) for b in inter_row]
    spans = [split_spans(b) for b in inter]
    for name, items in (("concat", concat), ("row", row), ("per_span_batch", spans)):
        real = sum(int(x[1].sum()) for x in items)
        alloc = sum(x[0].numel() for x in items)
        secs = time_steps(lambda x: enc_step(*x), items, args.rounds, device)
        enc[name] = {"streams": sum(len(x[1]) for x in items), "seconds": secs, "padding_efficiency": real / alloc}
    loop_items = [(a[i:i + 1, :int(lens[i])], lens[i:i + 1], fr[i:i + 1]) for a, lens, fr in spans
                  for i in range(len(lens))]
    secs = time_steps(lambda x: enc_step(*x), loop_items, args.rounds, device)
    enc["per_span_loop"] = {"streams": len(loop_items), "seconds": secs, "padding_efficiency": 1.0}
    for k in enc:
        enc[k]["time_over_concat"] = enc[k]["seconds"] / enc["concat"]["seconds"]
    results["encoding"] = enc
    results["interleaved_batch_padding"] = [padding_efficiency(b) for b in inter[:3]]

    # 3. NeMo SALM baseline, same cuts as our ASR-only batches.
    if not args.no_salm:
        try:
            salm = build_salm(model.llm, tokenizer, enc_cfg, hidden, work).to(device).train()
            sb = salm_batches(salm, asr, {c.id: c for c in cuts}, tokenizer)
            opt = torch.optim.AdamW([p for p in salm.parameters() if p.requires_grad], lr=1e-4)

            def salm_step(batch):
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    loss = salm.training_step(batch, 0)["loss"]
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            secs = time_steps(salm_step, sb, args.rounds, device)
            n_salm = sum(sum(p.numel() for p in m.parameters()) for m in (salm.perception, salm.llm, salm.embed_tokens))
            results["salm"] = {"batches": len(sb), "utterances": sum(len(b["audio_lens"]) for b in sb),
                               "seconds": secs, "params": n_salm}
            results["ours_asr_over_salm_step_time"] = results["asr"]["seconds"] / secs
            results["ours_asr_unpacked_over_salm_step_time"] = results["asr_unpacked"]["seconds"] / secs
        except Exception as e:  # the baseline is optional; say why it did not run
            results["salm"] = {"error": f"{type(e).__name__}: {e}"}

    import resource

    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
