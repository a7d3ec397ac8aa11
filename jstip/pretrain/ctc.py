"""CTC pretraining of the speech encoder: a NeMo ``EncDecCTCModel`` on lhotse cuts, on the CPU, under a time budget.

The model is NeMo's own (``AudioToMelSpectrogramPreprocessor`` 80 mels / 10 ms, ``ConformerEncoder``,
``ConvASRDecoder``) with the encoder sizes of the speech-LLM config (``jstip/conf/tiny.yaml``: ``model.encoder``), so
``jstip.model.encoder.nemo_encoder(ctc.nemo)`` gives the speech-LLM an encoder of exactly the shape it was configured
for. The vocabulary is the characters of the *normalised* transcripts (:func:`jstip.scoring.normalize.normalize_text`:
lowercase, no punctuation), which is what WER is computed on, so CTC spends no capacity on case and punctuation.

Data is read with lhotse (cuts manifest -> audio -> padded batch) by a small map-style dataset; the batch is the
4-tuple NeMo's ``training_step`` takes: ``(audio (B, T), audio_lens (B,), targets (B, U), target_lens (B,))``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jstip.audio import SAMPLE_RATE, load_cut_audio
from jstip.scoring.normalize import normalize_text

log = logging.getLogger(__name__)



# ----------------------------------------------------------------------------------------------------------- data


def load_cuts(path: str | Path):
    """A lhotse CutSet from a manifest, with an error that names the file and the fix."""
    from lhotse import CutSet

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cuts manifest not found: {path} (make one with `jstip prepare mini --out DIR`, "
                                f"then pass DIR/train/cuts.jsonl.gz)")
    cuts = CutSet.from_file(path)
    if len(cuts) == 0:
        raise ValueError(f"{path}: the cuts manifest is empty")
    return cuts


def cut_text(cut) -> str:
    """The cut's supervision texts joined by a space (as :func:`jstip.scoring.files.refs_from_cuts` joins them)."""
    return " ".join(s.text for s in cut.supervisions if s.text)


def build_vocabulary(texts) -> list[str]:
    """The sorted characters of the normalised ``texts`` (space included): the CTC labels, blank excluded."""
    chars = set()
    for text in texts:
        chars.update(normalize_text(text))
    if not chars - {" "}:
        raise ValueError("no transcript text to build a character vocabulary from (are the supervisions empty?)")
    return sorted(chars)


class CTCCutDataset(torch.utils.data.Dataset):
    """Map-style dataset over a lhotse sampler's batches of cuts: audio plus character targets.

    Args:
        vocabulary: CTC labels (characters); characters of a transcript outside it are dropped.
        cache_audio: keep decoded audio in memory (int16) after its first read; the mini corpus is ~200 MB this way,
            and later epochs skip decoding.
    """

    def __init__(self, vocabulary: list[str], cache_audio: bool = True) -> None:
        self.index = {ch: i for i, ch in enumerate(vocabulary)}
        self.cache: dict[str, np.ndarray] | None = {} if cache_audio else None

    def encode(self, text: str) -> list[int]:
        return [self.index[ch] for ch in normalize_text(text) if ch in self.index]

    def audio(self, cut) -> np.ndarray:
        if self.cache is not None and cut.id in self.cache:
            return self.cache[cut.id].astype(np.float32) / 32767.0
        audio = load_cut_audio(cut)
        if self.cache is not None:
            self.cache[cut.id] = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        return audio.astype(np.float32)

    def __getitem__(self, cuts):
        audios = [torch.from_numpy(self.audio(c)) for c in cuts]
        targets = [torch.tensor(self.encode(cut_text(c)), dtype=torch.long) for c in cuts]
        audio_lens = torch.tensor([a.shape[0] for a in audios], dtype=torch.long)
        target_lens = torch.tensor([t.shape[0] for t in targets], dtype=torch.long)
        audio = torch.nn.utils.rnn.pad_sequence(audios, batch_first=True)  # (B, T)
        target = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True) if targets else torch.zeros(0, 0)
        return audio, audio_lens, target.long(), target_lens


