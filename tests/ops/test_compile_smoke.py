"""Every table case compiles natively (forward + gradient) with float64 arguments: catches
lowering hooks that break against codegen's real LowerContext."""

import pytest
from op_table import CASES


@pytest.mark.jit
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_compiles(case, tmp_path, monkeypatch):
    pytest.importorskip("llvmlite")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    from codegen.compiler import compile_graph

    sym = case.symbol()
    shapes = case.shapes((2, 3, 4))
    grad_req = {n: "write" if n in case.differentiate() else "null" for n in shapes}
    compiled = compile_graph(sym, shapes, {n: "float64" for n in shapes}, grad_req)
    assert [slot.dtype for slot in compiled.outputs] == [case.out_dtype or "float64"] * len(
        sym.outputs)
