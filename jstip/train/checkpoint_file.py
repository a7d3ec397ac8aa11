"""Reading a checkpoint file without running code from it.

A torch checkpoint is a pickle: loaded with ``torch.load(weights_only=False)`` a crafted file runs whatever its
author put in it. jstip reads every checkpoint a user hands it (``jstip evaluate --checkpoint``, ``model.init_from``,
``resume``) with ``weights_only=True``: tensors, numbers, strings, lists, tuples and dicts only, plus the few numpy
types that jstip's own checkpoints hold (the numpy RNG state that exact resumption restores: an ``ndarray`` of
``uint32``). Anything else is refused with an error that names the file, before a single object is built.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch


class CheckpointFileError(ValueError):
    """A checkpoint file that jstip will not load: unreadable, not a checkpoint, or holding code."""


def _safe_numpy_globals() -> list:
    """The numpy globals of the RNG state in jstip checkpoints: array reconstruction of a plain ndarray and dtype."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    out = [_reconstruct, np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out.append(dtypes.UInt32DType)
    return out


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """The contents of the checkpoint ``path``, loaded on the CPU with ``weights_only=True``.

    Args:
        mmap: map the tensors instead of reading them (cheap when only the metadata is needed).

    Raises:
        CheckpointFileError: the file is missing, is not a torch checkpoint, or holds objects other than tensors and
            plain data (a pickle that could run code); the message names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFileError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # neither torch's zip format nor a legacy pickle
        what = "a truncated torch checkpoint" if head == b"PK" else "not a torch checkpoint"
        raise CheckpointFileError(f"{path}: {what} (a checkpoint written by `jstip train` is "
                                  "EXP/checkpoints/last.ckpt or stepNNNNNN.ckpt)")
    try:
        with torch.serialization.safe_globals(_safe_numpy_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        # torch's message goes on to suggest allow-listing the global; name only what was found.
        reason = str(err).split("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0].split(". Please use")[0]
        raise CheckpointFileError(
            f"{path}: refused to load: the file holds Python objects that loading would run ({reason}). jstip reads "
            "checkpoints as tensors and plain data only (torch.load(weights_only=True)); a checkpoint written by "
            "`jstip train` loads, one from elsewhere must be re-saved as a state dict by code you trust") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointFileError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}); was the file truncated or is "
                                  "it another format?") from err
    if not isinstance(ckpt, dict):
        raise CheckpointFileError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint (a dict with "
                                  "'state_dict' written by `jstip train`)")
    return ckpt


__all__ = ["CheckpointFileError", "read_checkpoint"]
