"""Modality plans: which units of an utterance are shown as speech and which as text.

Every plan ends in text (the paper's rule: the model is trained to keep predicting text after speech).

* ``speech_first``: A1 T2 A3 T4 ... ; ``text_first``: T1 A2 T3 A4 ... . When the alternation would end on speech
  (odd unit count for ``speech_first``, even for ``text_first``), the last unit is shown as text instead, i.e. it
  joins the text unit before it. We keep the alternation from the start rather than shifting it, so that the two
  variants stay distinct. A plan without any speech unit (``text_first`` over two units) falls back to
  ``speech_first``; the example records the variant actually used.
* ``alternate``: ``speech_first`` or ``text_first`` by (seed, epoch, cut id), so a cut sees both over two epochs.
* ``random``: a random set of units (all but the last) holding about ``speech_share`` of the words as speech
  (InSerter: 0.3 at word level, 0.4 at segment level); at least one speech unit. ``random_span`` > 1 draws runs of
  that many consecutive word units (InSerter speaks spans of at least 5 words).
* ``entity``: units overlapping an annotated entity (``supervision.custom["entities"]``) are speech, the rest text;
  the last unit stays text even when it holds an entity. Utterances with no entity fall back to ``random``.

All randomness comes from ``plan_rng(seed, epoch, cut_id, level)``: deterministic for a seed and epoch, fresh for each
epoch, and independent of the process (no Python ``hash``).
"""

from __future__ import annotations

import random
import zlib
from typing import Sequence

from jstip.interleave.units import Unit, merge_units

SPEECH = "speech"
TEXT = "text"
POLICIES = ("alternate", "speech_first", "text_first", "random", "entity")
DEFAULT_SPEECH_SHARE = {"word": 0.3, "segment": 0.4}


def plan_rng(seed: int, epoch: int, key: str, salt: str = "") -> random.Random:
    """A random generator that depends only on (seed, epoch, key, salt)."""
    return random.Random(zlib.crc32(f"{seed}|{epoch}|{key}|{salt}".encode("utf-8")) * 1_000_003 + seed)


def alternating(n: int, speech_first: bool) -> list[str]:
    """The deterministic alternation over ``n`` units, forced to end in text."""
    plan = [SPEECH if (i % 2 == 0) == speech_first else TEXT for i in range(n)]
    if plan:
        plan[-1] = TEXT
    return plan


def random_plan(units: Sequence[Unit], speech_share: float, rng: random.Random, span: int = 1) -> list[str]:
    """About ``speech_share`` of the words as speech, chosen as whole units among all but the last.

    ``span`` > 1 chooses runs of ``span`` consecutive units instead (InSerter's word-level spans of at least 5 words);
    the last run holds the last unit and stays text."""
    if span > 1 and len(units) > span:
        bounds = list(range(len(units), 0, -span))[::-1]  # run ends; the first run may be shorter
        starts = [0] + bounds[:-1]
        runs = [merge_units(units[a:b]) for a, b in zip(starts, bounds)]
        run_plan = random_plan(runs, speech_share, rng)
        return [m for m, a, b in zip(run_plan, starts, bounds) for _ in range(a, b)]
    n = len(units)
    plan = [TEXT] * n
    if n < 2:
        return plan
    total = sum(u.num_words for u in units)
    target = speech_share * total
    order = list(range(n - 1))
    rng.shuffle(order)
    speech_words = 0
    for i in order:
        # Take a unit when it brings the share closer to the target (always take the first one).
        if speech_words == 0 or abs(speech_words + units[i].num_words - target) < abs(speech_words - target):
            plan[i] = SPEECH
            speech_words += units[i].num_words
    return plan


def entity_plan(units: Sequence[Unit], entity_words: set[int]) -> list[str]:
    """Units holding a word of an entity are speech, except the last unit."""
    plan = [SPEECH if any(i in entity_words for i in range(u.first, u.last)) else TEXT for u in units]
    if plan:
        plan[-1] = TEXT
    return plan


def entity_word_indices(text: str, entities: Sequence[dict] | None) -> set[int]:
    """Indices of the words (``jstip.text.word_spans``) that overlap an entity's character span."""
    from jstip.text import word_spans

    spans = word_spans(text)
    out: set[int] = set()
    for ent in entities or []:
        try:
            start, end = int(ent["start"]), int(ent["end"])
        except (KeyError, TypeError, ValueError):
            continue
        for i, ws in enumerate(spans):
            if ws.start < end and start < ws.end:
                out.add(i)
    return out


def make_plan(
    units: Sequence[Unit],
    policy: str,
    rng: random.Random,
    speech_share: float = 0.3,
    entity_words: set[int] | None = None,
    random_span: int = 1,
) -> tuple[list[str], str]:
    """The modality of each unit and the name of the variant used (``speech_first``, ``text_first``, ``random``,
    ``entity``). Raises ValueError for an unknown policy."""
    if policy not in POLICIES:
        raise ValueError(f"unknown interleaving policy {policy!r}: choose one of {', '.join(POLICIES)}")
    n = len(units)
    if policy == "alternate":
        policy = "speech_first" if rng.random() < 0.5 else "text_first"
    if policy == "entity":
        plan = entity_plan(units, entity_words or set())
        if SPEECH in plan:
            return plan, "entity"
        policy = "random"
    if policy == "random":
        return random_plan(units, speech_share, rng, random_span), "random"
    plan = alternating(n, policy == "speech_first")
    if SPEECH not in plan and policy == "text_first":
        return alternating(n, True), "speech_first"
    return plan, policy
