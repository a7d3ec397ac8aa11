"""Joint CTC / LLM rescoring of the beam search's n-best list (``jstip evaluate --ctc-weight``).

A model with a first pass (``model.first_pass``) holds two recognisers: the LLM, which writes the transcript, and
the CTC head under it, which drafted a transcript from the audio alone. The LLM knows the language but may paraphrase
or drop what was said; the CTC head is tied to the audio frame by frame and knows little of the language. As hybrid
CTC/attention decoders do (Watanabe et al. 2017; ESPnet's ``ctc_weight``), every candidate is scored by both::

    score(y) = (1 - w) * log P_LLM(y EOS | prompt) + w * log P_CTC(y | audio)

The candidates are the beam's n-best hypotheses and the CTC draft itself; the best score wins. ``log P_LLM`` is the
teacher-forced log-probability of the candidate and EOS after the ASR prompt (audio and draft), ``log P_CTC`` the CTC
forward probability of its tokens (``torch.nn.functional.ctc_loss``). A candidate the CTC head cannot score (a token
outside its vocabulary, or more tokens than the audio has frames) gets ``-inf`` from it, so it wins only when no
candidate can be scored. ``w = 0`` keeps the beam's own best (no rescoring, no extra cost).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CTC_WEIGHT = 0.3
"""Default ``w`` (ESPnet's usual ``ctc_weight``); tune it on dev with ``benchmarks/ctc_weight_sweep.py``."""


def ctc_log_likelihoods(log_probs: torch.Tensor, candidates: Sequence[Sequence[int]],
                        index: Mapping[int, int]) -> list[float]:
    """log P_CTC of each candidate (LLM token ids) under (T, 1 + V') CTC log-probabilities whose index ``k >= 1`` is
    the LLM token ``t`` with ``index[t] == k`` (blank: 0); ``-inf`` where a token has no index or the frames are too
    few."""
    out = [-math.inf] * len(candidates)
    rows = [(i, [index.get(int(t)) for t in c]) for i, c in enumerate(candidates)]
    rows = [(i, t) for i, t in rows if all(k is not None for k in t)]
    if not rows:
        return out
    T = log_probs.shape[0]
    targets = torch.tensor([k for _, t in rows for k in t], dtype=torch.long)
    lengths = torch.tensor([len(t) for _, t in rows], dtype=torch.long)
    lp = log_probs.float()[:, None].expand(T, len(rows), log_probs.shape[1])
    loss = torch.nn.functional.ctc_loss(lp, targets, torch.full((len(rows),), T, dtype=torch.long), lengths,
                                        blank=0, reduction="none", zero_infinity=False)
    for (i, _), value in zip(rows, loss.tolist()):
        out[i] = -value if math.isfinite(value) else -math.inf
    return out


@torch.no_grad()
def llm_log_likelihoods(model, prompt: torch.Tensor, candidates: Sequence[Sequence[int]], eos_id: int) -> list[float]:
    """log P_LLM(candidate EOS | prompt) of each candidate, ``prompt`` the (P, D) embeddings of the ASR prompt
    (:meth:`jstip.model.speechlm.SpeechLM.prompt_embeds`).

    The prompt is read once and its key/value cache shared by the candidates
    (:meth:`jstip.model.speechlm.SpeechLM.prompt_cache`; the prompt, audio and draft, is most of each sequence);
    the output layer runs only at the positions that predict a candidate token. Models whose
    logits are not a plain linear map of the last hidden states (:meth:`SpeechLM.decoder_and_head` is None) read
    prompt and candidate together, one row per candidate."""
    embed = model.llm.get_input_embeddings()
    device = embed.weight.device
    conts = [list(c) + [eos_id] for c in candidates]
    Lc = max(len(c) for c in conts)
    ids = torch.full((len(conts), Lc), eos_id, dtype=torch.long, device=device)
    mask = torch.zeros(len(conts), Lc, dtype=torch.long, device=device)
    for b, c in enumerate(conts):  # right padding
        ids[b, :len(c)] = torch.tensor(c, dtype=torch.long, device=device)
        mask[b, :len(c)] = 1
    was_training = model.training
    model.eval()  # no dropout in a score
    try:
        parts = model.decoder_and_head()
        if parts is None or prompt.shape[0] < 2:
            logits = _logits_whole(model, prompt, embed(ids).to(prompt.dtype), mask)
        else:
            logits = _logits_cached(model, *parts, prompt, embed(ids).to(prompt.dtype), mask)
    finally:
        model.train(was_training)
    # logits (N, Lc, V): row b, column j predicts token j of candidate b
    logp = logits.float().log_softmax(-1).gather(-1, ids[..., None])[..., 0]
    return (logp * mask).sum(-1).tolist()


def _logits_cached(model, decoder, head, prompt: torch.Tensor, conts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n, P = conts.shape[0], prompt.shape[0]
    cache = model.prompt_cache(prompt[None, :-1], mask.new_ones(1, P - 1), n)
    # The last prompt position predicts token 0, candidate position j token j + 1 (the last candidate position only
    # padding's, so it is not read).
    x = torch.cat([prompt[None, -1:].expand(n, 1, -1), conts[:, :-1]], 1)  # (n, Lc, D)
    full_mask = torch.cat([mask.new_ones(n, P), mask[:, :-1]], 1)
    return head(decoder(inputs_embeds=x, attention_mask=full_mask, past_key_values=cache,
                        use_cache=True).last_hidden_state)


def _logits_whole(model, prompt: torch.Tensor, conts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n, P = conts.shape[0], prompt.shape[0]
    x = torch.cat([prompt[None].expand(n, -1, -1), conts], 1)
    full_mask = torch.cat([mask.new_ones(n, P), mask], 1)
    return model.llm(inputs_embeds=x, attention_mask=full_mask, use_cache=False).logits[:, P - 1:-1]


def combine(llm: Sequence[float], ctc: Sequence[float], weight: float) -> int:
    """Index of the best candidate: ``(1 - weight) * llm + weight * ctc``; candidates CTC cannot score count only
    when none can (then the LLM alone decides)."""
    finite = [i for i, c in enumerate(ctc) if math.isfinite(c)]
    if weight <= 0 or not finite:
        return max(range(len(llm)), key=lambda i: llm[i])
    return max(finite, key=lambda i: (1 - weight) * llm[i] + weight * ctc[i])


class Rescorer:
    """Rescoring of one model's n-best lists against its first pass (see the module docstring).

    Args:
        model: a ``SpeechLM`` with ``model.first_pass``.
        weight: ``w``, the CTC share of the score, in (0, 1].
    """

    def __init__(self, model, weight: float = CTC_WEIGHT) -> None:
        if getattr(model, "first_pass", None) is None:
            raise ValueError("CTC rescoring needs a model with a first pass (model.first_pass)")
        if not 0 < weight <= 1:
            raise ValueError(f"the CTC weight must be in (0, 1], got {weight}")
        self.model = model
        self.weight = float(weight)
        ids = model.first_pass.head.token_ids.tolist()
        self.index = {int(t): k + 1 for k, t in enumerate(ids)}
        self.nbest: dict[str, dict] = {}  # cut id -> the candidates, their scores and the choice

    def choose(self, key: str, prompt_parts: list, beams: Sequence[Sequence[int]], draft: Sequence[int],
               log_probs: torch.Tensor, eos_id: int, decode) -> list[int]:
        """The chosen token ids among ``beams`` (best first) and the CTC ``draft``; ``decode`` turns ids into text
        for the n-best record of ``key``."""
        cands, sources = [], []
        for source, ids in [(f"beam{k + 1}", b) for k, b in enumerate(beams)] + [("ctc", draft)]:
            ids = [int(t) for t in ids]
            if ids in cands:
                sources[cands.index(ids)] += f"+{source}"
                continue
            cands.append(ids)
            sources.append(source)
        prompt = self.model.prompt_embeds(prompt_parts)
        llm = llm_log_likelihoods(self.model, prompt, cands, eos_id)
        ctc = ctc_log_likelihoods(log_probs, cands, self.index)
        best = combine(llm, ctc, self.weight)
        self.nbest[key] = {"id": key, "chosen": best, "candidates": [
            {"source": s, "text": decode(c), "llm": round(a, 4), "ctc": round(b, 4) if math.isfinite(b) else None}
            for s, c, a, b in zip(sources, cands, llm, ctc)]}
        return cands[best]

    def summary(self) -> dict:
        """What the rescoring chose: utterances per winning source (``beam1``: the beam's own best, ``beam2``...,
        ``ctc``: the draft), and candidates the CTC head could not score."""
        chosen: dict[str, int] = {}
        for row in self.nbest.values():
            source = row["candidates"][row["chosen"]]["source"].split("+")[0]
            chosen[source] = chosen.get(source, 0) + 1
        unscored = sum(c["ctc"] is None for row in self.nbest.values() for c in row["candidates"])
        return {"utterances": len(self.nbest), "chosen": dict(sorted(chosen.items())),
                "candidates": sum(len(r["candidates"]) for r in self.nbest.values()), "ctc_unscorable": unscored}

    def write(self, path: str | Path) -> None:
        """The n-best lists as JSON lines (``benchmarks/ctc_weight_sweep.py`` re-chooses from them for any weight)."""
        with open(path, "w", encoding="utf-8") as f:
            for key in sorted(self.nbest):
                f.write(json.dumps(self.nbest[key], ensure_ascii=False) + "\n")


def rescorer_for(model, num_beams: int, weight: float) -> Rescorer | None:
    """The :class:`Rescorer` of ``jstip evaluate`` / ``jstip transcribe --ctc-weight``: None for weight 0, and (with
    a warning) where rescoring cannot apply: greedy decoding (no n-best) or a model without a first pass."""
    if weight <= 0:
        return None
    if num_beams <= 1 or getattr(model, "first_pass", None) is None:
        log.warning("--ctc-weight %g ignored: CTC rescoring needs a model with a first pass and --beam > 1", weight)
        return None
    return Rescorer(model, weight)


def rechoose(row: Mapping, weight: float) -> str:
    """The text an n-best record of :meth:`Rescorer.write` gives at another ``weight``."""
    cands = row["candidates"]
    ctc = [-math.inf if c["ctc"] is None else c["ctc"] for c in cands]
    return cands[combine([c["llm"] for c in cands], ctc, weight)]["text"]


__all__ = ["CTC_WEIGHT", "Rescorer", "combine", "ctc_log_likelihoods", "llm_log_likelihoods", "rechoose",
           "rescorer_for"]
