"""``jstip align``: forced alignment of cuts, and its helpers (compare, import-textgrid, import-ctm, export)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click


@click.group(name="align", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--aligner", "aligner_name", type=click.Choice(["pocketsphinx", "ctc", "mfa", "tts"]),
              default="pocketsphinx", show_default=True, help="Alignment backend.")
@click.option("--in", "in_path", type=click.Path(exists=True, dir_okay=False), help="Input cuts (jsonl.gz).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="Output cuts (jsonl.gz); rejected.jsonl is written beside it.")
@click.option("-j", "--num-jobs", default=1, show_default=True, help="Worker processes.")
@click.option("--shard", default=None, help="Align only shard i of N (i/N, by position in the input).")
@click.option("--phones/--no-phones", default=False, show_default=True,
              help="pocketsphinx: also write alignment['phone'] (about 2.5x slower).")
@click.option("--mismatch-check/--no-mismatch-check", default=True, show_default=True,
              help="pocketsphinx: reject alignments whose word scores say the transcript does not match the audio.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="ctc: the .nemo model.")
@click.option("--mfa-dictionary", default="english_us_arpa", show_default=True, help="mfa: dictionary name or path.")
@click.option("--mfa-acoustic-model", default="english_us_arpa", show_default=True,
              help="mfa: acoustic model name or path.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def cli(ctx, aligner_name, in_path, out_path, num_jobs, shard, phones, mismatch_check, model_path, mfa_dictionary,
        mfa_acoustic_model, quiet):
    """Forced alignment: fill supervision.alignment["word"] of every cut.

    Items that cannot be aligned go to rejected.jsonl beside --out with the reason; the job never stops on one item
    and can be restarted (done and rejected ids are skipped).

    \b
    Example:
        jstip align --aligner pocketsphinx --in data/cuts.jsonl.gz --out data/aligned/cuts.jsonl.gz -j 4
        jstip align --aligner ctc --model my_ctc.nemo --in cuts.jsonl.gz --out ctc/cuts.jsonl.gz --shard 0/8
        jstip align compare --ref tts/cuts.jsonl.gz --hyp data/aligned/cuts.jsonl.gz

    Subcommands: compare, import-textgrid, import-ctm, export (each has --help).
    """
    if ctx.invoked_subcommand is not None:
        return
    if not in_path or not out_path:
        raise click.UsageError("give --in CUTS and --out CUTS (or a subcommand; see jstip align --help)")

    from jstip.align import align_cuts, get_aligner
    from jstip.sharding import parse_shard

    options: dict = {}
    if aligner_name == "pocketsphinx":
        options["phones"] = phones
        if not mismatch_check:
            options.update(max_poor_share=float("inf"), min_mean_score=float("-inf"))
    elif aligner_name == "ctc":
        if not model_path:
            raise click.UsageError("--aligner ctc needs --model PATH.nemo")
        options["model_path"] = model_path
    elif aligner_name == "mfa":
        options.update(dictionary=mfa_dictionary, acoustic_model=mfa_acoustic_model, num_jobs=num_jobs)
    try:
        parse_shard(shard)
        aligner = get_aligner(aligner_name, **options)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    from jstip.align.base import STAGE
    from jstip.manifests import ManifestError, read_cuts
    from jstip.rejects import RejectLog

    # A manifest line that cannot be read is rejected (FILE:LINE and the reason); the other cuts are aligned.
    line_rejects = RejectLog(Path(out_path).parent / "rejected.jsonl", STAGE)
    try:
        cuts = read_cuts(in_path, line_rejects)
    except ManifestError as err:
        from jstip.errors import InputError

        raise InputError(str(err)) from err
    summary = align_cuts(cuts, aligner, out_path, num_jobs=num_jobs, shard=shard, progress=not quiet,
                         source=in_path, options={"aligner": aligner_name, "phones": phones, "model": model_path,
                                                  "mismatch_check": mismatch_check, "mfa_dictionary": mfa_dictionary,
                                                  "mfa_acoustic_model": mfa_acoustic_model})
    click.echo(json.dumps({"aligner": aligner_name, **summary.as_dict(), "bad_lines": line_rejects.count,
                           "out": str(out_path), "rejected_file": str(Path(out_path).parent / "rejected.jsonl")}))


@cli.command(name="compare")
@click.option("--ref", "ref_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Reference cuts (e.g. TTS engine times).")
@click.option("--hyp", "hyp_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Cuts whose alignment is measured.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write the full JSON report here.")
@click.option("--trim-to-voiced/--no-trim", default=True, show_default=True,
              help="Compare only the voiced part of each word (edges moved off silence in both alignments).")
def compare_cmd(ref_path, hyp_path, out_path, trim_to_voiced):
    """Boundary accuracy of --hyp against --ref: mean abs start/end error (ms), share within 20/50 ms.

    Prints the overall figures; --out gets them per utterance too.

    \b
    Example:
        jstip align compare --ref tts/cuts.jsonl.gz --hyp aligned/cuts.jsonl.gz --out boundary.json
    """
    from lhotse import CutSet

    from jstip.align.compare import compare_alignments

    report = compare_alignments(CutSet.from_file(ref_path), CutSet.from_file(hyp_path), trim_to_voiced=trim_to_voiced)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(report, indent=1))
    click.echo(json.dumps({"overall": report["overall"], "missing": len(report["missing"]),
                           "mismatched": len(report["mismatched"])}))


def _import(cuts_path, out_path, lookup, describe):
    from lhotse import CutSet

    from jstip.align.base import STAGE, AlignmentError
    from jstip.rejects import RejectLog

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rejects = RejectLog(out_path.parent / "rejected.jsonl", STAGE)
    n = 0
    with CutSet.open_writer(out_path) as writer:
        for cut in CutSet.from_file(cuts_path):
            try:
                writer.write(lookup(cut))
                n += 1
            except AlignmentError as e:
                rejects.reject(cut.id, str(e))
            except Exception as e:  # noqa: BLE001 - a broken file rejects one item, never the job
                rejects.reject(cut.id, f"{describe(cut)}: {type(e).__name__}: {e}")
    click.echo(json.dumps({"imported": n, "rejected": rejects.count, "out": str(out_path)}))


@cli.command(name="import-textgrid")
@click.option("--cuts", "cuts_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--textgrids", "tg_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder with <cut id>.TextGrid files (searched recursively, as MFA writes them).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--tier", default=None, help="Word tier name (default: the tier ending in 'words').")
def import_textgrid_cmd(cuts_path, tg_dir, out_path, tier):
    """Read word alignments from TextGrids (e.g. MFA output) into cuts.

    \b
    Example:
        jstip align import-textgrid --cuts cuts.jsonl.gz --textgrids mfa_out/ --out aligned/cuts.jsonl.gz
    """
    from jstip.align.base import AlignmentError
    from jstip.align.textgrid import cut_with_textgrid

    index = {p.stem: p for p in Path(tg_dir).rglob("*.TextGrid")}

    def lookup(cut):
        path = index.get(cut.id)
        if path is None:
            raise AlignmentError(f"no TextGrid named {cut.id}.TextGrid under {tg_dir}")
        return cut_with_textgrid(cut, path, tier)

    _import(cuts_path, out_path, lookup, lambda cut: f"TextGrid of {cut.id}")


@cli.command(name="import-ctm")
@click.option("--cuts", "cuts_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ctm", "ctm_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CTM file: <cut id> <channel> <start> <duration> <word> [<score>] per line.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
def import_ctm_cmd(cuts_path, ctm_path, out_path):
    """Read word alignments from a CTM file into cuts.

    \b
    Example:
        jstip align import-ctm --cuts cuts.jsonl.gz --ctm words.ctm --out aligned/cuts.jsonl.gz
    """
    from jstip.align.base import AlignmentError
    from jstip.align.textgrid import cut_with_ctm, read_ctm

    entries = read_ctm(ctm_path)

    def lookup(cut):
        if cut.id not in entries:
            raise AlignmentError(f"no lines for {cut.id} in {ctm_path}")
        return cut_with_ctm(cut, entries[cut.id])

    _import(cuts_path, out_path, lookup, lambda cut: f"CTM lines of {cut.id}")


@cli.command(name="export")
@click.option("--in", "in_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["textgrid", "ctm"]), default="textgrid", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder: one <cut id>.TextGrid per cut, or words.ctm.")
def export_cmd(in_path, fmt, out_dir):
    """Write word alignments as TextGrids (words + phones tiers) or one CTM file.

    \b
    Example:
        jstip align export --in aligned/cuts.jsonl.gz --format textgrid --out textgrids/
    """
    from lhotse import CutSet

    from jstip.align.textgrid import write_ctm, write_textgrid

    cuts = CutSet.from_file(in_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "ctm":
        n = write_ctm(cuts, out / "words.ctm")
        click.echo(json.dumps({"lines": n, "out": str(out / "words.ctm")}))
        return
    n = 0
    for cut in cuts:
        name = re.sub(r"[/\\]", "_", cut.id)
        write_textgrid(cut, out / f"{name}.TextGrid")
        n += 1
    click.echo(json.dumps({"textgrids": n, "out": str(out)}))
