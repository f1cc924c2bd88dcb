"""Shared fixtures: every test starts with fresh NameManager counters."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import symgraph as sg  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_names():
    """Counters are process-global in MXNet; tests that count names need their own."""
    with sg.name.NameManager():
        yield


@pytest.fixture
def mlp():
    from sg_helpers import letter_mlp

    return letter_mlp()
