"""A user's .nemo ASR checkpoint initialises the encoder: a tiny CTC model built and saved here by NeMo itself."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tiny_ctc_nemo(tmp_path_factory):
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    vocab = list(" abcdefghijklmnopqrstuvwxyz'")
    cfg = OmegaConf.create({
        "sample_rate": 16000, "labels": vocab,
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor", "features": 80,
                         "window_size": 0.025, "window_stride": 0.01, "sample_rate": 16000, "pad_to": 0},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 80, "n_layers": 1,
                    "d_model": 32, "n_heads": 2, "subsampling": "striding", "subsampling_factor": 4,
                    "ff_expansion_factor": 2, "conv_kernel_size": 9},
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 32,
                    "num_classes": len(vocab), "vocabulary": vocab},
        "train_ds": None, "validation_ds": None, "test_ds": None, "optim": None,
    })
    torch.manual_seed(0)
    model = EncDecCTCModel(cfg=cfg)
    path = tmp_path_factory.mktemp("nemo") / "tiny_ctc.nemo"
    model.save_to(str(path))
    return path, model.encoder.state_dict()


def test_speechlm_encoder_from_a_nemo_checkpoint(tiny_ctc_nemo, tokenizer):
    from jstip.model.build import build_speechlm

    path, enc_state = tiny_ctc_nemo
    model = build_speechlm({"encoder": {"nemo_path": str(path)}, "adapter": {"hidden": 32}}, tokenizer)
    assert model.adapter.stack == 2 and model.encoder.dim == 32  # x4 encoder, stacked to 80 ms
    for k, v in enc_state.items():
        assert torch.equal(model.encoder.encoder.state_dict()[k], v), k
    audio = torch.randn(1, 1280 * 10) * 0.1
    with torch.no_grad():
        frames = model.eval().encode_streams(audio, torch.tensor([1280 * 10]), torch.tensor([10]))
    assert frames.shape == (10, model.llm.config.hidden_size)


def test_missing_nemo_file_is_named(tmp_path):
    from jstip.model.encoder import nemo_encoder

    with pytest.raises(FileNotFoundError, match="nope.nemo"):
        nemo_encoder(tmp_path / "nope.nemo")
