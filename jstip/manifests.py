"""Reading lhotse manifests line by line, so that one bad line never loses the good ones.

lhotse's ``CutSet.from_file`` stops at the first bad line and a truncated ``.jsonl.gz`` ends in a bare error. Here a
manifest is read item by item: a line that is not UTF-8, not JSON, or not a lhotse item is rejected with
``FILE:LINE`` and the reason; a file that ends early (a truncated gzip) keeps the items read before the break and
rejects the rest with the line it stopped at. Reading runs nothing: a ``command`` audio source is only run when its
audio is loaded, which :mod:`jstip.audio` refuses by default.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path


class ManifestError(ValueError):
    """A manifest line that cannot be read (raised when no reject log is given)."""


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def iter_manifest(path: str | Path, rejects=None) -> Iterator[object]:
    """The lhotse items (cuts, recordings, supervisions) of a ``.jsonl`` / ``.jsonl.gz`` manifest, in order.

    Args:
        rejects: a :class:`jstip.rejects.RejectLog`; a bad line is written there as ``FILE:LINE`` with its reason
            (once: ids it already holds are not written again) and skipped. Without it a bad line raises.

    Raises:
        FileNotFoundError: the file is missing.
        ManifestError: a bad line, without ``rejects``; with them, a bad first line (the file is not a manifest).
    """
    from lhotse.serialization import deserialize_item

    from jstip.rejects import rejected_ids

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    done = rejected_ids(rejects.path) if rejects is not None else set()

    def bad(item_id: str, reason: str) -> None:
        if rejects is None or good == 0 and content <= 1:
            # The first line not a lhotse item: the file is something else, not a damaged manifest.
            what = "" if rejects is None else f"{path} is not a lhotse manifest: "
            raise ManifestError(f"{what}{item_id}: {reason}")
        if item_id not in done:
            rejects.reject(item_id, reason)
            done.add(item_id)

    lineno, good, content = 0, 0, 0
    with _open(path) as f:
        while True:
            try:
                raw = f.readline()
            except (EOFError, OSError, zlib.error) as err:
                bad(f"{path}:{lineno + 1}", f"the file ends early after line {lineno} ({type(err).__name__}: {err}): "
                    "the items before are kept, the rest is lost; copy or regenerate the file whole")
                return
            if not raw:
                return
            lineno += 1
            if not raw.strip():
                continue
            content += 1
            where = f"{path}:{lineno}"
            try:
                data = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                bad(where, f"not UTF-8 (byte {raw[err.start]:#04x} at position {err.start})")
                continue
            except json.JSONDecodeError as err:
                bad(where, f"not valid JSON ({err}); each line must be one lhotse item as a JSON object")
                continue
            if not isinstance(data, dict):
                bad(where, "not a JSON object (a lhotse manifest line is one cut, recording or supervision)")
                continue
            try:
                item = deserialize_item(data)
            except Exception as err:  # noqa: BLE001 -- lhotse raises many types for a malformed item
                first = str(err).splitlines()[0][:200] if str(err) else ""
                bad(where, f"not a lhotse item ({type(err).__name__}: {first})")
                continue
            good += 1
            yield item


def iter_cuts(path: str | Path, rejects=None) -> Iterator[object]:
    """The cuts of a cut manifest, one at a time (bad lines and non-cut items: see :func:`iter_manifest`)."""
    from lhotse.cut import Cut

    from jstip.rejects import rejected_ids

    done = None
    for lineno, item in enumerate(iter_manifest(path, rejects), 1):
        if isinstance(item, Cut):
            yield item
            continue
        if rejects is None:
            raise ManifestError(f"{path}: holds a {type(item).__name__}, not a cut (give a cut manifest)")
        done = rejected_ids(rejects.path) if done is None else done
        item_id = getattr(item, "id", f"{path}:item{lineno}")
        if item_id not in done:  # once: a file read every epoch reports its non-cut items on the first read
            rejects.reject(item_id, f"{path}: a {type(item).__name__} in a cut manifest, not a cut")
            done.add(item_id)


def read_cuts(path: str | Path, rejects=None):
    """The cuts of a cut manifest as an eager ``CutSet`` (bad lines and non-cut items: see :func:`iter_manifest`)."""
    from lhotse import CutSet

    return CutSet.from_cuts(list(iter_cuts(path, rejects)))


__all__ = ["ManifestError", "iter_cuts", "iter_manifest", "read_cuts"]
