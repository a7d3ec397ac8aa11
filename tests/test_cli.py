"""`--help` works at every level of the jstip command, through the installed console script."""

import subprocess
import sys
from pathlib import Path

import click
import pytest

from jstip.cli import SUBCOMMANDS, main

JSTIP = Path(sys.executable).with_name("jstip")


def _all_commands():
    ctx = click.Context(main)
    out = []
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        out.append([name])
        if isinstance(cmd, click.Group):
            out += [[name, sub] for sub in cmd.list_commands(click.Context(cmd))]
    return out


def test_top_level_help_lists_the_stages():
    r = subprocess.run([str(JSTIP), "--help"], capture_output=True, text=True, check=True)
    for name in ("prepare", "synthesize", "demo"):
        assert name in r.stdout
    assert set(main.list_commands(click.Context(main))) <= set(SUBCOMMANDS)


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path):
    r = subprocess.run([str(JSTIP), *path, "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout
    assert "jstip" in r.stdout.split("Usage:", 1)[1]
