"""The lhotse dataset, packing, mixing and the dataloader, on real TTS cuts."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lhotse import CutSet

from jstip.audio import samples_per_frame
from jstip.data.batch import IGNORE_INDEX
from jstip.data.dataset import (
    DataConfig,
    SpeechLMDataset,
    build_dataloader,
    epoch_cuts,
    is_tts,
    read_text_sources,
    set_epoch,
)
from jstip.data.packing import collate, encoder_groups, pack_rows, padding_efficiency
from jstip.data.render import Rendered

SPF = samples_per_frame()


def _check_batch(batch, renderer):
    batch.validate()
    B, L = batch.input_ids.shape
    # Placeholders are exactly the speech positions, and their count per stream is the stream's frames.
    assert torch.equal(batch.input_ids == renderer.placeholder_id, batch.speech_mask)
    assert torch.equal(batch.audio_lens, batch.stream_frames * SPF)
    assert [sum(s) for s in batch.span_frames] == batch.stream_frames.tolist()
    # Loss mask never on speech or special tokens.
    special = torch.tensor([renderer.bos_id, renderer.marker_id, renderer.placeholder_id, renderer.prompt_ids[0]])
    assert not batch.loss_mask[torch.isin(batch.input_ids, special)].any()
    assert not batch.loss_mask[batch.speech_mask].any()
    assert not batch.loss_mask[batch.document_ids < 0].any()
    # Scatter order: the row-major run of speech positions of each document is its stream's frames, in order.
    counts = []
    for b in range(B):
        for d in range(int(batch.document_ids[b].max()) + 1):
            sel = batch.document_ids[b] == d
            pos = batch.position_ids[b][sel]
            assert torch.equal(pos, torch.arange(int(sel.sum())))  # positions restart per document
            n = int(batch.speech_mask[b][sel].sum())
            if n:
                counts.append(n)
    if len(counts) == len(batch.stream_frames):  # one stream per document
        assert counts == batch.stream_frames.tolist()


def test_batch_of_real_cuts(tts_cuts, tokenizer, text_file):
    ds = SpeechLMDataset(tokenizer, DataConfig(max_row_tokens=256), text_sources=[text_file], seed=0)
    batch = ds[tts_cuts]
    _check_batch(batch, ds.renderer)
    assert len(batch.example_ids) == len(batch.tasks)
    assert batch.input_ids.shape[1] % 8 == 0
    assert set(batch.tasks) <= {"asr", "word_il", "segment_il", "mixed_il", "text"}
    assert "text" in batch.tasks


def test_stream_per_row_keeps_scatter_totals(tts_cuts, tokenizer):
    ds = SpeechLMDataset(tokenizer, DataConfig(max_row_tokens=512, stream_per="row", weights={"word_il": 1}))
    batch = ds[tts_cuts]
    batch.validate()
    assert len(batch.stream_frames) == batch.input_ids.shape[0]
    per_row = batch.speech_mask.sum(dim=1)
    assert per_row[per_row > 0].tolist() == batch.stream_frames.tolist()


def test_pack_rows_first_fit():
    rows = pack_rows([5, 3, 7, 2, 9], 10)
    assert sorted(i for r in rows for i in r) == [0, 1, 2, 3, 4]
    assert all(sum([5, 3, 7, 2, 9][i] for i in r) <= 10 for r in rows)
    assert len(rows) == 3
    assert pack_rows([15, 2], 10) == [[0], [1]]  # too long: a row of its own, never cut


def test_collate_documents_and_padding():
    docs = [Rendered([1, 2, 3], [1, 2, 3], [False] * 3, example_id="a", task="text"),
            Rendered([7, 9, 9, 4], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 4], [False, True, True, False],
                     spans=[(0.0, 0.16)], span_frames=[2], example_id="b", task="asr")]
    stream = np.ones(2 * SPF, dtype=np.float32)
    batch = collate(docs, [None, stream], pad_id=0, max_row_tokens=8, pad_to_multiple=4)
    batch.validate()
    assert batch.input_ids.shape == (1, 8)
    assert batch.document_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1, -1]
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 0]
    assert batch.example_ids == ["b", "a"]  # longest first
    eff = padding_efficiency(batch)
    assert eff["llm"] == 7 / 8 and eff["encoder"] == 1.0


def test_task_mix_follows_weights_and_is_deterministic(tokenizer):
    cfg = DataConfig(weights={"asr": 0.4, "word_il": 0.2, "segment_il": 0.2, "mixed_il": 0.2})
    fake = [SimpleNamespace(id=f"cut{i}", custom=None) for i in range(4000)]
    ds = SpeechLMDataset(tokenizer, cfg, seed=1, epoch=0)
    tasks = [ds.task_of(c) for c in fake]
    share = {k: v / len(fake) for k, v in Counter(tasks).items()}
    assert abs(share["asr"] - 0.4) < 0.03 and abs(share["word_il"] - 0.2) < 0.03
    assert tasks == [SpeechLMDataset(tokenizer, cfg, seed=1, epoch=0).task_of(c) for c in fake]
    ds.set_epoch(1)
    tasks1 = [ds.task_of(c) for c in fake]
    assert tasks1 != tasks  # fresh per epoch
    assert abs(Counter(tasks1)["asr"] / len(fake) - 0.4) < 0.03


def test_text_documents_per_batch_follow_the_text_weight(tokenizer, text_file):
    cfg = DataConfig(weights={"asr": 0.5, "text": 0.5})
    ds = SpeechLMDataset(tokenizer, cfg, text_sources=[text_file])
    n = [ds.num_text_docs(3, f"k{i}") for i in range(400)]
    assert abs(np.mean(n) - 3.0) < 0.3
    assert read_text_sources([text_file, ["extra line"]])[-1] == "extra line"
    with pytest.raises(FileNotFoundError, match="no_such_notes.txt"):
        read_text_sources([text_file, str(text_file.parent / "no_such_notes.txt")])


def test_bad_items_never_break_a_batch(tts_cuts, broken_cuts, tokenizer):
    ds = SpeechLMDataset(tokenizer, DataConfig(weights={"word_il": 1.0}))
    cuts = CutSet.from_cuts([tts_cuts["d0"]] + list(broken_cuts.values()))
    batch = ds[cuts]
    _check_batch(batch, ds.renderer)
    # Unalignable cuts became ASR documents; the cut with no audio was dropped.
    assert sorted(batch.example_ids) == sorted(
        ["no_alignment_asr", "wrong_word_asr", "d6_asr"] + [i for i in batch.example_ids if i.startswith("d0_")])
    assert ds.num_dropped == 1 and ds.num_fallback_asr == 3
    # Nothing usable and no text: None, not an exception.
    assert ds[CutSet.from_cuts([broken_cuts["no_audio"]])] is None


def test_bad_items_go_to_rejects_file(tmp_path, broken_cuts, tokenizer):
    from jstip.rejects import read_rejected

    ds = SpeechLMDataset(tokenizer, DataConfig(rejects_path=str(tmp_path / "rejected.jsonl")))
    ds[CutSet.from_cuts([broken_cuts["no_audio"]])]
    rec = read_rejected(tmp_path / "rejected.jsonl")
    assert rec[0]["id"] == "no_audio" and rec[0]["stage"] == "data" and rec[0]["reason"]


def test_tts_cuts_become_tts_il_documents(tts_cuts, tokenizer):
    asr = CutSet.from_cuts(list(tts_cuts)[:4])
    tts = CutSet.from_cuts(list(tts_cuts)[4:6])
    cfg = DataConfig(weights={"asr": 0.5, "tts_il": 0.5})
    ep = epoch_cuts(asr, tts, cfg, epoch=0, seed=0)
    assert len(ep) == 6 and sum(is_tts(c) for c in ep) == 2
    batch = SpeechLMDataset(tokenizer, cfg)[ep]
    assert Counter(batch.tasks)["tts_il"] == 2
    # Fewer TTS cuts drawn when their weight is lower, and a different draw per epoch.
    cfg2 = DataConfig(weights={"asr": 0.75, "tts_il": 0.25})
    draws = {tuple(c.id for c in epoch_cuts(asr, tts, cfg2, e, 0) if is_tts(c)) for e in range(8)}
    assert all(len(d) == 1 for d in draws) and len(draws) == 2


def test_dataloader_with_worker_and_resume(tts_cuts, tokenizer, text_file):
    cfg = DataConfig(max_duration=8.0, bucketing=False, num_workers=0)
    loader = build_dataloader(cfg, tts_cuts, tokenizer, [text_file], epoch=0, seed=3)
    all_batches = [b.example_ids for b in loader]
    assert len(all_batches) >= 3
    seen = sorted({i.split("_")[0] for ids in all_batches for i in ids if not i.startswith("text")})
    assert seen == sorted(c.id for c in tts_cuts)
    # Resume after one batch from the sampler's state dict.
    loader = build_dataloader(cfg, tts_cuts, tokenizer, [text_file], epoch=0, seed=3)
    it = iter(loader)
    first = next(it).example_ids
    state = loader.sampler.state_dict()
    resumed = build_dataloader(cfg, tts_cuts, tokenizer, [text_file], epoch=0, seed=3, sampler_state=state)
    assert [first] + [b.example_ids for b in resumed] == all_batches
    # Resume by batch count (exact with workers, whose prefetching runs the sampler ahead).
    skipped = build_dataloader(cfg, tts_cuts, tokenizer, [text_file], epoch=0, seed=3, skip_batches=2)
    assert [b.example_ids for b in skipped] == all_batches[2:]
    # A worker process gives the same batches.
    cfg_w = DataConfig(max_duration=8.0, bucketing=False, num_workers=1)
    assert [b.example_ids for b in build_dataloader(cfg_w, tts_cuts, tokenizer, [text_file], 0, 3)] == all_batches
    # Another epoch: other order and variants.
    loader = build_dataloader(cfg, tts_cuts, tokenizer, [text_file], epoch=1, seed=3)
    assert [b.example_ids for b in loader] != all_batches
    set_epoch(loader, 0)
    assert loader.dataset.epoch == 0


def test_bucketing_sampler(tts_cuts, tokenizer):
    cfg = DataConfig(max_duration=10.0, bucketing=True, num_buckets=2)
    loader = build_dataloader(cfg, tts_cuts, tokenizer, epoch=0, seed=0)
    n = 0
    for batch in loader:
        batch.validate()
        n += len(batch.example_ids)
    assert n == len(tts_cuts)


def test_config_from_dict_or_dictconfig(tokenizer):
    from omegaconf import OmegaConf

    from jstip.data.dataset import as_data_config

    cfg = as_data_config({"weights": {"asr": 1.0}, "interleave": {"policy": "random", "segment": {"mode": "silence"}},
                          "render": {"marker": "<il>"}, "max_row_tokens": 512})
    assert cfg.weights == {"asr": 1.0} and cfg.weight("word_il") == 0.0
    assert cfg.interleave.policy == "random" and cfg.interleave.segment.mode == "silence"
    assert cfg.render.marker == "<il>" and cfg.max_row_tokens == 512
    dc = as_data_config(OmegaConf.create({"stream_per": "packed"}))
    assert dc.stream_per == "packed" and dc.weights["asr"] == 0.3
    with pytest.raises(Exception, match="no_such_key"):
        as_data_config({"no_such_key": 1})
    ds = SpeechLMDataset(tokenizer, {"render": {"marker": "<il>"}})
    assert ds.renderer.marker_id == tokenizer.convert_tokens_to_ids("<il>")


@pytest.mark.parametrize("stream_per", ["document", "row", "packed"])
def test_stream_modes_keep_scatter_order(tts_cuts, tokenizer, stream_per):
    """In every mode the concatenated streams equal the documents' own streams in row-major placeholder order."""
    cfg = DataConfig(max_row_tokens=300, stream_per=stream_per, weights={"word_il": 1, "asr": 1})
    ds = SpeechLMDataset(tokenizer, cfg)
    batch = ds[tts_cuts]
    batch.validate()
    assert batch.input_ids.shape[0] >= 2
    joined = torch.cat([batch.audio[s, :batch.audio_lens[s]] for s in range(len(batch.audio_lens))])
    # Rebuild each document's stream on its own and concatenate in row-major order of the documents.
    by_id = {}
    for cut in tts_cuts:
        doc, stream = ds.render_cut(cut)
        by_id[doc.example_id] = stream
    expected = np.concatenate([by_id[i] for i in batch.example_ids if i in by_id and len(by_id[i])])
    assert np.array_equal(joined.numpy(), expected)
    assert int(batch.stream_frames.sum()) * SPF == len(expected)
    if stream_per == "packed":
        assert len(batch.stream_frames) <= int(batch.speech_mask.any(dim=1).sum())


