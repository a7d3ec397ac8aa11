"""A battery of broken inputs built from the mini corpus: one cut per kind of fault, beside a few good cuts.

``build_bad_manifest(mini_corpus, out)`` writes ``out/cuts.jsonl.gz`` and returns ``{cut id: kind}`` (kind ``good``
for the cuts every stage must keep). Every fault is one a user meets in corpora assembled by others.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

GOOD = "good"


def _recording(path: Path, rec_id: str):
    from lhotse import Recording

    return Recording.from_file(str(path), recording_id=rec_id)


def _cut_on(cut, rec, new_id: str, text: str | None = None, custom_update: dict | None = None, keep_alignment=True):
    """``cut``'s supervision on recording ``rec`` (whole recording), as a new cut ``new_id``."""
    from lhotse import MonoCut
    from lhotse.utils import fastcopy

    sup = cut.supervisions[0]
    custom = dict(sup.custom or {})
    custom.update(custom_update or {})
    new_sup = fastcopy(sup, id=new_id, recording_id=rec.id, start=0.0, duration=rec.duration,
                       text=sup.text if text is None else text, custom=custom,
                       alignment=sup.alignment if keep_alignment else None)
    return MonoCut(id=new_id, start=0.0, duration=rec.duration, channel=0, recording=rec, supervisions=[new_sup])


