"""Reading the ``--input`` of ``symgraph predict``: errors speak of the user's file.

A .npy or .csv holds one sample per row; what is wrong with it (not an array file, a
pickle, text or complex values, no rows, a 0-d scalar) is said in those terms instead of
surfacing later as an index error deep in the module.
"""

from __future__ import annotations

import os

import numpy as np

from symgraph.errors import SerializationError
from symgraph.fileio import read_file_bytes


def read_input(path: str) -> np.ndarray:
    """The samples in ``path`` as float32, at least 1-D with one sample per row."""
    if not path.endswith((".npy", ".csv")):
        raise ValueError(f"--input {path!r}: expected a .npy or .csv file")
    if not os.path.isfile(path):
        read_file_bytes(path, "input file")  # raises the error that names the file
    data = _read_npy(path) if path.endswith(".npy") else _read_csv(path)
    if data.ndim == 0:
        raise SerializationError(f"--input {path}: holds a single number (a 0-d array); "
                                 "predict needs one sample per row, e.g. shape (N, 16)")
    if data.shape[0] == 0:
        raise SerializationError(f"--input {path}: has no samples (shape {data.shape})")
    if not np.isfinite(data).all():
        raise SerializationError(f"--input {path}: holds NaN or infinite values")
    return data


def _read_npy(path: str) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SerializationError(f"--input {path}: not a readable .npy array file "
                                 f"({_short(exc)})") from None
    if not isinstance(data, np.ndarray):
        raise SerializationError(f"--input {path}: is an archive of several arrays; save "
                                 "one array with np.save")
    if data.dtype.kind not in "biuf":
        raise SerializationError(f"--input {path}: holds {data.dtype} values; predict needs "
                                 "numbers (float32 or an integer type)")
    return data.astype(np.float32)


def _read_csv(path: str) -> np.ndarray:
    try:
        return np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"--input {path}: not a CSV of numbers ({_short(exc)})") \
            from None


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
