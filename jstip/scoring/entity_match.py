"""The entity error rate's test: is an annotated entity's exact surface form at its aligned place in the hypothesis?

An entity is a character span of the reference (``supervision.custom["entities"]``). Its reference tokens are aligned
to the hypothesis by :mod:`jstip.scoring.edit_distance` (on normalised forms); the entity is a hit only if the
hypothesis tokens in its place (with the insertions between them) spell its surface form, case kept and only
punctuation at the edges forgiven.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from jstip.scoring.edit_distance import INS, AlignedPair


@dataclass
class EntityResult:
    """Whether one annotated entity instance was recognised, and what the hypothesis has in its place."""

    text: str
    category: str
    start: int
    end: int
    hit: bool
    hyp_span: str
    """The hypothesis tokens aligned to the entity's reference words, with the insertions between them; for a miss,
    also the insertions right before and after it (the decision never counts those)."""
    hyp_tokens: list[int] = field(default_factory=list)
    """Indices of those tokens among the whitespace tokens of the hypothesis."""

    def to_dict(self) -> dict:
        return {"text": self.text, "category": self.category, "start": self.start, "end": self.end,
                "hit": self.hit, "hyp_span": self.hyp_span, "hyp_tokens": list(self.hyp_tokens)}


def _is_punctuation(text: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PS" for ch in text)


def _strip_all_punctuation(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PS")


def _affix_ok(hyp_affix: str, ref_affix: str) -> bool:
    # What surrounds the entity inside its own tokens may be punctuation ("Smith," "(Smith") or the same attached
    # letters as in the reference ("Smith's" for an entity "Smith"); anything else means another word form.
    return _is_punctuation(hyp_affix) or _strip_all_punctuation(hyp_affix) == _strip_all_punctuation(ref_affix)


def surface_form_found(entity_text: str, hyp_span: str, ref_prefix: str = "", ref_suffix: str = "") -> bool:
    """True if ``entity_text`` occurs verbatim (case and spelling included) in ``hyp_span``, with nothing but
    punctuation, or the reference's own attached characters, on either side of it."""
    start = hyp_span.find(entity_text)
    while start >= 0:
        end = start + len(entity_text)
        if _affix_ok(hyp_span[:start], ref_prefix) and _affix_ok(hyp_span[end:], ref_suffix):
            return True
        start = hyp_span.find(entity_text, start + 1)
    return False


@dataclass
class EntityCheck:
    """The result of :func:`check_entities`: per-entity results and the annotations that could not be used."""

    results: list[EntityResult] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)


def check_entities(
    ref_text: str,
    ref_tokens: Sequence[str],
    ref_token_starts: Sequence[int],
    hyp_tokens: Sequence[str],
    alignment: Sequence[AlignedPair],
    entities: Sequence[dict],
) -> EntityCheck:
    """Decide, for each annotated entity, whether its exact surface form is at the aligned place in the hypothesis.

    Args:
        ref_text: the raw reference text (entity offsets index into it).
        ref_tokens: its whitespace tokens, as written.
        ref_token_starts: character offset of each token in ``ref_text``.
        hyp_tokens: raw hypothesis tokens, as written.
        alignment: an alignment of ``ref_tokens`` with ``hyp_tokens``.
        entities: ``{"text", "category", "start", "end"}`` with character offsets into ``ref_text``.

    Returns:
        The per-entity results, and the entities whose offsets do not match their text (``invalid``, with a reason).
    """
    check = EntityCheck()
    aligned_to: dict[int, list[int]] = {i: [] for i in range(len(ref_tokens))}
    insertions_after: dict[int, list[int]] = {}  # ref index -> hyp indices inserted right after it
    last_ref = -1
    for pair in alignment:
        if pair.op == INS:
            insertions_after.setdefault(last_ref, []).append(pair.hyp_index)
        else:
            last_ref = pair.ref_index
            if pair.hyp_index is not None:
                aligned_to[pair.ref_index].append(pair.hyp_index)
    token_ends = [s + len(t) for s, t in zip(ref_token_starts, ref_tokens)]
    for entity in entities:
        text, start, end = entity.get("text"), entity.get("start"), entity.get("end")
        category = str(entity.get("category", "unknown"))
        if not isinstance(start, int) or not isinstance(end, int) or not text or ref_text[start:end] != text:
            check.invalid.append({"entity": dict(entity), "reason": (
                f"offsets [{start}, {end}) give {ref_text[start:end] if isinstance(start, int) and isinstance(end, int) else None!r}"
                f", not the entity text {text!r}; fix the offsets")})
            continue
        covered = [i for i in range(len(ref_tokens)) if ref_token_starts[i] < end and token_ends[i] > start]
        if not covered:
            check.invalid.append({"entity": dict(entity), "reason": "the entity covers no word; fix the offsets"})
            continue
        first, last = covered[0], covered[-1]
        hyp_indices: list[int] = []
        for i in range(first, last + 1):
            hyp_indices.extend(aligned_to[i])
            if i < last:  # insertions strictly inside the entity belong to it; those at its edges do not
                hyp_indices.extend(insertions_after.get(i, []))
        hyp_indices.sort()
        hyp_span = " ".join(hyp_tokens[k] for k in hyp_indices)
        ref_prefix = ref_text[ref_token_starts[first] : start]
        ref_suffix = ref_text[end : token_ends[last]]
        hit = bool(hyp_span) and surface_form_found(text, hyp_span, ref_prefix, ref_suffix)
        if not hit:
            # Show a miss with the insertions at its edges too: "Amoxicillin" -> "Amoxi cillin" rather than "cillin".
            hyp_indices = sorted(insertions_after.get(first - 1, []) + hyp_indices + insertions_after.get(last, []))
            hyp_span = " ".join(hyp_tokens[k] for k in hyp_indices)
        check.results.append(EntityResult(text, category, start, end, hit, hyp_span, hyp_indices))
    return check
