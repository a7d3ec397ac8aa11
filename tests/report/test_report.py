import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from jstip.report.report import build_report
from jstip.report.runs import load_run
from jstip.scoring.stats import paired_bootstrap
from jstip.report.commands import cli


def test_paired_bootstrap_interval_contains_the_difference_and_detects_a_real_gap():
    rng = np.random.default_rng(0)
    totals = rng.integers(5, 30, size=2000)
    errors_a = rng.binomial(totals, 0.20)
    errors_b = rng.binomial(totals, 0.10)
    delta, low, high, p_better = paired_bootstrap(errors_a, errors_b, totals, num_samples=500)
    assert low < delta < high < 0
    assert delta == pytest.approx(-0.10, abs=0.01)
    assert p_better == 1.0
    # no difference at all: the interval straddles 0
    delta, low, high, _ = paired_bootstrap(errors_a, errors_a.copy(), totals, num_samples=200)
    assert delta == 0 and low <= 0 <= high


def test_report_compares_runs(two_runs, tmp_path):
    baseline, better = two_runs
    report = build_report([baseline, better], num_samples=300)
    metrics = {d.metric: d for d in report.differences}
    a, b = load_run(baseline), load_run(better)
    assert metrics["wer"].value_a == pytest.approx(a.metrics["wer"])
    assert metrics["wer"].delta == pytest.approx(b.metrics["wer"] - a.metrics["wer"])
    assert metrics["eer"].delta == pytest.approx(b.metrics["eer"] - a.metrics["eer"])
    assert metrics["eer"].high < 0  # the better system's EER is lower, with an interval that excludes 0
    assert {"figures", "eer_per_category", "learning_curves"} <= set(report.charts)
    assert "train_loss" in a.curves and "val_loss" in a.curves


def test_report_command_writes_self_contained_html_and_markdown(two_runs, tmp_path):
    baseline, better = two_runs
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, [str(baseline), str(better), "--out", str(out), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    assert "EER interleaved - asr_only" in result.output
    page = out.read_text()
    # self-contained: every image inline, no URL to fetch, no script
    assert "<script" not in page
    assert not re.search(r"(src|href)=[\"'](?!data:)", page)
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 3
    assert "Entity error rate per category" in page and 'class="miss"' in page
    md = out.with_suffix(".md").read_text()
    assert "| WER |" in md and "report_files/eer_per_category.png" in md
    assert (tmp_path / "report_files" / "eer_per_category.png").exists()


def test_report_shows_spoken_task_figures_when_present(two_runs, tmp_path):
    import shutil as sh

    runs = []
    for k, (src, gap) in enumerate(zip(two_runs, (-0.2, 0.05))):
        dst = tmp_path / src.name
        sh.copytree(src, dst)
        metrics = json.loads((dst / "metrics.json").read_text())
        metrics["modality_gap"] = {"accuracy_text": 0.6, "accuracy_speech": 0.6 + gap, "gap": gap,
                                   "gap_interval": [gap - 0.1, gap + 0.1]}
        metrics["instruction_following"] = {"prompt_level": 0.4 + 0.1 * k, "instruction_level": 0.5, "ecr": 0.25}
        (dst / "metrics.json").write_text(json.dumps(metrics))
        runs.append(dst)
    report = build_report(runs, num_samples=50)
    assert "Spoken tasks" in report.html and "modality gap (speech − text)" in report.html
    assert "-20.00 [-30.00, -10.00]" in report.html and "+5.00" in report.html
    assert "| instructions: prompt level (mean of strict, loose) | 40.0 | 50.0 |" in report.markdown


def test_report_shows_the_listening_figure_of_runs_that_have_it(two_runs, tmp_path):
    import shutil as sh

    listens = tmp_path / "listens"
    sh.copytree(two_runs[1], listens)
    metrics = json.loads((listens / "metrics.json").read_text())
    metrics["listening"] = {"loss_own": 0.31, "loss_other": 4.52, "rise": 4.21, "tokens": 900, "utterances": 100}
    (listens / "metrics.json").write_text(json.dumps(metrics))
    report = build_report([two_runs[0], listens], num_samples=20, names=["baseline", "listens"])
    assert "| does it listen: rise with another's audio (nats) | – | +4.21 |" in report.markdown
    assert "| loss per token, own audio (nats) | – | 0.31 |" in report.markdown
    assert "another utterance&#x27;s audio" in report.html or "another utterance's audio" in report.html
    assert "does it listen" not in build_report([two_runs[0]], num_samples=20).markdown


def test_report_shows_eer_by_exposure_with_intervals(two_runs, tmp_path):
    import shutil as sh

    runs = []
    for src in two_runs:
        dst = tmp_path / src.name
        sh.copytree(src, dst)
        rows = [json.loads(line) for line in (dst / "hyps.jsonl").read_text().splitlines()]
        for row in rows:
            for e in row.get("entities") or []:
                e["exposure"] = len(e["text"]) % 12  # some terms never heard, some often
        (dst / "hyps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        metrics = json.loads((dst / "metrics.json").read_text())
        metrics["eer_per_exposure"] = {"edges": [0, 1, 3, 10], "buckets": {}}
        (dst / "metrics.json").write_text(json.dumps(metrics))
        runs.append(dst)
    report = build_report(runs, num_samples=100)
    assert "Entity error rate by exposure" in report.html and "eer_by_exposure" in report.charts
    line = next(line for line in report.markdown.splitlines() if line.startswith("| >=10 |"))
    assert line.count("[") == 2 and "/" in line  # an interval and misses/entities for both runs
    assert "by exposure" not in build_report([two_runs[0]], num_samples=20).markdown


def test_report_names_a_missing_file(tmp_path):
    (tmp_path / "run").mkdir()
    result = CliRunner().invoke(cli, [str(tmp_path / "run"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code != 0 and "metrics.json" in result.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(url: str, user_data_dir, *extra: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={user_data_dir}",
             "--enable-logging=stderr", "--v=0"]
    return subprocess.run([CHROMIUM, *flags, *extra, url], capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(two_runs, tmp_path):
    # The console capture works: a page with an error is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); missingFunction();</script></body></html>")
    probe = run_chromium(bad.as_uri(), tmp_path / "profile0", "--dump-dom")
    assert any("boom" in line for line in console_messages(probe.stderr)), probe.stderr[-2000:]

    baseline, better = two_runs
    out = tmp_path / "report.html"
    assert CliRunner().invoke(cli, [str(baseline), str(better), "--out", str(out), "--bootstrap", "200"]).exit_code == 0
    dom = run_chromium(out.as_uri(), tmp_path / "profile1", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    assert dom.stdout.count("<table>") >= 4 and "Worst utterances" in dom.stdout
    shot = tmp_path / "report.png"
    run_chromium(out.as_uri(), tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.exists() and shot.stat().st_size > 20_000
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] == 2400 and pixels.shape[1] == 1280
    # not a blank page: the charts and tables draw many distinct colours
    assert len(np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50


def test_report_of_a_single_run_without_entities(tmp_path):
    from jstip.scoring.score import score, write_scores

    write_scores(score([{"id": "a", "text": "hello world"}, {"id": "b", "text": "good morning"}],
                       [{"id": "a", "hyp": "hello word"}, {"id": "b", "hyp": "good morning"}]), tmp_path / "run")
    report = build_report([tmp_path / "run"], num_samples=20)
    assert report.differences == []
    assert "Differences" not in report.html and "Entity error rate per category" not in report.html
    assert "| WER | 25.00 (S 1 I 0 D 0 / 4) |" in report.markdown
    assert set(report.charts) == {"figures"}
