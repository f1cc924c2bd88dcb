"""Every ```python block of every tutorials/*.md runs, in order, in one namespace per file.

So the tutorials' assertions are checked and their code can't rot. Each file runs in a
fresh temporary working directory (tutorials write checkpoints to relative paths).
"""

import re
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in document order."""
    return [m.group(1) for m in _BLOCK.finditer(text)]


def tutorial_files():
    return sorted(p for p in TUTORIALS.glob("*.md") if p.name != "README.md")


def test_block_extraction():
    text = "x\n```python\na = 1\n```\n```bash\nno\n```\n```python\nb = a\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a\n"]


@pytest.mark.parametrize("path", tutorial_files(), ids=lambda p: p.name)
def test_tutorial_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert blocks, f"{path.name} has no ```python blocks"
    namespace = {"__name__": f"tutorial_{path.stem}"}
    for number, code in enumerate(blocks, 1):
        compiled = compile(code, f"{path.name} [block {number}]", "exec")
        exec(compiled, namespace)  # noqa: S102 - running the tutorial is the point
