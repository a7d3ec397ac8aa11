"""``SpeechLM``: speech encoder -> adapter -> decoder-only LLM, on the rendered batches of ``jstip.data.batch``.

The speech streams of a batch are encoded in padded calls on groups of similar length; each stream's output is
trimmed (or zero-padded) to exactly its ``stream_frames`` and the frames of all streams are scattered, in stream
order, into the speech placeholder positions read in row-major order (the contract of ``SpeechLMBatch``). Packed rows
attend only within their own document: a block-causal 4D mask (CPU, SDPA/eager), or the per-document ``position_ids``
alone with flash attention, which Hugging Face turns into variable-length attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from jstip.audio import num_frames, samples_per_frame
from jstip.data.batch import IGNORE_INDEX, SpeechLMBatch
from jstip.data.packing import encoder_groups
from jstip.model.config import EncoderConfig
from jstip.model.flex import block_causal_mask


@dataclass
class SpeechLMOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor
    num_tokens: int


class SpeechLM(nn.Module):
    """Continuous-input speech-LLM.

    Args:
        encoder: ``forward(audio (S, T), audio_lens (S,)) -> (frames (S, T_enc, D_enc), lens (S,))``, e.g.
            ``jstip.model.encoder.SpeechEncoder``.
        adapter: ``forward(frames, lens) -> ((S, T_llm, D_llm), lens)``: one output per placeholder (80 ms).
        llm: a Hugging Face causal LM whose embeddings cover the tokenizer (speech token included).
        attention: ``mask`` (4D block-causal mask), ``position_ids`` (let the LLM derive documents from position
            resets: flash-attention varlen), ``flex`` (a document block mask run by ``flex_attention``:
            :mod:`jstip.model.flex`), or ``auto`` (``position_ids`` with flash attention; else ``flex`` on a GPU and
            ``mask`` on a CPU).
        encoder_min_efficiency: ``model.encoder.min_efficiency`` (:meth:`encoder_features`; 0: one padded call).
    """

    @classmethod
    def from_pretrained(cls, path) -> "SpeechLM":
        """The model of a folder written by ``jstip export`` (:func:`jstip.model.export.load_exported`), in eval
        mode; its tokenizer loads with ``transformers.AutoTokenizer.from_pretrained(path / "llm")``."""
        from jstip.model.export import load_exported

        return load_exported(path)[0]

    def __init__(self, encoder: nn.Module, adapter: nn.Module, llm: nn.Module, attention: str = "auto",
                 feature_cache: str | None = None, first_pass: nn.Module | None = None,
                 encoder_min_efficiency: float = EncoderConfig.min_efficiency) -> None:
        super().__init__()
        self.encoder = encoder
        self.adapter = adapter
        self.llm = llm
        self.first_pass = first_pass  # jstip.model.first_pass.CTCFirstPass: its transcript goes in the ASR prompt
        if attention not in ("auto", "mask", "position_ids", "flex"):
            raise ValueError(f"attention must be auto, mask, position_ids or flex, got {attention!r}")
        self.attention = attention
        if attention == "flex":
            from jstip.model.flex import use_flex

            use_flex(llm)
        self.feature_cache_dir = feature_cache
        self._cache = None
        self.encoder_min_efficiency = encoder_min_efficiency

    @property
    def frame_shift(self) -> float:
        """Seconds of audio per speech position: the encoder's frame shift times the frames the adapter stacks."""
        return float(self.encoder.frame_shift) * int(getattr(self.adapter, "stack", 1))

    def feature_cache(self):
        """The ``FeatureCache`` of a frozen encoder in eval mode (None while the encoder trains, or without a cache
        folder)."""
        if not self.feature_cache_dir or self.encoder.training or any(p.requires_grad for p in self.encoder.parameters()):
            return None
        if self._cache is None:
            from jstip.model.feature_cache import FeatureCache, weights_fingerprint

            fp = getattr(self.encoder, "fingerprint", None) or weights_fingerprint(self.encoder)
            self._cache = FeatureCache(self.feature_cache_dir, fp)
        return self._cache

    # Speech ---------------------------------------------------------------------------------------------------------
    def encode_streams(self, audio: torch.Tensor, audio_lens: torch.Tensor,
                       stream_frames: torch.Tensor) -> torch.Tensor:
        """Streams -> frames: audio (S, T) float32 at 16 kHz, audio_lens (S,), stream_frames (S,) frames wanted per
        stream -> (sum(stream_frames), D_llm), stream 0's frames, then stream 1's, ..., each trimmed or zero-padded at
        its end to exactly ``stream_frames[s]``."""
        feats, lens = self.encoder_features(audio, audio_lens)
        out, _ = self.adapter(feats, lens)  # (S, T_llm, D_llm): one call (the adapter is light; calls cost)
        pieces = []
        for s, n in enumerate(stream_frames.tolist()):
            piece = out[s, :min(n, out.shape[1])]
            pieces.append(torch.cat([piece, piece.new_zeros(n - piece.shape[0], piece.shape[1])]))
        return torch.cat(pieces) if pieces else out.new_zeros(0, out.shape[-1])

    def encoder_features(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, T_enc, D_enc) encoder frames (zero past each length) and their lengths, from the feature cache when
        there is one. The encoder reads the streams in calls on groups of similar length (:func:`encoder_groups`: at
        least ``encoder_min_efficiency`` of the samples read are real); padding is masked, so a stream's frames do
        not depend on its group."""
        cache = self.feature_cache()

        def encode(a, n):
            return cache.encode(self.encoder, a, n) if cache is not None else self.encoder(a, n)

        lens = audio_lens.tolist()
        groups = encoder_groups(lens, self.encoder_min_efficiency)
        if len(groups) <= 1:
            return encode(audio, audio_lens)
        frames: list = [None] * len(lens)
        for group in groups:
            idx = torch.tensor(group, dtype=torch.long, device=audio.device)
            feats, flen = encode(audio[idx, :max(lens[s] for s in group)], audio_lens[idx])
            for j, n in enumerate(flen.tolist()):
                frames[group[j]] = feats[j, :n]
        out_lens = torch.tensor([f.shape[0] for f in frames], dtype=torch.long, device=audio.device)
        return nn.utils.rnn.pad_sequence(frames, batch_first=True), out_lens

    @torch.no_grad()
    def hypotheses(self, audios: list, batch_size: int = 8, log_probs: bool = False) -> list:
        """First-pass token ids (``model.first_pass``) of 16 kHz float audio arrays, each read as the one speech span
        of an ASR prompt; with ``log_probs``, pairs ``(ids, (T, 1 + V') CTC log-probabilities)`` (fp32, CPU) for
        scoring other transcripts (:mod:`jstip.evaluate.rescore`)."""
        if self.first_pass is None:
            raise ValueError("this model has no first pass (model.first_pass)")
        device = self.llm.get_input_embeddings().weight.device
        out: list = []
        for i in range(0, len(audios), batch_size):
            wavs = [_frame_padded(a, self.frame_shift) for a in audios[i:i + batch_size]]
            lens = torch.tensor([len(w) for w in wavs])
            x = torch.zeros(len(wavs), int(lens.max()) if len(wavs) else 0)
            for b, w in enumerate(wavs):
                x[b, :len(w)] = w
            feats, flen = self.encoder_features(x.to(device), lens.to(device))
            logits, llen = self.first_pass.logits(feats, flen)
            for s in range(logits.shape[0]):
                ids = self.first_pass.head.greedy(logits[s], int(llen[s]))
                out.append((ids, logits[s, :int(llen[s])].log_softmax(-1).cpu()) if log_probs else ids)
        return out

    def _speech_params_zero(self, device) -> torch.Tensor:
        # A batch without speech still touches the trainable speech parameters, so that DDP sees a gradient (0) for
        # every parameter on every rank.
        params = [p for m in (self.encoder, self.adapter) for p in m.parameters() if p.requires_grad]
        return sum((p.sum() * 0.0 for p in params), torch.zeros((), device=device))

    def embed(self, batch: SpeechLMBatch) -> torch.Tensor:
        """(B, L, D_llm) input embeddings: token embeddings, with the adapter's frames at the speech positions."""
        embeds = self.llm.get_input_embeddings()(batch.input_ids)  # (B, L, D)
        n_speech = int(batch.speech_mask.sum())
        if n_speech != int(batch.stream_frames.sum()):
            raise ValueError(f"batch has {n_speech} speech positions but {int(batch.stream_frames.sum())} frames")
        if batch.audio.shape[0] == 0:
            return embeds + self._speech_params_zero(embeds.device).to(embeds.dtype)
        frames = self.encode_streams(batch.audio, batch.audio_lens, batch.stream_frames).to(embeds.dtype)
        # masked_scatter fills the True positions in row-major order: the contract's scatter order.
        return embeds.masked_scatter(batch.speech_mask.unsqueeze(-1), frames)

    def _attention_kwargs(self, batch: SpeechLMBatch) -> dict:
        from jstip.model.flex import NAME as FLEX

        impl = getattr(self.llm.config, "_attn_implementation", "sdpa") or "sdpa"
        mode = self.attention
        if mode == "auto":
            if "flash" in impl:
                mode = "position_ids"
            elif impl == FLEX or (batch.input_ids.is_cuda and impl == "sdpa" and self._flex_possible()):
                mode = "flex"  # no flash-attn on this GPU: document-masked flex attention, not an L x L mask
            else:
                mode = "mask"
        if mode == "position_ids":
            return {"attention_mask": None, "position_ids": batch.position_ids}
        if mode == "flex":
            from jstip.model.flex import document_block_mask, use_flex

            if batch.input_ids.device.type == "cpu" and torch.is_grad_enabled():
                raise ValueError("model.attention=flex cannot train on a CPU (PyTorch's flex_attention has no CPU "
                                 "backward): use model.attention=mask (or auto) there; flex evaluates on a CPU and "
                                 "trains on a GPU")
            if impl != FLEX:
                use_flex(self.llm)
                if getattr(self.llm.config, "_attn_implementation", None) != FLEX:
                    raise ValueError(f"model.attention=flex: this LLM ({type(self.llm).__name__}) does not take "
                                     "another attention implementation; use model.attention=mask")
            return {"attention_mask": document_block_mask(batch.document_ids), "position_ids": batch.position_ids}
        mask = block_causal_mask(batch.document_ids)
        if impl == "eager":
            dtype = self.llm.get_input_embeddings().weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        return {"attention_mask": mask, "position_ids": batch.position_ids}

    def _flex_possible(self) -> bool:
        """Whether the LLM can switch to flex attention: checked once, by switching it (:func:`try_flex`)."""
        if not hasattr(self, "_flex_ok"):
            from jstip.model.flex import try_flex

            self._flex_ok = try_flex(self.llm)
        return self._flex_ok

    def decoder_and_head(self):
        """The LLM's decoder stack and output layer, when its logits are a plain linear map of the last hidden
        states (Llama, Qwen, SmolLM2, ...); None for models that scale or cap their logits."""
        base = self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm
        cfg = base.config
        if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
            return None
        try:
            decoder, head = base.get_decoder(), base.get_output_embeddings()
        except (AttributeError, NotImplementedError):
            return None
        if decoder is None or not isinstance(head, nn.Linear):
            return None
        return decoder, head

    def forward(self, batch: SpeechLMBatch, compute_logits: bool = True,
                reduction: str = "mean") -> SpeechLMOutput:
        """Cross-entropy over ``labels`` (shifted: position t predicts label t+1), mean over labelled tokens.

        Args:
            compute_logits: return (B, L, V) logits. False (training): the output layer runs only at the positions
                that predict a label (a 49k-row output layer over every position of a speech-heavy batch is a large
                share of a step), and ``logits`` holds those (N, V) rows.
            reduction: ``mean`` (over labelled tokens) or ``none`` (the (N,) per-token losses, in row-major order of
                the labelled positions).
        """
        embeds = self.embed(batch)
        targets = batch.labels[:, 1:]
        labelled = targets != IGNORE_INDEX  # (B, L-1)
        n = int(labelled.sum())
        parts = None if compute_logits else self.decoder_and_head()
        if parts is None:
            out = self.llm(inputs_embeds=embeds, use_cache=False, **self._attention_kwargs(batch))
            logits = out.logits  # (B, L, V)
            flat_logits = logits[:, :-1][labelled]
        else:
            decoder, head = parts
            hidden = decoder(inputs_embeds=embeds, use_cache=False, **self._attention_kwargs(batch)).last_hidden_state
            flat_logits = head(hidden[:, :-1][labelled])  # (N, V)
            logits = flat_logits
        if n > 0:
            losses = nn.functional.cross_entropy(flat_logits.float(), targets[labelled], reduction="none")
            loss = losses if reduction == "none" else losses.sum() / n
        else:
            loss = logits.sum() * 0.0
        return SpeechLMOutput(loss=loss, logits=logits, num_tokens=n)

    # Decoding -------------------------------------------------------------------------------------------------------
    def prompt_embeds(self, parts: list) -> torch.Tensor:
        """(P, D) embeddings of a prompt given as parts: token id lists, or audio arrays (16 kHz float)."""
        device = self.llm.get_input_embeddings().weight.device
        pieces = []
        for part in parts:
            if isinstance(part, (np.ndarray, torch.Tensor)) and torch.as_tensor(part).dtype.is_floating_point:
                wav = _frame_padded(part, self.frame_shift)
                want = len(wav)
                frames = self.encode_streams(wav[None].to(device), torch.tensor([want], device=device),
                                             torch.tensor([want // samples_per_frame(self.frame_shift)]))
                pieces.append(frames.to(self.llm.get_input_embeddings().weight.dtype))
            else:
                ids = torch.as_tensor(list(part), dtype=torch.long, device=device)
                pieces.append(self.llm.get_input_embeddings()(ids))
        return torch.cat(pieces)

    @torch.no_grad()
    def generate(self, prompts: list[list], eos_id: int, pad_id: int | None = None, max_new_tokens: int = 64,
                 num_beams: int = 1, batch_size: int = 8, no_repeat_ngram_size: int = 0,
                 num_return_sequences: int = 1) -> list[list[int]]:
        """Greedy (``num_beams=1``) or beam search continuation of prompts made of token ids and audio.

        Args:
            prompts: per prompt, a list of parts: lists of token ids or (T,) float audio arrays at 16 kHz, in order,
                e.g. ``[[bos, asr_token], audio]`` for ASR or ``[[bos], audio, ids_of("Answer:")]`` for a spoken
                question.
            eos_id: stops a hypothesis.
            no_repeat_ngram_size: > 0 forbids generating any n-gram of this many tokens twice (a loop breaker).
            num_return_sequences: hypotheses per prompt (at most ``num_beams``), best first: the n-best list.

        Returns:
            The generated token ids of each prompt (EOS and padding removed); with ``num_return_sequences=n``, n
            consecutive lists per prompt.
        """
        was_training = self.training
        self.eval()
        pad_id = eos_id if pad_id is None else pad_id
        results: list[list[int]] = []
        try:
            for i in range(0, len(prompts), batch_size):
                embeds = [self.prompt_embeds(p) for p in prompts[i:i + batch_size]]
                P = max(e.shape[0] for e in embeds)
                D = embeds[0].shape[1]
                x = embeds[0].new_zeros(len(embeds), P, D)
                mask = torch.zeros(len(embeds), P, dtype=torch.long, device=x.device)
                for b, e in enumerate(embeds):  # left padding
                    x[b, P - e.shape[0]:] = e
                    mask[b, P - e.shape[0]:] = 1
                extra = {"no_repeat_ngram_size": int(no_repeat_ngram_size)} if no_repeat_ngram_size else {}
                if num_return_sequences > 1:
                    extra["num_return_sequences"] = int(num_return_sequences)
                if num_beams > 1 and self.prefix_cache and min(e.shape[0] for e in embeds) > 1:  # no empty row
                    extra["past_key_values"] = self.prompt_cache(x[:, :-1], mask[:, :-1], num_beams)
                out = self.llm.generate(inputs_embeds=x, attention_mask=mask, max_new_tokens=max_new_tokens,
                                        num_beams=num_beams, do_sample=False, eos_token_id=eos_id,
                                        pad_token_id=pad_id, early_stopping=True if num_beams > 1 else False, **extra)
                for row in out.tolist():
                    ids = []
                    for t in row:
                        if t == eos_id:
                            break
                        ids.append(t)
                    results.append(ids)
        finally:
            self.train(was_training)
        return results

    prefix_cache = True
    """Beam search reads each prompt once (:meth:`prompt_cache`); False: Hugging Face's own way."""

    def prompt_cache(self, x: torch.Tensor, mask: torch.Tensor, copies: int):
        """The key/value cache of the left-padded prompt embeddings ``x`` (B, P, D) with attention ``mask`` (B, P), each
        row repeated ``copies`` times: continuations read after it share one reading of the prompt. Beam search
        passes its prompts but their last position (Hugging Face's own beam search copies every prompt
        ``num_beams`` times before reading it; the prompt, audio and draft, is most of the positions of an ASR
        decoding), and :mod:`jstip.evaluate.rescore` the candidates' prompt. Position ids as ``generate`` counts
        them (from the attention mask)."""
        parts = self.decoder_and_head()
        model = parts[0] if parts is not None else self.llm
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = model(inputs_embeds=x, attention_mask=mask, position_ids=position_ids, use_cache=True).past_key_values
        cache.batch_repeat_interleave(copies)
        return cache

    def transcribe(self, items, tokenizer, prompt_ids: list[int] | None = None, num_beams: int = 1,
                   max_new_tokens: int = 128, batch_size: int = 8, hypothesis_ids=None) -> list[str]:
        """ASR: transcripts of ``items`` (lhotse cuts, or 16 kHz float arrays).

        Args:
            tokenizer: the tokenizer the model was trained with (special tokens added).
            prompt_ids: ids before the speech; default ``[BOS, <asr>]`` of ``jstip.data.render.Renderer`` (the ASR
                format it trains on).
            hypothesis_ids: frames the first-pass draft (``Renderer.hypothesis_ids`` of the run's rendering; default:
                the default rendering's), for a model with ``model.first_pass``.
        """
        if prompt_ids is None or (hypothesis_ids is None and self.first_pass is not None):
            from jstip.data.render import Renderer

            renderer = Renderer(tokenizer)
            if prompt_ids is None:
                prompt_ids = ([renderer.bos_id] if renderer.bos_id is not None and renderer.cfg.add_bos else []) + \
                    list(renderer.prompt_ids)
            hypothesis_ids = hypothesis_ids or renderer.hypothesis_ids
        audios = [_audio_of(item) for item in items]
        prompts = asr_prompts(self, prompt_ids, audios, hypothesis_ids)
        out = self.generate(prompts, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                            max_new_tokens=max_new_tokens, num_beams=num_beams, batch_size=batch_size)
        return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in out]


def _frame_padded(audio, frame_shift: float) -> torch.Tensor:
    """(T,) float audio cut or zero-padded at its end to a whole number of ``frame_shift`` frames: the speech stream
    of a one-span ASR prompt (``jstip.data.render.speech_stream``)."""
    wav = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(-1)
    want = num_frames(len(wav), frame_shift) * samples_per_frame(frame_shift)
    return nn.functional.pad(wav[:want], (0, max(0, want - len(wav))))


def asr_prompts(model: "SpeechLM", prompt_ids: list[int], audios: list, hypothesis_ids=None,
                drafts: list | None = None) -> list[list]:
    """The ASR prompts of ``audios`` as ``generate`` parts: ``prompt_ids, audio`` and, for a model with a first pass,
    its framed transcript after the audio (``hypothesis_ids``: ``jstip.data.render.Renderer.hypothesis_ids`` of the
    run's rendering; ``drafts``: the first-pass token ids when already computed)."""
    if getattr(model, "first_pass", None) is None:
        return [[prompt_ids, audio] for audio in audios]
    if hypothesis_ids is None:
        raise ValueError("a model with a first pass needs hypothesis_ids (Renderer.hypothesis_ids) for its prompts")
    hyps = model.hypotheses(audios) if drafts is None else drafts
    return [[prompt_ids, audio, hypothesis_ids(hyp)] for audio, hyp in zip(audios, hyps)]


def _audio_of(item) -> np.ndarray:
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return np.asarray(item, dtype=np.float32).reshape(-1)
    from jstip.audio import load_cut_audio

    return load_cut_audio(item)
