"""``jstip evaluate`` and ``jstip transcribe``: thin wrappers around :func:`jstip.evaluate.decode.evaluate_checkpoint`
(a jstip model), :func:`jstip.evaluate.whisper_eval.evaluate_whisper` (a Whisper baseline) and
:func:`jstip.evaluate.transcribe.transcribe` (audio without references)."""

from __future__ import annotations

import click

from jstip.entities import exposure_options
from jstip.errors import InputError
from jstip.evaluate.spoken_eval import DEFAULT_VOICE, SPOKEN_TASKS
from jstip.scoring.figures import pct, signed_pct
from jstip.scoring.normalize import NORMALIZER_VERSION, NORMALIZERS


def decoding_options(func):
    """The speech-LLM decoding options of `jstip evaluate` and `jstip transcribe`: --beam, --batch-size,
    --max-new-tokens, --loop-threshold."""
    for option in reversed([
        click.option("--beam", "num_beams", default=1, show_default=True, type=click.IntRange(min=1),
                     help="Beams of beam search (1 = greedy)."),
        click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
                     help="Utterances per generate call."),
        click.option("--max-new-tokens", default=256, show_default=True, type=click.IntRange(min=1),
                     help="Most tokens per transcript (a batch is also capped at 10 + 25 tokens per second of "
                          "audio)."),
        click.option("--loop-threshold", default=2.4, show_default=True, type=click.FloatRange(min=0),
                     help="A transcript whose zlib compression ratio is above this (a repetition loop, as Whisper "
                          "measures it) is decoded again with repeated 3-grams forbidden; 0 = never."),
        click.option("--ctc-weight", default=0.0, show_default=True, type=click.FloatRange(min=0, max=1),
                     help="For a model with a first pass and --beam > 1: choose the transcript among the n-best and "
                          "the CTC draft by (1 - w) * LLM + w * CTC log-probability (joint CTC/LLM rescoring); 0 = "
                          "the beam's own best."),
    ]):
        func = option(func)
    return func


@click.command(name="evaluate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", type=click.Path(exists=True),
              help="A checkpoint written by `jstip train` (EXP/checkpoints/last.ckpt or stepNNNNNN.ckpt), or a folder "
                   "written by `jstip export`.")
@click.option("--whisper", "whisper_model", default=None,
              help="Instead of a checkpoint: score a whole Whisper model (its own decoder) as a baseline: tiny.en or "
                   "base (the packaged weights), a Hugging Face Whisper folder, or a CTranslate2 model.bin.")
@click.option("--whisper-decoding", default="fallback", show_default=True,
              type=click.Choice(["fallback", "greedy"]),
              help="Whisper decoding: openai-whisper's temperature fallback (0, 0.2 ... 1.0) or greedy.")
@click.option("--whisper-engine", default="auto", show_default=True,
              type=click.Choice(["auto", "torch", "ctranslate2"]),
              help="Whisper inference engine: ctranslate2 (fast on a CPU; needs a CTranslate2 model.bin, as the "
                   "packaged models are), torch, or auto (ctranslate2 where it can).")
@click.option("--cuts", "cuts_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Test cuts (lhotse cut manifest, *.jsonl.gz); references and entities come from its "
                   "supervisions.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: metrics.json, hyps.jsonl, train/metrics.jsonl, spoken_tasks/.")
@decoding_options
@click.option("--max-utterances", default=None, type=click.IntRange(min=1),
              help="Decode only the first N cuts (a quick look).")
@click.option("--spoken-tasks/--no-spoken-tasks", default=None,
              help="Also run the modality gap, spoken instruction following and spoken QA (shipped items spoken "
                   "by --voice). Off unless asked for: --spoken-tasks, --spoken-task NAME or --spoken-items N.")
@click.option("--spoken-task", "spoken_task_names", multiple=True,
              type=click.Choice(SPOKEN_TASKS),
              help="Run this spoken task (repeatable; e.g. --spoken-task modality_gap for the MCQ modality gap "
                   "alone).")
