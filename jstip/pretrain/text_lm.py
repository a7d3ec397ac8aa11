"""Text pretraining of the tiny LLM: a byte-level BPE and a tiny Llama trained on plain sentences, on the CPU.

Each sentence is one document, ``<s> tokens </s>``, as :mod:`jstip.data.render` lays out a text document for the
speech-LLM (BOS first, EOS in the loss), so the prior has learnt exactly the framing it will see later. Batches are
padded sentences (no packing across sentences). The result is a Hugging Face folder (model + tokenizer) that
``jstip.model.llm.load_llm`` and ``jstip.model.tokenizer.load_tokenizer`` read, i.e. ``jstip train
model.llm.kind=hf model.llm.path=DIR model.tokenizer.kind=hf model.tokenizer.path=DIR``.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch


def read_texts(paths) -> list[str]:
    """Sentences from text files (one per line, blank lines skipped) or lhotse cut manifests (``*.jsonl.gz``: the
    supervision texts, e.g. the ASR transcripts).

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: a file holds no text.
    """
    lines: list[str] = []
    if not paths:
        raise ValueError("no text given: pass --text FILE (one sentence per line)")
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"text file not found: {path}")
        if path.name.endswith((".jsonl.gz", ".jsonl")):
            from lhotse import CutSet

            found = [s.text.strip() for c in CutSet.from_file(path) for s in c.supervisions
                     if s.text and s.text.strip()]
        else:
            with open(path, encoding="utf-8") as f:
                found = [line.strip() for line in f if line.strip()]
        if not found:
            raise ValueError(f"{path}: no text in it (expected one sentence per line)")
        lines.extend(found)
    return lines


def llm_sizes(config: str | Path = "tiny") -> dict:
    """``model.llm`` sizes and ``model.tokenizer.vocab_size`` of a packaged speech-LLM config or a YAML file."""
    from omegaconf import OmegaConf

    import jstip.conf

    path = Path(config)
    if not path.suffix:
        path = Path(jstip.conf.__file__).parent / f"{config}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"config not found: {config} (give a packaged name like 'tiny' or a YAML file)")
    cfg = OmegaConf.load(path)
    llm = OmegaConf.to_container(cfg.model.llm) if "model" in cfg and "llm" in cfg.model else {}
    keys = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size")
    sizes = {k: int(llm[k]) for k in keys if llm.get(k) is not None}
    tok = cfg.model.get("tokenizer", {}) if "model" in cfg else {}
    sizes["vocab_size"] = int(tok.get("vocab_size") or 512)
    return sizes


def split_held_out(lines: list[str], fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held-out): a seeded share of the *distinct* sentences is held out, and every copy of a held-out
    sentence leaves the training side (templated text repeats sentences; a held-out line also seen in training
    would flatter the perplexity). At least one held-out sentence when there are two or more distinct ones."""
    distinct = list(dict.fromkeys(lines))
    random.Random(seed).shuffle(distinct)
    n_held = min(len(distinct) - 1, max(1, round(fraction * len(distinct)))) if fraction > 0 else 0
    held = set(distinct[:max(0, n_held)])
    return [l for l in lines if l not in held], [l for l in dict.fromkeys(lines) if l in held]


def encode_sentences(tokenizer, lines: list[str]) -> list[list[int]]:
    """``[bos] + ids + [eos]`` per sentence (the text-document framing of :mod:`jstip.data.render`)."""
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    return [[tokenizer.bos_token_id, *row, tokenizer.eos_token_id] for row in ids]


def collate(rows: list[list[int]], pad_id: int, max_len: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids (B, L), attention_mask (B, L)); sentences longer than ``max_len`` are cut."""
    rows = [r[:max_len] for r in rows]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


class SentenceBatches(torch.utils.data.IterableDataset):
    """Endless shuffled batches of ``batch_size`` sentences (epoch after epoch, a new order each)."""

    def __init__(self, rows: list[list[int]], batch_size: int, pad_id: int, seed: int = 0) -> None:
        self.rows, self.batch_size, self.pad_id, self.seed = rows, batch_size, pad_id, seed

    def __iter__(self):
        rng, epoch = random.Random(self.seed), 0
        while True:
            order = list(range(len(self.rows)))
            rng.shuffle(order)
            for i in range(0, len(order), self.batch_size):
                yield collate([self.rows[j] for j in order[i: i + self.batch_size]], self.pad_id)
            epoch += 1


def _lm_loss(llm, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token NLL over the non-pad targets and their count."""
    logits = llm(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (B, L-1, V)
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                            ignore_index=-100, reduction="sum")
    return nll, int((targets != -100).sum())


@torch.no_grad()
def perplexity(llm, rows: list[list[int]], pad_id: int, batch_size: int = 64) -> float | None:
    """Per-token perplexity of ``rows`` (targets = every token after BOS, EOS included); None if no rows."""
    if not rows:
        return None
    was_training = llm.training
    llm.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        nll, n = _lm_loss(llm, *collate(rows[i: i + batch_size], pad_id))
        total, count = total + float(nll), count + n
    llm.train(was_training)
    return math.exp(total / max(1, count))


