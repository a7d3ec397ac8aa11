"""A first-pass ASR hypothesis in the speech-LLM's prompt (``model.first_pass``).

The adapter's CTC warm start (``jstip pretrain adapter-ctc``) is a recogniser in its own right: greedy CTC over the
LLM's vocabulary on the frozen encoder's frames. With ``model.first_pass=FOLDER`` (that command's output folder) the
speech-LLM gets its transcript as text after the speech, and learns to write the final transcript from both::

    BOS <asr> S S ... S <N> first-pass tokens <N> transcript EOS

An LLM copies and corrects text far more readily than it reads 80 ms frames, so the first pass carries what the
frames say word by word and the LLM fixes what its language knowledge can (NeMo's ``SALMWithAsrDecoder`` puts an ASR
hypothesis in the prompt the same way; generative error correction with the audio beside the text). The first pass
is frozen: its adapter and CTC head are a copy of the folder's, never trained further, so what the LLM learns to
correct stays what it will see.

Training hypotheses. The first pass was trained on the training cuts, so its transcripts of them are better than
of unseen speech (mini corpus: 17.8% WER on train, 27% dev, 33% test). The training hypotheses are therefore decoded
with the first pass in training mode (its time masks and dropout on: 22% on train), so that the LLM meets errors
closer to those it will have to correct; dev and test are decoded in eval mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

FILES = ("adapter.safetensors", "ctc_head.safetensors", "adapter_ctc.json")


def read_folder_meta(path: str | Path) -> dict:
    """``adapter_ctc.json`` of a ``jstip pretrain adapter-ctc`` folder, once every file of :data:`FILES` is there.

    Raises:
        FileNotFoundError: a file of the folder is missing (named).
    """
    folder = Path(path)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"model.first_pass={folder}: {', '.join(missing)} not found (the folder must be "
                                "the output of `jstip pretrain adapter-ctc`)")
    return json.loads((folder / "adapter_ctc.json").read_text(encoding="utf-8"))


class CTCFirstPass(nn.Module):
    """Frozen greedy CTC recogniser over encoder frames: ``forward(feats, lens) -> token ids per stream``.

    Args:
        adapter: a ``SpeechAdapter`` (encoder frames -> LLM-width frames).
        head: its ``EmbeddingCTCHead``.
        rows: (V', D) the LLM input-embedding rows of ``head.token_ids``, as the head was trained against.
        path: the folder it was read from (for messages and ``jstip export``).
    """

    def __init__(self, adapter: nn.Module, head: nn.Module, rows: torch.Tensor, path: str | None = None) -> None:
        super().__init__()
        self.adapter = adapter
        self.head = head
        self.register_buffer("rows", rows.detach().float().clone(), persistent=True)
        self.path = path
        for p in self.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_folder(cls, path: str | Path, encoder, embeddings: torch.Tensor) -> "CTCFirstPass":
        """The first pass of a ``jstip pretrain adapter-ctc`` folder, for ``encoder`` and the LLM input-embedding
        matrix ``embeddings`` (V, D).

        Raises:
            FileNotFoundError: a file of the folder is missing (named).
            ValueError: the folder was trained on another encoder or LLM width, or its weights do not fit.
        """
        from safetensors.torch import load_file

        from jstip.model.adapter import SpeechAdapter
        from jstip.model.ctc_head import EmbeddingCTCHead

        folder = Path(path)
        meta = read_folder_meta(folder)
        fp_want, fp_have = meta.get("encoder_fingerprint"), getattr(encoder, "fingerprint", None)
        if fp_want and fp_have and fp_want != fp_have:
            raise ValueError(f"model.first_pass={folder} was trained on encoder {meta.get('encoder')} (weights "
                             f"{fp_want}), this model's encoder has weights {fp_have}: use the same "
                             "model.encoder.path as the adapter-ctc run")
        if int(meta.get("llm_dim", embeddings.shape[1])) != int(embeddings.shape[1]):
            raise ValueError(f"model.first_pass={folder} was trained for an LLM of width {meta['llm_dim']}, this "
                             f"model's LLM has width {embeddings.shape[1]}: use the same LLM as the adapter-ctc run")
        sizes = meta.get("adapter")
        if sizes is None:  # written before the sizes were recorded: the config and overrides of that run
            from jstip.model.config import model_config
            from jstip.conf import compose

            a = model_config(compose(meta["config"], list(meta.get("overrides") or [])).model).adapter
            sizes = {"stack": int(meta["stack"]), "hidden": a.hidden, "layers": a.layers, "width": a.width,
                     "time_masks": a.time_masks, "max_mask": a.max_mask}
        adapter = SpeechAdapter(encoder.dim, int(embeddings.shape[1]), **sizes)
        head_state = load_file(str(folder / "ctc_head.safetensors"))
        if "token_ids" not in head_state:
            raise ValueError(f"{folder / 'ctc_head.safetensors'}: no token_ids: not a CTC head of adapter-ctc")
        token_ids = head_state["token_ids"].long()
        if int(token_ids.max()) >= embeddings.shape[0]:
            raise ValueError(f"{folder / 'ctc_head.safetensors'}: token id {int(token_ids.max())} is outside this "
                             f"LLM's {embeddings.shape[0]} embeddings: use the same LLM as the adapter-ctc run")
        head = EmbeddingCTCHead(token_ids, int(embeddings.shape[1]))
        for module, file, state in ((adapter, "adapter.safetensors", load_file(str(folder / "adapter.safetensors"))),
                                    (head, "ctc_head.safetensors", head_state)):
            try:
                module.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"{folder / file}: the weights do not fit ({str(e).splitlines()[0]}); was the "
                                 "folder written for this encoder and LLM?") from e
        return cls(adapter, head, embeddings[token_ids], path=str(folder))

    @property
    def stack(self) -> int:
        return int(self.adapter.stack)

    def logits(self, feats: torch.Tensor, lens: torch.Tensor, noisy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, T, 1 + V') CTC logits (fp32) of (S, T_enc, D_enc) encoder frames, and their lengths (S,).

        Args:
            noisy: the adapter in training mode (time masks, dropout): the hypotheses of training cuts (see the module
                docstring); otherwise in eval mode.
        """
        was_training = self.adapter.training
        self.adapter.train(noisy)
        try:
            # fp32 whatever autocast the caller runs under: the drafts of training were decoded in fp32
            with torch.no_grad(), torch.autocast(device_type=feats.device.type, enabled=False):
                frames, flen = self.adapter(feats.float(), lens)
                return self.head(frames, rows=self.rows), flen
        finally:
            self.adapter.train(was_training)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor, noisy: bool = False) -> list[list[int]]:
        """Greedy CTC token ids (LLM vocabulary) of each stream of (S, T_enc, D_enc) encoder frames (``noisy``: see
        :meth:`logits`)."""
        logits, flen = self.logits(feats, lens, noisy)
        return [self.head.greedy(logits[s], int(flen[s])) for s in range(logits.shape[0])]


