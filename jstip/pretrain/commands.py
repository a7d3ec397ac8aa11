"""``jstip pretrain``: the priors of CPU-scale runs (a CTC-pretrained encoder, a text-pretrained tiny LLM)."""

from __future__ import annotations

import click

from jstip.scoring.figures import pct


@click.group(name="pretrain")
def cli():
    """Priors: the adapter's CTC warm start (pretrained parts), or a CTC encoder and a tiny LLM from scratch.

    \b
    Examples:
        jstip pretrain ctc --train-cuts data/mini/train/cuts.jsonl.gz --dev-cuts data/mini/dev/cuts.jsonl.gz \\
            --out exp/priors/ctc --max-minutes 5
        jstip pretrain text-lm --text data/mini/text/general.txt --text data/mini/text/domain.txt \\
            --out exp/priors/lm --max-minutes 2
    """


def _budget(max_minutes, max_steps):
    if max_minutes is None and max_steps is None:
        raise click.UsageError("give a training budget: --max-minutes and/or --max-steps")


@cli.command(name="ctc")
@click.option("--train-cuts", required=True, type=click.Path(dir_okay=False), help="lhotse cuts to train on.")
@click.option("--dev-cuts", type=click.Path(dir_okay=False), help="lhotse cuts for the greedy dev WER.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--max-minutes", type=float, help="Wall-clock training budget (the LR schedule ends with it).")
@click.option("--max-steps", type=int, help="Step budget (the first budget reached stops training).")
@click.option("--config", default="tiny", show_default=True,
              help="Speech-LLM config whose model.encoder sizes the Conformer: a packaged name or a YAML file.")
@click.option("--lr", default=5e-3, show_default=True, help="Peak AdamW learning rate.")
@click.option("--max-duration", default=60.0, show_default=True, help="Seconds of audio per batch.")
@click.option("--subsampling-factor", type=int,
              help="Encoder subsampling [default: the config's]; the speech-LLM's adapter stacks frames to 80 ms.")
@click.option("--spec-augment/--no-spec-augment", default=False, show_default=True,
              help="NeMo SpecAugment (helps long runs, slows short ones).")
@click.option("--seed", default=0, show_default=True)
@click.option("--num-threads", default=2, show_default=True, help="Torch CPU threads.")
def ctc(train_cuts, dev_cuts, out_dir, max_minutes, max_steps, config, lr, max_duration, subsampling_factor,
        spec_augment, seed, num_threads):
    """Train a NeMo CTC model (80-mel preprocessor + ConformerEncoder, character vocabulary) on lhotse cuts.

    Writes OUT/ctc.nemo, OUT/metrics.jsonl (step, loss, lr, elapsed, cpu_s) and, with --dev-cuts, OUT/dev_wer.json
    and OUT/dev/{metrics.json,hyps.jsonl}. The speech-LLM starts from its encoder with
    `jstip train ... model.encoder.nemo_path=OUT/ctc.nemo`.

    \b
    Example:
        jstip pretrain ctc --train-cuts data/mini/train/cuts.jsonl.gz --dev-cuts data/mini/dev/cuts.jsonl.gz \\
            --out exp/priors/ctc --max-minutes 5
    """
    _budget(max_minutes, max_steps)
    from jstip.pretrain.ctc import train_ctc

    try:
        result = train_ctc(train_cuts, out_dir, dev_cuts=dev_cuts, max_minutes=max_minutes, max_steps=max_steps,
                           config=config, lr=lr, max_duration=max_duration, subsampling_factor=subsampling_factor,
                           spec_augment=spec_augment, seed=seed, num_threads=num_threads)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    line = f"{result.steps} steps in {result.elapsed / 60:.1f} min -> {result.nemo_path}"
    if result.dev_wer is not None:
        line += f"; dev WER {pct(result.dev_wer, 1)}% (greedy)"
    click.echo(line)


@cli.command(name="text-lm")
@click.option("--text", "texts", multiple=True, type=click.Path(dir_okay=False),
              help="Text file, one sentence per line (repeatable); a cuts manifest (*.jsonl.gz) adds its transcripts.")
@click.option("--transcripts", "transcripts", multiple=True, type=click.Path(dir_okay=False),
              help="lhotse cuts manifest whose supervision texts are added as sentences (repeatable).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--max-minutes", type=float, help="Wall-clock training budget (the LR schedule ends with it).")
@click.option("--max-steps", type=int, help="Step budget (the first budget reached stops training).")
@click.option("--vocab-size", type=int, help="BPE vocabulary size [default: the config's tokenizer.vocab_size].")
@click.option("--config", default="tiny", show_default=True,
              help="Speech-LLM config whose model.llm sizes the LLM: a packaged name or a YAML file.")
