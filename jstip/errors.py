"""Errors a command reports as one line with the fix, exit code 2: the input is not what the command needs (a file
that is not a cut manifest or not a jstip checkpoint). Tracebacks are for jstip's own bugs."""

from __future__ import annotations

import click


class InputError(click.ClickException):
    """Printed as ``Error: <message>``; exit code 2."""

    exit_code = 2
