"""``jstip merge``: task-vector merge of HF model folders (thin wrapper around :mod:`jstip.merge`)."""

from __future__ import annotations

import click


@click.command(name="merge", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--base", required=True, type=click.Path(exists=True, file_okay=False),
              help="The base text LLM that speech pretraining started from (save_pretrained folder).")
@click.option("--instruct", required=True, type=click.Path(exists=True, file_okay=False),
              help="The instruction-tuned version of the same base LLM.")
@click.option("--speech", required=True, type=click.Path(exists=True, file_okay=False),
              help="The speech-adapted LLM (continued pretraining of --base on speech): a save_pretrained folder, or "
                   "a folder written by `jstip export` (its llm/).")
@click.option("--scale", default=1.0, show_default=True, type=float, help="lambda: how much of the task vector to add.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (a new model folder).")
@click.option("--max-shard-gb", default=5.0, show_default=True, type=float, help="Size of the written safetensors shards.")
def cli(base: str, instruct: str, speech: str, scale: float, out: str, max_shard_gb: float) -> None:
    """Add instruction following to a speech-adapted LLM: theta = speech + SCALE * (instruct - base).

    Every LLM tensor the three models share is merged; rows of tokens that the speech model added (its embeddings
    or LM head larger than the base vocabulary) keep the speech model's values. The output folder gets the merged
    safetensors, the speech model's config and tokenizer, and merge.json. Mismatched architectures, shapes or
    vocabularies stop the merge with an error naming the tensor; nothing is written then.

    \b
    Example:
      jstip merge --base SmolLM2-135M --instruct SmolLM2-135M-Instruct \\
                  --speech exp/speech_llm --scale 1.0 --out exp/speech_llm_instruct
    """
    from jstip.merge.task_vectors import MergeError, merge_model_folders

    try:
        summary = merge_model_folders(base, instruct, speech, scale, out, max_shard_bytes=int(max_shard_gb * 1024**3))
    except MergeError as err:
        raise click.ClickException(str(err)) from err
    extended = summary["extended_vocab_tensors"]
    click.echo(f"merged {summary['merged_tensors']} tensors with scale {scale}"
               + (f"; {len(extended)} vocabulary tensor(s) keep the speech model's added rows" if extended else "")
               + (f"; {summary['copied_tensors']} speech-only tensor(s) copied" if summary["copied_tensors"] else ""))
    click.echo(f"wrote {out}")
