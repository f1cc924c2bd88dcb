"""Test isolation for process-wide modes a test may switch on (``npx.set_np()`` in the
Gluon seeds) so that later tests see the defaults, as a fresh interpreter would."""

import sys

import pytest


@pytest.fixture(autouse=True)
def _restore_numpy_mode():
    yield
    invoke = sys.modules.get("runtime.ndarray.invoke")
    if invoke is not None:
        invoke.set_np_mode(False)
