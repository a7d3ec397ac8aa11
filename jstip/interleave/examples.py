"""Interleaved examples (the DESIGN.md format) from aligned cuts.

An example is one JSON object::

    {"id": "<cut>_<units>_<variant>_e<epoch>", "cut_id": ..., "level": "word"|"segment"|"mixed",
     "units": "word"|"segment", "variant": "speech_first"|"text_first"|"random"|"entity",
     "segments": [{"modality": "speech"|"text", "text": ..., "start": s, "end": s}, ...]}

``level`` is what was asked for; ``units`` is what this example uses (a ``mixed`` example is a word-level or a
segment-level one, drawn per example and epoch: the paper mixes both kinds of sequences). Consecutive units of the same
modality are merged into one segment, so segments alternate modality and the last one is text. Times are seconds
within the source cut: a speech segment runs from its first word's start to its last word's end in the alignment.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from jstip.interleave.policies import (
    DEFAULT_SPEECH_SHARE,
    POLICIES,
    SPEECH,
    TEXT,
    entity_word_indices,
    make_plan,
    plan_rng,
)
from jstip.interleave.units import (
    AlignmentError,
    SegmentConfig,
    alignment_offset,
    Unit,
    split_at_longest_pause,
    units_for_supervision,
)

LEVELS = ("word", "segment", "mixed")


@dataclass
class InterleaveConfig:
    """How examples are built from cuts.

    Attributes:
        policy: one of ``alternate`` (default; the paper's two variants, switching each epoch), ``speech_first``,
            ``text_first``, ``random``, ``entity``.
        speech_share: target share of words shown as speech for ``random`` (and ``entity`` without entities);
            None = 0.3 at word level, 0.4 at segment level (InSerter).
        segment: segment rules (``SegmentConfig``).
        mixed_word_prob: probability that a ``mixed`` example uses word units (else segment units).
        random_span: ``random`` policy at word level: speech comes in runs of this many consecutive words (1 = any
            word on its own; InSerter uses at least 5).
    """

    policy: str = "alternate"
    speech_share: float | None = None
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    mixed_word_prob: float = 0.5
    random_span: int = 1

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown interleaving policy {self.policy!r}: choose one of {', '.join(POLICIES)}")
        if self.random_span < 1:
            raise ValueError(f"random_span must be at least 1, got {self.random_span}")
        if self.speech_share is not None and not 0.0 < self.speech_share < 1.0:
            raise ValueError(f"speech_share must be in (0, 1), got {self.speech_share}")


class NotInterleavable(ValueError):
    """This cut cannot give an interleaved example; the message is the reason (use it in ASR format instead)."""


def the_supervision(cut):
    """The single supervision of a cut; raises ``NotInterleavable`` otherwise."""
    sups = list(cut.supervisions)
    if len(sups) != 1:
        raise NotInterleavable(
            f"cut has {len(sups)} supervisions; interleaving needs exactly one (trim_to_supervisions first)")
    return sups[0]


def unit_level(level: str, cfg: InterleaveConfig, seed: int, epoch: int, cut_id: str) -> str:
    """The unit level of one example: ``level`` itself, or a draw of word/segment for ``mixed``."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {LEVELS}")
    if level != "mixed":
        return level
    rng = plan_rng(seed, epoch, cut_id, "mixed")
    return "word" if rng.random() < cfg.mixed_word_prob else "segment"


def build_segments(units: Sequence[Unit], plan: Sequence[str]) -> list[dict]:
    """Segments from units and their modalities, merging runs of one modality."""
    segments: list[dict] = []
    a = 0
    n = len(units)
    for b in range(1, n + 1):
        if b == n or plan[b] != plan[a]:
            first, last = units[a], units[b - 1]
            text = first.text if b - a == 1 else " ".join(w for u in units[a:b] for w in u.words)
            segments.append({"modality": plan[a], "text": text, "start": first.start, "end": last.end,
                             "first": first.first, "last": last.last})
            a = b
    return segments


