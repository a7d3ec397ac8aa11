"""``jstip evaluate``: decode a test set with a training checkpoint, score it, and run the spoken tasks."""

from __future__ import annotations

import click


def evaluate(checkpoint: str, cuts_path: str, out_dir: str, num_beams: int = 1, batch_size: int = 8,
             max_utterances: int | None = None, max_new_tokens: int = 256, spoken_tasks: bool = True,
             voice: str = "espeak:en-us+f3@160", spoken_items: int | None = None, shots: int = 5,
             response_tokens: int = 128, normalizer: str = "english-v1", device: str | None = None,
             threads: int | None = None, progress: bool = True) -> dict:
    """Decode ``cuts_path`` with ``checkpoint`` and write ``out_dir/{metrics.json,hyps.jsonl}``.

    Also writes ``out_dir/train/metrics.jsonl`` (the run's training log up to the checkpoint's step, for the learning
    curves of ``jstip report``), ``out_dir/spoken_tasks/<task>.jsonl`` (per-item results) and
    ``out_dir/rejected.jsonl`` (cuts whose audio could not be read, if any).

    Args:
        device: ``cpu``, ``cuda``, ``cuda:1``...; None: the first GPU if there is one, else the CPU.
        threads: torch CPU threads; None: the run config's ``num_threads`` (else torch's default). On a busy CPU,
            more threads than free cores makes decoding many times slower.

    Returns:
        The ``metrics.json`` object.
    """
    import json
    import logging
    from pathlib import Path

    import torch
    from lhotse import CutSet

    from jstip.evaluate.decode import asr_prompt_ids, bos_ids, decode_cuts, training_log_rows
    from jstip.evaluate.scoring import refs_from_cuts, score, write_scores
    from jstip.rejects import RejectLog
    from jstip.train.run import load_checkpoint

    log = logging.getLogger("jstip.evaluate")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = Path(checkpoint)
    model, tokenizer, config = load_checkpoint(ckpt_path)
    threads = threads or config.get("num_threads")
    if threads:
        torch.set_num_threads(int(threads))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    meta = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    step = meta.get("global_step")
    del meta

    cuts = CutSet.from_file(cuts_path)
    if max_utterances is not None:
        cuts = cuts.subset(first=max_utterances)
    cuts = cuts.to_eager()
    refs = refs_from_cuts(cuts)
    rejects = RejectLog(out / "rejected.jsonl", "evaluate")
    hyps = decode_cuts(model, tokenizer, cuts, asr_prompt_ids(tokenizer, config), num_beams=num_beams,
                       batch_size=batch_size, max_new_tokens=max_new_tokens, rejects=rejects, progress=progress)
    result = score(refs, hyps, normalizer=normalizer)

    if spoken_tasks:
        from jstip.evaluate.spoken_eval import run_spoken_tasks

        summary, per_item = run_spoken_tasks(model, tokenizer, bos_ids(tokenizer, config), voice=voice,
                                             limit=spoken_items, shots=shots, max_new_tokens=response_tokens,
                                             batch_size=batch_size, progress=progress)
        result.update(summary)
        task_dir = out / "spoken_tasks"
        task_dir.mkdir(exist_ok=True)
        for name, rows in per_item.items():
            with open(task_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")

    exp_dir = ckpt_path.resolve().parent.parent
    log_rows = training_log_rows(exp_dir, step)
    train_log = None
    if log_rows:
        train_log = out / "train" / "metrics.jsonl"
        train_log.parent.mkdir(exist_ok=True)
        train_log.write_text("\n".join(log_rows) + "\n", encoding="utf-8")
    else:
        log.warning("no training log at %s: the report will have no learning curve", exp_dir / "metrics.jsonl")
    result["evaluate"] = {
        "checkpoint": str(ckpt_path.resolve()), "step": step, "cuts": str(Path(cuts_path).resolve()),
        "decoding": "greedy" if num_beams == 1 else f"beam search, {num_beams} beams",
        "num_beams": num_beams, "max_new_tokens": max_new_tokens, "max_utterances": max_utterances,
        "device": str(device),
        "training_log": str(exp_dir / "metrics.jsonl") if log_rows else None,
        "training_log_copy": str(train_log) if train_log else None,
        "spoken_tasks": {"voice": voice, "items_per_task": spoken_items, "shots": shots,
                         "response_tokens": response_tokens} if spoken_tasks else None,
    }
    write_scores(result, out)
    return {k: v for k, v in result.items() if k != "utterances"}


@click.command(name="evaluate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint written by `jstip train` (EXP/checkpoints/last.ckpt or stepNNNNNN.ckpt).")
@click.option("--cuts", "cuts_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Test cuts (lhotse cut manifest, *.jsonl.gz); references and entities come from its "
                   "supervisions.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: metrics.json, hyps.jsonl, train/metrics.jsonl, spoken_tasks/.")
@click.option("--beam", "num_beams", default=1, show_default=True, type=click.IntRange(min=1),
              help="Beams of beam search (1 = greedy).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Utterances (or spoken prompts) per generate call.")
@click.option("--max-utterances", default=None, type=click.IntRange(min=1),
              help="Decode only the first N cuts (a quick look).")
@click.option("--max-new-tokens", default=256, show_default=True, type=click.IntRange(min=1),
              help="Most tokens per transcript (a batch is also capped at 10 + 25 tokens per second of audio).")
@click.option("--spoken-tasks/--no-spoken-tasks", default=True, show_default=True,
              help="Also run the modality gap, spoken instruction following and spoken QA (data/eval items spoken "
                   "by --voice).")
@click.option("--voice", default="espeak:en-us+f3@160", show_default=True,
              help="TTS voice of the spoken tasks (engine:name[@rate], see `jstip synthesize --help`).")
@click.option("--spoken-items", default=None, type=click.IntRange(min=1),
              help="Use only the first N items of each spoken task (default: all: 40 MCQ, 40 instructions, 30 QA).")
@click.option("--shots", default=5, show_default=True, type=click.IntRange(min=0),
              help="Few-shot examples (text) in the multiple-choice prompts.")
@click.option("--response-tokens", default=128, show_default=True, type=click.IntRange(min=1),
              help="Most tokens per spoken-task response.")
@click.option("--normalizer", default="english-v1", show_default=True, type=click.Choice(["english-v1", "none"]),
              help="Text normaliser for WER/CER/B-WER (see `jstip score --help`).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1... (default: a GPU if there is one, else cpu).")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="Torch CPU threads (default: the run config's num_threads).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def cli(checkpoint: str, cuts_path: str, out_dir: str, num_beams: int, batch_size: int, max_utterances: int | None,
        max_new_tokens: int, spoken_tasks: bool, voice: str, spoken_items: int | None, shots: int,
        response_tokens: int, normalizer: str, device: str | None, threads: int | None, progress: bool) -> None:
    """Decode a test set with a checkpoint and score it: WER, CER, TER, entity error rate, spoken tasks.

    Writes OUT/metrics.json (figures as fractions with their counts, entity errors per category, the spoken-task
    figures, and the checkpoint, step and decoding settings under "evaluate"), OUT/hyps.jsonl (one scored line per
    utterance), OUT/train/metrics.jsonl (the training log up to the checkpoint's step: learning curves in the
    report) and OUT/spoken_tasks/*.jsonl (per-item spoken-task results).

    \b
    Example:
      jstip evaluate --checkpoint exp/tiny/checkpoints/last.ckpt \\
          --cuts mini/test/cuts.jsonl.gz --out exp/tiny/eval --beam 4
      jstip report exp/asr_only/eval exp/tiny/eval --out exp/report.html
    """
    from jstip.evaluate.scoring import summary_line

    try:
        metrics = evaluate(checkpoint, cuts_path, out_dir, num_beams=num_beams, batch_size=batch_size,
                           max_utterances=max_utterances, max_new_tokens=max_new_tokens, spoken_tasks=spoken_tasks,
                           voice=voice, spoken_items=spoken_items, shots=shots, response_tokens=response_tokens,
                           normalizer=normalizer, device=device, threads=threads, progress=progress)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    line = f"{metrics['num_utterances']} utterances: {summary_line(metrics)}"
    mg = metrics.get("modality_gap") or {}
    if mg.get("gap") is not None:
        line += (f"; MCQ text {100 * mg['accuracy_text']:.1f}% speech {100 * mg['accuracy_speech']:.1f}% "
                 f"gap {100 * mg['gap']:+.1f} points")
    inst = metrics.get("instruction_following") or {}
    if inst.get("prompt_level") is not None:
        line += f"; instructions {100 * inst['prompt_level']:.1f}%"
    qa = metrics.get("spoken_qa") or {}
    if qa.get("exact_match") is not None:
        line += f"; spoken QA {100 * qa['exact_match']:.1f}%"
    click.echo(line)
    for name in ("modality_gap", "instruction_following", "spoken_qa"):
        if isinstance(metrics.get(name), dict) and "error" in metrics[name]:
            click.echo(f"warning: spoken task {name} failed: {metrics[name]['error']}", err=True)
    if metrics["missing_ids"]:
        click.echo(f"warning: {len(metrics['missing_ids'])} cut(s) without a hypothesis (first: "
                   f"{metrics['missing_ids'][0]}; see {out_dir}/rejected.jsonl), scored as empty", err=True)
    click.echo(f"wrote {out_dir}/metrics.json and {out_dir}/hyps.jsonl")
