"""The ``jstip`` command: one subcommand per stage, each a thin click wrapper around the library.

Subcommands live next to their stage (``jstip/<stage>/commands.py``) and are imported only when invoked, so that
``jstip --help`` does not pay for torch or NeMo imports.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from jstip import __version__

# name -> ("module" or "module:attribute" of a click command or group, short help). A stage's commands live in
# jstip/<package>/commands.py; the attribute defaults to ``cli``. Order is the order of the pipeline.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("jstip.demo.commands", "Run the whole pipeline on the built-in mini corpus."),
    "prepare": ("jstip.corpora.commands", "Prepare lhotse manifests of a corpus (mini, librispeech, import)."),
    "synthesize": ("jstip.tts.commands", "Speak text with a real TTS engine: audio + manifests with word times."),
    "align": ("jstip.align.commands", "Forced alignment: word times for real speech; compare, import, export."),
    "interleave": ("jstip.interleave.commands", "Build interleaved speech/text examples from aligned cuts."),
    "pretrain": ("jstip.pretrain.commands", "Warm starts and priors: adapter CTC, CTC encoder, text-only tiny LLM."),
    "train": ("jstip.train.commands", "Train the speech-LLM (Hydra overrides after the command)."),
    "evaluate": ("jstip.evaluate.commands", "Decode a test set with a checkpoint and score it."),
    "export": ("jstip.train.commands:export", "Export a checkpoint: LLM folder (LoRA merged), encoder+adapter safetensors."),
    "transcribe": ("jstip.evaluate.commands:transcribe",
                   "Transcribe a folder of audio, a wav.scp or cuts with a model."),
    "score": ("jstip.scoring.commands", "Score any system's hypotheses: WER, CER, TER, EER, B-WER/U-WER."),
    "report": ("jstip.report.commands", "Compare scored runs (HTML/Markdown); `report grid`: arms x seeds."),
    "merge": ("jstip.merge.commands", "Task-vector merge: speech LLM + scale * (instruct - base)."),
    "shards": ("jstip.shards.commands", "Combine the outputs of a stage run in shards (--shard i/N), nothing lost or doubled."),
    "export-shar": ("jstip.shards.commands:export_shar", "Write cuts and their audio as lhotse Shar shards for training."),
}


def _target(name: str) -> tuple[str, str]:
    module, _, attribute = SUBCOMMANDS[name][0].partition(":")
    return module, attribute or "cli"


def _available(module: str) -> bool:
    """True if the stage module exists (find_spec raises, rather than answering None, when its package is absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in SUBCOMMANDS if _available(_target(name)[0])]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module_name, attribute = _target(name)
        if not _available(module_name):
            return None
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above, so that --help imports nothing heavy.
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jstip")
@click.option("--allow-command-audio", is_flag=True, default=False,
              help="Let lhotse run 'command' audio sources of the manifests (shell commands that produce the audio). "
                   "Off by default: a manifest is data, and jstip refuses (rejects) such cuts. Same as "
                   "JSTIP_ALLOW_COMMAND_AUDIO=1.")
@click.option("--verbose", "-v", is_flag=True, default=False,
              help="Also print the traceback behind a one-line input error (for a bug report). Same as "
                   "JSTIP_VERBOSE=1.")
def main(allow_command_audio: bool, verbose: bool) -> None:
    """jstip: speech-LLMs for ASR with joint speech-text interleaved pretraining.

    Typical flow: prepare -> (synthesize) -> align -> interleave -> train -> evaluate -> report.
    Every command has --help.
    """
    if verbose:
        from jstip.errors import set_verbose

        set_verbose()
    if allow_command_audio:
        from jstip.audio import allow_command_sources

        allow_command_sources()


if __name__ == "__main__":
    main()
