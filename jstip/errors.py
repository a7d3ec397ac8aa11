"""Errors a command reports as one line with the fix, exit code 2: the input is not what the command needs (a file
that is not a cut manifest or not a jstip checkpoint). Tracebacks are for jstip's own bugs; ``jstip --verbose ...``
(or ``JSTIP_VERBOSE=1``) also prints the traceback behind a one-line error, for a bug report."""

from __future__ import annotations

import os
import sys
import traceback

import click

_verbose = False


def set_verbose(on: bool = True) -> None:
    """Print tracebacks behind one-line errors (``jstip --verbose``); children inherit it through the environment."""
    global _verbose
    _verbose = bool(on)
    if on:
        os.environ["JSTIP_VERBOSE"] = "1"


def verbose() -> bool:
    return _verbose or os.environ.get("JSTIP_VERBOSE", "") not in ("", "0")


def show_traceback(err: BaseException, file=None) -> None:
    """The traceback of ``err`` (and what caused it) on stderr, when verbose; nothing otherwise."""
    if verbose():
        traceback.print_exception(type(err), err, err.__traceback__, file=file or sys.stderr)


class InputError(click.ClickException):
    """Printed as ``Error: <message>``; exit code 2. Verbose: the traceback of its cause first."""

    exit_code = 2

    def show(self, file=None) -> None:
        if self.__cause__ is not None:
            show_traceback(self.__cause__, file)
        super().show(file)
