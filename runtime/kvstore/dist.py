"""``dist_sync`` (and ``dist_device_sync``, ``dist_async``, ``horovod``) over MPI.

Every worker holds the full parameters; a push or pushpull sums the value over all
workers with one in-place ``MPI_Allreduce``, and ``init``/``broadcast`` copy rank 0's
value to everyone, so every worker applies the same update to the same weights. Started
without ``mpiexec`` the store is a single worker (with a warning), so one script runs
either way.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np

from runtime.kvstore import comm as _comm
from runtime.kvstore.errors import RankMismatchError
from runtime.kvstore.local import LocalKVStore

DIST_TYPES = ("dist_sync", "dist_device_sync", "dist_async", "dist", "horovod")


class DistKVStore(LocalKVStore):
    """Synchronous data parallelism: MXNet's ``dist_sync`` semantics on MPI."""

    def __init__(self, name="dist_sync", timeout=None):
        super().__init__(name)
        _comm.import_mpi()  # a clear error when mpi4py is missing, launched or not
        if name == "dist_async":
            warnings.warn("kvstore 'dist_async': symgraph trains synchronously over MPI "
                          "(same results as 'dist_sync')", stacklevel=3)
        self._comm = None
        if _comm.launched_by_mpi():
            self._comm = _comm.world(timeout)
        else:
            warnings.warn(f"kvstore '{name}' but this process was not started by mpiexec: "
                          "training as a single worker (use 'symgraph launch -n N' or "
                          "'mpiexec -n N python script.py')", stacklevel=3)

    @property
    def rank(self):
        return self._comm.rank if self._comm else 0

    @property
    def num_workers(self):
        return self._comm.size if self._comm else 1

    @property
    def comm(self):
        """The polled MPI communicator, or None for a single worker."""
        return self._comm

    def _reduce(self, key, merged):
        buf = np.array(merged, copy=True, order="C")
        if self._comm is not None and self._comm.size > 1:
            self._comm.allreduce_(buf, f"allreduce of key {key!r}")
        return buf

    def _share_initial(self, key, value):
        if self._comm is not None and self._comm.size > 1:
            self._comm.bcast_(value, 0, f"broadcast of key {key!r}")
        return value

    def barrier(self):
        if self._comm is not None:
            self._comm.barrier()

    # ---- bulk operations Module and Trainer use ------------------------------------------
    def allreduce_arrays_(self, arrays, bucket=None):
        """Sum every array over all workers in place with one collective per dtype.

        ``bucket`` (a flat array the arrays are views of, such as an executor's gradient
        bucket) is reduced directly, with no copies."""
        if self.num_workers == 1:
            return
        if bucket is not None:
            self._comm.allreduce_(bucket, "gradient allreduce")
            return
        _flat_per_dtype(arrays, lambda flat: self._comm.allreduce_(flat, "gradient allreduce"))

    def broadcast_arrays_(self, arrays, root=0):
        """Rank ``root``'s values into ``arrays`` on every worker (one call per dtype)."""
        if self.num_workers == 1:
            return
        _flat_per_dtype(arrays, lambda flat: self._comm.bcast_(flat, root, "parameter broadcast"))

    def check_same_model(self, description: dict, what="model"):
        """Raise on every rank if ranks hold different graphs or parameter shapes.

        ``description`` maps item names (``graph``, parameter names) to JSON-able values;
        a SHA-256 of it is exchanged first, the full descriptions only on a mismatch."""
        if self.num_workers == 1:
            return
        text = json.dumps(description, sort_keys=True)
        digest = hashlib.sha256(text.encode()).digest()
        digests = self._comm.allgather_bytes(digest, f"{what} checksum")
        if all(d == digests[0] for d in digests):
            return
        texts = self._comm.allgather_text(text, f"{what} description")
        reference = json.loads(texts[0])
        problems = []
        for rank, other_text in enumerate(texts[1:], start=1):
            other = json.loads(other_text)
            names = sorted(set(reference) | set(other), key=lambda n: (n == "graph", n))
            differ = [n for n in names if reference.get(n) != other.get(n)]
            problems += [f"rank {rank} has {n}={other.get(n)} where rank 0 has "
                         f"{reference.get(n)}" for n in differ[:3]]
        raise RankMismatchError(f"ranks were started with different {what}s: "
                                + "; ".join(problems))


def _flat_per_dtype(arrays, collective):
    """Run ``collective`` in place on one flat copy per dtype, then copy the result back."""
    groups = {}
    for a in arrays:
        groups.setdefault(np.dtype(a.dtype).str, []).append(a)
    for group in groups.values():
        flat = np.concatenate([a.reshape(-1) for a in group])
        collective(flat)
        offset = 0
        for a in group:
            np.copyto(a, flat[offset:offset + a.size].reshape(a.shape))
            offset += a.size
