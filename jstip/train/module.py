"""The LightningModule of jstip: a ``SpeechLM``, the parts that train, optimiser and schedule."""

from __future__ import annotations

import lightning as L
import torch

from jstip.conf import trainable_parts
from jstip.model.speechlm import SpeechLM


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the run stops and keeps its last good checkpoint."""


def apply_lora(model: SpeechLM, lora_cfg) -> None:
    """Wrap the LLM with LoRA adapters (peft); only the LoRA weights of the LLM stay trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=int(lora_cfg.get("r", 8)), lora_alpha=int(lora_cfg.get("alpha", 16)),
                        lora_dropout=float(lora_cfg.get("dropout", 0.0)),
                        target_modules=list(lora_cfg.get("target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"])),
                        bias="none", task_type="CAUSAL_LM")
    model.llm = get_peft_model(model.llm, config)


def set_trainable(model: SpeechLM, trainable: tuple[str, ...], lora: bool = False) -> None:
    """Freeze every part not in ``trainable`` (``encoder``, ``adapter``, ``llm``). With LoRA the LLM's trainable
    weights are its LoRA weights (peft already froze the rest)."""
    for name in ("encoder", "adapter", "llm"):
        if name == "llm" and lora:
            continue
        for p in getattr(model, name).parameters():
            p.requires_grad_(name in trainable)


