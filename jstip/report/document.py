"""A report as one list of blocks (headings, paragraphs, tables, charts), rendered to HTML and to Markdown.

Every report jstip writes (`jstip report`, `jstip report grid`) builds a list of blocks once; :func:`to_html` and
:func:`to_markdown` render the same list, so the two files cannot drift apart. Figures become text with
:mod:`jstip.scoring.figures`.

The HTML is self-contained: charts are embedded as base64 PNG and the style is inline; it loads nothing and runs no
script. The Markdown references the charts as ``FILES/<key>.png``; the writer of the report saves the charts and
replaces ``FILES/`` with their folder's name.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


# ---------------------------------------------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True)
class Rich:
    """Text with its own HTML (already escaped and marked up) and its plain form for Markdown."""

    html: str
    text: str


Text = str | Rich


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str | None = None


@dataclass(frozen=True)
class Paragraph:
    text: Text
    note: bool = False
    """Small print (HTML class ``note``)."""
    strong: bool = False


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Text]]


@dataclass(frozen=True)
class Chart:
    key: str
    """The chart's PNG in the report's charts (``FILES/<key>.png`` in the Markdown)."""
    alt: str


Block = Heading | Paragraph | Table | Chart


# ---------------------------------------------------------------------------------------------------------------
# Rendering


_STYLE = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#1b1f23;
padding:0 16px}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f4f6}
mark.miss{background:#ffc9c9;color:#8a0000;font-weight:600}mark.hit{background:#c9f2d0;color:#064d15}
.empty{color:#888;font-style:italic}.note{color:#555;font-size:0.88em}img{max-width:100%;border:1px solid #eee}
"""


def _html_text(text: Text) -> str:
    return text.html if isinstance(text, Rich) else html.escape(text)


def _md_text(text: Text) -> str:
    return text.text if isinstance(text, Rich) else text


def html_table(header: Sequence[str], rows: Sequence[Sequence[Text]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_html_text(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Text]]) -> str:
    def cell(text: Text) -> str:
        return _md_text(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_html(blocks: Sequence[Block], title: str, charts: Mapping[str, bytes]) -> str:
    """The blocks as one self-contained HTML page titled ``title``."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            anchor = f" id='{html.escape(block.anchor)}'" if block.anchor else ""
            parts.append(f"<h{block.level}{anchor}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            text = _html_text(block.text)
            parts.append(("<p class='note'>" if block.note else "<p>")
                         + (f"<b>{text}</b>" if block.strong else text) + "</p>")
        elif isinstance(block, Table):
            parts.append(html_table(block.header, block.rows))
        elif isinstance(block, Chart):
            data = base64.b64encode(charts[block.key]).decode("ascii")
            parts.append(f'<p><img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}"></p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def to_markdown(blocks: Sequence[Block], title: str | None = None) -> str:
    """The blocks as Markdown (charts as ``FILES/<key>.png``)."""
    lines = [f"# {title}", ""] if title else []
    for block in blocks:
        if isinstance(block, Heading):
            lines += [f"{'#' * block.level} {block.text}", ""]
        elif isinstance(block, Paragraph):
            text = _md_text(block.text)
            lines += [f"**{text}**" if block.strong else text, ""]
        elif isinstance(block, Table):
            lines += [markdown_table(block.header, block.rows), ""]
        elif isinstance(block, Chart):
            lines += [f"![{block.alt}](FILES/{block.key}.png)", ""]
    return "\n".join(lines)