@click.option("--voice", default=DEFAULT_VOICE, show_default=True,
              help="TTS voice of the spoken tasks (engine:name[@rate], see `jstip synthesize --help`).")
@click.option("--spoken-items", default=None, type=click.IntRange(min=1),
              help="Use only the first N items of each spoken task (default: all: 40 MCQ, 40 instructions, 30 QA).")
@click.option("--shots", default=5, show_default=True, type=click.IntRange(min=0),
              help="Few-shot examples (text) in the multiple-choice prompts.")
@click.option("--response-tokens", default=128, show_default=True, type=click.IntRange(min=1),
              help="Most tokens per spoken-task response.")
@click.option("--normalizer", default=NORMALIZER_VERSION, show_default=True, type=click.Choice(list(NORMALIZERS)),
              help="Text normaliser for WER/CER/B-WER (see `jstip score --help`).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1... (default: a GPU if there is one, else cpu).")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="Torch CPU threads (default: the run config's num_threads).")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]),
              help="Inference precision of a jstip model: auto = bfloat16 autocast where the CPU/GPU computes it "
                   "natively, else fp32.")
@click.option("--listen-utterances", default=100, show_default=True, type=click.IntRange(min=0),
              help="Utterances of the 'does it listen' figure (loss per token with own vs another utterance's audio; "
                   "0 = skip).")
