"""The memory limit setting: sizes as users write them, API over environment over the
default, and a message that says how much was asked for and how to raise the limit."""

import pytest

import symgraph as sg
from codegen import limits

pytestmark = pytest.mark.usefixtures("default_memory_limit")


@pytest.mark.parametrize("text,expected", [
    ("8G", 8 * 2 ** 30), ("512M", 512 * 2 ** 20), ("512 MiB", 512 * 2 ** 20),
    ("1.5g", int(1.5 * 2 ** 30)), ("1e9", 10 ** 9), ("4096", 4096), ("2 TB", 2 * 2 ** 40),
    (123456, 123456), ("none", None), ("Unlimited", None), ("off", None)])
def test_parse_size(text, expected):
    assert limits.parse_size(text) == expected


def test_parse_percentage_of_physical_memory():
    assert limits.parse_size("50%") == int(limits.physical_memory() * 0.5)


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "8X", "150%", "0%", "nan", True])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(ValueError, match="SYMGRAPH_MEMORY_LIMIT"):
        limits.parse_size(text)


def test_default_is_a_fraction_of_physical_memory():
    assert sg.memory_limit() == int(limits.physical_memory() * limits.DEFAULT_FRACTION)
    assert 0 < limits.physical_memory()


def test_api_over_environment_over_default(monkeypatch):
    monkeypatch.setenv(limits.ENV, "3G")
    assert sg.memory_limit() == 3 * 2 ** 30
    previous = sg.set_memory_limit("1G")
    assert previous is None and sg.memory_limit() == 2 ** 30
    sg.set_memory_limit("none")
    assert sg.memory_limit() is None
    limits.check_bytes(10 ** 18, "anything")  # no limit: nothing raises
    sg.set_memory_limit(None)
    assert sg.memory_limit() == 3 * 2 ** 30


def test_set_returns_what_restores_it():
    sg.set_memory_limit("2G")
    previous = sg.set_memory_limit("1M")
    sg.set_memory_limit(previous)
    assert sg.memory_limit() == 2 * 2 ** 30


def test_error_says_how_much_and_how_to_raise():
    sg.set_memory_limit("1M")
    with pytest.raises(sg.MemoryLimitError) as info:
        limits.check_bytes(3 * 2 ** 20, "the thing")
    text = str(info.value)
    assert "the thing needs 3.0 MiB (3145728 bytes)" in text
    assert "memory limit of 1.0 MiB (set by sg.set_memory_limit)" in text
    assert "sg.set_memory_limit('1G')" in text and "SYMGRAPH_MEMORY_LIMIT=1G" in text
    assert isinstance(info.value, MemoryError) and isinstance(info.value, sg.SymgraphError)


def test_more_than_the_machine_is_not_offered_a_higher_limit():
    with pytest.raises(sg.MemoryLimitError, match="more than this machine's") as info:
        limits.check_bytes(2 ** 80, "a tensor")
    assert "set_memory_limit" not in str(info.value)


def test_check_tensors_names_the_largest():
    sg.set_memory_limit("1K")
    entries = [("small", (4,), 4), ("big", (100, 100), 4), ("medium", (30, 30), 4)]
    with pytest.raises(sg.MemoryLimitError, match=r"big of shape \(100, 100\) needs"):
        limits.check_tensors(entries)
    limits.check_tensors([("small", (4,), 4)])


def test_program_bytes_counts_buffers_outside_the_arena():
    from types import SimpleNamespace as NS

    assert limits.program_bytes(NS(arena_bytes=100)) == 100
    outside = (NS(nbytes=50), NS(nbytes=8))
    assert limits.program_bytes(NS(arena_bytes=100, externals=outside)) == 158
