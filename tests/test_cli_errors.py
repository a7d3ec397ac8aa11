"""A user's first mistakes end in one line naming the fix and exit code 2, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def jstip(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jstip.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.lower().startswith("error")]
    assert len(lines) == 1, r.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_unknown_config_name_lists_the_packaged_configs(tmp_path):
    one_line_error(jstip("train", "--config-name", "tinyy", f"exp_dir={tmp_path}"),
                   "no config 'tinyy'", "tiny", "whisper_smollm2")


def test_override_of_a_key_that_does_not_exist_names_the_nearest(tmp_path, mini_corpus):
    one_line_error(jstip("train", "--config-name", "tiny", f"exp_dir={tmp_path}",
                         f"data.train_cuts={mini_corpus / 'train' / 'cuts.jsonl.gz'}", "data.max_durationn=3"),
                   "no key 'data.max_durationn'", "data.max_duration", "+data.max_durationn=")


@pytest.fixture()
def not_a_manifest(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text('{\n  "these": "are not cuts"\n}\n')
    return path


def test_a_file_that_is_not_a_cut_manifest(tmp_path, not_a_manifest, mini_corpus):
    one_line_error(jstip("align", "--in", not_a_manifest, "--out", tmp_path / "a" / "c.jsonl.gz", "--quiet"),
                   "is not a lhotse manifest", f"{not_a_manifest}:1")
    one_line_error(jstip("interleave", "--in", not_a_manifest, "--out", tmp_path / "i" / "e.jsonl"),
                   "is not a lhotse manifest")
    one_line_error(jstip("train", "--config-name", "tiny", f"exp_dir={tmp_path / 't'}", "logger.wandb=false",
                         f"data.train_cuts={not_a_manifest}"), "is not a lhotse manifest")


def test_a_file_that_is_not_a_jstip_checkpoint(tmp_path, not_a_manifest, mini_corpus):
    one_line_error(jstip("evaluate", "--checkpoint", not_a_manifest, "--cuts", mini_corpus / "test" / "cuts.jsonl.gz",
                         "--out", tmp_path / "e"), "not a torch checkpoint", "last.ckpt")


def test_verbose_shows_the_traceback_behind_the_one_line_error(tmp_path, not_a_manifest, mini_corpus):
    args = ["evaluate", "--checkpoint", not_a_manifest, "--cuts", mini_corpus / "test" / "cuts.jsonl.gz",
            "--out", tmp_path / "e"]
    r = jstip("--verbose", *args)
    assert r.returncode == 2 and "Traceback" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith("Error:") and "not a torch checkpoint" in r.stderr
    one_line_error(jstip(*args), "not a torch checkpoint")  # without it: the one line only
