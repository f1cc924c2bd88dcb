"""Data parallelism over a context list in one process (MXNet's DataParallelExecutorGroup).

``Module(context=[cpu(0), cpu(1)])`` binds one executor per context on its slice of the
batch (sizes from ``work_load_list``, mxnet_compat.md 5.6) and runs them at once: a native
phase is a ctypes call, which releases the GIL, so the executors of one compiled library
run on separate cores from a persistent thread pool (the memory model makes two executors
of one library independent: the arena is private, nothing is global). The group looks like
one executor over the whole batch, so Module, the fused update and the kvstore need no
second path:

* the inputs (data and labels) are full-batch arrays; every executor is bound to its rows
  of them (C-order row slices are contiguous), so loading a batch is one copy as before;
* parameters are one set of arrays bound read-only into every executor;
* every executor writes its own gradients; after backward they are summed into the first
  executor's (one add of the contiguous bucket per extra executor), which is what kvstore
  'local' does in MXNet; the update then runs once with rescale ``1/B_total``;
* aux states (BatchNorm's moving statistics) are per executor, as on MXNet's devices: each
  updates them from its own slice, and the group keeps their mean (which is what MXNet's
  ``get_params`` returns; the update is linear, so averaging every step gives the same
  values) in the first executor's arrays, copied to the others before each run;
* outputs are copied into full-batch arrays after each forward (MXNet concatenates them).
"""

from __future__ import annotations

import atexit
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from codegen import threadpool
from codegen.compile_cache import compile_cached
from runtime.executor import Executor, _arena, head_grad_list

__all__ = ["DeviceGroup", "NotSplittable", "split_sizes", "can_split"]


class NotSplittable(Exception):
    """This graph's batch cannot be split over devices (Module then runs one executor)."""

_POOL = None


def _pool(workers: int) -> ThreadPoolExecutor:
    """One persistent pool for every group (threads are created once, not per call)."""
    global _POOL
    if _POOL is None or _POOL._max_workers < workers:
        if _POOL is not None:
            _POOL.shutdown(wait=True)
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="symgraph-device")
    return _POOL


@atexit.register
def _shutdown():
    if _POOL is not None:
        _POOL.shutdown(wait=False)


if hasattr(os, "register_at_fork"):  # a forked child must not reuse the parent's threads
    os.register_at_fork(after_in_child=lambda: globals().update(_POOL=None))


def split_sizes(batch: int, work_load) -> list[int]:
    """MXNet's slice sizes: ``round(w * B / sum(w))``, the last absorbing the remainder."""
    total = float(sum(work_load))
    sizes = [int(round(w * batch / total)) for w in work_load[:-1]]
    return sizes + [batch - sum(sizes)]


def can_split(shapes: dict, work_load) -> bool:
    """A batch splits when every input has the batch on axis 0 and every slice gets rows."""
    if any(not s for s in shapes.values()):
        return False
    batches = {s[0] for s in shapes.values()}
    if len(batches) != 1:
        return False
    return min(split_sizes(batches.pop(), work_load)) >= 1