def lr_lambda(warmup_steps: int, max_steps: int, min_ratio: float = 0.0):
    """Linear warm-up to 1 over ``warmup_steps``, then linear decay to ``min_ratio`` at ``max_steps``."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if max_steps <= warmup_steps:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return max(min_ratio, 1.0 - (1.0 - min_ratio) * progress)

    return f


class SpeechLMModule(L.LightningModule):
    """Trains a ``SpeechLM`` on ``SpeechLMBatch`` batches.

    Args:
        model: the speech-LLM (LoRA already applied when the run asks for it).
        trainable: the parts that train (:func:`trainable_parts`); the others are frozen and kept in eval mode, so
            even their batch-norm statistics stay bit-identical.
        optim: ``lr``, ``weight_decay``, ``betas``, ``warmup_steps``, ``max_steps``, ``min_lr_ratio``.
        lora: whether ``model.llm`` is a peft LoRA model.
        config: the run's resolved config, stored in every checkpoint (``jstip.train.load_checkpoint`` reads it).
        inherited_keys: the state-dict keys of the ``model.init_from`` checkpoint (None: no such checkpoint); a
            frozen weight it saved is saved here too (``jstip.train.frozen.keys_to_leave_out``).
        save_frozen: also save the frozen encoder and LLM weights (default: left out and fingerprinted, see
            ``jstip.train.frozen``).
    """

    def __init__(self, model: SpeechLM, trainable: str | tuple[str, ...] = "adapter_only", optim: dict | None = None,
                 lora: bool = False, config: dict | None = None,
                 save_frozen: bool = False, inherited_keys: set[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.optim = dict(optim or {})
        self.lora = lora
        self.trainable = trainable_parts(trainable)
        self.config = config or {}
        self.save_frozen = bool(save_frozen)
        self.inherited_keys = inherited_keys
        self._frozen = None
        set_trainable(model, self.trainable, lora)
        # Data position: batches of the current epoch the loop has consumed (the data module skips them on resume).
        self.batches_done = 0
        self.resume_position: dict | None = None
        self._rng_to_restore: dict | None = None
        self._resumed_position: dict | None = None
        self.train()

    def on_fit_start(self) -> None:
        self.train()  # Lightning keeps the modes it is given; this applies the frozen parts' eval mode

    # Frozen parts stay in eval mode (dropout off, batch-norm statistics untouched).
    def train(self, mode: bool = True):
        super().train(mode)
        for name in ("encoder", "adapter", "llm"):
            part = getattr(self.model, name)
            if not any(p.requires_grad for p in part.parameters()):
                part.eval()
        return self

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Restored here, not at load time: building the loaders draws from the global generator in between.
        self.restore_rng()
        self.batches_done += 1

    def restore_rng(self, before_epoch: int | None = None) -> None:
        """Put back the random state saved with the checkpoint this run resumes from (once).

        With ``before_epoch`` (called as the loader of that epoch is built): only when the checkpoint was written at
        the end of an earlier epoch. The run it continues built this loader after saving, drawing from the global
        generator, so the state goes back before the draw, not after it.
        """
        if self._rng_to_restore is None:
            return
        if before_epoch is not None:
            saved_in = (self.resume_position or self._resumed_position or {}).get("epoch")
            if saved_in is None or int(saved_in) >= before_epoch:
                return
        _set_rng(self._rng_to_restore)
        self._rng_to_restore = None

    def training_step(self, batch, batch_idx: int):
        if batch is None:  # nothing usable in this batch (the data module logged why)
            if self.trainer.world_size > 1:
                # Skipping on one rank only would leave the others waiting in the gradient all-reduce.
                return sum(p.sum() * 0.0 for p in self.model.parameters() if p.requires_grad)
            return None
        out = self.model(batch, compute_logits=False)
        loss = out.loss
        if not torch.isfinite(loss).all():
            ckpt = getattr(self.trainer, "checkpoint_callback", None)
            # With monitor="step", mode="max", the "best" checkpoint is the newest step checkpoint.
            last = getattr(ckpt, "best_model_path", "") or getattr(ckpt, "last_model_path", "") or "none yet"
            cuts = sorted({c for c in batch.cut_ids if c})
            resume = ("run the same command again to resume from it" if last != "none yet" else
                      "no checkpoint was written yet, so the same command starts again from step 0")
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, batch "
                f"{self.batches_done} of the epoch, examples {batch.example_ids[:4]}...). The run stops here; the "
                f"last good checkpoint is {last}: {resume}. Lower the learning rate, or, if one of this batch's "
                f"cuts is the cause, leave them out with +data.exclude_ids=[{','.join(cuts)}].")
        n_pos = int((batch.document_ids >= 0).sum())
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=max(1, out.num_tokens))
        self._last_stats = {"loss": float(loss.detach()), "tokens": out.num_tokens, "positions": n_pos, "speech": int(batch.speech_mask.sum()),
                            "ids": list(batch.example_ids)}
        return loss

    def validation_step(self, batch, batch_idx: int):
        if batch is None:
            return None
        out = self.model(batch, compute_logits=False)
        self.log("dev/loss", out.loss.detach(), batch_size=max(1, out.num_tokens), sync_dist=True)
        return out.loss

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        wd = float(self.optim.get("weight_decay", 0.01))
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=float(self.optim.get("lr", 1e-4)), betas=tuple(self.optim.get("betas", (0.9, 0.98))))
        max_steps = int(self.optim.get("max_steps") or self.trainer.max_steps or 0)
        if max_steps <= 0:
            max_steps = 10 ** 9
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lr_lambda(int(self.optim.get("warmup_steps", 0)), max_steps, float(self.optim.get("min_lr_ratio", 0.0))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _frozen_record(self) -> tuple[list[str], str]:
        # Frozen weights never change during a run: their fingerprint is computed once.
        if getattr(self, "_frozen", None) is None:
            from jstip.train.frozen import fingerprint, frozen_pretrained_keys, keys_to_leave_out, pretrained_parts

            parts = pretrained_parts(self.config.get("model")) if not self.save_frozen and self.config else ()
            keys = keys_to_leave_out(frozen_pretrained_keys(self.model, parts), self.inherited_keys)
            self._frozen = (keys, fingerprint(self.state_dict(), keys) if keys else "")
        return self._frozen

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["jstip"] = {"config": self.config, "trainable": list(self.trainable), "lora": self.lora,
                               "data": {"epoch": int(self.current_epoch), "batches_done": int(self.batches_done)},
                               "rng": _get_rng()}
        keys, fp = self._frozen_record()
        if keys and "state_dict" in checkpoint:
            from jstip.train.frozen import META_KEY, strip_frozen

            checkpoint["state_dict"], checkpoint["jstip"][META_KEY] = strip_frozen(checkpoint["state_dict"], keys, fp)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from jstip.train.frozen import META_KEY, restore_frozen

        meta = checkpoint.get("jstip", {})
        if "state_dict" in checkpoint:
            checkpoint["state_dict"] = restore_frozen(checkpoint["state_dict"], meta.get(META_KEY), self.state_dict(),
                                                      "the checkpoint to resume from")
        self.resume_position = dict(meta.get("data", {})) or None
        self._resumed_position = self.resume_position
        self._rng_to_restore = meta.get("rng")



def _get_rng() -> dict:
    import random

    import numpy as np

    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