def build_bad_manifest(mini_corpus: Path, out: Path, marker: Path) -> dict[str, str]:
    """Write ``out/cuts.jsonl.gz`` (and the audio files it points at); ``marker`` is the file a command source
    would create if it ran. Returns cut id -> kind."""
    from lhotse import CutSet
    from lhotse.audio import AudioSource
    from lhotse.utils import fastcopy

    out.mkdir(parents=True, exist_ok=True)
    src = [c for c in CutSet.from_file(mini_corpus / "train" / "cuts.jsonl.gz")]
    medical = [c for c in src if (c.supervisions[0].custom or {}).get("entities")]
    plain = [c for c in src if c not in medical]
    pool = iter(plain[3:] + medical[2:])
    kinds: dict[str, str] = {}
    cuts = []

    def add(cut, kind):
        kinds.setdefault(cut.id, kind)
        cuts.append(cut)

    def audio_of(cut) -> np.ndarray:
        return cut.load_audio()[0].astype(np.float32)

    # Good cuts: as prepared, one with entities, and a stereo copy (both channels: kept, downmixed).
    for c in plain[:3] + medical[:2]:
        add(c, GOOD)
    c = next(pool)
    a = audio_of(c)
    sf.write(out / "stereo.wav", np.stack([a, 0.5 * a], axis=1), 16000)
    add(_cut_on(c, _recording(out / "stereo.wav", "stereo"), "good-stereo"), GOOD)

    # Transcript markup (hesitation, noise tags): a good cut; the tags get zero-length alignment items.
    c = next(pool)
    sup = c.supervisions[0]
    items = sup.alignment["word"]
    tagged = ([items[0]._replace(symbol="<hes>", duration=0.0)] + list(items)
              + [items[-1]._replace(symbol="[laughter]", start=items[-1].start + items[-1].duration, duration=0.0)])
    add(fastcopy(c, id="good-markup", supervisions=[fastcopy(sup, id="good-markup", text=f"<hes> {sup.text} [laughter]",
                                                             alignment={"word": tagged})]), GOOD)

    def write(name: str, samples: np.ndarray, rate: int = 16000, subtype: str | None = None) -> Path:
        path = out / f"{name}.wav"
        sf.write(path, samples, rate, subtype=subtype)
        return path

    # Audio content.
    c = next(pool)
    a = audio_of(c)
    a[len(a) // 3: len(a) // 3 + 50] = np.nan
    add(_cut_on(c, _recording(write("nan", a, subtype="FLOAT"), "nan"), "bad-nan-audio"), "NaN samples")
    c = next(pool)
    a = audio_of(c)
    a[100] = np.inf
    add(_cut_on(c, _recording(write("inf", a, subtype="FLOAT"), "inf"), "bad-inf-audio"), "inf sample")
    c = next(pool)
    add(_cut_on(c, _recording(write("silent40", np.zeros(40, dtype=np.float32)), "tiny"), "bad-2.5ms-audio",
                keep_alignment=False), "2.5 ms of audio")
    c = next(pool)
    rec = _recording(write("zero_len_src", audio_of(c)), "zerolen")
    z = _cut_on(c, rec, "bad-zero-length", keep_alignment=False)
    z = fastcopy(z, duration=0.0, supervisions=[fastcopy(z.supervisions[0], duration=0.0)])
    add(z, "zero-length cut")
    c = next(pool)
    (out / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(range(256)) * 4)
    rec = fastcopy(_recording(write("garbage_tmpl", audio_of(c)), "garbage"),
                   sources=[AudioSource(type="file", channels=[0], source=str(out / "garbage.wav"))])
    add(_cut_on(c, rec, "bad-corrupt-file"), "corrupt audio file")
    c = next(pool)
    rec = fastcopy(_recording(write("missing_tmpl", audio_of(c)), "missing"),
                   sources=[AudioSource(type="file", channels=[0], source=str(out / "no_such_file.wav"))])
    add(_cut_on(c, rec, "bad-missing-file"), "missing audio file")
    c = next(pool)
    a = audio_of(c)
    # 8 kHz audio in a manifest that declares 16 kHz (the samples of an 8 kHz file, twice as long as declared)
    path = write("rate8k", a[::2], rate=8000)
    rec = fastcopy(_recording(path, "rate8k"), sampling_rate=16000, num_samples=len(a[::2]),
                   duration=len(a[::2]) / 16000)
    add(_cut_on(c, rec, "bad-declared-rate", keep_alignment=False), "declared 16 kHz, file 8 kHz")
    c = next(pool)
    rec = fastcopy(_recording(write("cmd_tmpl", audio_of(c)), "cmd"),
                   sources=[AudioSource(type="command", channels=[0],
                                        source=f"touch {marker} && sox {out / 'cmd_tmpl.wav'} -t wav -")])
    add(_cut_on(c, rec, "bad-command-source"), "command audio source")

    # Transcripts.
    c = next(pool)
    add(fastcopy(c, id="bad-punctuation-only", supervisions=[
        fastcopy(c.supervisions[0], id="bad-punctuation-only", text="... !", alignment=None)]), "punctuation-only text")
    c = next(pool)
    add(fastcopy(c, id="bad-empty-text", supervisions=[
        fastcopy(c.supervisions[0], id="bad-empty-text", text="", alignment=None)]), "empty transcript")
    c = next(pool)
    long_text = " ".join([c.supervisions[0].text] * 12)
    add(fastcopy(c, id="bad-transcript-too-long", supervisions=[
        fastcopy(c.supervisions[0], id="bad-transcript-too-long", text=long_text, alignment=None)]),
        "transcript far too long for its audio")
    c = next(pool)
    add(fastcopy(c, id="bad-no-supervision", supervisions=[]), "no supervision")
    c = next(pool)
    s0 = c.supervisions[0]
    add(fastcopy(c, id="bad-two-supervisions", supervisions=[
        fastcopy(s0, id="bad-two-supervisions-a"), fastcopy(s0, id="bad-two-supervisions-b")]), "two supervisions")
    c = next(pool)
    words = c.supervisions[0].alignment["word"]
    wrong = [w._replace(symbol=w.symbol + "x") for w in words]
    add(fastcopy(c, id="bad-alignment-words", supervisions=[
        fastcopy(c.supervisions[0], id="bad-alignment-words", alignment={"word": wrong})]),
        "alignment words differ from the transcript")
    m = medical[-1]
    ents = [dict(e, start=e["start"] + 2) for e in m.supervisions[0].custom["entities"]]
    add(fastcopy(m, id="bad-entity-offsets", supervisions=[
        fastcopy(m.supervisions[0], id="bad-entity-offsets", custom={**m.supervisions[0].custom, "entities": ents})]),
        "entity offsets do not slice the entity")

    # Long audio: over a 20 s batch budget.
    c = next(pool)
    a = audio_of(c)
    reps = int(np.ceil(62 * 16000 / len(a)))
    long_audio = np.concatenate([a] * reps)[: 62 * 16000]
    add(_cut_on(c, _recording(write("long62", long_audio), "long62"), "bad-62s-over-budget",
                text=" ".join([c.supervisions[0].text] * reps), keep_alignment=False),
        "62 s cut, over max_duration=20")

    # A duplicate id (a second, different cut under a good cut's id).
    c = next(pool)
    add(fastcopy(c, id=plain[0].id, supervisions=[fastcopy(c.supervisions[0], id=plain[0].id)]), "duplicate id")

    CutSet.from_cuts(cuts).to_file(out / "cuts.jsonl.gz")
    (out / "kinds.json").write_text(json.dumps(kinds, indent=1))
    return kinds


def bad_ids(kinds: dict[str, str]) -> set[str]:
    return {i for i, k in kinds.items() if k != GOOD}