@click.option("--lr", default=3e-3, show_default=True, help="Peak AdamW learning rate.")
@click.option("--batch-size", default=32, show_default=True, help="Sentences per batch.")
@click.option("--held-out-fraction", default=0.02, show_default=True, help="Sentences kept for the perplexity.")
@click.option("--seed", default=0, show_default=True)
@click.option("--num-threads", default=2, show_default=True, help="Torch CPU threads.")
def text_lm(texts, transcripts, out_dir, max_minutes, max_steps, vocab_size, config, lr, batch_size,
            held_out_fraction, seed, num_threads):
    """Train a byte-level BPE tokenizer and a tiny Llama on text; save both (Hugging Face folder) into OUT.

    Each sentence is one document, <s> ... </s>. Writes OUT/metrics.jsonl and OUT/perplexity.json (held-out
    per-token perplexity, and the untrained model's for comparison). The speech-LLM starts from it with
    `jstip train ... model.llm.kind=hf model.llm.path=OUT model.tokenizer.kind=hf model.tokenizer.path=OUT`.

    \b
    Example:
        jstip pretrain text-lm --text data/mini/text/general.txt --text data/mini/text/domain.txt \\
            --transcripts data/mini/train/cuts.jsonl.gz --out exp/priors/lm --max-minutes 2
    """
    _budget(max_minutes, max_steps)
    from jstip.pretrain.text_lm import train_text_lm

    try:
        result = train_text_lm([*texts, *transcripts], out_dir, max_minutes=max_minutes, max_steps=max_steps,
                               vocab_size=vocab_size, config=config, lr=lr, batch_size=batch_size,
                               held_out_fraction=held_out_fraction, seed=seed, num_threads=num_threads)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    line = f"{result.steps} steps in {result.elapsed / 60:.1f} min -> {result.out_dir}"
    if result.held_out_ppl is not None:
        line += f"; held-out perplexity {result.held_out_ppl:.1f} (untrained {result.untrained_ppl:.1f})"
    click.echo(line)


@cli.command(name="adapter-ctc", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--train-cuts", required=True, type=click.Path(exists=True, dir_okay=False), help="lhotse cuts to train on.")
@click.option("--dev-cuts", type=click.Path(exists=True, dir_okay=False), help="Cuts for the greedy CTC dev WER.")
@click.option("--test-cuts", type=click.Path(exists=True, dir_okay=False),
              help="Cuts to decode and score into OUT/test (a system row for `jstip report`).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--config-name", "config", default="whisper_smollm2", show_default=True,
              help="Packaged speech-LLM config whose model section (encoder, adapter, LLM) is used.")
@click.option("--text", "texts", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Text file whose LLM tokens join the CTC vocabulary (repeatable; e.g. the domain text).")
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(min=1), help="Passes over the cuts.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1), help="Cuts per step.")
@click.option("--lr", default=1e-3, show_default=True, help="Peak AdamW learning rate.")
@click.option("--seed", default=0, show_default=True)
@click.option("--num-threads", default=2, show_default=True, help="Torch CPU threads.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
@click.pass_context
def adapter_ctc(ctx, train_cuts, dev_cuts, test_cuts, out_dir, config, texts, epochs, batch_size, lr, seed,
                num_threads, progress):
    """Warm-start the speech-LLM's adapter: CTC over the LLM's vocabulary on frozen encoder outputs, no LLM pass.

    Arguments after the options are Hydra overrides of the config's model section (e.g.
    model.encoder.path=base model.encoder.cache_dir=exp/features). Writes OUT/adapter.safetensors (start a run from it
    with `jstip train ... model.adapter.init_from=OUT/adapter.safetensors`), OUT/ctc_head.safetensors,
    OUT/adapter_ctc.json, OUT/metrics.jsonl, OUT/rejected.jsonl and the greedy CTC transcripts scored in
    OUT/dev and OUT/test.

    \b
    Example:
        jstip pretrain adapter-ctc --train-cuts data/mini/train/cuts.jsonl.gz --dev-cuts data/mini/dev/cuts.jsonl.gz \\
            --text data/mini/text/domain.txt --out exp/adapter_ctc model.encoder.cache_dir=exp/features
    """
    from jstip.pretrain.adapter_ctc import train_adapter_ctc

    try:
        result = train_adapter_ctc(train_cuts, out_dir, dev_cuts=dev_cuts, test_cuts=test_cuts, config=config,
                                   overrides=list(ctx.args), text_files=texts, epochs=epochs, batch_size=batch_size,
                                   lr=lr, seed=seed, num_threads=num_threads, progress=progress)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    line = (f"{result.steps} steps in {result.elapsed / 60:.1f} min, {result.kept} cuts ({result.rejected} rejected) "
            f"-> {result.out_dir / 'adapter.safetensors'}")
    if result.dev_wer is not None:
        line += f"; dev WER {pct(result.dev_wer, 1)}% (greedy CTC)"
    if result.test_wer is not None:
        line += f", test {pct(result.test_wer, 1)}%"
    click.echo(line)
