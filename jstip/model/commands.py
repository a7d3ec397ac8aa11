"""``jstip export``: a trained model as a folder that leaves jstip (:mod:`jstip.model.export`)."""

from __future__ import annotations

import click


@click.command(name="export", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint written by `jstip train` (EXP/checkpoints/last.ckpt).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The folder to write (replaced whole): config.json, speech.safetensors, llm/.")
def cli(checkpoint: str, out_dir: str) -> None:
    """Export a checkpoint: the LLM as a save_pretrained folder (LoRA merged) with its tokenizer, the encoder and
    adapter as safetensors, and a config.json that rebuilds the model. No pickle anywhere.

    \b
    Example:
      jstip export --checkpoint exp/stage2/checkpoints/last.ckpt --out exp/speech_llm
      jstip evaluate --checkpoint exp/speech_llm --cuts data/test/cuts.jsonl.gz --out exp/speech_llm_eval
      python -c "from jstip.model.speechlm import SpeechLM; m = SpeechLM.from_pretrained('exp/speech_llm')"
      jstip merge --base BASE --instruct INSTRUCT --speech exp/speech_llm --out exp/speech_llm_instruct
    """
    from jstip.errors import InputError
    from jstip.model.export import export_checkpoint
    from jstip.train.checkpoint_file import CheckpointFileError

    try:
        out = export_checkpoint(checkpoint, out_dir)
    except CheckpointFileError as err:
        raise InputError(str(err)) from err
    click.echo(f"exported {checkpoint} -> {out} (config.json, speech.safetensors, llm/)")
