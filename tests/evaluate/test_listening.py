"""The "does it listen" figure: pairing by duration, and the loss with own vs other audio on a real (tiny) model."""

from __future__ import annotations

import pytest


def test_swap_partners_pairs_neighbours_by_duration():
    from jstip.evaluate.listening import swap_partners

    durations = [3.0, 1.0, 2.9, 1.1, 5.0]
    partner = swap_partners(durations)
    assert partner == [2, 3, 0, 1, 0]  # 1.0<->1.1, 2.9<->3.0, the odd 5.0 with 3.0 (index 0)
    assert all(partner[i] != i for i in range(len(durations)))
    assert swap_partners([1.0]) == [0]


def test_listening_figure_compares_own_and_other_audio(mini_corpus):
    from lhotse import CutSet

    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.evaluate.listening import listening_figure
    from jstip.model.build import build_speechlm
    from jstip.model.tokenizer import build_tokenizer

    cuts = CutSet.from_file(mini_corpus / "train" / "cuts.jsonl.gz").to_eager()
    tok = build_tokenizer([c.supervisions[0].text for c in cuts], 300)
    add_special_tokens(tok, RenderConfig())
    model = build_speechlm({"encoder": {"dropout": 0.0}, "adapter": {"hidden": 32}}, tok)
    fig = listening_figure(model, tok, {}, cuts, max_utterances=6, batch_size=4)
    assert fig["utterances"] == 6 and fig["tokens"] > 0
    assert fig["rise"] == pytest.approx(fig["loss_other"] - fig["loss_own"])
    # An untrained model does not listen: the two losses are close (a trained one rises by nats: the demo's figure).
    assert abs(fig["rise"]) < 1.0
