"""Figures as text: fractions in percent, differences in signed points, intervals. Every table, report and command
line that shows a figure formats it here."""

from __future__ import annotations

import math


def pct(value: float | None, digits: int = 2) -> str:
    """A fraction in percent (``0.253`` -> ``25.30``); ``–`` for None or NaN."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def signed_pct(value: float | None, digits: int = 2) -> str:
    """A difference of fractions in signed percentage points (``-0.05`` -> ``-5.00``); ``–`` for None or NaN."""
    return "–" if value is None or math.isnan(value) else f"{100 * value:+.{digits}f}"


def interval(low: float, high: float, digits: int = 2, signed: bool = False) -> str:
    """``[low, high]`` in percent (signed points with ``signed``)."""
    fmt = signed_pct if signed else pct
    return f"[{fmt(low, digits)}, {fmt(high, digits)}]"
