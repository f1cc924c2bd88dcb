"""Shared fixtures: an isolated compile cache per test session and an arena runner."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("sgcache")))
    yield
    mp.undo()
