"""``sg.gluon.contrib.nn``: the MXNet 1.x spelling of ``nn.HybridConcurrent`` and friends."""

from runtime.gluon.nn.concurrent import Concurrent, HybridConcurrent, Identity  # noqa: F401
