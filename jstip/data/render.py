"""Rendering examples to token ids with an LLM's Hugging Face tokenizer (any ``PreTrainedTokenizerBase``).

Formats (``S`` = one placeholder per speech frame, ``<N>``/``<asr>`` configurable, BOS/EOS the tokenizer's own):

* word-level interleaved:     ``BOS A1 T2 A3 ... Tn EOS``           (no markers between modalities)
* segment-level interleaved:  ``BOS A1 <N> T2 <N> A3 ... <N> Tn EOS``
* ASR:                        ``BOS <asr> A transcript EOS``         (``asr_prompt`` may be a text prompt instead)
* ASR with a first pass:      ``BOS <asr> A \nDraft: h1 ... hk \nTranscript: transcript EOS``  (``jstip.model.first_pass``)
* text-only:                  ``BOS s1 EOS s2 EOS ... sk EOS``       (domain text, EOS after each sentence)

Labels (``labels != -100`` is the loss mask) are set on the tokens of text segments, the transcript and the sentences,
never on speech placeholders, BOS, ``<N>``, the task token or a text prompt. EOS is labelled when
``RenderConfig.eos_in_loss`` is true (the default): without an EOS target a decoder never learns to stop a transcript;
set it false for a mask on text tokens strictly. Speech positions hold the id of the ``<speech>`` special token
(``RenderConfig.speech_token``), which the model never embeds: it scatters encoder frames there.

A text segment is tokenised with a leading space when its first word is not the utterance's first word, so a text
segment's tokens are those of the same words in running text (for byte-level BPE tokenizers).

Speech spans. A span's samples are ``[round(start * 16000), round(end * 16000))`` of the cut's audio; its frame count
follows ``jstip.audio.num_frames`` and its audio is cut, or zero-padded, at its end to exactly
``frames * samples_per_frame`` samples: it never reads audio beyond the span's end, so it never reads a text word's
audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jstip.audio import FRAME_SHIFT, SAMPLE_RATE, num_frames, samples_per_frame
from jstip.data.batch import IGNORE_INDEX

TASKS = ("asr", "word_il", "segment_il", "mixed_il", "text", "tts_il")


@dataclass
class RenderConfig:
    """Token strings and rendering choices.

    Attributes:
        marker: the token between modalities at segment level (added as a special token).
        asr_prompt: the ASR task token, or a text prompt (``Transcribe the audio:``) when ``asr_prompt_special`` is
            false; never labelled either way.
        asr_prompt_special: add ``asr_prompt`` to the tokenizer as one special token.
        speech_token: the placeholder token at speech positions (added as a special token).
        bos_token / eos_token: used when the tokenizer has none (added as special tokens).
        add_bos: start every document with BOS.
        eos_in_loss: label the EOS tokens (see the module docstring).
        frame_shift: seconds per encoder frame (0.08 = 1280 samples at 16 kHz).
        text_chunk_words: text-only documents hold consecutive sentences up to about this many words.
        hypothesis_prefix / hypothesis_suffix: the text around a first-pass transcript in the ASR format (plain
            words the LLM already reads, so that copying and correcting the draft is asked of it from the first step).
    """

    marker: str = "<N>"
    asr_prompt: str = "<asr>"
    asr_prompt_special: bool = True
    speech_token: str = "<speech>"
    bos_token: str = "<s>"
    eos_token: str = "</s>"
    add_bos: bool = True
    eos_in_loss: bool = True
    frame_shift: float = FRAME_SHIFT
    text_chunk_words: int = 128
    hypothesis_prefix: str = "\nDraft:"
    hypothesis_suffix: str = "\nTranscript:"


def add_special_tokens(tokenizer, cfg: RenderConfig) -> list[str]:
    """Add the marker, the ASR task token and the speech placeholder (and BOS/EOS/pad if the tokenizer lacks them) as
    special tokens; idempotent. Returns every special token string the rendering uses. The model must then have
    ``len(tokenizer)`` embeddings (``resize_token_embeddings``)."""
    from tokenizers import AddedToken

    changes: dict = {}
    if tokenizer.bos_token is None:
        changes["bos_token"] = cfg.bos_token
    if tokenizer.eos_token is None:
        changes["eos_token"] = cfg.eos_token
    if tokenizer.pad_token is None:
        changes["pad_token"] = changes.get("eos_token", tokenizer.eos_token)
    extra = [cfg.marker, cfg.speech_token] + ([cfg.asr_prompt] if cfg.asr_prompt_special else [])
    have = set(tokenizer.all_special_tokens)
    new = [t for t in extra if t not in have]
    if new:
        changes["extra_special_tokens"] = [AddedToken(t, special=True, normalized=False) for t in new]
    if changes:
        tokenizer.add_special_tokens(changes, replace_extra_special_tokens=False)
    used = [tokenizer.bos_token, tokenizer.eos_token] + extra
    return [t for t in used if t is not None]


@dataclass
class Rendered:
    """One document: token ids, labels, speech positions, and the speech spans its placeholders stand for.

    Attributes:
        input_ids / labels / speech_mask: per position (lists of equal length).
        spans: (start, end) seconds within the cut, in order; empty for text-only documents.
        span_frames: frames (= placeholders) per span.
        example_id, task, cut_id: provenance.
    """

    input_ids: list[int]
    labels: list[int]
    speech_mask: list[bool]
    spans: list[tuple[float, float]] = field(default_factory=list)
    span_frames: list[int] = field(default_factory=list)
    example_id: str = ""
    task: str = ""
    cut_id: str | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def span_samples(start: float, end: float, sampling_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """Sample range ``[s0, s1)`` of a span in seconds."""
    s0 = max(0, int(round(start * sampling_rate)))
    return s0, max(s0, int(round(end * sampling_rate)))


def span_num_frames(start: float, end: float, frame_shift: float = FRAME_SHIFT,
                    sampling_rate: int = SAMPLE_RATE) -> int:
    s0, s1 = span_samples(start, end, sampling_rate)
    return num_frames(s1 - s0, frame_shift, sampling_rate)


def speech_stream(audio: np.ndarray, spans, frame_shift: float = FRAME_SHIFT,
                  sampling_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, list[int]]:
    """The encoder input of one example: its speech spans' audio, each cut or zero-padded at its end to
    ``frames * samples_per_frame`` samples, concatenated.

    Args:
        audio: (T,) float32 samples of the whole cut at ``sampling_rate``.
        spans: (start, end) seconds within the cut.

    Returns:
        (N * samples_per_frame,) float32 stream and the frame count of each span (summing to N).
    """
    spf = samples_per_frame(frame_shift, sampling_rate)
    pieces, frames = [], []
    for start, end in spans:
        s0, s1 = span_samples(start, end, sampling_rate)
        n = num_frames(s1 - s0, frame_shift, sampling_rate)
        want = n * spf
        piece = audio[s0:min(s1, s0 + want, len(audio))]
        if len(piece) < want:
            piece = np.concatenate([piece, np.zeros(want - len(piece), dtype=np.float32)])
        pieces.append(piece.astype(np.float32, copy=False))
        frames.append(n)
    if not pieces:
        return np.zeros(0, dtype=np.float32), []
    return np.concatenate(pieces), frames


class Renderer:
    """Renders examples of every task with one tokenizer (special tokens added on construction)."""

    CACHE_SIZE = 200_000
    CACHE_MAX_CHARS = 40

    def __init__(self, tokenizer, cfg: RenderConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[str, list[int]] = {}
        self.cfg = cfg or RenderConfig()
        self.special_tokens = add_special_tokens(tokenizer, self.cfg)
        ids = tokenizer.convert_tokens_to_ids
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.marker_id = ids(self.cfg.marker)
        self.placeholder_id = ids(self.cfg.speech_token)
        if self.cfg.asr_prompt_special:
            self.prompt_ids = [ids(self.cfg.asr_prompt)]
        else:
            self.prompt_ids = list(self._encode([self.cfg.asr_prompt])[0])

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens added). Short texts (the words and segments of interleaved
        examples, which repeat a lot) are cached; the rest go to the tokenizer in one batched call."""
        if not texts:
            return []
        out: list = [self._cache.get(t) for t in texts]
        missing = [i for i, ids in enumerate(out) if ids is None]
        if missing:
            encoded = self.tokenizer([texts[i] for i in missing], add_special_tokens=False)["input_ids"]
            for i, ids in zip(missing, encoded):
                out[i] = ids
                if len(texts[i]) <= self.CACHE_MAX_CHARS and len(self._cache) < self.CACHE_SIZE:
                    self._cache[texts[i]] = ids
        return out

    # Building blocks: each appends to the three parallel lists.
    @staticmethod
    def _put(doc: Rendered, ids, label: bool, speech: bool = False) -> None:
        doc.input_ids.extend(ids)
        doc.labels.extend(ids if label else [IGNORE_INDEX] * len(ids))
        doc.speech_mask.extend([speech] * len(ids))

    def _speech(self, doc: Rendered, start: float, end: float) -> None:
        n = span_num_frames(start, end, self.cfg.frame_shift)
        self._put(doc, [self.placeholder_id] * n, label=False, speech=True)
        doc.spans.append((float(start), float(end)))
        doc.span_frames.append(n)

    def _begin(self, doc: Rendered) -> None:
        if self.cfg.add_bos and self.bos_id is not None:
            self._put(doc, [self.bos_id], label=False)

    def _end(self, doc: Rendered) -> None:
        self._put(doc, [self.eos_id], label=self.cfg.eos_in_loss)

    def interleaved(self, example: dict, task: str | None = None) -> Rendered:
        """Render an interleaved example (``jstip.interleave.examples`` format). Word units: no markers; segment
        units: ``<N>`` between modalities."""
        units = example.get("units", example.get("level"))
        segments = example["segments"]
        if not segments or segments[-1]["modality"] != "text":
            raise ValueError(f"example {example.get('id')}: an interleaved example must end in a text segment")
        doc = Rendered([], [], [], example_id=example["id"], cut_id=example.get("cut_id"),
                       task=task or {"word": "word_il", "segment": "segment_il"}.get(units, "mixed_il"))
        texts = []
        for i, s in enumerate(segments):
            if s["modality"] == "text":
                leading = s.get("first", 1 if i > 0 else 0) > 0
                texts.append((" " if leading else "") + s["text"])
        encoded = iter(self._encode(texts))
        self._begin(doc)
        for i, s in enumerate(segments):
            if i > 0 and units == "segment":
                self._put(doc, [self.marker_id], label=False)
            if s["modality"] == "speech":
                self._speech(doc, s["start"], s["end"])
            else:
                self._put(doc, next(encoded), label=True)
        self._end(doc)
        return doc

    def asr(self, example_id: str, text: str, start: float, end: float, cut_id: str | None = None,
            hypothesis: list[int] | None = None) -> Rendered:
        """``BOS <asr> speech transcript EOS``; the speech is the span ``[start, end)`` seconds of the cut. With a
        first-pass ``hypothesis`` (token ids, ``jstip.model.first_pass``): ``BOS <asr> speech PREFIX hypothesis
        SUFFIX transcript EOS`` (``RenderConfig.hypothesis_prefix``/``_suffix``), all of it but the transcript and EOS
        unlabelled."""
        if not text.strip():
            raise ValueError(f"{example_id}: empty transcript")
        doc = Rendered([], [], [], example_id=example_id, task="asr", cut_id=cut_id)
        self._begin(doc)
        self._put(doc, self.prompt_ids, label=False)
        self._speech(doc, start, end)
        if hypothesis is not None:
            self._put(doc, self.hypothesis_ids(hypothesis), label=False)
        self._put(doc, self._encode([text])[0], label=True)
        self._end(doc)
        return doc

    def hypothesis_ids(self, hypothesis: list[int]) -> list[int]:
        """A first-pass transcript (token ids) framed by ``hypothesis_prefix`` and ``hypothesis_suffix``, as it
        follows the speech of an ASR document."""
        prefix, suffix = self._encode([self.cfg.hypothesis_prefix, self.cfg.hypothesis_suffix])
        return list(prefix) + [int(t) for t in hypothesis] + list(suffix)

    def text(self, example_id: str, sentences: list[str]) -> Rendered:
        """``BOS s1 EOS s2 EOS ... sk EOS``: text-only document."""
        sentences = [s.strip() for s in sentences if s.strip()]
        if not sentences:
            raise ValueError(f"{example_id}: no text")
        doc = Rendered([], [], [], example_id=example_id, task="text")
        self._begin(doc)
        for ids in self._encode(sentences):
            self._put(doc, ids, label=True)
            self._end(doc)
        return doc
