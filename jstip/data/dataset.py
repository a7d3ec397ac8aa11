"""The lhotse dataset of jstip: cuts from a lhotse sampler in, a packed ``SpeechLMBatch`` out.

Mixing. ``DataConfig.weights`` are shares of *documents* per task:

* each aligned ASR cut gets one of ``asr``, ``word_il``, ``segment_il``, ``mixed_il`` with probabilities proportional to
  their weights, drawn from (seed, epoch, cut id): deterministic for a seed, fresh every epoch;
* TTS cuts (``tts_cuts``, sentences of a text corpus synthesised ahead of time) become ``tts_il`` documents; each epoch
  draws ``round(n_speech * w_tts / (w_asr + w_word + w_segment + w_mixed))`` of them (at most all of them: no
  sentence twice in an epoch; a new draw every epoch), so their share of speech documents follows the weights;
* ``text`` documents (chunks of consecutive sentences of the text sources) are added to every batch at
  ``w_text / (1 - w_text)`` per speech document (the fractional part drawn at random), picked by (seed, epoch, batch).

A cut that cannot be interleaved (no or mismatched alignment, one word) is rendered in ASR format instead; a cut that
cannot be rendered at all (unreadable audio, empty transcript) is dropped from its batch with a warning naming it and
the reason (and a line in ``DataConfig.rejects_path`` if set). A batch left with nothing falls back to text documents,
or is None (the trainer skips it) when there is no text. Nothing raises in a worker.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from jstip.audio import load_cut_audio
from jstip.data.batch import SpeechLMBatch
from jstip.data.packing import collate
from jstip.data.render import RenderConfig, Rendered, Renderer, speech_stream
from jstip.interleave.examples import InterleaveConfig, NotInterleavable, interleave_cut
from jstip.interleave.policies import plan_rng

log = logging.getLogger(__name__)

SPEECH_TASKS = ("asr", "word_il", "segment_il", "mixed_il")
TASK_LEVEL = {"word_il": "word", "segment_il": "segment", "mixed_il": "mixed", "tts_il": "mixed"}
TTS_SOURCE_KEY = "jstip_source"


@dataclass
class DataConfig:
    """Data pipeline settings (a plain dataclass; Hydra/OmegaConf can build it from YAML).

    Attributes:
        weights: share of documents per task (``asr``, ``word_il``, ``segment_il``, ``mixed_il``, ``text``,
            ``tts_il``); normalised; missing tasks are 0.
        interleave: interleaving rules (policy, speech share, segment rules).
        render: token strings and format choices.
        max_duration: seconds of audio per batch (the lhotse sampler's constraint).
        max_cuts: at most this many cuts per batch (None = no limit).
        max_row_tokens: packing capacity of one row (positions).
        pad_to_multiple: round the row length up to a multiple of this.
        bucketing: DynamicBucketingSampler (True) or DynamicCutSampler (False).
        num_buckets: buckets of the bucketing sampler.
        buffer_size: cuts the bucketing sampler holds to shuffle and fill its buckets from (lhotse's default). The
            data path's memory is about this many cuts whatever the corpus size; a cut read from Shar carries its
            audio, so lower it for long Shar cuts (20000 cuts of 10 s as FLAC: about 3 GB).
        shuffle: shuffle cuts (per epoch, by seed).
        drop_last: drop the last incomplete batch.
        num_workers: DataLoader workers.
        stream_per: ``document`` (one speech stream per document, the batch contract), ``row`` (one per packed
            row) or ``packed`` (balanced streams of consecutive documents); see ``jstip.data.packing``.
        tts_level: unit level of ``tts_il`` documents (``word``, ``segment`` or ``mixed``).
        rejects_path: append dropped items here (``rejected.jsonl`` format, stage ``data``); None = log only.
    """

    weights: dict = field(default_factory=lambda: {
        "asr": 0.3, "word_il": 0.15, "segment_il": 0.15, "mixed_il": 0.1, "text": 0.2, "tts_il": 0.1})
    interleave: InterleaveConfig = field(default_factory=InterleaveConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    max_duration: float = 60.0
    max_cuts: int | None = None
    max_row_tokens: int = 2048
    pad_to_multiple: int = 8
    bucketing: bool = True
    num_buckets: int = 10
    buffer_size: int = 20000
    shuffle: bool = True
    drop_last: bool = False
    num_workers: int = 0
    stream_per: str = "document"
    tts_level: str = "mixed"
    rejects_path: str | None = None

    def weight(self, task: str) -> float:
        total = sum(float(v) for v in self.weights.values())
        if total <= 0:
            raise ValueError("DataConfig.weights must have a positive sum")
        unknown = set(self.weights) - set(SPEECH_TASKS + ("text", "tts_il"))
        if unknown:
            raise ValueError(f"unknown task(s) in DataConfig.weights: {sorted(unknown)}")
        return float(self.weights.get(task, 0.0)) / total


def as_data_config(cfg) -> DataConfig:
    """A ``DataConfig`` from a ``DataConfig``, a dict or an OmegaConf ``DictConfig`` (Hydra), nested sections included;
    unknown keys raise with their name."""
    if isinstance(cfg, DataConfig):
        return cfg
    from omegaconf import OmegaConf

    user = OmegaConf.create(cfg if cfg is not None else {})
    out = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), user))
    if user.get("weights") is not None:
        # Given weights replace the defaults (a merge would keep the default tasks the user left out).
        out.weights = dict(OmegaConf.to_container(user.weights))
    return out


def read_text_sources(sources: Sequence[str | Path] | None) -> list[str]:
    """Sentences of text sources: each source is a text file (one sentence per line) or a list of strings."""
    sentences: list[str] = []
    for src in sources or []:
        if isinstance(src, (str, Path)):
            if not Path(src).is_file():
                raise FileNotFoundError(f"text source {src}: no such file (data.text_sources takes text files, one "
                                        "sentence per line; give inline sentences as a list of strings)")
            with Path(src).open(encoding="utf-8", errors="replace") as f:
                sentences.extend(line.strip() for line in f if line.strip())
        else:
            sentences.extend(s.strip() for s in src if s and s.strip())
    return [s for s in sentences if s]


def text_chunks(sentences: Sequence[str], max_words: int) -> list[list[str]]:
    """Consecutive sentences grouped into chunks of at most ``max_words`` words (a longer sentence stands alone)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    n = 0
    for s in sentences:
        k = len(s.split())
        if current and n + k > max_words:
            chunks.append(current)
            current, n = [], 0
        current.append(s)
        n += k
    if current:
        chunks.append(current)
    return chunks


def is_tts(cut) -> bool:
    return bool((getattr(cut, "custom", None) or {}).get(TTS_SOURCE_KEY) == "tts")


def mark_tts(cut):
    """The cut tagged as a TTS-interleaved source (``cut.custom["jstip_source"] = "tts"``)."""
    from lhotse import fastcopy

    custom = dict(getattr(cut, "custom", None) or {})
    custom[TTS_SOURCE_KEY] = "tts"
    return fastcopy(cut, custom=custom)


def epoch_cuts(cuts, tts_cuts, cfg: DataConfig, epoch: int, seed: int):
    """The cut set of one epoch: all ASR cuts plus this epoch's draw of TTS cuts (see the module docstring), mixed
    by lhotse's multiplexing; lazy when ``cuts`` is."""
    from lhotse import CutSet

    if tts_cuts is None or cfg.weight("tts_il") <= 0:
        return cuts
    w_speech = sum(cfg.weight(t) for t in SPEECH_TASKS)
    n_speech = len(cuts)
    tts_list = list(tts_cuts)
    if not tts_list:
        return cuts
    if w_speech <= 0 or n_speech == 0:
        want = len(tts_list)
    else:
        want = int(round(n_speech * cfg.weight("tts_il") / w_speech))
    # No sentence twice in an epoch: a repeat could put its audio in one document and its text in another.
    want = min(want, len(tts_list))
    if want == 0:
        return cuts
    order = list(range(len(tts_list)))
    random.Random(f"tts|{seed}|{epoch}").shuffle(order)
    drawn = CutSet.from_cuts([mark_tts(tts_list[i]) for i in sorted(order[:want])])
    # Multiplexed, not appended: drawn in proportion to their counts, the two run out together, so a streaming
    # shuffle buffer smaller than the epoch still sees both kinds throughout (the ASR cuts may be read lazily).
    mux_seed = random.Random(f"mux|{seed}|{epoch}").randrange(2**31)
    return CutSet.mux(cuts, drawn, weights=[n_speech, want], seed=mux_seed)


class SpeechLMDataset(torch.utils.data.Dataset):
    """Map-style lhotse dataset: ``dataset[cuts] -> SpeechLMBatch`` (or None when nothing in the batch was usable).

    Args:
        tokenizer: a Hugging Face tokenizer; the special tokens of ``cfg.render`` are added to it.
        cfg: data settings.
        text_sources: domain text for text-only documents (files with one sentence per line, or lists of strings).
        epoch / seed: drive every random choice (tasks, variants, text picks); see ``set_epoch``.
    """

    def __init__(self, tokenizer, cfg: DataConfig | None = None, text_sources=None, epoch: int = 0, seed: int = 0,
                 hypotheses: dict | None = None):
        self.cfg = as_data_config(cfg)
        self.hypotheses = hypotheses
        self.renderer = Renderer(tokenizer, self.cfg.render)
        self.epoch = epoch
        self.seed = seed
        self.chunks = text_chunks(read_text_sources(text_sources), self.cfg.render.text_chunk_words)
        self.num_dropped = 0
        self.num_fallback_asr = 0
        self._rejects = None
        if self.cfg.rejects_path:
            from jstip.rejects import RejectLog

            self._rejects = RejectLog(self.cfg.rejects_path, "data")

    def set_epoch(self, epoch: int) -> None:
        """Fresh variants for a new epoch (workers copy the dataset when an iterator starts)."""
        self.epoch = epoch

    # Task choice ---------------------------------------------------------------------------------------------------
    def task_of(self, cut) -> str:
        if is_tts(cut):
            return "tts_il"
        weights = [self.cfg.weight(t) for t in SPEECH_TASKS]
        if sum(weights) <= 0:
            return "asr"
        rng = plan_rng(self.seed, self.epoch, cut.id, "task")
        return rng.choices(SPEECH_TASKS, weights=weights)[0]

    def _drop(self, item_id: str, reason: str) -> None:
        self.num_dropped += 1
        log.warning("dropped %s from its batch: %s", item_id, reason)
        if self._rejects is not None:
            from jstip.rejects import rejected_ids

            try:  # once per item: a later epoch (or another worker) meets the same bad cut again
                if item_id not in rejected_ids(self._rejects.path, self._rejects.stage):
                    self._rejects.reject(item_id, reason)
            except OSError:
                pass

    # Rendering -----------------------------------------------------------------------------------------------------
    def render_cut(self, cut, task: str | None = None) -> tuple[Rendered, np.ndarray]:
        """One document of a cut and its speech stream. Falls back to ASR format when it cannot be interleaved."""
        task = task or self.task_of(cut)
        doc = None
        if task != "asr":
            level = self.cfg.tts_level if task == "tts_il" else TASK_LEVEL[task]
            try:
                example = interleave_cut(cut, level, self.cfg.interleave, self.seed, self.epoch)
                doc = self.renderer.interleaved(example, task=task)
            except NotInterleavable as e:
                self.num_fallback_asr += 1
                log.debug("%s: ASR format instead of %s: %s", cut.id, task, e)
        if doc is None:
            text = " ".join(s.text for s in cut.supervisions if s.text)
            hypothesis = None
            if self.hypotheses is not None:  # a model with a first pass: its transcript follows the speech
                hypothesis = self.hypotheses.get(cut.id)
                if hypothesis is None:
                    raise ValueError("no first-pass transcript for this cut (its audio could not be encoded)")
            doc = self.renderer.asr(f"{cut.id}_asr", text, 0.0, float(cut.duration), cut_id=cut.id,
                                    hypothesis=hypothesis)
        audio = load_cut_audio(cut)
        stream, frames = speech_stream(audio, doc.spans, self.cfg.render.frame_shift)
        if frames != doc.span_frames:
            raise RuntimeError(f"{cut.id}: frame counts {frames} disagree with placeholders {doc.span_frames}")
        return doc, stream

    def text_docs(self, count: int, key: str) -> list[Rendered]:
        if not self.chunks or count <= 0:
            return []
        rng = plan_rng(self.seed, self.epoch, key, "text")
        docs = []
        for _ in range(count):
            i = rng.randrange(len(self.chunks))
            try:
                docs.append(self.renderer.text(f"text_{i}", self.chunks[i]))
            except Exception as e:  # a bad line never stops a worker
                self._drop(f"text_{i}", f"{type(e).__name__}: {e}")
        return docs

    def num_text_docs(self, n_speech: int, key: str) -> int:
        w = self.cfg.weight("text")
        if w <= 0 or not self.chunks:
            return 0
        expected = n_speech * w / (1.0 - w) if w < 1.0 else max(1, n_speech)
        rng = plan_rng(self.seed, self.epoch, key, "ntext")
        return int(math.floor(expected)) + (1 if rng.random() < expected - math.floor(expected) else 0)

    def __getitem__(self, cuts) -> SpeechLMBatch | None:
        docs: list[Rendered] = []
        streams: list[np.ndarray | None] = []
        cut_list = list(cuts)
        for cut in cut_list:
            try:
                doc, stream = self.render_cut(cut)
            except Exception as e:
                self._drop(getattr(cut, "id", "<unknown cut>"), f"{type(e).__name__}: {e}")
                continue
            docs.append(doc)
            streams.append(stream)
        key = cut_list[0].id if cut_list else "empty"
        n_text = self.num_text_docs(len(cut_list), key)
        if not docs and not n_text:
            n_text = 1 if self.chunks else 0
        for d in self.text_docs(n_text, key):
            docs.append(d)
            streams.append(None)
        if not docs:
            return None
        try:
            return collate(docs, streams, self.renderer.pad_id, self.cfg.max_row_tokens, self.cfg.pad_to_multiple,
                           self.cfg.stream_per)
        except Exception as e:  # never fatal for a worker: the trainer skips a None batch
            self._drop(",".join(d.example_id for d in docs), f"batch could not be collated: {type(e).__name__}: {e}")
            return None


def build_sampler(cuts, cfg: DataConfig, seed: int = 0, epoch: int = 0, world_size: int | None = None,
                  rank: int | None = None):
    """A lhotse sampler over ``cuts`` (state-dict resumable: ``state_dict()`` / ``load_state_dict()``)."""
    from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler

    common = dict(max_duration=cfg.max_duration, max_cuts=cfg.max_cuts, shuffle=cfg.shuffle,
                  drop_last=cfg.drop_last, seed=seed, world_size=world_size, rank=rank)
    if cfg.bucketing:
        n = len(cuts) if hasattr(cuts, "__len__") else None
        num_buckets = max(1, min(cfg.num_buckets, (n or cfg.num_buckets) // 2 or 1))
        sampler = DynamicBucketingSampler(cuts, num_buckets=num_buckets, buffer_size=cfg.buffer_size, **common)
    else:
        sampler = DynamicCutSampler(cuts, **common)
    sampler.set_epoch(epoch)
    return sampler


def build_dataloader(cfg: DataConfig | dict, cuts, tokenizer, text_sources=None, epoch: int = 0, seed: int = 0,
                     tts_cuts=None, world_size: int | None = None, rank: int | None = None,
                     sampler_state: dict | None = None, skip_batches: int = 0,
                     hypotheses: dict | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader of ``SpeechLMBatch`` (or None for a batch with nothing usable) for one epoch.

    Build one per epoch (or call ``set_epoch(loader, epoch)`` between epochs): the epoch drives the sampler's shuffle,
    the TTS draw, the task of every cut and the interleaving variants. ``loader.sampler.state_dict()`` saved with a
    checkpoint and passed back as ``sampler_state`` resumes the epoch where it stopped, when the loader has no workers.
    With workers, the sampler runs ahead of the training loop by the prefetched batches, so save the number of batches
    the loop consumed this epoch instead and pass it as ``skip_batches``: the sampler is replayed that far (metadata
    only, no audio is read), which is exact with any number of workers. The tokenizer gains the special tokens of
    ``cfg.render`` (resize the model's embeddings to ``len(tokenizer)``). ``hypotheses`` (cut id -> first-pass token
    ids) puts each ASR document's first-pass transcript after its speech (``jstip.model.first_pass``).
    """
    cfg = as_data_config(cfg)
    epoch_set = epoch_cuts(cuts, tts_cuts, cfg, epoch, seed)
    sampler = build_sampler(epoch_set, cfg, seed, epoch, world_size, rank)
    if sampler_state is not None:
        sampler.load_state_dict(sampler_state)
    elif skip_batches > 0:
        replay = build_sampler(epoch_set, cfg, seed, epoch, world_size, rank)
        it = iter(replay)
        for _ in range(skip_batches):
            if next(it, None) is None:
                break
        sampler.load_state_dict(replay.state_dict())
    dataset = SpeechLMDataset(tokenizer, cfg, text_sources, epoch, seed, hypotheses=hypotheses)
    # Workers are spawned, not forked: a fork taken after the parent ran OpenMP or tokenizer threads (a model loaded,
    # an evaluation run in the same process) can leave the worker waiting forever on a lock no thread will release.
    return torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=cfg.num_workers,
        persistent_workers=False, multiprocessing_context="spawn" if cfg.num_workers > 0 else None,
    )


def set_epoch(loader: torch.utils.data.DataLoader, epoch: int) -> None:
    """Set the epoch of a loader's sampler and dataset (the TTS draw is fixed when the loader is built)."""
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
