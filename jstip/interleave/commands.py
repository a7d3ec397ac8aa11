"""``jstip interleave``: write interleaved examples of aligned cuts; ``jstip interleave stats``: describe them."""

from __future__ import annotations

from pathlib import Path

import click

from jstip.sharding import shard_option

_SEGMENT_OPTIONS = [
    click.option("--segment-mode", type=click.Choice(["silence", "punctuation"]), default="punctuation",
                 show_default=True, help="Segment breaks at pauses only, or at pauses and sentence punctuation."),
    click.option("--min-pause", type=float, default=0.15, show_default=True,
                 help="A pause longer than this (seconds) is a segment break."),
    click.option("--min-words", type=int, default=2, show_default=True, help="Minimum words per segment."),
    click.option("--max-words", type=int, default=20, show_default=True, help="Maximum words per segment."),
    click.option("--min-duration", type=float, default=0.3, show_default=True, help="Minimum segment seconds."),
    click.option("--max-duration", type=float, default=8.0, show_default=True, help="Maximum segment seconds."),
    click.option("--random-span", type=int, default=1, show_default=True,
                 help="--policy random at word level: speech in runs of this many words (InSerter: 5)."),
]


def _segment_options(f):
    for opt in reversed(_SEGMENT_OPTIONS):
        f = opt(f)
    return f


def _config(policy, speech_share, segment_mode, min_pause, min_words, max_words, min_duration, max_duration,
            random_span=1):
    from jstip.interleave.examples import InterleaveConfig
    from jstip.interleave.units import SegmentConfig

    try:
        seg = SegmentConfig(segment_mode, min_pause, min_words, max_words, min_duration, max_duration)
        return InterleaveConfig(policy=policy, speech_share=speech_share, segment=seg, random_span=random_span)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def _load_cuts(path: str):
    from lhotse import CutSet

    try:
        return CutSet.from_file(path)
    except Exception as e:
        raise click.ClickException(f"cannot read cuts from {path}: {e} (expected a lhotse CutSet .jsonl.gz)") from e


class _OnceRejectLog:
    """A RejectLog that does not write an item again that an earlier run of this stage already rejected."""

    def __init__(self, path, stage):
        from jstip.rejects import RejectLog, rejected_ids

        self._log = RejectLog(path, stage)
        self.path, self.stage = self._log.path, stage
        self._seen = rejected_ids(path, stage)
        self.count = 0

    def reject(self, item_id, reason, **extra):
        self.count += 1
        if item_id not in self._seen:
            self._log.reject(item_id, reason, **extra)
            self._seen.add(item_id)


@click.group(name="interleave", invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--in", "in_path", type=click.Path(exists=True, dir_okay=False), help="Aligned cuts (.jsonl.gz).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Examples to write (.jsonl).")
@click.option("--level", type=click.Choice(["word", "segment", "mixed"]), default="mixed", show_default=True,
              help="Unit level; mixed draws word or segment per example.")
@click.option("--policy", type=click.Choice(["alternate", "speech_first", "text_first", "random", "entity"]),
              default="alternate", show_default=True, help="Which units become speech.")
@click.option("--speech-share", type=float, default=None,
              help="Target speech share for --policy random (default 0.3 word level, 0.4 segment level).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--epoch", type=int, default=0, show_default=True, help="Epoch: variants change from one to the next.")
@click.option("--check-audio/--no-check-audio", default=True, show_default=True,
              help="Read every cut's audio once and reject what cannot be used (unreadable, empty, NaN/inf samples, "
                   "a sample rate other than declared); --no-check-audio checks sources and transcripts only.")
@_segment_options
@shard_option
@click.pass_context
def cli(ctx, in_path, out_path, level, policy, speech_share, seed, epoch, check_audio, segment_mode, min_pause,
        min_words, max_words, min_duration, max_duration, random_span, shard):
    """Build interleaved speech/text examples (DESIGN.md format) from cuts with word alignments.

    Cuts that cannot be interleaved (no or mismatched alignment, a single word) go to rejected.jsonl beside --out
    with the reason; the trainer still uses them in ASR format. So do cuts that no stage can use: a duplicate id, a
    missing audio file or a 'command' audio source, a transcript without words or far too long for its audio,
    entity offsets that do not slice the entity, and (--check-audio) audio that cannot be used.

    \b
    Example:
      jstip interleave --in data/train/cuts.jsonl.gz --out data/train/il_word.jsonl --level word --seed 0
      jstip interleave stats --in data/train/cuts.jsonl.gz
    """
    if ctx.invoked_subcommand is not None:
        return
    if not in_path or not out_path:
        raise click.UsageError("give --in CUTS and --out EXAMPLES.jsonl (or a subcommand: stats)")
    from tqdm import tqdm

    from jstip.interleave.examples import interleave_cuts, public_example
    from jstip.jsonl import write_jsonl

    cfg = _config(policy, speech_share, segment_mode, min_pause, min_words, max_words, min_duration, max_duration,
                  random_span)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rejects_path = out.parent / "rejected.jsonl"
    rejects = _OnceRejectLog(rejects_path, "interleave")
    from jstip.errors import InputError
    from jstip.manifests import ManifestError, read_cuts

    try:
        cuts = read_cuts(in_path, rejects)  # bad manifest lines: FILE:LINE with the reason
    except ManifestError as err:
        raise InputError(str(err)) from err
    n_in = rejects.count

    from jstip.cuts import CutScreen

    screen = CutScreen(alignment=False, audio="load" if check_audio else "sources")

    from jstip.sharding import in_shard, write_record

    assigned: list[str] = []

    def counted():
        nonlocal n_in
        for c in tqdm(cuts, desc="interleave", unit="cut"):
            if not in_shard(c.id, shard):
                continue
            assigned.append(c.id)
            n_in += 1
            reason = screen.reason(c)
            if reason is not None:
                rejects.reject(c.id, reason)
                continue
            yield c

    n_out = write_jsonl(out, (public_example(e) for e in interleave_cuts(counted(), level, cfg, seed, epoch, rejects)))
    write_record(out, "interleave", shard, in_path, assigned,
                 options={"level": level, "policy": policy, "speech_share": speech_share, "seed": seed, "epoch": epoch,
                          "check_audio": check_audio, "config": str(cfg)})
    click.echo(f"{n_in} cuts: {n_out} examples -> {out}, {rejects.count} rejected -> {rejects_path}")


@cli.command(name="stats")
@click.option("--in", "in_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Aligned cuts (.jsonl.gz).")
@click.option("--level", type=click.Choice(["word", "segment", "mixed"]), default="mixed", show_default=True)
@click.option("--policy", type=click.Choice(["alternate", "speech_first", "text_first", "random", "entity"]),
              default="alternate", show_default=True)
@click.option("--speech-share", type=float, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epoch", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@_segment_options
def stats_cmd(in_path, level, policy, speech_share, seed, epoch, as_json, segment_mode, min_pause, min_words,
              max_words, min_duration, max_duration, random_span):
    """Unit counts, the segment-length histogram and the speech share of the examples a run would build.

    \b
    Example:
      jstip interleave stats --in data/train/cuts.jsonl.gz --level segment --policy random
    """
    import json

    from jstip.interleave.stats import interleave_stats, format_stats

    cfg = _config(policy, speech_share, segment_mode, min_pause, min_words, max_words, min_duration, max_duration,
                  random_span)
    stats = interleave_stats(_load_cuts(in_path), level, cfg, seed, epoch)
    click.echo(json.dumps(stats, indent=1) if as_json else format_stats(stats))
