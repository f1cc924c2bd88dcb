"""``sg.gluon.contrib``: MXNet 1.x's home of the layers MXNet 2 moved into ``gluon.nn``."""

from runtime.gluon.contrib import nn  # noqa: F401
