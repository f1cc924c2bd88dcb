"""Put the repository and tests/ops (the op table) on sys.path; share an onnxruntime runner."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parents[1], HERE.parents[0] / "ops"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