def test_balanced_rows_use_the_fewest_rows():
    import random as _r

    rng = _r.Random(0)
    lengths = [rng.randint(20, 300) for _ in range(60)]
    rows = pack_rows(lengths, 1024)
    loads = [sum(lengths[i] for i in r) for r in rows]
    assert max(loads) <= 1024
    assert len(rows) <= -(-sum(lengths) // 1024) + 1
    assert sum(loads) / (len(rows) * max(loads)) > 0.9
    assert sorted(i for r in rows for i in r) == list(range(60))


def _read(lengths, groups):
    return sum(len(g) * max(lengths[i] for i in g) for g in groups)


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_encoder_groups_are_the_fewest_that_reach_the_efficiency(target):
    """Every stream in exactly one group; real / read >= target; no split of the sorted streams into fewer groups
    reaches it (brute force over every contiguous split of up to 9 streams)."""
    import itertools
    import random as _r

    rng = _r.Random(int(target * 100))
    for _ in range(20):
        lengths = [rng.randint(1, 40) * 1280 for _ in range(rng.randint(1, 9))]
        groups = encoder_groups(lengths, target)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        assert sum(lengths) / _read(lengths, groups) >= target - 1e-12
        ordered = sorted(lengths, reverse=True)
        best = min(k + 1 for k in range(len(ordered)) for cuts in itertools.combinations(range(1, len(ordered)), k)
                   if sum(ordered) / sum((b - a) * ordered[a] for a, b in zip((0,) + cuts, cuts + (len(ordered),)))
                   >= target - 1e-12)
        assert len(groups) == best, (lengths, groups)


def test_encoder_groups_zero_is_one_padded_call_and_efficiency_counts_the_groups():
    lengths = [30 * 1280, 4 * 1280, 29 * 1280, 5 * 1280]
    assert encoder_groups(lengths, 0) == [[0, 1, 2, 3]]
    assert encoder_groups(lengths, 0.9) == [[0, 2], [3, 1]]
    assert encoder_groups([], 0.95) == []
    docs = [Rendered([7] * (n + 2), [IGNORE_INDEX] * (n + 2), [False] + [True] * n + [False], spans=[(0.0, n * 0.08)],
                     span_frames=[n], example_id=f"d{i}", task="asr") for i, n in enumerate([30, 4, 29, 5])]
    streams = [np.ones(n * SPF, dtype=np.float32) for n in (30, 4, 29, 5)]
    batch = collate(docs, streams, pad_id=0, max_row_tokens=None)
    one_call = padding_efficiency(batch, encoder_min_efficiency=0)
    assert one_call["enc_alloc"] == batch.audio.numel() and one_call["encoder"] == 68 / 120
    grouped = padding_efficiency(batch, encoder_min_efficiency=0.95)
    assert grouped["enc_real"] == 68 * SPF and grouped["encoder"] >= 0.95


def test_token_cache_matches_the_tokenizer(tts_cuts, tokenizer):
    from jstip.data.render import Renderer
    from jstip.interleave.examples import interleave_cut

    r = Renderer(tokenizer)
    ex = interleave_cut(tts_cuts["d0"], "word")
    first = r.interleaved(ex)
    second = r.interleaved(ex)  # from the cache
    assert first.input_ids == second.input_ids and len(r._cache) > 0
    texts = list(r._cache)
    assert [r._cache[t] for t in texts] == tokenizer(texts, add_special_tokens=False)["input_ids"]
