"""The adapter's warm start: CTC over the LLM's vocabulary on frozen encoder outputs (``jstip pretrain adapter-ctc``).

A speech-LLM whose adapter starts from random weights spends its first thousands of steps learning to say anything
through the LLM (with Whisper tiny.en + SmolLM2-135M on the mini corpus, 300 adapter steps left a dev loss of 2.6
nats per token). Here the adapter is trained first, without the LLM, by CTC through the LLM's frozen input embeddings
(:class:`jstip.model.ctc_head.EmbeddingCTCHead`): each 80 ms frame is pulled towards the embedding of the LLM token
spoken there. That costs one small matrix product per frame instead of an LLM pass, so an epoch of the mini corpus
takes about 30 s on two cores, and the speech-LLM then starts from frames the LLM can already read.

The encoder input of every cut is exactly the speech stream the training data renders for an ASR example
(``jstip.data.render.speech_stream`` of the whole cut), so with ``model.encoder.cache_dir`` set the encoder outputs
computed here are the ones ``jstip train`` reads back from the cache. The adapter's output layer is finally rescaled
so that its frames have the mean norm of the LLM's token embeddings (the cosine CTC head ignores norms; the LLM does
not).

Outputs (``OUT/``): ``adapter.safetensors`` (``jstip train model.adapter.init_from=OUT/adapter.safetensors``),
``ctc_head.safetensors``, ``adapter_ctc.json`` (settings and figures; the three make the first pass of
``model.first_pass``, :mod:`jstip.model.first_pass`), ``metrics.jsonl`` (training log),
``rejected.jsonl`` (cuts that could not be used, with the reason), and greedy CTC transcripts scored like any system:
``OUT/dev/`` and, with test cuts, ``OUT/test/`` (``metrics.json`` + ``hyps.jsonl``, for ``jstip report``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jstip.model.feature_cache import encode_cuts, pad_features

log = logging.getLogger(__name__)


@dataclass
class AdapterCTCResult:
    out_dir: Path
    steps: int
    elapsed: float
    kept: int
    rejected: int
    dev_wer: float | None
    test_wer: float | None


def _cut_text(cut) -> str:
    """The words spoken in ``cut``: its transcript without markup tokens (``<hes>``, ``[laughter]``), which name no
    sound a CTC frame could carry."""
    from jstip.text import strip_markup

    return strip_markup(" ".join(s.text for s in cut.supervisions if s.text)).strip()


def corpus_token_ids(tokenizer, texts) -> list[int]:
    """The sorted LLM token ids that occur in ``texts`` (the CTC head's vocabulary)."""
    ids: set[int] = set()
    texts = list(texts)
    for i in range(0, len(texts), 1000):
        for row in tokenizer(texts[i:i + 1000], add_special_tokens=False)["input_ids"]:
            ids.update(row)
    return sorted(ids)


def _greedy_texts(adapter, head, embeddings, feats: dict[str, torch.Tensor], tokenizer, batch_size: int = 32):
    adapter.eval()
    hyps = {}
    ids = list(feats)
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            x, lens = pad_features([feats[i] for i in chunk])
            frames, flen = adapter(x, lens)
            logits = head(frames, embeddings)
            for k, cut_id in enumerate(chunk):
                hyps[cut_id] = tokenizer.decode(head.greedy(logits[k], int(flen[k])), skip_special_tokens=True).strip()
    adapter.train()
    return hyps


def _score_split(name, cuts, hyps, out_dir: Path, system: str, normalizer: str = "english-v2",
                 exposure=None, exposure_source=None) -> float | None:
    from jstip.scoring.files import refs_from_cuts
    from jstip.scoring.score import score, write_scores

    result = score(refs_from_cuts(cuts), hyps, normalizer=normalizer, exposure=exposure,
                   exposure_source=exposure_source)
    result["evaluate"] = {"system": system, "decoding": "greedy CTC (best path)", "split": name}
    write_scores(result, out_dir / name)
    return result.get("wer")


def train_adapter_ctc(train_cuts, out_dir, dev_cuts=None, test_cuts=None, config: str = "whisper_smollm2",
                      overrides=(), text_files=(), epochs: int = 6, batch_size: int = 16, lr: float = 1e-3,
                      seed: int = 0, num_threads: int | None = 2, progress: bool = True) -> AdapterCTCResult:
    """Train the adapter of ``config`` (+ overrides) by CTC over the LLM vocabulary; see the module docstring.

    Args:
        train_cuts / dev_cuts / test_cuts: cut manifests; dev gives the WER after every epoch, test a scored run.
        config: a packaged speech-LLM config name (its ``model`` section: encoder, adapter sizes, LLM, tokenizer,
            ``frame_shift``, ``encoder.cache_dir``); ``overrides``: Hydra ``key=value`` strings.
        text_files: extra text (one sentence per line) whose LLM tokens join the CTC vocabulary (domain text, so
            that terms never heard in training can still be emitted).
        epochs, batch_size (cuts), lr: the schedule (AdamW, 5% warm-up, linear decay).
    """
    from lhotse import CutSet
    from safetensors.torch import save_file

    from jstip.model.build import build_adapter, build_encoder, build_llm, build_llm_tokenizer
    from jstip.model.config import model_config
    from jstip.model.ctc_head import EmbeddingCTCHead
    from jstip.model.feature_cache import FeatureCache
    from jstip.rejects import RejectLog
    from jstip.conf import compose
    from jstip.train.run import autocast

    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("rejected.jsonl", "metrics.jsonl"):
        (out / stale).unlink(missing_ok=True)
    cfg = compose(config, list(overrides))
    mcfg = model_config(cfg.model)
    mcfg.adapter.init_from = None
    if mcfg.tokenizer.kind == "train":
        raise ValueError(f"config {config}: adapter-ctc needs a pretrained LLM and its tokenizer (model.tokenizer.kind "
                         "hf or gguf), not a tokenizer trained from scratch")
    tokenizer = build_llm_tokenizer(mcfg.tokenizer)
    encoder = build_encoder(mcfg.encoder).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    llm = build_llm(mcfg.llm, len(tokenizer))
    embeddings = llm.get_input_embeddings().weight.detach().float().clone()  # (V, D_llm), frozen
    del llm
    adapter = build_adapter(mcfg, encoder, embeddings.shape[1])
    cache = None
    if mcfg.encoder.cache_dir:
        fp = getattr(encoder, "fingerprint", None)
        if fp is None:
            from jstip.model.feature_cache import weights_fingerprint

            fp = weights_fingerprint(encoder)
        cache = FeatureCache(mcfg.encoder.cache_dir, fp)

    rejects = RejectLog(out / "rejected.jsonl", "adapter-ctc")
    from jstip.cuts import drop_too_long, screen_cuts
    from jstip.manifests import read_cuts

    # Bad manifest lines and cuts no stage can use are rejected with the reason; bad audio when it is encoded.
    train_set = screen_cuts(read_cuts(train_cuts, rejects), rejects, what="train", alignment=False)
    train_set = drop_too_long(train_set, encoder, rejects, frame_shift=mcfg.frame_shift).to_eager()
    texts = [_cut_text(c) for c in train_set]
    for path in text_files:
        with open(path, encoding="utf-8", errors="replace") as f:
            texts.extend(line.strip() for line in f if line.strip())
    vocab = corpus_token_ids(tokenizer, [t for t in texts if t])
    if not vocab:
        raise ValueError(f"{train_cuts}: no transcript text to build the CTC vocabulary from")
    head = EmbeddingCTCHead(vocab, embeddings.shape[1])
    label = {tid: k + 1 for k, tid in enumerate(vocab)}

    feats = encode_cuts(encoder, train_set, mcfg.frame_shift, cache, rejects=rejects, progress=progress,
                        desc="encoding train")
    items = []
    for cut in train_set:
        if cut.id not in feats:
            continue
        text = _cut_text(cut)
        target = [label[t] for t in tokenizer(text, add_special_tokens=False)["input_ids"]] if text else []
        frames = math.ceil(feats[cut.id].shape[0] / adapter.stack)
        if not target:
            rejects.reject(cut.id, "empty transcript: nothing to train CTC on")
        elif len(target) > frames:
            rejects.reject(cut.id, f"{len(target)} LLM tokens do not fit {frames} frames of "
                                   f"{mcfg.frame_shift} s (CTC needs at least one frame per token); check the "
                                   "transcript belongs to this audio, or use a smaller model.frame_shift")
        else:
            items.append((cut.id, torch.tensor(target)))
    if not items:
        raise ValueError(f"{train_cuts}: no usable cut (see {out / 'rejected.jsonl'})")
    dev_set = CutSet.from_file(dev_cuts).to_eager() if dev_cuts else None
    dev_feats = encode_cuts(encoder, dev_set, mcfg.frame_shift, cache, progress=progress,
                            desc="encoding dev") if dev_set is not None else {}

    device = "cpu"
    params = list(adapter.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(items) / batch_size)
    total = steps_per_epoch * epochs
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, 1 - (s - warmup) / max(1, total - warmup)))
    rng = np.random.default_rng(seed)
    log_file = open(out / "metrics.jsonl", "w", encoding="utf-8")
    t0, step, dev_wer = time.time(), 0, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="adapter-ctc", unit="step", disable=not progress, dynamic_ncols=True)
    system = f"CTC ({getattr(encoder, 'name', mcfg.encoder.resolved_kind())} + adapter)"
    try:
        for epoch in range(epochs):
            order = rng.permutation(len(items))
            for start in range(0, len(order), batch_size):
                batch = [items[i] for i in order[start:start + batch_size]]
                x, lens = pad_features([feats[cut_id] for cut_id, _ in batch])
                with autocast(device):
                    frames, flen = adapter(x, lens)
                    logits = head(frames, embeddings)
                logp = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, 1+V')
                targets = [t for _, t in batch]
                loss = torch.nn.functional.ctc_loss(logp, torch.cat(targets), flen,
                                                    torch.tensor([len(t) for t in targets]), zero_infinity=True)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                if step % 10 == 0 or step == total:
                    log_file.write(json.dumps({"step": step, "epoch": epoch, "loss": float(loss.detach()),
                                               "lr": sched.get_last_lr()[0], "elapsed": time.time() - t0}) + "\n")
                    log_file.flush()
                    bar.set_postfix(loss=f"{float(loss.detach()):.2f}")
            if dev_set is not None:
                from jstip.scoring.files import refs_from_cuts
                from jstip.scoring.score import score

                hyps = _greedy_texts(adapter, head, embeddings, dev_feats, tokenizer)
                dev_wer = score(refs_from_cuts(dev_set), hyps).get("wer")
                log_file.write(json.dumps({"step": step, "epoch": epoch, "dev_wer": dev_wer,
                                           "elapsed": time.time() - t0}) + "\n")
                log_file.flush()
                log.info("epoch %d: dev WER %s", epoch, dev_wer)
    finally:
        bar.close()
        log_file.close()
    elapsed = time.time() - t0

    # Rescale the output layer to the LLM's embedding norm (the cosine head is unchanged by it).
    sample = [feats[cut_id] for cut_id, _ in items[:64]]
    with torch.no_grad():
        x, lens = pad_features(sample)
        frames, flen = adapter(x, lens)
        valid = torch.arange(frames.shape[1])[None] < flen[:, None]
        ratio = float(embeddings[head.token_ids].norm(dim=-1).mean() / frames[valid].norm(dim=-1).mean())
        last = adapter.proj[-1]
        last.weight.mul_(ratio)
        last.bias.mul_(ratio)
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()}, str(out / "adapter.safetensors"))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out / "ctc_head.safetensors"))

    test_wer = None
    from jstip.entities import counts_from_cuts

    exposure = counts_from_cuts(train_set)  # how often each entity was heard here: EER per exposure bucket
    exposure_source = [str(Path(train_cuts).resolve())]
    if dev_set is not None:
        hyps = _greedy_texts(adapter, head, embeddings, dev_feats, tokenizer)
        dev_wer = _score_split("dev", dev_set, hyps, out, system, exposure=exposure, exposure_source=exposure_source)
    if test_cuts:
        test_set = CutSet.from_file(test_cuts).to_eager()
        test_feats = encode_cuts(encoder, test_set, mcfg.frame_shift, cache, progress=progress, desc="encoding test")
        test_wer = _score_split("test", test_set, _greedy_texts(adapter, head, embeddings, test_feats, tokenizer),
                                out, system, exposure=exposure, exposure_source=exposure_source)
    meta = {"config": config, "overrides": list(overrides), "encoder": getattr(encoder, "name", None),
            "encoder_fingerprint": getattr(cache, "fingerprint", None) or getattr(encoder, "fingerprint", None),
            "frame_shift": mcfg.frame_shift, "stack": adapter.stack, "hidden": mcfg.adapter.hidden,
            "llm_dim": int(embeddings.shape[1]), "encoder_dim": int(encoder.dim),
            "adapter": {"stack": int(adapter.stack), "hidden": int(mcfg.adapter.hidden),
                        "layers": int(mcfg.adapter.layers), "width": int(mcfg.adapter.width),
                        "time_masks": int(mcfg.adapter.time_masks), "max_mask": float(mcfg.adapter.max_mask)},
            "ctc_vocabulary": len(vocab), "epochs": epochs, "steps": step, "batch_size": batch_size, "lr": lr,
            "seed": seed, "output_rescale": ratio, "train_cuts": str(train_cuts), "kept": len(items),
            "rejected": rejects.count, "elapsed_s": elapsed, "dev_wer": dev_wer, "test_wer": test_wer}
    (out / "adapter_ctc.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return AdapterCTCResult(out, step, elapsed, len(items), rejects.count, dev_wer, test_wer)
