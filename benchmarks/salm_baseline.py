"""NeMo speechlm2 ``SALM`` as the baseline of ``benchmarks/train_throughput.py``: built from the same parts as our
model and trained on the same cuts, one utterance per row (``BOS <audio> transcript EOS``), as NeMo trains it.

- tiny model: SALM's own preprocessor and a NeMo Conformer of our encoder's sizes, with our adapter's architecture
  (:class:`SALMAdapter`) as its modality adapter and our LLM (saved to a folder, loaded by SALM);
- a real-size preset: our frozen Whisper encoder itself (:class:`SALMEncoder`: raw 16 kHz audio in, so SALM's
  preprocessor is :class:`RawAudio`), our adapter module itself, our LLM's weights and the same LoRA (rank, alpha,
  target modules) installed by SALM; the same parameters train (adapter + LoRA). ``cache=`` hands SALM our feature
  cache of the frozen encoder's outputs, to compare the LLM sides alone: NeMo itself encodes every step.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn


class SALMAdapter(nn.Module):
    """A speech adapter behind the modality-adapter interface of SALM's perception module ((B, D, T) in and out)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.subsampling_factor = int(getattr(inner, "stack", 1))
        self.inner = inner

    def forward(self, audio_signal, length):
        out, lens = self.inner(audio_signal.transpose(1, 2), length)
        return out.transpose(1, 2), lens


class RawAudio(nn.Module):
    """SALM's preprocessor slot for an encoder that reads 16 kHz audio itself: passes the audio through."""

    featurizer = SimpleNamespace(sample_rate=16000, hop_length=160)

    def forward(self, input_signal, length):
        return input_signal, length


class SALMEncoder(nn.Module):
    """Our frozen encoder behind NeMo's encoder interface: audio (B, T) -> frames (B, D, T_enc), from ``cache`` (a
    ``jstip.model.feature_cache.FeatureCache``) when given."""

    def __init__(self, encoder: nn.Module, cache=None) -> None:
        super().__init__()
        self.inner = encoder
        self.cache = cache
        self.subsampling_factor = round(float(encoder.frame_shift) / 0.01)

    def forward(self, audio_signal, length):
        with torch.no_grad():
            feats, lens = (self.cache.encode(self.inner, audio_signal, length) if self.cache is not None
                           else self.inner(audio_signal, length))
        return feats.transpose(1, 2), lens


def _unwrap(llm):
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm


def build_salm(llm, tokenizer, work: Path, adapter: nn.Module, enc_cfg: dict | None = None,
               encoder: nn.Module | None = None, lora: dict | None = None):
    """A SALM of our LLM (weights copied), ``adapter`` as its modality adapter, and either a NeMo Conformer of
    ``enc_cfg``'s sizes with SALM's own preprocessor, or ``encoder`` (raw audio in, :class:`SALMEncoder`)."""
    from nemo.collections.speechlm2.models import SALM

    base = _unwrap(llm)
    folder = work / "salm_llm"
    folder.mkdir(parents=True, exist_ok=True)
    config = base.config.to_dict()
    config.pop("quantization_config", None)  # a GGUF-loaded LLM: SALM builds it from the config, weights copied below
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer.save_pretrained(folder)
    H = base.config.hidden_size
    small = enc_cfg or {"n_layers": 1, "d_model": 16, "n_heads": 2}  # a placeholder when ``encoder`` replaces it
    cfg = {
        "pretrained_llm": str(folder), "pretrained_weights": False, "audio_locator_tag": "<|audio|>",
        "freeze_params": [], "prevent_freeze_params": [],
        "perception": {
            "target": "nemo.collections.speechlm2.modules.perception.AudioPerceptionModule",
            "output_dim": H,
            "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                             "sample_rate": 16000, "window_size": 0.025, "window_stride": 0.01, "features": 80,
                             "pad_to": 0, "dither": 1e-5},
            "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 80,
                        "n_layers": small["n_layers"], "d_model": small["d_model"], "n_heads": small["n_heads"],
                        "subsampling": "striding", "subsampling_factor": 4, "ff_expansion_factor": 2,
                        "conv_kernel_size": 9, "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0,
                        "dropout_att": 0.1},
            # NeMo instantiates only allow-listed targets: build with a placeholder, then put our adapter in.
            "modality_adapter": {"_target_": "torch.nn.Identity", "output_dim": H},
        },
    }
    if lora:
        cfg["lora"] = {"r": int(lora["r"]), "lora_alpha": int(lora["alpha"]), "lora_dropout": float(lora["dropout"]),
                       "target_modules": list(lora["target_modules"]), "bias": "none", "task_type": "CAUSAL_LM"}
    salm = SALM(cfg)
    salm.perception.modality_adapter = SALMAdapter(adapter)
    if encoder is not None:
        salm.perception.preprocessor = RawAudio()
        salm.perception.encoder = encoder
    # The same LLM weights: SALM built it from the saved config (random weights) and holds the embeddings apart.
    ours = {name.replace(".base_layer.", "."): value for name, value in base.state_dict().items()}  # LoRA or not
    with torch.no_grad():
        for name, p in _unwrap(salm.llm).named_parameters():
            src = name.replace(".base_layer.", ".")
            if "lora_" not in src and ours[src].shape == p.shape:
                p.copy_(ours[src])
        salm.embed_tokens.weight.copy_(base.get_input_embeddings().weight[:salm.embed_tokens.num_embeddings])
    return salm


def freeze_like_ours(salm, encoder_trains: bool) -> None:
    """Train what our preset trains: the adapter and the LoRA weights (and the encoder when ``encoder_trains``)."""
    for name, p in salm.named_parameters():
        p.requires_grad_("modality_adapter" in name or "lora_" in name
                         or (encoder_trains and name.startswith("perception.")))


def salm_batches(salm, our_batches, cuts_by_id, tokenizer) -> list[dict]:
    """SALM batches of the same cuts as our ASR-only batches: ``BOS <audio> transcript EOS`` per row."""
    pad = salm.text_pad_id
    tag = salm.audio_locator_tag_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    out = []
    for b in our_batches:
        ids = [e[:-len("_asr")] for e in b.example_ids if e.endswith("_asr")]
        rows, masks, audios = [], [], []
        for cid in ids:
            cut = cuts_by_id[cid]
            text = " ".join(s.text for s in cut.supervisions)
            t = tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append([bos, tag] + t + [tokenizer.eos_token_id])
            masks.append([False, False] + [True] * (len(t) + 1))
            audios.append(torch.as_tensor(cut.resample(16000).load_audio()[0]))
        L = max(map(len, rows))
        T = max(len(a) for a in audios)
        input_ids = torch.full((len(rows), L), pad)
        loss_mask = torch.zeros((len(rows), L), dtype=torch.bool)
        audio = torch.zeros(len(rows), T)
        for i, (r, m, a) in enumerate(zip(rows, masks, audios)):
            input_ids[i, :len(r)] = torch.tensor(r)
            loss_mask[i, :len(m)] = torch.tensor(m)
            audio[i, :len(a)] = a
        out.append({"input_ids": input_ids, "loss_mask": loss_mask, "audios": audio,
                    "audio_lens": torch.tensor([len(a) for a in audios])})
    return out


def salm_step_fn(salm, device, dtype):
    opt = torch.optim.AdamW([p for p in salm.parameters() if p.requires_grad], lr=1e-4)

    def step(batch):
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = salm.training_step(batch, 0)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step

