"""``sg.test_utils``: MXNet's ``mx.test_utils.get_mnist`` and ``download``, offline-aware.

``download`` fetches a URL once and returns the local path; a file already there is used
without touching the network, so on an offline machine a user puts the file where the
error message says and calls again.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request

from runtime.atomic import atomic_write
from runtime.datasets import get_mnist
from symgraph.errors import SymgraphError

__all__ = ["get_mnist", "download", "DownloadError", "list_gpus"]

_TIMEOUT = 60


class DownloadError(SymgraphError, OSError):
    """A file could not be downloaded (offline, or the server failed)."""


def _target(url, fname, dirname) -> str:
    if fname is None:
        fname = url.split("/")[-1]
        if not fname:
            raise ValueError(f"download: cannot take a file name from {url!r}; pass fname")
    if dirname is None:
        return fname
    return os.path.join(dirname, fname)


def download(url, fname=None, dirname=None, overwrite=False, retries=5):
    """Download ``url`` to ``fname`` (default: the URL's last part) in ``dirname``.

    As MXNet's: an existing file is returned unless ``overwrite``; ``retries`` attempts are
    made. The file is written atomically. Returns the file name.
    """
    if retries < 0:
        raise ValueError(f"download: retries must be >= 0, got {retries}")
    path = _target(url, fname, dirname)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if not overwrite and os.path.exists(path):
        logging.info("%s exists, skipping download", path)
        return path
    errors = []
    for _ in range(max(1, retries)):
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
                payload = response.read()
            break
        except (urllib.error.URLError, OSError) as err:
            errors.append(str(getattr(err, "reason", err)))
    else:
        raise DownloadError(
            f"download of {url} failed after {max(1, retries)} attempt(s) ({errors[-1]}). "
            f"If this machine is offline, fetch the file elsewhere and put it at "
            f"{os.path.abspath(path)}; download() then returns it without the network.")
    atomic_write(path, payload)
    logging.info("downloaded %s into %s successfully", url, path)
    return path


def list_gpus() -> list:
    """symgraph runs on the CPU: there are never GPUs."""
    return []
