"""The data module: lhotse cut sets -> ``jstip.data`` loaders of ``SpeechLMBatch``, one loader per epoch, resumable.

The training cuts are read lazily (manifests or Shar directories, :mod:`jstip.data.sources`). The position saved with
every checkpoint is (epoch, batches consumed in that epoch); a resumed run rebuilds the epoch's loader and replays the
sampler past those batches, so the next batch is the one the killed run would have trained on, whatever the number of
workers. Under DDP every rank reads its own cuts (its Shar shards, or its share of a manifest's cuts), dealt before
the sampler, and :class:`EvenEpoch` keeps the ranks in step; dev batches are shared out by the lhotse
sampler's ``world_size``/``rank``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)


def data_config(cfg):
    """``jstip.data.dataset.DataConfig`` from the ``data`` section of a run config (file paths ignored).

    Task weights given in the config replace the defaults whole: ``{asr: 1.0}`` means ASR only.
    """
    from omegaconf import OmegaConf

    from jstip.data.dataset import as_data_config

    skip = {"train_cuts", "dev_cuts", "tts_cuts", "text_sources", "dev_max_batches", "dev_weights", "exclude_ids"}
    given = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in skip}
    return as_data_config(given)


def load_cuts(path, rejects=None):
    """A cut set from a manifest path, or from a list of manifest paths (their cuts combined, in order), or None.
    With ``rejects`` (a ``RejectLog``) a manifest line that cannot be read is written there (FILE:LINE, reason) and
    skipped (:func:`jstip.manifests.read_cuts`).

    Raises:
        FileNotFoundError: a manifest is missing (named).
        ValueError: two manifests of a list share a cut id (named), which would make sampling and resuming ambiguous.
    """
    from lhotse import CutSet

    if path is None:
        return None
    if not isinstance(path, (str, Path)):  # a list (or an OmegaConf ListConfig) of manifests
        paths = [Path(str(p)) for p in path]
        if not paths:
            return None
        parts = [load_cuts(p, rejects) for p in paths]
        seen: dict[str, Path] = {}
        for p, cuts in zip(paths, parts):
            for cut_id in cuts.ids:
                if cut_id in seen:
                    raise ValueError(f"cut id {cut_id} is in both {seen[cut_id]} and {p}: cut ids of combined "
                                     "manifests must be unique")
                seen[cut_id] = p
        return CutSet.from_cuts(c for cuts in parts for c in cuts).to_eager()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cut manifest not found: {path} (make one with `jstip prepare ...`)")
    if rejects is not None:
        from jstip.manifests import read_cuts

        return read_cuts(path, rejects)
    return CutSet.from_file(path).to_eager()


def training_texts(cuts, text_sources) -> list[str]:
    """Transcripts and text-source sentences: what a tokenizer trained for a tiny LLM sees."""
    from jstip.data.dataset import read_text_sources

    texts = [s.text for c in cuts for s in c.supervisions if s.text]
    return texts + read_text_sources(list(text_sources or []))


class SpeechDataModule(L.LightningDataModule):
    """Train/dev loaders of ``SpeechLMBatch`` for a run config's ``data`` section.

    Args:
        cfg: the ``data`` section (``train_cuts``, ``dev_cuts``, ``tts_cuts``, ``text_sources`` and ``DataConfig``
            fields).
        tokenizer: the LLM tokenizer (gains the rendering special tokens).
        seed: drives the sampler's shuffle and every interleaving choice.
    """

    def __init__(self, cfg, tokenizer, seed: int = 0, train_cuts=None, rejects=None, hypotheses=None) -> None:
        super().__init__()
        self.hypotheses = hypotheses  # cut id -> first-pass token ids (model.first_pass), or None
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.seed = int(seed)
        self.data_cfg = data_config(cfg)
        from jstip.data.sources import TrainCuts

        if train_cuts is None:
            train_cuts = TrainCuts.open(cfg.train_cuts, rejects)
        elif not isinstance(train_cuts, TrainCuts):  # a CutSet given by the caller, used as it is
            train_cuts = TrainCuts.of(train_cuts)
        self.train_cuts = train_cuts
        self.tts_cuts = load_cuts(cfg.get("tts_cuts"), rejects)
        self.dev_cuts = load_cuts(cfg.get("dev_cuts"), rejects)
        if rejects is not None:
            # TTS and dev cuts are screened like the train cuts; audio that fails while a batch loads is appended
            # to the same file.
            from jstip.cuts import screen_cuts

            md = self.data_cfg.max_duration
            if self.tts_cuts is not None:
                self.tts_cuts = screen_cuts(self.tts_cuts, rejects, md, "tts")
            if self.dev_cuts is not None:
                self.dev_cuts = screen_cuts(self.dev_cuts, rejects, md, "dev")
            if self.data_cfg.rejects_path is None:
                self.data_cfg.rejects_path = str(rejects.path)
        self.text_sources = [str(s) for s in (cfg.get("text_sources") or [])]

    def _world(self) -> tuple[int | None, int | None]:
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.world_size <= 1:
            return None, None
        return trainer.world_size, trainer.global_rank

    def train_dataloader(self):
        from jstip.data.dataset import build_dataloader

        module = self.trainer.lightning_module
        epoch = int(self.trainer.current_epoch)
        module.restore_rng(before_epoch=epoch)  # a checkpoint written as its epoch ended: back before this draw
        skip = 0
        pos = module.resume_position
        if pos is not None and int(pos.get("epoch", -1)) == epoch:
            skip = int(pos.get("batches_done", 0))
            log.info("resuming epoch %d after %d batches", epoch, skip)
        module.resume_position = None
        module.batches_done = skip
        world_size, rank = self._world()
        cuts = self.train_cuts.epoch(epoch, self.seed, world_size, rank)  # this rank's cuts: no sampler split
        loader = build_dataloader(self.data_cfg, cuts, self.tokenizer, self.text_sources, epoch=epoch, seed=self.seed,
                                  tts_cuts=self.tts_cuts, skip_batches=skip, hypotheses=self.hypotheses)
        return loader if world_size is None else EvenEpoch(loader)

    def val_dataloader(self):
        from omegaconf import OmegaConf

        from jstip.data.dataset import build_dataloader

        if self.dev_cuts is None:
            return []
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(self.data_cfg), {"shuffle": False}))
        if self.cfg.get("dev_weights"):
            cfg.weights = dict(self.cfg.dev_weights)
        world_size, rank = self._world()
        return build_dataloader(cfg, self.dev_cuts, self.tokenizer, self.text_sources, epoch=0, seed=self.seed,
                                world_size=world_size, rank=rank, hypotheses=self.hypotheses)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return None if batch is None else batch.to(device)


class EvenEpoch:
    """Iterate one rank's loader while every rank still has a batch (one all-reduce per step).

    Ranks that read different shards end an epoch a few batches apart; without this the rank that ends first would
    leave the others waiting in their gradient all-reduce forever.
    """

    def __init__(self, loader) -> None:
        self.loader = loader
        self.sampler = getattr(loader, "sampler", None)
        self.dataset = getattr(loader, "dataset", None)

    def __iter__(self) -> Iterator:
        import torch
        import torch.distributed as dist

        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        it = iter(self.loader)
        while True:
            try:
                batch, have = next(it), 1
            except StopIteration:
                batch, have = None, 0
            flag = torch.tensor([have], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            if int(flag.item()) == 0:
                if have:
                    log.info("rank %d: epoch ended by another rank with batches left here", dist.get_rank())
                return
            yield batch
