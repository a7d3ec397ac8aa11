"""A crafted checkpoint runs nothing: every way jstip loads one (evaluate, model.init_from, resume) refuses it."""

from __future__ import annotations

import pathlib

import pytest
import torch
from click.testing import CliRunner


class Payload:
    """Unpickling this writes a file: what a crafted checkpoint does when loaded with weights_only=False."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "code ran")


def crafted(path: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    """A file shaped like a jstip checkpoint (state_dict, jstip meta) with a payload in it."""
    torch.save({"state_dict": {"model.x": torch.zeros(2)}, "global_step": 3,
                "jstip": {"config": {"model": {}}, "payload": Payload(marker)}}, path)
    return path


def test_the_payload_does_run_under_an_unsafe_load(tmp_path):
    """The test's own control: loaded the unsafe way, the crafted file does write its marker."""
    marker = tmp_path / "ran"
    torch.load(crafted(tmp_path / "x.ckpt", marker), weights_only=False)
    assert marker.read_text() == "code ran"


def test_read_checkpoint_refuses_a_crafted_file_and_names_it(tmp_path):
    from jstip.train.checkpoint_file import CheckpointFileError, read_checkpoint

    marker = tmp_path / "ran"
    path = crafted(tmp_path / "x.ckpt", marker)
    for mmap in (False, True):
        with pytest.raises(CheckpointFileError, match="refused to load") as err:
            read_checkpoint(path, mmap=mmap)
        assert str(path) in str(err.value) and "Unsupported global" in str(err.value)
        assert "allowlist" not in str(err.value)  # torch's advice to allow the global is not passed on
    assert not marker.exists()
    (tmp_path / "torn.ckpt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointFileError, match="a truncated torch checkpoint"):
        read_checkpoint(tmp_path / "torn.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointFileError, match="holds a list, not a checkpoint"):
        read_checkpoint(tmp_path / "list.ckpt")


def test_evaluate_refuses_a_crafted_checkpoint(tmp_path, mini_corpus):
    from jstip.cli import main

    marker = tmp_path / "ran"
    path = crafted(tmp_path / "last.ckpt", marker)
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--cuts",
                                       str(mini_corpus / "test" / "cuts.jsonl.gz"), "--out", str(tmp_path / "eval"),
                                       "--no-spoken-tasks", "--no-progress"])
    assert result.exit_code == 2 and "refused to load" in result.output and str(path) in result.output
    assert not marker.exists()


def test_init_from_and_resume_refuse_a_crafted_checkpoint(tiny_overrides, tmp_path):
    from jstip.cli import main

    marker = tmp_path / "ran"
    path = crafted(tmp_path / "evil.ckpt", marker)
    args = tiny_overrides("init", **{"model.init_from": path, "trainer.max_steps": 1})
    result = CliRunner().invoke(main, ["train", "--config-name", "tiny", *args])
    assert result.exit_code != 0 and "refused to load" in str(result.output) + str(result.exception)
    assert not marker.exists()
    # resume: a crafted last.ckpt planted in the run's checkpoint folder
    args = tiny_overrides("resume", **{"trainer.max_steps": 1})
    (tmp_path / "resume" / "checkpoints").mkdir(parents=True)
    crafted(tmp_path / "resume" / "checkpoints" / "last.ckpt", marker)
    result = CliRunner().invoke(main, ["train", "--config-name", "tiny", *args])
    assert result.exit_code != 0 and "refused to load" in str(result.output) + str(result.exception)
    assert not marker.exists()