def make_loader(cuts, dataset: CTCCutDataset, max_duration: float, shuffle: bool, seed: int = 0):
    """A DataLoader yielding CTC batches of at most ``max_duration`` seconds of audio."""
    from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

    if shuffle and len(cuts) >= 200:
        sampler = DynamicBucketingSampler(cuts, max_duration=max_duration, shuffle=True, seed=seed,
                                          num_buckets=min(10, len(cuts) // 20), drop_last=False)
    else:
        sampler = SimpleCutSampler(cuts, max_duration=max_duration, shuffle=shuffle, seed=seed)
    return torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=0)


def filter_trainable(cuts, dataset: CTCCutDataset, subsampling_factor: int, window_stride: float = 0.01):
    """Drop cuts that :class:`jstip.cuts.CutScreen` rejects, whose audio cannot be used (read once here,
    into the dataset's cache), or whose character targets do not fit the encoder's output frames (CTC needs
    T_enc >= U) or are empty; returns (kept cuts, list of (id, reason))."""
    from jstip.audio import AudioError
    from jstip.cuts import CutScreen

    screen = CutScreen(alignment=False, audio="sources")
    kept, dropped = [], []
    for cut in cuts:
        reason = screen.reason(cut)
        if reason is None:
            try:
                dataset.audio(cut)
            except AudioError as err:
                reason = str(err)
        if reason is not None:
            dropped.append((cut.id, reason))
            continue
        n_target = len(dataset.encode(cut_text(cut)))
        n_frames = int(cut.duration / window_stride) // subsampling_factor
        if n_target == 0:
            dropped.append((cut.id, "empty transcript after normalisation"))
        elif n_frames < n_target:
            dropped.append((cut.id, f"{n_target} characters do not fit {n_frames} encoder frames "
                                    f"(x{subsampling_factor} subsampling); use a smaller subsampling factor"))
        else:
            kept.append(cut)
    from lhotse import CutSet

    return CutSet.from_cuts(kept), dropped


# ---------------------------------------------------------------------------------------------------------- model


def encoder_sizes(config: str | Path = "tiny") -> dict:
    """The ``model.encoder`` section of a packaged speech-LLM config (``tiny``) or of a YAML file, with
    ``nemo_path`` removed: the encoder the CTC model must have for the speech-LLM to load it."""
    from omegaconf import OmegaConf

    import jstip.conf

    path = Path(config)
    if not path.suffix:
        path = Path(jstip.conf.__file__).parent / f"{config}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"config not found: {config} (give a packaged name like 'tiny' or a YAML file with "
                                f"a model.encoder section)")
    cfg = OmegaConf.load(path)
    enc = OmegaConf.to_container(cfg.model.encoder) if "model" in cfg and "encoder" in cfg.model else None
    if not enc:
        raise ValueError(f"{path}: no model.encoder section")
    enc.pop("nemo_path", None)
    return enc


def ctc_model_config(vocabulary: list[str], encoder: dict, lr: float = 2e-3, weight_decay: float = 1e-3,
                     spec_augment: bool = False) -> dict:
    """The NeMo config of an ``EncDecCTCModel``: 80-mel preprocessor (25 ms window, 10 ms shift, the same as
    :func:`jstip.model.encoder.conformer_encoder`), ``ConformerEncoder`` of the given sizes, character decoder."""
    d_model = int(encoder.get("d_model", 64))
    dropout = float(encoder.get("dropout", 0.1))
    window_stride = float(encoder.get("window_stride", 0.01))
    cfg = {
        "sample_rate": SAMPLE_RATE,
        "labels": list(vocabulary),
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": SAMPLE_RATE, "window_size": 0.025, "window_stride": window_stride,
            "features": int(encoder.get("n_mels", 80)), "pad_to": 0, "dither": 1e-5, "normalize": "per_feature",
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": int(encoder.get("n_mels", 80)), "n_layers": int(encoder.get("n_layers", 2)),
            "d_model": d_model, "n_heads": int(encoder.get("n_heads", 4)),
            "subsampling": str(encoder.get("subsampling", "striding")),
            "subsampling_factor": int(encoder.get("subsampling_factor", 4)),
            "ff_expansion_factor": int(encoder.get("ff_expansion_factor", 2)),
            "conv_kernel_size": int(encoder.get("conv_kernel_size", 9)),
            "dropout": dropout, "dropout_pre_encoder": dropout, "dropout_emb": 0.0, "dropout_att": dropout,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": d_model, "num_classes": len(vocabulary), "vocabulary": list(vocabulary),
        },
        "optim": {"name": "adamw", "lr": lr, "betas": [0.9, 0.98], "weight_decay": weight_decay},
    }
    if spec_augment:
        cfg["spec_augment"] = {"_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
                               "freq_masks": 2, "time_masks": 2, "freq_width": 15, "time_width": 0.05}
    return cfg


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, vocabulary: list[str]) -> list[str]:
    """Argmax, collapse repeats, drop blanks (index ``len(vocabulary)``): log_probs (B, T, V+1) -> B strings."""
    blank = len(vocabulary)
    best = log_probs.argmax(-1)  # (B, T)
    out = []
    for row, n in zip(best.tolist(), lengths.tolist()):
        chars, prev = [], blank
        for idx in row[:n]:
            if idx != prev and idx != blank:
                chars.append(vocabulary[idx])
            prev = idx
        out.append(" ".join("".join(chars).split()))
    return out


