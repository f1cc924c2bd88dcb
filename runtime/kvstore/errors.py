"""Errors of the kvstores and of distributed training (all are ``SymgraphError``s)."""

from __future__ import annotations

from symgraph.errors import SymgraphError


class KVStoreError(SymgraphError, ValueError):
    """A key used before ``init``, or a kvstore type that does not exist."""


class DistributedError(SymgraphError, RuntimeError):
    """Distributed training cannot go on: MPI missing, ranks disagree, a peer failed."""


class MPIUnavailableError(DistributedError, ImportError):
    """A distributed kvstore was asked for but mpi4py (or an MPI library) is not installed."""


class PeerFailedError(DistributedError):
    """Another rank raised or died; the message names it."""


class DistributedTimeoutError(DistributedError, TimeoutError):
    """A collective did not complete within the timeout (a rank is stuck or gone)."""


class RankMismatchError(DistributedError, ValueError):
    """Ranks were started with different graphs or parameter shapes."""