@exposure_options
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def cli(checkpoint: str | None, whisper_model: str | None, whisper_decoding: str, whisper_engine: str,
        cuts_path: str, out_dir: str,
        num_beams: int, batch_size: int, max_utterances: int | None, max_new_tokens: int, loop_threshold: float,
        ctc_weight: float, spoken_tasks: bool,
        spoken_task_names: tuple[str, ...], voice: str, spoken_items: int | None, shots: int, response_tokens: int, normalizer: str, device: str | None,
        threads: int | None, precision: str, listen_utterances: int, exposure_cuts: tuple[str, ...],
        exposure_edges: str, progress: bool) -> None:
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
      jstip evaluate --whisper tiny.en --cuts mini/test/cuts.jsonl.gz --out exp/whisper_tiny_en
    """
    from jstip.manifests import ManifestError
    from jstip.scoring.score import summary_line
    from jstip.train.checkpoint_file import CheckpointFileError

    if (checkpoint is None) == (whisper_model is None):
        raise click.UsageError("give either --checkpoint (a jstip model) or --whisper (a Whisper baseline)")
    from jstip.entities import parse_edges

    try:
        edges = parse_edges(exposure_edges)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--exposure-edges") from err
    try:
        if whisper_model is not None:
            from jstip.evaluate.whisper_eval import evaluate_whisper

            metrics = evaluate_whisper(whisper_model, cuts_path, out_dir, decoding=whisper_decoding,
                                       batch_size=batch_size, max_utterances=max_utterances, normalizer=normalizer,
                                       threads=threads or 2, engine=whisper_engine, exposure_cuts=exposure_cuts,
                                       exposure_edges=edges, progress=progress)
        else:
            from jstip.evaluate.decode import evaluate_checkpoint

            metrics = evaluate_checkpoint(
                checkpoint, cuts_path, out_dir, num_beams=num_beams, batch_size=batch_size,
                max_utterances=max_utterances, max_new_tokens=max_new_tokens, loop_threshold=loop_threshold,
                ctc_weight=ctc_weight, spoken_tasks=_spoken_selection(spoken_tasks, spoken_task_names, spoken_items), voice=voice,
                spoken_items=spoken_items, shots=shots, response_tokens=response_tokens, normalizer=normalizer,
                device=device, threads=threads, progress=progress, listen_utterances=listen_utterances,
                precision=precision, exposure_cuts=list(exposure_cuts) or None, exposure_edges=edges)
    except (ManifestError, CheckpointFileError) as err:
        raise InputError(str(err)) from err
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    line = f"{metrics['num_utterances']} utterances: {summary_line(metrics)}"
    listening = metrics.get("listening") or {}
    if listening.get("rise") is not None:
        line += (f"; loss/token own audio {listening['loss_own']:.2f}, other audio {listening['loss_other']:.2f} "
                 f"(+{listening['rise']:.2f} nats)")
    mg = metrics.get("modality_gap") or {}
    if mg.get("gap") is not None:
        line += (f"; MCQ text {pct(mg['accuracy_text'], 1)}% speech {pct(mg['accuracy_speech'], 1)}% "
                 f"gap {signed_pct(mg['gap'], 1)} points")
    inst = metrics.get("instruction_following") or {}
    if inst.get("prompt_level") is not None:
        line += f"; instructions {pct(inst['prompt_level'], 1)}%"
    qa = metrics.get("spoken_qa") or {}
    if qa.get("exact_match") is not None:
        line += f"; spoken QA {pct(qa['exact_match'], 1)}%"
    click.echo(line)
    for name in ("modality_gap", "instruction_following", "spoken_qa"):
        if isinstance(metrics.get(name), dict) and "error" in metrics[name]:
            click.echo(f"warning: spoken task {name} failed: {metrics[name]['error']}", err=True)
    if metrics["missing_ids"]:
        click.echo(f"warning: {len(metrics['missing_ids'])} cut(s) without a hypothesis (first: "
                   f"{metrics['missing_ids'][0]}; see {out_dir}/rejected.jsonl), scored as empty", err=True)
    click.echo(f"wrote {out_dir}/metrics.json and {out_dir}/hyps.jsonl")


def _spoken_selection(flag: bool | None, names: tuple[str, ...], items: int | None) -> bool | list[str]:
    """The spoken tasks to run: off by default; on with --spoken-tasks, --spoken-task NAME (those only) or
    --spoken-items N; --no-spoken-tasks wins."""
    if flag is False:
        return False
    if names:
        return list(names)
    return bool(flag) or items is not None


@click.command(name="transcribe", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "checkpoint", required=True, type=click.Path(exists=True),
              help="A checkpoint written by `jstip train` (EXP/checkpoints/last.ckpt) or a folder written by "
                   "`jstip export`.")
@click.option("--in", "in_path", required=True, type=click.Path(exists=True),
              help="A folder of audio files, a Kaldi wav.scp, or a lhotse cut manifest (*.jsonl.gz).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Transcripts, jsonl: one {id, hyp} per input (what `jstip score --hyp` reads).")
@decoding_options
@click.option("--threads", default=None, type=click.IntRange(min=1), help="Torch CPU threads.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def transcribe(checkpoint: str, in_path: str, out_path: str, num_beams: int, batch_size: int, max_new_tokens: int,
               loop_threshold: float, ctc_weight: float, threads: int | None, progress: bool) -> None:
    """Transcribe a folder of audio, a wav.scp or a cut manifest with a trained model.

    Writes OUT (one {"id", "hyp"} line per input, in input order) and rejected.jsonl beside it (inputs whose audio
    cannot be used, with the reason).

    \b
    Example:
      jstip transcribe --model exp/stage2/checkpoints/last.ckpt --in recordings/ --out exp/recordings.hyp.jsonl
      jstip transcribe --model exp/stage2/checkpoints/last.ckpt --in data/test/cuts.jsonl.gz --out test.hyp.jsonl
      jstip score --ref data/test/cuts.jsonl.gz --hyp test.hyp.jsonl --out exp/test_scored
    """
    from jstip.evaluate.transcribe import transcribe as transcribe_to_file

    count, rejects = transcribe_to_file(checkpoint, in_path, out_path, num_beams=num_beams, batch_size=batch_size,
                                        max_new_tokens=max_new_tokens, loop_threshold=loop_threshold,
                                        ctc_weight=ctc_weight, threads=threads, progress=progress)
    click.echo(f"{count} transcripts -> {out_path}; {rejects.count} rejected -> {rejects.path}")