def _lightning_module(llm, lr: float, weight_decay: float):
    import lightning as L

    class TextLM(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.llm = llm

        def training_step(self, batch, batch_idx):
            nll, n = _lm_loss(self.llm, *batch)
            return nll / max(1, n)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)

    return TextLM()


@dataclass
class TextLMResult:
    """What :func:`train_text_lm` produced."""

    out_dir: Path
    steps: int
    elapsed: float
    held_out_ppl: float | None
    untrained_ppl: float | None


def train_text_lm(texts, out_dir: str | Path, max_minutes: float | None = None, max_steps: int | None = None,
                  vocab_size: int | None = None, config: str | Path = "tiny", lr: float = 3e-3, batch_size: int = 32,
                  warmup_steps: int = 20, weight_decay: float = 0.01, held_out_fraction: float = 0.02, seed: int = 0,
                  num_threads: int | None = None, progress: bool = True) -> TextLMResult:
    """Train a byte-level BPE and a tiny Llama on sentences; save both into ``out_dir`` (``save_pretrained``).

    Args:
        texts: text files (one sentence per line) and/or cut manifests (their transcripts).
        out_dir: gets ``config.json``, the weights, ``tokenizer.json`` (+ its config), ``metrics.jsonl`` (``step``,
            ``loss``, ``lr``, ``elapsed`` s, ``cpu_s``, ``items`` = sentences seen) and ``perplexity.json``
            (held-out per-token perplexity after training and of the untrained model).
        max_minutes / max_steps: training budget; the first reached stops training (at least one needed).
        vocab_size: BPE vocabulary size (default: the config's ``model.tokenizer.vocab_size``).
        config: packaged config name (``tiny``) or YAML path whose ``model.llm`` gives the LLM sizes.
        held_out_fraction: share of sentences kept out of training (and out of the tokenizer) for the perplexity.

    Returns:
        A :class:`TextLMResult`.
    """
    import lightning as L
    from tqdm.auto import tqdm

    from jstip.model.llm import tiny_llm
    from jstip.model.tokenizer import build_tokenizer
    from jstip.pretrain.schedule import BudgetSchedule, StepLog, start_fresh

    if max_minutes is None and max_steps is None:
        raise ValueError("give a training budget: max_minutes or max_steps")
    if num_threads:
        torch.set_num_threads(int(num_threads))
    lines = read_texts(texts)
    sizes = llm_sizes(config)
    vocab_size = int(vocab_size or sizes.pop("vocab_size"))
    sizes.pop("vocab_size", None)
    train_lines, held_lines = split_held_out(lines, held_out_fraction, seed)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start_fresh(out_dir)
    tokenizer = build_tokenizer(train_lines, vocab_size)
    L.seed_everything(seed, verbose=False)
    llm = tiny_llm(len(tokenizer), seed=seed, **sizes)
    for name in ("bos", "eos", "pad"):
        setattr(llm.config, f"{name}_token_id", getattr(tokenizer, f"{name}_token_id"))
    pad_id = tokenizer.pad_token_id
    train_rows, held_rows = encode_sentences(tokenizer, train_lines), encode_sentences(tokenizer, held_lines)
    untrained_ppl = perplexity(llm, held_rows, pad_id)

    module = _lightning_module(llm, lr, weight_decay)
    loader = torch.utils.data.DataLoader(SentenceBatches(train_rows, batch_size, pad_id, seed), batch_size=None)
    schedule = BudgetSchedule(lr, warmup_steps=warmup_steps, max_steps=max_steps,
                              max_seconds=None if max_minutes is None else 60.0 * max_minutes)
    bar = tqdm(total=max_steps, desc="pretrain text-lm", unit="step", disable=not progress)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=-1 if max_steps is None else max_steps,
                        max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        gradient_clip_val=1.0,
                        callbacks=[schedule, StepLog(out_dir, schedule, every=10, progress_bar=bar)])
    trainer.fit(module, train_dataloaders=loader)
    bar.close()

    held_out_ppl = perplexity(llm, held_rows, pad_id)
    tmp = out_dir / ".save.tmp"
    llm.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    for f in tmp.iterdir():
        os.replace(f, out_dir / f.name)
    tmp.rmdir()
    result = TextLMResult(out_dir, trainer.global_step, schedule.elapsed(), held_out_ppl, untrained_ppl)
    (out_dir / "perplexity.json").write_text(json.dumps({
        "held_out_ppl": held_out_ppl, "untrained_ppl": untrained_ppl, "per": "token (BOS excluded, EOS included)",
        "held_out_sentences": len(held_rows), "held_out_seen_in_training": len(set(held_lines) & set(train_lines)),
        "held_out_tokens": sum(len(r) - 1 for r in held_rows),
        "train_sentences": len(train_rows), "vocab_size": len(tokenizer), "steps": result.steps,
        "elapsed_s": round(result.elapsed, 1), "lr": lr, "batch_size": batch_size,
        "parameters": sum(p.numel() for p in llm.parameters())}, indent=1) + "\n")
    return result
