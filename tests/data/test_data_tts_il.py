"""TTS-interleaved data: domain sentences spoken ahead of time by a real TTS engine, then interleaved like aligned
cuts; and the whole loader on the mini corpus."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from lhotse import CutSet

from jstip.audio import samples_per_frame
from jstip.data.dataset import DataConfig, build_dataloader, is_tts, mark_tts
from jstip.data.render import span_samples

SPF = samples_per_frame()


@pytest.fixture(scope="module")
def tts_il_cuts(tmp_path_factory, text_file):
    """The domain text file spoken by espeak-ng (the `jstip synthesize --in domain.txt` path)."""
    from jstip.rejects import RejectLog
    from jstip.tts.base import Voice
    from jstip.tts.corpus import read_text_items, synthesize_items

    out = tmp_path_factory.mktemp("tts_il")
    items = read_text_items(text_file, RejectLog(out / "rejected.jsonl", "synthesize"))
    cuts = synthesize_items(items[:4], out, voices=[Voice.parse("espeak:en-us+f3@160")], progress=False)
    if len(cuts) < 4:  # espeak-ng occasionally reorders word events: a second try speaks the item
        (out / "rejected.jsonl").unlink(missing_ok=True)
        cuts = synthesize_items(items[:4], out, voices=[Voice.parse("espeak:en-us+f3@160")], progress=False)
    assert len(cuts) == 4
    return cuts.to_eager()


def test_tts_sentences_become_interleaved_documents_without_leaks(tts_cuts, tts_il_cuts, tokenizer, text_file):
    cfg = DataConfig(weights={"asr": 0.5, "tts_il": 0.5}, max_duration=1000, bucketing=False, tts_level="word",
                     max_row_tokens=4096)
    loader = build_dataloader(cfg, tts_cuts, tokenizer, [text_file], epoch=0, seed=0, tts_cuts=tts_il_cuts)
    batches = list(loader)
    tasks = Counter(t for b in batches for t in b.tasks)
    assert tasks["tts_il"] == 4 and tasks["asr"] == len(tts_cuts)
    ds = loader.dataset
    for cut in tts_il_cuts:
        tagged = mark_tts(cut)
        assert is_tts(tagged) and not is_tts(cut)
        doc, stream = ds.render_cut(tagged)
        assert doc.task == "tts_il"
        # Leak check: no 10 ms window of a text word's audio is in the stream.
        audio = cut.load_audio()[0]
        ali = cut.supervisions[0].alignment["word"]
        spoken = set()
        for a, b in doc.spans:
            spoken |= {k for k, w in enumerate(ali) if w.start >= a - 1e-6 and w.start + w.duration <= b + 1e-6}
        assert spoken and len(spoken) < len(ali)
        for k, w in enumerate(ali):
            if k in spoken:
                continue
            s0, s1 = span_samples(w.start, w.start + w.duration)
            for x in range(s0, s1 - 160, 160):
                win = audio[x:x + 160]
                if np.abs(win).max() < 1e-3:
                    continue
                hits = np.flatnonzero(stream[: len(stream) - 159] == win[0])
                assert not any(np.array_equal(stream[h:h + 160], win) for h in hits), (cut.id, w.symbol)


def test_loader_over_the_mini_corpus(mini_corpus, tokenizer_factory):
    """Two epochs over the lead's mini corpus with every task; every batch valid, variants differ per epoch."""
    from jstip.data.toy_tokenizer import toy_tokenizer

    cuts = CutSet.from_file(mini_corpus / "train" / "cuts.jsonl.gz").to_eager()
    text = mini_corpus / "text" / "domain.txt"
    tok = toy_tokenizer([c.supervisions[0].text for c in cuts] + text.read_text().splitlines(), 800)
    cfg = DataConfig(max_duration=30, max_row_tokens=1024, num_workers=1)
    seen, tasks = [], Counter()
    for epoch in (0, 1):
        ids = []
        for batch in build_dataloader(cfg, cuts, tok, [text], epoch=epoch, seed=0):
            batch.validate()
            ids += batch.example_ids
            tasks.update(batch.tasks)
        seen.append(ids)
        speech_ids = {i for i in ids if not i.startswith("text_")}
        assert len(speech_ids) == len(cuts)  # every cut once per epoch, nothing dropped
    assert set(seen[0]) != set(seen[1])
    assert {"asr", "word_il", "segment_il", "mixed_il", "text"} <= set(tasks)
