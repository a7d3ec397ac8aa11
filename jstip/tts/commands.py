"""``jstip synthesize``: text (one sentence per line, or jsonl) -> audio + lhotse manifests with engine word times."""

from __future__ import annotations

from pathlib import Path

import click

from jstip.sharding import shard_option


@click.command(name="synthesize")
@click.option("--in", "in_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Text file (one sentence per line) or .jsonl with 'text' and optional 'id', 'entities', 'voice'.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--voice", "voices", multiple=True,
              help="Voice engine:name[@rate], repeatable (default: all espeak-ng and festival voices). "
                   "Example: --voice espeak:en-us+f3@160 --voice festival:kal_diphone")
@click.option("--voices-of", "voice_split", type=click.Choice(["train", "dev", "test"]), default=None,
              help="Use the default voices of this mini-corpus split (train: every voice but the held-out test and "
                   "dev accents, so that speech made for training never uses a test voice). Combines with --voice.")
@click.option("-j", "--num-jobs", default=1, show_default=True, help="Parallel worker processes.")
@click.option("--seed", default=0, show_default=True, help="Seed of the per-item voice and rate choice.")
@click.option("--max-words", default=120, show_default=True, help="Reject lines with more words than this.")
@click.option("--list-voices", is_flag=True,
              help="Print the voice pool (the default, or what --voice / --voices-of name) and exit.")
@shard_option
def cli(in_path, out_dir, voices, voice_split, num_jobs, seed, max_words, list_voices, shard):
    """Speak a text corpus with a real TTS engine and write lhotse manifests.

    Each line becomes one cut whose supervision carries the engine's own word times in alignment["word"] and, for
    jsonl input, its entities in custom["entities"]. Lines that cannot be spoken go to OUT/rejected.jsonl with a
    reason; re-running the command resumes where it stopped.

    Example:

        jstip synthesize --in notes.txt --out data/notes_tts -j 2 --voice espeak:en-us+f3@160

        jstip synthesize --in domain.txt --out data/domain_tts -j 2 --voices-of train

    \b
    In shards (one per machine or process), then joined:
        jstip synthesize --in notes.txt --out tts/s0 --shard 0/2
        jstip synthesize --in notes.txt --out tts/s1 --shard 1/2
        jstip shards combine tts/all tts/s0 tts/s1
    """
    from jstip.rejects import RejectLog
    from jstip.tts import Voice, default_voices
    from jstip.sharding import write_record
    from jstip.tts.corpus import STAGE, read_text_items, synthesize_items

    pool = [Voice.parse(v) for v in voices]
    if voice_split:
        from jstip.tts.voices import voices_for_split

        pool += voices_for_split(voice_split)
    if list_voices:
        for v in pool or default_voices():
            click.echo(v.id)
        return
    pool = pool or None
    rejects = RejectLog(Path(out_dir) / "rejected.jsonl", STAGE)
    before = rejects.count
    assigned: list[str] = []
    items = read_text_items(in_path, rejects, shard=shard, assigned=assigned)
    read_rejected = rejects.count - before
    cuts = synthesize_items(items, out_dir, voices=pool, num_jobs=num_jobs, seed=seed, max_words=max_words,
                            rejects=rejects)
    write_record(out_dir, STAGE, shard, in_path, assigned,
                 options={"voices": [v.id for v in pool or []], "seed": seed, "max_words": max_words})
    hours = sum(c.duration for c in cuts) / 3600
    click.echo(f"{len(items) + read_rejected} lines: {len(cuts)} cuts ({hours:.2f} h), "
               f"{rejects.count} rejected this run (see {rejects.path})")
    click.echo(f"manifests: {Path(out_dir) / 'cuts.jsonl.gz'}")