@torch.no_grad()
def transcribe_cuts(model, cuts, max_duration: float = 120.0) -> dict[str, str]:
    """Greedy CTC transcripts of ``cuts``: {cut id: text}."""
    vocabulary = list(model.cfg.labels)
    dataset = CTCCutDataset(vocabulary, cache_audio=False)
    sampler = make_loader(cuts, dataset, max_duration=max_duration, shuffle=False).sampler
    was_training = model.training
    model.eval()
    hyps: dict[str, str] = {}
    try:
        for batch_cuts in sampler:
            audio, audio_lens, _, _ = dataset[batch_cuts]
            log_probs, enc_lens, _ = model.forward(input_signal=audio, input_signal_length=audio_lens)
            for cut, text in zip(batch_cuts, greedy_decode(log_probs, enc_lens, vocabulary)):
                hyps[cut.id] = text
    finally:
        model.train(was_training)
    return hyps


def evaluate_ctc(model, cuts, out_dir: str | Path | None = None) -> dict:
    """Greedy-decode ``cuts`` and score them with :func:`jstip.scoring.score.score` (``english-v2`` normaliser).

    Returns the metrics object (``wer``, ``cer``, counts, ...; without per-utterance rows). With ``out_dir``, also
    writes ``out_dir/metrics.json`` and ``out_dir/hyps.jsonl`` as ``jstip score`` does.
    """
    from jstip.scoring.files import refs_from_cuts
    from jstip.scoring.score import score, write_scores

    hyps = transcribe_cuts(model, cuts)
    result = score(refs_from_cuts(cuts), hyps)
    if out_dir is not None:
        write_scores(result, out_dir)
    return {k: v for k, v in result.items() if k != "utterances"}


# ------------------------------------------------------------------------------------------------------- training


@dataclass
class CTCResult:
    """What :func:`train_ctc` produced."""

    nemo_path: Path
    steps: int
    elapsed: float
    dev_wer: float | None
    metrics_path: Path


