"""``jstip score``: score any system's hypotheses (thin wrapper around :func:`jstip.scoring.score.score`)."""

from __future__ import annotations

import click

from jstip.entities import exposure_options
from jstip.scoring.normalize import NORMALIZER_VERSION, NORMALIZERS
from jstip.scoring.files import HYP_FORMATS


@click.command(name="score", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--ref", "ref_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="References, jsonl: id, text, optional entities / biasing_words / domain; or a lhotse cut "
                   "manifest (*.jsonl.gz, entities from supervision.custom).")
@click.option("--hyp", "hyp_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Hypotheses, in --hyp-format.")
@click.option("--hyp-format", default="jsonl", show_default=True, type=click.Choice(HYP_FORMATS),
              help="jsonl (id, hyp), nemo (a NeMo manifest with pred_text; id = the audio file's stem), kaldi "
                   "(a Kaldi text file: utt_id words...), trn (sclite: words... (utt_id)).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: metrics.json and hyps.jsonl are written there.")
@click.option("--normalizer", default=NORMALIZER_VERSION, show_default=True, type=click.Choice(list(NORMALIZERS)),
              help="Text normaliser for WER/CER/B-WER ('none': whitespace tokens as written).")
@click.option("--missing", default="empty", show_default=True, type=click.Choice(["empty", "skip"]),
              help="References without a hypothesis: score as empty hypotheses, or leave out (listed either way).")
@exposure_options
def cli(ref_path: str, hyp_path: str, hyp_format: str, out_dir: str, normalizer: str, missing: str,
        exposure_cuts: tuple[str, ...], exposure_edges: str) -> None:
    """Score hypotheses against references: WER, CER, TER, entity error rate, B-WER/U-WER.

    Figures are written as fractions to OUT/metrics.json with their counts (substitutions, insertions, deletions),
    entity errors per category and per entity (with the aligned hypothesis span of each miss), and ids missing from
    or extra in the hypotheses. OUT/hyps.jsonl holds one scored line per utterance, which `jstip report` reads.

    \b
    Example:
      jstip score --ref test.ref.jsonl --hyp whisper.hyp.jsonl --out exp/whisper
      jstip score --ref test/cuts.jsonl.gz --hyp nemo_preds.json --hyp-format nemo --out exp/nemo
      jstip report exp/whisper exp/jstip --out report.html
    """
    from jstip.scoring.files import read_hyps, read_refs
    from jstip.scoring.score import score, summary_line, write_scores

    skipped: list[dict] = []
    try:
        refs, hyps = read_refs(ref_path, skipped), read_hyps(hyp_path, skipped, hyp_format)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    from jstip.entities import load_exposure, parse_edges

    try:
        edges = parse_edges(exposure_edges)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--exposure-edges") from err
    exposure, source = load_exposure(exposure_cuts)
    result = score(refs, hyps, normalizer=normalizer, missing=missing, exposure=exposure, exposure_edges=edges,
                   exposure_source=source)
    metrics_path, hyps_path = write_scores(result, out_dir)
    # Every input line is accounted for: bad lines and the later lines of a duplicated id go to rejected.jsonl.
    from pathlib import Path

    from jstip.rejects import RejectLog

    rejected = Path(out_dir) / "rejected.jsonl"
    rejected.unlink(missing_ok=True)
    rejects = RejectLog(rejected, "score")
    for item in skipped:
        rejects.reject(item["id"], item["reason"])
    for key in result["duplicate_ref_ids"]:
        rejects.reject(key, f"reference id occurs more than once in {ref_path}: its first line is scored")
    for key in result["duplicate_hyp_ids"]:
        rejects.reject(key, f"hypothesis id occurs more than once in {hyp_path}: its first line is scored")
    if rejects.count:
        click.echo(f"warning: {rejects.count} line(s) skipped (first: {skipped[0]['id'] if skipped else ''} "
                   f"{(skipped[0]['reason'] if skipped else 'a duplicate id')}); all in {rejected}", err=True)
    click.echo(f"{result['num_utterances']} utterances: {summary_line(result)}")
    if result["missing_ids"]:
        click.echo(f"warning: {len(result['missing_ids'])} reference id(s) missing from {hyp_path} "
                   f"(first: {result['missing_ids'][0]}), {result['missing_scored_as']}", err=True)
    if result["extra_ids"]:
        click.echo(f"warning: {len(result['extra_ids'])} hypothesis id(s) not in {ref_path} "
                   f"(first: {result['extra_ids'][0]}), ignored", err=True)
    if result["invalid_entities"]:
        bad = result["invalid_entities"][0]
        click.echo(f"warning: {len(result['invalid_entities'])} entity annotation(s) left out "
                   f"(first: {bad['id']}: {bad['reason']})", err=True)
    click.echo(f"wrote {metrics_path} and {hyps_path}")