def interleave_cut(cut, level: str = "mixed", cfg: InterleaveConfig | None = None, seed: int = 0,
                   epoch: int = 0) -> dict:
    """One interleaved example of a cut (module docstring format, plus ``first``/``last`` word indices per segment).

    Raises:
        NotInterleavable: no usable alignment, fewer than two words, several supervisions; the message says why.
    """
    cfg = cfg or InterleaveConfig()
    sup = the_supervision(cut)
    if sup.start < -0.01 or sup.end > cut.duration + 0.01:
        raise NotInterleavable(
            f"supervision {sup.start:.2f}-{sup.end:.2f}s extends beyond the cut (0-{cut.duration:.2f}s): some words "
            "have no audio here; use cuts trimmed to their supervisions")
    try:
        units_kind = unit_level(level, cfg, seed, epoch, cut.id)
        offset = alignment_offset(cut, sup.id)
        units = units_for_supervision(sup, units_kind, cfg.segment, offset=offset)
    except AlignmentError as e:
        raise NotInterleavable(str(e)) from e
    if len(units) < 2 and units_kind == "segment":
        # An utterance without an inner pause is one segment: split it at its longest pause (between two words).
        units = split_at_longest_pause(units_for_supervision(sup, "word", cfg.segment, offset=offset),
                                       cfg.segment.min_words)
    if len(units) < 2:
        raise NotInterleavable("a single word cannot be interleaved (use it in ASR format)")
    policy = cfg.policy
    if policy == "alternate":
        # Switch variants every epoch; the cut id decides where a cut starts.
        policy = "speech_first" if (zlib.crc32(cut.id.encode()) + seed + epoch) % 2 == 0 else "text_first"
    rng = plan_rng(seed, epoch, cut.id, units_kind)
    share = cfg.speech_share if cfg.speech_share is not None else DEFAULT_SPEECH_SHARE[units_kind]
    entity_words = None
    if policy == "entity":
        entity_words = entity_word_indices(sup.text, (sup.custom or {}).get("entities"))
    plan, variant = make_plan(units, policy, rng, share, entity_words,
                              cfg.random_span if units_kind == "word" else 1)
    segments = build_segments(units, plan)
    return {
        "id": f"{cut.id}_{units_kind}_{variant}_e{epoch}",
        "cut_id": cut.id,
        "level": level,
        "units": units_kind,
        "variant": variant,
        "segments": segments,
    }


def public_example(example: dict) -> dict:
    """The example as written to jsonl: DESIGN.md keys, segment keys ``modality``, ``text``, ``start``, ``end``."""
    out = {k: example[k] for k in ("id", "cut_id", "level", "units", "variant")}
    out["segments"] = [{k: s[k] for k in ("modality", "text", "start", "end")} for s in example["segments"]]
    return out


def speech_share(example: dict) -> float:
    """Share of the example's words shown as speech."""
    n_speech = sum(len(s["text"].split()) for s in example["segments"] if s["modality"] == SPEECH)
    n_all = sum(len(s["text"].split()) for s in example["segments"])
    return n_speech / n_all if n_all else 0.0


def interleave_cuts(cuts, level: str, cfg: InterleaveConfig | None = None, seed: int = 0, epoch: int = 0,
                    rejects=None) -> Iterator[dict]:
    """Examples of every interleavable cut; the others go to ``rejects`` (a ``RejectLog``) with their reason."""
    for cut in cuts:
        try:
            yield interleave_cut(cut, level, cfg, seed, epoch)
        except NotInterleavable as e:
            if rejects is not None:
                rejects.reject(cut.id, str(e))
        except Exception as e:  # one malformed cut never stops the job
            if rejects is not None:
                rejects.reject(cut.id, f"unexpected {type(e).__name__}: {e}")


__all__ = [
    "InterleaveConfig", "NotInterleavable", "LEVELS", "SPEECH", "TEXT", "interleave_cut", "interleave_cuts",
    "public_example", "speech_share", "build_segments", "the_supervision", "unit_level",
]
