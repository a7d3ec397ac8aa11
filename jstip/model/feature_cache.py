"""A disk cache of frozen-encoder outputs, so that the epochs of a run (and the runs of a recipe) encode each speech
stream once.

A stream's key is a hash of the encoder's weights fingerprint and the stream's samples themselves (the float32 bytes
the encoder would read), so a cached entry can only ever be returned for exactly the audio and weights it was computed
from: a changed recording, another span of it, another rate or another encoder misses. Entries are float16 ``.npy``
files (``np.load(allow_pickle=False)``: nothing in the cache can run code), and a computed stream is rounded through
float16 as well, so that a run gives the same numbers whether its features came from the cache or not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch


def weights_fingerprint(module: torch.nn.Module, extra: str = "") -> str:
    """A short hash of a module's state dict (names, shapes and values) and ``extra``."""
    return tensors_fingerprint(module.state_dict(), extra)


def tensors_fingerprint(tensors: dict, extra: str = "") -> str:
    """A short hash of named tensors (names, shapes and values) and ``extra``."""
    h = hashlib.sha1(extra.encode())
    for name, value in sorted(tensors.items()):
        h.update(name.encode())
        if torch.is_tensor(value):
            h.update(str(tuple(value.shape)).encode())
            h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureCache:
    """Encoder outputs per stream under ``root/<fingerprint>/<k[:2]>/<key>.npy``.

    Args:
        root: cache folder (created on first write).
        fingerprint: identifies the encoder weights and settings (``encoder.fingerprint``).
    """

    def __init__(self, root: str | Path, fingerprint: str) -> None:
        self.dir = Path(root) / fingerprint
        self.fingerprint = fingerprint
        self.hits = 0
        self.misses = 0

    def key(self, samples: torch.Tensor) -> str:
        raw = samples.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return hashlib.sha1(self.fingerprint.encode() + raw).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> torch.Tensor | None:
        path = self._path(key)
        try:
            arr = np.load(path, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError, EOFError):
            return None  # absent, or cut short by a kill (written again below)
        return torch.from_numpy(arr.astype(np.float32))

    def put(self, key: str, frames: torch.Tensor) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, frames.detach().to("cpu", torch.float16).numpy(), allow_pickle=False)
        os.replace(tmp, path)

    def encode(self, encoder, audio: torch.Tensor, audio_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``encoder(audio, audio_lens)`` with cached streams read from disk and the rest computed in one call.

        Returns the same (S, T_enc, D) frames (zero past each stream's length) and (S,) lengths as the encoder.
        """
        keys = [self.key(audio[s, :int(audio_lens[s])]) for s in range(audio.shape[0])]
        found = [self.get(k) for k in keys]
        todo = [s for s, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            idx = torch.tensor(todo, device=audio.device)
            longest = int(audio_lens[idx].max())
            feats, lens = encoder(audio[idx, :longest], audio_lens[idx])
            for j, s in enumerate(todo):
                frames = feats[j, :int(lens[j])].to(torch.float16).float()
                self.put(keys[s], frames)
                found[s] = frames.cpu()
        lens = torch.tensor([f.shape[0] for f in found], dtype=torch.long, device=audio.device)
        T = int(lens.max()) if len(found) else 0
        D = found[0].shape[1] if found else 0
        out = torch.zeros(len(found), T, D, device=audio.device)
        for s, f in enumerate(found):
            out[s, :f.shape[0]] = f.to(audio.device)
        return out, lens


def encode_cuts(encoder, cuts, frame_shift: float, cache=None, batch_size: int = 8, rejects=None,
                progress: bool = True, desc: str = "encoding") -> dict[str, torch.Tensor]:
    """Frozen encoder outputs (T_enc, D) float16 of each cut's ASR speech stream (unreadable audio: rejected)."""
    from tqdm import tqdm

    from jstip.data.render import speech_stream
    from jstip.audio import load_cut_audio_or_reject

    cuts = sorted(cuts, key=lambda c: (-float(c.duration), c.id))
    out: dict[str, torch.Tensor] = {}
    bar = tqdm(total=len(cuts), desc=desc, unit="cut", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(cuts), batch_size):
        ids, streams = [], []
        for cut in cuts[start:start + batch_size]:
            audio = load_cut_audio_or_reject(cut, rejects)
            if audio is None:
                continue
            stream, _ = speech_stream(audio, [(0.0, float(cut.duration))], frame_shift)
            ids.append(cut.id)
            streams.append(stream)
        if streams:
            lens = torch.tensor([len(s) for s in streams])
            audio = torch.zeros(len(streams), int(lens.max()))
            for i, s in enumerate(streams):
                audio[i, :len(s)] = torch.from_numpy(s)
            with torch.no_grad():
                feats, flen = cache.encode(encoder, audio, lens) if cache is not None else encoder(audio, lens)
            for i, cut_id in enumerate(ids):
                out[cut_id] = feats[i, :int(flen[i])].to(torch.float16).cpu()
        bar.update(len(cuts[start:start + batch_size]))
    bar.close()
    return out


def pad_features(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cut features (T_i, D) as one zero-padded float batch (B, T, D) and their lengths (B,)."""
    lens = torch.tensor([t.shape[0] for t in items])
    x = torch.zeros(len(items), int(lens.max()), items[0].shape[1])
    for i, t in enumerate(items):
        x[i, :t.shape[0]] = t.float()
    return x, lens
