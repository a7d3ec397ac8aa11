"""``jstip train``: a thin click wrapper around the Hydra entry point ``jstip.train.__main__``."""

from __future__ import annotations

import sys

import click


@click.command(name="train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                               "help_option_names": ["-h", "--help"]})
@click.option("--config-name", "-cn", default="tiny", show_default=True,
              help="Packaged config in jstip/conf (tiny, smollm2_stage1, smollm2_stage2, llm7b_stage1, ...).")
@click.option("--config-dir", "-cd", default=None, help="Take --config-name from this folder (its defaults may name packaged configs, e.g. tiny).")
@click.option("--cfg", "print_cfg", is_flag=True, help="Print the composed config and exit.")
@click.pass_context
def cli(ctx: click.Context, config_name: str, config_dir: str | None, print_cfg: bool) -> None:
    """Train the speech-LLM; arguments after the options are Hydra overrides (key=value).

    Example (the mini corpus, on the CPU):

        jstip train --config-name tiny data.train_cuts=mini/train/cuts.jsonl.gz
        data.dev_cuts=mini/dev/cuts.jsonl.gz exp_dir=exp/tiny trainer.max_steps=200

    Writes exp_dir/metrics.jsonl, exp_dir/checkpoints/ (model, optimiser, scheduler, data position) and
    exp_dir/tokenizer/. Run the same command again to resume from the newest checkpoint.
    """
    from jstip.train.__main__ import main

    argv = ["--config-name", config_name] + (["--config-dir", config_dir] if config_dir else [])
    argv += (["--cfg"] if print_cfg else []) + list(ctx.args)
    rc = main(argv)
    if rc:
        sys.exit(rc)
