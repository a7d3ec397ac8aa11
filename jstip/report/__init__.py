"""Reports of scored runs: `jstip report` (runs side by side) and `jstip report grid` (arms x seeds).

- :mod:`jstip.report.runs`: a run folder loaded, and the paired comparisons between runs;
- :mod:`jstip.report.document`: a report as one list of blocks, rendered to HTML and to Markdown;
- :mod:`jstip.report.charts`: the charts;
- :mod:`jstip.report.report`, :mod:`jstip.report.grid`, :mod:`jstip.report.grid_report`: the two reports.

Reports read what scoring wrote (``metrics.json``, ``hyps.jsonl``, training logs); nothing in the stages below
imports them.
"""
