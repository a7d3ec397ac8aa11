"""The files `jstip score` reads: references (jsonl or a lhotse cut manifest) and hypotheses in four formats."""

from __future__ import annotations

from pathlib import Path

from jstip.jsonl import read_jsonl


def read_refs(path: str | Path, skipped: list[dict] | None = None) -> list[dict]:
    """Reference lines: ``id``, ``text``, optional ``entities``, ``biasing_words`` and ``domain`` (bad lines: see
    :func:`jstip.jsonl.read_jsonl`).

    A lhotse cut manifest (``*.jsonl.gz``) is read with :func:`refs_from_cuts` instead.
    """
    if str(path).endswith(".jsonl.gz"):
        return refs_from_cuts(path)
    return read_jsonl(path, ("id", "text"), skipped)


def refs_from_cuts(cuts) -> list[dict]:
    """Reference rows from a lhotse CutSet (or a path to a cut manifest): one row per cut.

    ``text`` is the cut's supervision texts joined by a space; ``entities`` come from ``supervision.custom
    ["entities"]`` (offsets shifted into the joined text), ``domain`` and ``biasing_words`` from the first
    supervision's ``custom`` when present.
    """
    if isinstance(cuts, (str, Path)):
        from lhotse import CutSet

        cuts = CutSet.from_file(cuts)
    refs = []
    for cut in cuts:
        texts, entities, offset = [], [], 0
        custom: dict = {}
        for sup in cut.supervisions:
            text = sup.text or ""
            sup_custom = sup.custom or {}
            for e in sup_custom.get("entities") or []:
                entities.append({**e, "start": e["start"] + offset, "end": e["end"] + offset})
            for key in ("domain", "biasing_words"):
                if key in sup_custom and key not in custom:
                    custom[key] = sup_custom[key]
            texts.append(text)
            offset += len(text) + 1
        row = {"id": cut.id, "text": " ".join(texts), **custom}
        if entities:
            row["entities"] = entities
        refs.append(row)
    return refs


HYP_FORMATS = ("jsonl", "nemo", "kaldi", "trn")
"""Hypothesis file formats of :func:`read_hyps`."""


def read_hyps(path: str | Path, skipped: list[dict] | None = None, fmt: str = "jsonl") -> list[dict]:
    """Hypothesis rows ``{"id", "hyp"}`` from a file in one of :data:`HYP_FORMATS`:

    - ``jsonl``: lines ``{"id": ..., "hyp": ...}``;
    - ``nemo``: a NeMo manifest with predictions (``transcribe_speech.py`` output): lines with ``audio_filepath`` and
      ``pred_text``; the id is the audio file's name without its extension (or the line's ``id`` when it has one);
    - ``kaldi``: a Kaldi ``text`` file: ``<utt id> <words...>`` per line;
    - ``trn``: sclite trn: ``<words...> (<utt id>)`` per line.

    Bad lines: see :func:`jstip.jsonl.read_jsonl` (reported as ``FILE:LINE`` in ``skipped``, or raised without it).
    """
    if fmt == "jsonl":
        return read_jsonl(path, ("id", "hyp"), skipped)
    if fmt == "nemo":
        rows = read_jsonl(path, ("audio_filepath", "pred_text"), skipped)
        return [{"id": str(r.get("id") or Path(str(r["audio_filepath"])).stem), "hyp": r["pred_text"]} for r in rows]
    if fmt not in HYP_FORMATS:
        raise ValueError(f"unknown hypothesis format {fmt!r}; choose one of {', '.join(HYP_FORMATS)}")
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                problem = f"not UTF-8 (byte {raw[err.start]:#04x} at position {err.start}); save the file as UTF-8"
            else:
                if not line:
                    continue
                if fmt == "kaldi":
                    utt, _, text = line.partition(" ")
                    rows.append({"id": utt, "hyp": text.strip()})
                    continue
                if line.endswith(")") and "(" in line:
                    text, _, utt = line[:-1].rpartition("(")
                    rows.append({"id": utt.strip(), "hyp": text.strip()})
                    continue
                problem = "a trn line ends with the utterance id in parentheses: 'words ... (utt_id)'"
            if skipped is None:
                raise ValueError(f"{path}:{lineno}: {problem}")
            skipped.append({"id": f"{path}:{lineno}", "reason": problem})
    return rows
