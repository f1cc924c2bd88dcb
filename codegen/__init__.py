"""Native backend: loop IR, LLVM emission, JIT, programs.

``symgraph/__init__`` imports the runtime, which imports codegen; importing symgraph first
here makes ``import codegen.x`` work whichever package a program imports first.
"""

import symgraph.errors  # noqa: F401
