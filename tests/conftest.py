"""Test isolation for process-wide modes a test may switch on (``npx.set_np()`` in the
Gluon seeds, the memory limit) so that later tests see the defaults, as a fresh
interpreter would."""

import sys

import pytest


@pytest.fixture(autouse=True)
def _restore_numpy_mode():
    yield
    invoke = sys.modules.get("runtime.ndarray.invoke")
    if invoke is not None:
        invoke.set_np_mode(False)


@pytest.fixture
def default_memory_limit(monkeypatch):
    """The default memory limit during the test (no SYMGRAPH_MEMORY_LIMIT, no
    ``sg.set_memory_limit``), and whatever was set before it afterwards."""
    from codegen import limits

    monkeypatch.delenv(limits.ENV, raising=False)
    previous = limits.set_memory_limit(None)
    yield
    limits.set_memory_limit(previous)