def hypotheses_of_cuts(model, cuts, noisy: bool = False, batch_size: int = 16, progress: bool = True,
                       desc: str = "first pass") -> dict[str, list[int]]:
    """cut id -> first-pass token ids of each cut's whole audio (the ASR speech stream; unreadable audio: left out,
    the data pipeline reports it). Encoder outputs come from the model's feature cache when it has one."""
    from jstip.model.feature_cache import encode_cuts, pad_features

    if model.first_pass is None:
        raise ValueError("the model has no first pass (model.first_pass)")
    from tqdm import tqdm

    encoder_mode = model.encoder.training
    model.encoder.eval()  # the frozen encoder's features, from the cache when there is one
    cache = model.feature_cache()
    from itertools import islice

    out: dict[str, list[int]] = {}
    total = len(cuts) if hasattr(cuts, "__len__") else None
    bar = tqdm(total=total, desc=desc, unit="cut", disable=not progress, dynamic_ncols=True)
    seed_state = torch.random.get_rng_state()
    torch.random.default_generator.manual_seed(0)  # the noisy draw (CPU) is the same whatever came before
    stream = iter(cuts)  # read as it goes (a lazily read corpus): encode, decode, forget, 512 cuts at a time
    try:
        while chunk := list(islice(stream, 512)):
            feats = encode_cuts(model.encoder, chunk, model.frame_shift, cache, batch_size=8, progress=False)
            ids = list(feats)
            for i in range(0, len(ids), batch_size):
                group = ids[i:i + batch_size]
                x, lens = pad_features([feats[k] for k in group])
                for k, hyp in zip(group, model.first_pass(x, lens, noisy=noisy)):
                    out[k] = hyp
            bar.update(len(chunk))
    finally:
        bar.close()
        torch.random.set_rng_state(seed_state)
        model.encoder.train(encoder_mode)
    return out


__all__ = ["CTCFirstPass", "FILES", "hypotheses_of_cuts", "read_folder_meta"]
