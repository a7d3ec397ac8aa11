"""Scoring: hypotheses against references, for any system's output (`jstip score`) and jstip's own (`jstip evaluate`).

- :mod:`jstip.scoring.normalize`: the text normalisers (jstip's ``english-v2``, Whisper's English normaliser);
- :mod:`jstip.scoring.edit_distance`: edit-distance alignment (sclite weights) and error counts;
- :mod:`jstip.scoring.entity_match`: is an entity's surface form at its aligned place (the entity error rate);
- :mod:`jstip.scoring.score`: ``score()``, the one place pairs become the figures of ``metrics.json``;
- :mod:`jstip.scoring.files`: the reference and hypothesis files `jstip score` reads;
- :mod:`jstip.scoring.stats`: bootstrap intervals.

Nothing here imports torch, lhotse (but for reading references from a cut manifest) or another jstip stage.
"""