def _full(shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return _arena(max(nbytes, 1))[:nbytes].view(dtype).reshape(shape)


class DeviceGroup:
    """One executor per context over slices of the batch, behaving as one executor."""

    def __init__(self, symbol, contexts, grad_req: dict, dtypes: dict, shapes: dict,
                 work_load, shared=None):
        self._symbol = symbol
        inputs = list(shapes)
        batch = shapes[inputs[0]][0]
        self._sizes = split_sizes(batch, work_load)
        with threadpool.compiling_for(1):  # each context's executor owns one core
            programs = [compile_cached(symbol, self._sub_shapes(shapes, k), dtypes, grad_req)
                        for k in range(len(contexts))]
        slots = programs[0]
        self._full_inputs = {n: _full(shapes[n], slots.args[n].dtype) for n in inputs}
        self._full_grads = {n: _full(shapes[n], slots.grads[n].dtype)
                            for n in inputs if n in slots.grads}
        self.exes = []
        for k, (ctx, compiled) in enumerate(zip(contexts, programs)):
            self.exes.append(Executor(symbol, compiled, grad_req, ctx, inputs=inputs,
                                      **self._share(shared, k, inputs)))
        lead = self.exes[0]
        self.arg_dict = {**lead.arg_dict, **self._full_inputs}
        self.grad_dict = {**lead.grad_dict, **self._full_grads}
        self.aux_dict = lead.aux_dict
        self.grad_bucket = lead.grad_bucket
        self._accumulate = any(r == "add" for r in grad_req.values())
        for exe, size in zip(self.exes, self._sizes):
            if any(not o.shape or o.shape[0] != size for o in exe.outputs):
                raise NotSplittable("an output does not follow the batch axis")
        self.outputs = [_full((batch,) + o.shape[1:], o.dtype) for o in lead.outputs]
        self._compiled = lead.compiled

    # ---- binding ----------------------------------------------------------------------
    def _sub_shapes(self, shapes, k):
        return {n: (self._sizes[k],) + tuple(s[1:]) for n, s in shapes.items()}

    def _rows(self, k) -> slice:
        start = sum(self._sizes[:k])
        return slice(start, start + self._sizes[k])

    def _share(self, shared, k, inputs) -> dict:
        """The arrays executor ``k`` works in: its rows of the full inputs (and of their
        gradients); the one set of parameters (the first executor's, or the group's for
        another batch size); gradients and aux states of its own, or those of executor
        ``k`` of ``shared``, so each device keeps one set whatever the batch size."""
        rows = self._rows(k)
        args = {n: a[rows] for n, a in self._full_inputs.items()}
        grads = {n: g[rows] for n, g in self._full_grads.items()}
        source = self.exes[0] if k else (shared.exes[0] if shared else None)
        if source is not None:
            args.update({n: a for n, a in source.arg_dict.items() if n not in inputs})
        if shared is None:
            return {"args": args, "grads": grads}
        other = shared.exes[k]
        grads.update({n: g for n, g in other.grad_dict.items() if n not in inputs})
        return {"args": args, "grads": grads, "aux": other.aux_dict,
                "grad_bucket": other.grad_bucket}

    # ---- running ----------------------------------------------------------------------
    def _each(self, run, parts=None):
        """``run(exe, part)`` for every executor and its part (of the head gradients) at
        once: the extra ones on the pool's threads, the first on this one."""
        parts = parts or [None] * len(self.exes)
        pool = _pool(len(self.exes) - 1)
        futures = [pool.submit(run, e, p) for e, p in zip(self.exes[1:], parts[1:])]
        run(self.exes[0], parts[0])
        for f in futures:
            f.result()

    def _set_inputs(self, inputs):
        for name, value in inputs.items():
            np.copyto(self.arg_dict[name], value, casting="unsafe")

    def _sync_aux_in(self):
        lead = self.exes[0].aux_dict
        for exe in self.exes[1:]:
            for name, value in exe.aux_dict.items():
                np.copyto(value, lead[name])

    def _after(self, is_train, grads):
        for out, parts in zip(self.outputs, zip(*(e.outputs for e in self.exes))):
            np.concatenate(parts, axis=0, out=out)
        if is_train and self.aux_dict:
            for name, value in self.aux_dict.items():
                np.mean([e.aux_dict[name] for e in self.exes], axis=0, out=value)
        if grads:
            self._sum_grads()

    def _sum_grads(self):
        lead = self.exes[0]
        for exe in self.exes[1:]:
            if lead.grad_bucket is not None and exe.grad_bucket is not None:
                np.add(lead.grad_bucket, exe.grad_bucket, out=lead.grad_bucket)
                if self._accumulate:
                    exe.grad_bucket[:] = 0
                continue
            for name, grad in lead.grad_dict.items():
                if name not in self._full_grads:
                    grad += exe.grad_dict[name]
                    if self._accumulate:
                        exe.grad_dict[name][:] = 0

    def forward(self, is_train=False, **kwargs):
        self._set_inputs(kwargs)
        self._sync_aux_in()
        self._each(lambda e, _: e.forward(is_train))
        self._after(is_train, grads=False)
        return self.outputs

    def backward(self, out_grads=None, is_train=True):
        self._each(lambda e, part: e.backward(part, is_train), self._split_heads(out_grads))
        self._sum_grads()

    def forward_backward(self, out_grads=None, **kwargs):
        self._set_inputs(kwargs)
        self._sync_aux_in()
        self._each(lambda e, part: e.forward_backward(part), self._split_heads(out_grads))
        self._after(True, grads=True)
        return self.outputs

    def _split_heads(self, out_grads):
        """Each executor's rows of the head gradients (None: the graph ends in losses)."""
        if out_grads is None:
            return None
        grads = head_grad_list(self._symbol, out_grads)
        return [[None if g is None else np.asarray(g)[self._rows(k)] for g in grads]
                for k in range(len(self.exes))]

    # ---- what Module and users read --------------------------------------------------
    @property
    def compiled(self):
        return self._compiled

    @property
    def symbol(self):
        return self._symbol

    @property
    def output_dict(self):
        return dict(zip(self._symbol.list_outputs(), self.outputs))

    def copy_params_from(self, arg_params, aux_params=None, allow_extra_params=False):
        self.exes[0].copy_params_from(arg_params, aux_params, allow_extra_params)

    def set_monitor_callback(self, callback, monitor_all=False):
        for exe in self.exes:
            exe.set_monitor_callback(callback, monitor_all)
