"""Joint CTC/LLM rescoring (jstip.evaluate.rescore): the CTC likelihood and the choice, checked against brute force."""

from __future__ import annotations

import itertools
import math

import pytest
import torch


def brute_force_ctc(log_probs: torch.Tensor, labels: list[int]) -> float:
    """log of the sum over every frame labelling that collapses to ``labels`` (blank 0): the definition of CTC."""
    T, C = log_probs.shape
    total = -math.inf
    for path in itertools.product(range(C), repeat=T):
        out, prev = [], 0
        for k in path:
            if k != prev and k != 0:
                out.append(k)
            prev = k
        if out == labels:
            total = float(torch.logaddexp(torch.tensor(total),
                                          sum(log_probs[t, k] for t, k in enumerate(path))))
    return total


def test_ctc_log_likelihood_is_the_sum_over_alignments_and_minus_inf_where_it_cannot_score():
    from jstip.evaluate.rescore import ctc_log_likelihoods

    torch.manual_seed(0)
    log_probs = torch.randn(4, 3).log_softmax(-1)  # blank + two tokens
    index = {100: 1, 200: 2}  # LLM token id -> head index
    cands = [[100], [100, 200], [200, 200], [], [100, 300], [100, 200, 100, 200, 100]]
    got = ctc_log_likelihoods(log_probs, cands, index)
    for cand, value in zip(cands[:4], got[:4]):
        assert value == pytest.approx(brute_force_ctc(log_probs, [index[t] for t in cand]), abs=1e-4)
    assert got[4] == -math.inf  # token 300 is outside the head's vocabulary
    assert got[5] == -math.inf  # five labels (with a repeat needing a blank) do not fit four frames


def test_the_choice_mixes_both_scores_and_falls_back_to_the_llm_where_ctc_cannot_score():
    from jstip.evaluate.rescore import combine, rechoose

    llm, ctc = [-1.0, -3.0, -2.0], [-10.0, -2.0, -math.inf]
    assert combine(llm, ctc, 0.0) == 0  # the LLM alone
    assert combine(llm, ctc, 0.5) == 1  # 0.5 * (-3 - 2) = -2.5 beats 0.5 * (-1 - 10) = -5.5
    assert combine([-1.0, -0.5], [-math.inf, -math.inf], 0.5) == 1  # nothing CTC can score: the LLM decides
    assert combine([-5.0, -0.5], [-1.0, -math.inf], 0.1) == 0  # an unscorable candidate loses to a scorable one
    row = {"id": "u", "chosen": 0, "candidates": [
        {"source": "beam1", "text": "a", "llm": -1.0, "ctc": -10.0},
        {"source": "ctc", "text": "b", "llm": -3.0, "ctc": -2.0}]}
    assert rechoose(row, 0.1) == "a" and rechoose(row, 0.9) == "b"


def test_a_weight_outside_0_1_or_a_model_without_first_pass_is_refused():
    from jstip.evaluate.rescore import Rescorer, rescorer_for

    class NoFirstPass:
        first_pass = None

    with pytest.raises(ValueError, match="first pass"):
        Rescorer(NoFirstPass(), 0.3)
    assert rescorer_for(NoFirstPass(), 4, 0.3) is None  # warned and ignored, as for greedy decoding
    assert rescorer_for(NoFirstPass(), 4, 0.0) is None
