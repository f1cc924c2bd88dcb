"""Run one loop kernel on numpy arrays (test helper)."""

import numpy as np

from codegen.program import KernelCall, Program, compile_program


def run_kernel(kernel, arrays, name="t"):
    """``arrays`` map param name -> numpy array (outputs included); returns outputs dict.
    ``scratch*`` parameters (a matmul's pack panel) get NaN-filled working memory."""
    arrays = dict(arrays)
    for p in kernel.params:
        if p.name.startswith("scratch") and p.name not in arrays:
            arrays[p.name] = np.full(p.size, np.nan, dtype=p.dtype)
    offsets, size = [], 0
    for p in kernel.params:
        size = (size + 63) // 64 * 64
        offsets.append(size)
        size += arrays[p.name].nbytes
    raw = np.zeros(size + 64, dtype=np.uint8)
    for p, off in zip(kernel.params, offsets):
        a = np.ascontiguousarray(arrays[p.name])
        raw[off:off + a.nbytes] = a.view(np.uint8).ravel()
    prog = Program((kernel,), size, {"main": [KernelCall(kernel, tuple(offsets))]})
    compile_program(prog, name).run_array("main", raw)
    out = {}
    for p, off in zip(kernel.params, offsets):
        a = arrays[p.name]
        out[p.name] = raw[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    return out
