"""``jstip train`` (a thin click wrapper around the Hydra entry point ``jstip.train.__main__``) and ``jstip export``
(a trained model as a folder that leaves jstip: :mod:`jstip.model.export`)."""

from __future__ import annotations

import sys

import click


@click.command(name="train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                               "help_option_names": ["-h", "--help"]})
@click.option("--config-name", "-cn", default="tiny", show_default=True,
              help="Packaged config in jstip/conf (tiny, smollm2_stage1, smollm2_stage2, llm7b_stage1, ...).")
@click.option("--config-dir", "-cd", default=None, help="Take --config-name from this folder (its defaults may name packaged configs, e.g. tiny).")
@click.option("--cfg", "print_cfg", is_flag=True, help="Print the composed config and exit.")
@click.option("--check", "check_only", is_flag=True,
              help="Check that the composed config gives every required value (exit 2 naming the missing keys), then "
                   "exit without training: what a job script runs before it asks for GPUs.")
@click.option("-m", "--multirun", is_flag=True,
              help="A sweep: one run per value of each swept key (seed=0,1 or range(3)), in EXP_DIR/0, EXP_DIR/1, ...; "
                   "EXP_DIR/multirun.yaml lists the jobs.")
@click.pass_context
def cli(ctx: click.Context, config_name: str, config_dir: str | None, print_cfg: bool, check_only: bool,
        multirun: bool) -> None:
    """Train the speech-LLM; arguments after the options are Hydra overrides (key=value).

    Example (the mini corpus, on the CPU):

        jstip train --config-name tiny data.train_cuts=mini/train/cuts.jsonl.gz
        data.dev_cuts=mini/dev/cuts.jsonl.gz exp_dir=exp/tiny trainer.max_steps=200

    Writes exp_dir/metrics.jsonl, exp_dir/checkpoints/ (model, optimiser, scheduler, data position) and
    exp_dir/tokenizer/. Run the same command again to resume from the newest checkpoint.
    """
    from jstip.train.__main__ import main

    argv = ["--config-name", config_name] + (["--config-dir", config_dir] if config_dir else [])
    argv += (["--cfg"] if print_cfg else []) + (["--check"] if check_only else []) + (["-m"] if multirun else [])
    argv += list(ctx.args)
    rc = main(argv)
    if rc:
        sys.exit(rc)


@click.command(name="export", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint written by `jstip train` (EXP/checkpoints/last.ckpt).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The folder to write (replaced whole): config.json, speech.safetensors, llm/.")
def export(checkpoint: str, out_dir: str) -> None:
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
    from jstip.train.export import export_checkpoint
    from jstip.train.checkpoint_file import CheckpointFileError

    try:
        out = export_checkpoint(checkpoint, out_dir)
    except CheckpointFileError as err:
        raise InputError(str(err)) from err
    click.echo(f"exported {checkpoint} -> {out} (config.json, speech.safetensors, llm/)")