def train_ctc(train_cuts: str | Path, out_dir: str | Path, dev_cuts: str | Path | None = None,
              max_minutes: float | None = None, max_steps: int | None = None, config: str | Path = "tiny",
              lr: float = 2e-3, warmup_steps: int = 50, max_duration: float = 60.0, weight_decay: float = 1e-3,
              spec_augment: bool = False, subsampling_factor: int | None = None, seed: int = 0,
              num_threads: int | None = None, callbacks=(), progress: bool = True) -> CTCResult:
    """Train a character CTC model with a ConformerEncoder of the speech-LLM's sizes; write ``out_dir/ctc.nemo``.

    Args:
        train_cuts / dev_cuts: lhotse cut manifests (16 kHz audio, supervision text).
        out_dir: gets ``ctc.nemo``, ``metrics.jsonl`` (``step``, ``loss``, ``lr``, ``elapsed`` s, ``cpu_s``,
            ``items``), ``rejected.jsonl`` (cuts CTC cannot learn from), ``dev_wer.json`` (with ``dev_cuts``) and
            ``dev/{metrics.json,hyps.jsonl}``.
        max_minutes / max_steps: training budget; whichever is reached first stops training (at least one needed).
        config: packaged config name (``tiny``) or YAML path whose ``model.encoder`` gives the encoder sizes.
        lr: peak AdamW learning rate (warm-up, then cosine to 5 % over the budget).
        subsampling_factor: overrides the config's (the speech-LLM's adapter stacks frames up to 80 ms either way).
        max_duration: seconds of audio per batch.
        callbacks: extra Lightning callbacks (benchmarks use them to snapshot the model).

    Returns:
        A :class:`CTCResult`.
    """
    import lightning as L
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf
    from tqdm.auto import tqdm

    from jstip.pretrain.schedule import BudgetSchedule, StepLog, start_fresh
    from jstip.rejects import RejectLog

    if max_minutes is None and max_steps is None:
        raise ValueError("give a training budget: max_minutes or max_steps")
    if num_threads:
        torch.set_num_threads(int(num_threads))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start_fresh(out_dir)
    train = load_cuts(train_cuts)
    dev = load_cuts(dev_cuts) if dev_cuts else None
    enc_sizes = encoder_sizes(config)
    if subsampling_factor:
        enc_sizes["subsampling_factor"] = int(subsampling_factor)

    vocabulary = build_vocabulary(cut_text(c) for c in train)
    dataset = CTCCutDataset(vocabulary)
    rejects = RejectLog(out_dir / "rejected.jsonl", "pretrain-ctc")
    train, dropped = filter_trainable(train, dataset, int(enc_sizes.get("subsampling_factor", 4)))
    for cut_id, reason in dropped:
        rejects.reject(cut_id, reason)
    if len(train) == 0:
        raise ValueError(f"{train_cuts}: no cut is usable for CTC training (see {out_dir / 'rejected.jsonl'})")

    L.seed_everything(seed, verbose=False)
    model_cfg = OmegaConf.create(ctc_model_config(vocabulary, enc_sizes, lr=lr, weight_decay=weight_decay,
                                                  spec_augment=spec_augment))
    model = EncDecCTCModel(cfg=model_cfg)
    model._train_dl = make_loader(train, dataset, max_duration=max_duration, shuffle=True, seed=seed)

    schedule = BudgetSchedule(lr, warmup_steps=warmup_steps, max_steps=max_steps,
                              max_seconds=None if max_minutes is None else 60.0 * max_minutes)
    bar = tqdm(total=max_steps, desc="pretrain ctc", unit="step", disable=not progress)
    steplog = StepLog(out_dir, schedule, every=5, progress_bar=bar)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=-1 if max_steps is None else max_steps,
                        max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        gradient_clip_val=1.0, callbacks=[schedule, steplog, *callbacks])
    model.set_trainer(trainer)
    trainer.fit(model)
    bar.close()
    steps, elapsed = trainer.global_step, schedule.elapsed()

    nemo_path = out_dir / "ctc.nemo"
    tmp = out_dir / "ctc.nemo.tmp"
    model.save_to(str(tmp))
    os.replace(tmp, nemo_path)

    dev_wer = None
    if dev is not None:
        metrics = evaluate_ctc(model, dev, out_dir / "dev")
        dev_wer = metrics["wer"]
        summary = {"dev_cuts": str(dev_cuts), "wer": metrics["wer"], "cer": metrics.get("cer"),
                   "wer_counts": metrics.get("wer_counts"), "steps": steps, "elapsed_s": round(elapsed, 1),
                   "lr": lr, "num_utterances": metrics.get("num_utterances"), "decoding": "greedy CTC",
                   "normalizer": metrics.get("normalizer")}
        (out_dir / "dev_wer.json").write_text(json.dumps(summary, indent=1) + "\n")
    return CTCResult(nemo_path=nemo_path, steps=steps, elapsed=elapsed, dev_wer=dev_wer,
                     metrics_path=out_dir / "metrics.jsonl")
