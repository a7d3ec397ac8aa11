"""The CTC aligner with a real NeMo CTC model: a tiny char EncDecCTCModel trained for about a minute on TTS speech of
random word sequences (four espeak voices), saved as a ``.nemo``, then used through ``jstip align --aligner ctc
--model`` on held-out sentences. Slow (about two minutes on two cores). Set JSTIP_SAVE_TINY_CTC=path to keep the model
(e.g. for ``benchmarks/align_boundary.py --ctc-model``)."""

from __future__ import annotations

import json
import os
import random
import shutil
import time

import numpy as np
import pytest
from click.testing import CliRunner
from lhotse import CutSet

VOCAB = list(" abcdefghijklmnopqrstuvwxyz'")
SENTENCES = [
    "the patient took twenty milligrams of aspirin", "she walked to the market and bought apples",
    "please call the doctor before noon", "the river rose quickly after the storm",
    "we will meet at the station at seven", "the children played in the garden",
    "take one tablet twice a day with food", "could you tell me where the pharmacy is",
    "the committee approved the budget", "his blood pressure was high this morning",
    "the nurse repeated the measurement", "metformin is a common medicine",
]
VOICES = ["espeak:en-us+m1@175", "espeak:en-us+f2@160"]  # test voices (also among the training voices)
TRAIN_VOICES = ["espeak:en-us+m1@175", "espeak:en-us+f2@160", "espeak:en-us+m3@190", "espeak:en-gb+f1@170"]
TRAIN_SECONDS = 75
TRAIN_UTTERANCES = 400


def build_tiny_ctc():
    """A ~100k-parameter char CTC model: 40 log-mel features, 4 separable conv blocks (stride 2: 20 ms frames) with a
    small receptive field (about +-90 ms), so emissions stay close to their sounds."""
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    def block(filters, kernel, stride=1):
        return dict(filters=filters, repeat=1, kernel=[kernel], stride=[stride], dilation=[1], dropout=0.0,
                    residual=False, separable=True)

    cfg = OmegaConf.create(dict(
        sample_rate=16000, labels=VOCAB,
        preprocessor=dict(_target_="nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                          sample_rate=16000, normalize="per_feature", window_size=0.025, window_stride=0.01,
                          features=40, n_fft=512, dither=0.0, pad_to=0),
        encoder=dict(_target_="nemo.collections.asr.modules.ConvASREncoder", feat_in=40, activation="relu",
                     jasper=[block(128, 5, 2), block(128, 5), block(128, 3), block(128, 1)]),
        decoder=dict(_target_="nemo.collections.asr.modules.ConvASRDecoder", feat_in=128, num_classes=len(VOCAB),
                     vocabulary=VOCAB),
    ))
    return EncDecCTCModel(cfg=cfg)


def _training_set(n: int):
    """Random 2-5 word sequences over the test sentences' words, spoken by the training voices: the model must learn
    letters from sounds (whole sentences would be memorised with arbitrary CTC timing)."""
    from jstip.tts import SynthesisError, synthesize

    words = sorted(set(" ".join(SENTENCES).split()))
    rng = random.Random(0)
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5)))
        try:
            out.append((synthesize(text, rng.choice(TRAIN_VOICES)), text))
        except SynthesisError:
            continue
    return out


def _batch(items):
    import torch

    n = max(len(s.audio) for s, _ in items)
    signal = torch.zeros(len(items), n)
    for i, (s, _) in enumerate(items):
        signal[i, : len(s.audio)] = torch.from_numpy(s.audio)
    lengths = torch.tensor([len(s.audio) for s, _ in items])
    ids = [[VOCAB.index(c) for c in text] for _, text in items]
    targets = torch.zeros(len(items), max(map(len, ids)), dtype=torch.long)
    for i, t in enumerate(ids):
        targets[i, : len(t)] = torch.tensor(t)
    return signal, lengths, targets, torch.tensor([len(t) for t in ids])


def _train(model, syntheses, seconds, batch_size=16):
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(0)
    model.train()
    start, loss, steps = time.time(), None, 0
    while time.time() - start < seconds:
        signal, lengths, targets, target_lengths = _batch(rng.sample(syntheses, batch_size))
        log_probs, enc_len, _ = model.forward(input_signal=signal, input_signal_length=lengths)
        loss = model.loss(log_probs=log_probs, targets=targets, input_lengths=enc_len, target_lengths=target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    return float(loss.detach()), steps


@pytest.mark.slow
def test_tiny_nemo_ctc_model_aligns_tts_speech(tmp_path, cut_maker, capsys):
    import torch

    from jstip.align import compare_alignments
    from jstip.cli import main
    from jstip.tts import synthesize

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_tiny_ctc()
    loss, steps = _train(model, _training_set(TRAIN_UTTERANCES), TRAIN_SECONDS)
    model_path = tmp_path / "tiny_ctc.nemo"
    model.save_to(str(model_path))
    if os.environ.get("JSTIP_SAVE_TINY_CTC"):
        shutil.copy(model_path, os.environ["JSTIP_SAVE_TINY_CTC"])
    syntheses = [(synthesize(text, voice), text) for voice in VOICES for text in SENTENCES]  # held-out sentences

    cuts = [cut_maker(tmp_path, f"u{i:02d}", s.audio, text, s.words) for i, (s, text) in enumerate(syntheses)]
    in_path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(in_path)
    out = tmp_path / "ctc" / "cuts.jsonl.gz"
    result = CliRunner().invoke(main, ["align", "--aligner", "ctc", "--model", str(model_path), "--in", str(in_path),
                                       "--out", str(out), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["aligned"] == len(cuts) and summary["rejected"] == 0
    hyp = CutSet.from_file(out)
    report = compare_alignments(CutSet.from_cuts(cuts), hyp, trim_to_voiced=True)["overall"]

    # Baseline without acoustics: words share the voiced region in proportion to their letters.
    from jstip.tts.timing import tighten_to_voiced

    even_err = []
    for cut in cuts:
        sup = cut.supervisions[0]
        audio = cut.load_audio()[0]
        (a, b), = tighten_to_voiced(audio, 16000, [(0.0, cut.duration)])
        w = np.array([len(x) for x in sup.text.split()], float)
        edges = a + (b - a) * np.concatenate([[0], np.cumsum(w) / w.sum()])
        ref = tighten_to_voiced(audio, 16000, [(x.start, x.start + x.duration) for x in sup.alignment["word"]])
        hyp_even = tighten_to_voiced(audio, 16000, list(zip(edges[:-1], edges[1:])))
        even_err += [abs(r[0] - h[0]) for r, h in zip(ref, hyp_even)] + [abs(r[1] - h[1]) for r, h in zip(ref, hyp_even)]
    even_ms = 1000 * float(np.mean(even_err))
    with capsys.disabled():
        print(f"\ntiny NeMo CTC ({TRAIN_SECONDS} s, {steps} steps, final loss {loss:.3f}): mean boundary error "
              f"{report['mean_abs_ms']:.1f} ms, {100 * report['within_50ms']:.1f}% within 50 ms "
              f"(even split baseline: {even_ms:.1f} ms)")
    assert report["n_utterances"] == len(cuts)
    assert report["mean_abs_ms"] < 0.5 * even_ms
    assert report["within_50ms"] > 0.7
