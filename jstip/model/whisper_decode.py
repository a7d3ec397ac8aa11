"""Transcribing with a whole Whisper model (its own decoder): the baseline a user would pick instead of jstip.

Decoding follows openai-whisper's ``transcribe`` defaults (also faster-whisper's): the audio padded to 30 s, the prompt
``<|startoftranscript|> [<|en|> <|transcribe|>] <|notimestamps|>``, blank and end-of-text suppressed at the first step,
Whisper's suppress list and every special/timestamp token suppressed throughout, greedy decoding at temperature 0, and
a **temperature fallback**: a result whose gzip compression ratio is above 2.4 (a repetition loop) or whose average
log-probability is below -1.0 is decoded again by sampling at 0.2, 0.4, ... 1.0 (``best_of=5`` samples, the most
probable kept) until one passes; when none does, the last one is kept. A result whose no-speech probability is above
0.6 with a low log-probability is silence (empty). ``temperatures=(0.0,)`` is plain greedy decoding.

Utterances are decoded in batches with a KV cache; each batch may generate at most ``min(224, 10 + ceil(25 tokens/s x
the longest duration))`` tokens. Audio longer than 30 s is cut into consecutive 30 s windows whose texts are joined
(no timestamp-based seeking).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from jstip.model.whisper import CHUNK_SECONDS, SAMPLE_RATE, Whisper, WhisperSpeechEncoder, padded_log_mel

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MAX_SAMPLE_LEN = 224
TOKENS_PER_SECOND = 25.0


@dataclass
class WhisperResult:
    """One decoded window: text, token ids and the fallback statistics."""

    text: str
    tokens: list[int]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    temperature: float


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


ENGINES = ("auto", "torch", "ctranslate2")


def ctranslate2_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ctranslate2") is not None


class _TorchEngine:
    """Encoder and decoder in PyTorch (Hugging Face's Whisper modules, a KV cache)."""

    name = "torch"

    def __init__(self, whisper: Whisper, suppress: torch.Tensor, suppress_begin: torch.Tensor, seed: int) -> None:
        self.whisper = whisper
        self.encoder = WhisperSpeechEncoder(whisper.model.model.encoder, pad_to_30s=True, name=whisper.name)
        self.suppress, self.suppress_begin = suppress, suppress_begin
        self.generator = torch.Generator().manual_seed(int(seed))

    def encode(self, audio: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return self.encoder(audio, lens)[0]  # (N, 1500, D)

    def decode(self, enc: torch.Tensor, rows: list[int], n: int, max_tokens: int,
               temperature: float) -> list[list[WhisperResult]]:
        flat = self._decode(enc[rows].repeat_interleave(n, dim=0), max_tokens, temperature)
        return [flat[k * n:(k + 1) * n] for k in range(len(rows))]

    @torch.no_grad()
    def _decode(self, enc: torch.Tensor, max_tokens: int, temperature: float) -> list[WhisperResult]:
        """Decode ``enc`` (N, 1500, D) encoder outputs at one temperature: one result per row."""
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        model = self.whisper.model
        tok = self.whisper.tokens
        prompt = tok.prompt()
        N = enc.shape[0]
        ids = torch.tensor([prompt] * N, dtype=torch.long)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        out = model.model.decoder(input_ids=ids, encoder_hidden_states=enc, past_key_values=cache, use_cache=True)
        logits_all = model.proj_out(out.last_hidden_state).float()  # (N, P, V)
        no_speech = torch.zeros(N)
        if tok.no_speech is not None:
            no_speech = logits_all[:, 0].softmax(-1)[:, tok.no_speech]
        logits = logits_all[:, -1]
        cache = out.past_key_values
        generated: list[list[int]] = [[] for _ in range(N)]
        sum_lp = torch.zeros(N)
        done = torch.zeros(N, dtype=torch.bool)
        for step in range(max_tokens):
            logits = logits.masked_fill((self.suppress_begin if step == 0 else self.suppress)[None], float("-inf"))
            logprobs = logits.log_softmax(-1)
            if temperature > 0:
                probs = (logits / temperature).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
            else:
                nxt = logits.argmax(-1)
            lp = logprobs.gather(1, nxt[:, None]).squeeze(1)
            sum_lp += torch.where(done, torch.zeros_like(lp), lp)
            nxt = torch.where(done, torch.full_like(nxt, tok.eot), nxt)
            for i in range(N):
                if not done[i] and int(nxt[i]) != tok.eot:
                    generated[i].append(int(nxt[i]))
            done |= nxt == tok.eot
            if bool(done.all()):
                break
            out = model.model.decoder(input_ids=nxt[:, None], encoder_hidden_states=enc, past_key_values=cache,
                                      use_cache=True)
            cache = out.past_key_values
            logits = model.proj_out(out.last_hidden_state[:, -1]).float()
        return [_result(self.whisper, generated[i], float(sum_lp[i]), float(no_speech[i]), temperature)
                for i in range(N)]


class _CTranslate2Engine:
    """Encoder and decoder in CTranslate2 (the engine of faster-whisper), reading the same model.bin as the torch
    engine, in float32. Several times faster on a CPU; the features, prompt, suppressed tokens and fallback rules
    stay jstip's, so both engines decode by the same rules."""

    name = "ctranslate2"

    def __init__(self, whisper: Whisper, suppress: torch.Tensor, threads: int | None, seed: int) -> None:
        import ctranslate2

        files = {"model.bin": b"".join(p.read_bytes() for p in whisper.ct2_files)}
        for extra in ("config.json", "vocabulary.json", "vocabulary.txt"):
            if (whisper.assets / extra).is_file():
                files[extra] = (whisper.assets / extra).read_bytes()
        self.ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(str(whisper.assets), device="cpu", compute_type="float32",
                                                intra_threads=int(threads or 0), files=files)
        ctranslate2.set_random_seed(int(seed))
        self.whisper = whisper
        self.n_mels = int(whisper.model.config.num_mel_bins)
        self.suppress_ids = torch.nonzero(suppress).flatten().tolist()

    def encode(self, audio: torch.Tensor, lens: torch.Tensor) -> np.ndarray:
        mel = padded_log_mel(audio, self.n_mels)  # (N, n_mels, 3000)
        enc = self.model.encode(self.ct2.StorageView.from_array(np.ascontiguousarray(mel.numpy())), to_cpu=True)
        return np.array(enc)  # (N, 1500, D)

    def decode(self, enc: np.ndarray, rows: list[int], n: int, max_tokens: int,
               temperature: float) -> list[list[WhisperResult]]:
        prompt = self.whisper.tokens.prompt()
        sampling = dict(sampling_topk=0, sampling_temperature=temperature) if temperature > 0 else {}
        # CTranslate2 generates at most max_length / 2 new tokens (Whisper's sample_len is half its context).
        out = self.model.generate(
            self.ct2.StorageView.from_array(np.ascontiguousarray(enc[rows])), [prompt] * len(rows), beam_size=1,
            num_hypotheses=n, max_length=2 * max_tokens, return_scores=True,
            return_no_speech_prob=True, suppress_blank=True, suppress_tokens=self.suppress_ids, **sampling)
        groups = []
        for r in out:
            group = []
            for ids, score in zip(r.sequences_ids, r.scores):
                ids = [int(i) for i in ids if int(i) != self.whisper.tokens.eot]
                # CTranslate2's score is the sum of log-probabilities divided by the length (length_penalty 1).
                group.append(_result(self.whisper, ids, float(score) * max(1, len(ids)), float(r.no_speech_prob),
                                     temperature))
            groups.append(group)
        return groups


def _result(whisper: Whisper, ids: list[int], sum_logprob: float, no_speech: float, temperature: float):
    text = whisper.decode_ids(ids)
    # openai-whisper's average: the end-of-text token counts as one more token.
    return WhisperResult(text=text, tokens=ids, avg_logprob=sum_logprob / (len(ids) + 1),
                         compression_ratio=compression_ratio(text), no_speech_prob=no_speech, temperature=temperature)


class WhisperTranscriber:
    """Batched Whisper decoding with temperature fallback.

    Args:
        whisper: a :class:`jstip.model.whisper.Whisper`.
        temperatures: fallback ladder (``(0.0,)`` = greedy only).
        best_of: samples per temperature above 0.
        compression_ratio_threshold, logprob_threshold, no_speech_threshold: openai-whisper's fallback rules.
        seed: seeds the sampling of the fallback (results are reproducible).
        engine: ``torch``, ``ctranslate2`` (a model read from a CTranslate2 model.bin, with the ``ctranslate2``
            package installed) or ``auto`` (ctranslate2 where it can, else torch).
        threads: CPU threads of the ctranslate2 engine (None: its default; torch uses ``torch.get_num_threads()``).
    """

    def __init__(self, whisper: Whisper, temperatures=DEFAULT_TEMPERATURES, best_of: int = 5,
                 compression_ratio_threshold: float = 2.4, logprob_threshold: float = -1.0,
                 no_speech_threshold: float = 0.6, seed: int = 0, engine: str = "auto",
                 threads: int | None = None) -> None:
        self.whisper = whisper
        self.temperatures = tuple(float(t) for t in temperatures) or (0.0,)
        self.best_of = int(best_of)
        self.cr_threshold = compression_ratio_threshold
        self.lp_threshold = logprob_threshold
        self.ns_threshold = no_speech_threshold
        tokens = whisper.tokens
        vocab = whisper.model.config.vocab_size
        mask = torch.zeros(vocab, dtype=torch.bool)
        mask[tokens.eot + 1:] = True  # every special and timestamp token
        for i in tokens.suppress:
            if i < vocab:
                mask[i] = True
        begin = mask.clone()
        for i in tokens.suppress_begin:
            if i < vocab:
                begin[i] = True
        begin[tokens.eot] = True
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        can_ct2 = whisper.ct2_files is not None and ctranslate2_available()
        if engine == "ctranslate2" and not can_ct2:
            raise ValueError(f"{whisper.source}: the ctranslate2 engine needs a CTranslate2 model.bin and the "
                             "ctranslate2 package (pip install ctranslate2); use engine torch for a Hugging Face folder")
        if engine == "ctranslate2" or (engine == "auto" and can_ct2):
            self.engine = _CTranslate2Engine(whisper, mask, threads, seed)
        else:
            self.engine = _TorchEngine(whisper, mask, begin, seed)

    def _silent(self, r: WhisperResult) -> bool:
        return r.no_speech_prob > self.ns_threshold and r.avg_logprob < self.lp_threshold

    def _failed(self, r: WhisperResult) -> bool:
        if self._silent(r):
            return False  # silence: no fallback
        return r.compression_ratio > self.cr_threshold or r.avg_logprob < self.lp_threshold

    @torch.no_grad()
    def transcribe_windows(self, windows: list[np.ndarray]) -> list[WhisperResult]:
        """Results for windows of at most 30 s (one batch)."""
        audio = torch.zeros(len(windows), CHUNK_SECONDS * SAMPLE_RATE)
        lens = torch.zeros(len(windows), dtype=torch.long)
        for i, w in enumerate(windows):
            audio[i, :len(w)] = torch.as_tensor(w, dtype=torch.float32)
            lens[i] = len(w)
        enc = self.engine.encode(audio, lens.clamp(min=1))  # (N, 1500, D)
        longest = max(len(w) for w in windows) / SAMPLE_RATE
        max_tokens = max(1, min(MAX_SAMPLE_LEN, 10 + math.ceil(TOKENS_PER_SECOND * longest)))
        rows = list(range(len(windows)))
        results = [g[0] for g in self.engine.decode(enc, rows, 1, max_tokens, self.temperatures[0])]
        for t in self.temperatures[1:]:
            todo = [i for i, r in enumerate(results) if self._failed(r)]
            if not todo:
                break
            n = self.best_of if t > 0 else 1
            for i, group in zip(todo, self.engine.decode(enc, todo, n, max_tokens, t)):
                results[i] = max(group, key=lambda r: r.avg_logprob)
        # openai-whisper's transcribe skips a window it judges silent: its text is dropped.
        return [dataclasses.replace(r, text="", tokens=[]) if self._silent(r) else r for r in results]

    def transcribe(self, audios: list[np.ndarray], batch_size: int = 8, progress=None) -> list[WhisperResult]:
        """One result per utterance (16 kHz float arrays); longer than 30 s: windows joined.

        Args:
            progress: called with the number of utterances finished after each batch (a tqdm ``update``).
        """
        limit = CHUNK_SECONDS * SAMPLE_RATE
        windows, owner = [], []
        for u, a in enumerate(audios):
            a = np.asarray(a, dtype=np.float32).reshape(-1)
            for s in range(0, max(1, len(a)), limit):
                windows.append(a[s:s + limit])
                owner.append(u)
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
        by_window: dict[int, WhisperResult] = {}
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            for i, r in zip(idx, self.transcribe_windows([windows[i] for i in idx])):
                by_window[i] = r
            if progress is not None:
                progress(len({owner[i] for i in idx}))
        merged: list[list[WhisperResult]] = [[] for _ in audios]
        for i in range(len(windows)):
            merged[owner[i]].append(by_window[i])
        out = []
        for parts in merged:
            if len(parts) == 1:
                out.append(parts[0])
                continue
            text = " ".join(p.text for p in parts if p.text)
            out.append(WhisperResult(text=text, tokens=[t for p in parts for t in p.tokens],
                                     avg_logprob=float(np.mean([p.avg_logprob for p in parts])),
                                     compression_ratio=compression_ratio(text),
                                     no_speech_prob=float(np.mean([p.no_speech_prob for p in parts])),
                                     temperature=max(p.temperature for p in parts)))
        return out
