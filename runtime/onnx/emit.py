"""What an export converter sees and writes: one node's view, and the ONNX graph being built.

A converter is ``fn(ctx, n)``: ``n`` (:class:`NodeView`) holds the symgraph node's parsed
params, the ONNX names of its inputs and outputs and their static shapes and dtypes (and
which dims vary with a dynamic batch); ``ctx`` (:class:`Emitter`) appends ONNX nodes and
constants, made with ``onnx.helper`` only. A converter must write ``n.outputs[0]`` (and the
other visible outputs it has); every helper tensor it needs gets a fresh name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.onnx.errors import OnnxError

INT64_MAX = np.iinfo(np.int64).max


@dataclass
class NodeView:
    """One symgraph node as a converter needs it (shapes are static; ``*_dyn`` marks the dims
    that change with a dynamic input dim)."""

    name: str
    op: str
    p: object
    inputs: list
    outputs: list
    in_shapes: list
    out_shapes: list
    in_dtypes: list
    out_dtypes: list
    in_dyn: list
    out_dyn: list

    @property
    def x(self) -> str:
        return self.inputs[0]

    @property
    def out(self) -> str:
        return self.outputs[0]

    @property
    def dtype(self) -> str:
        return self.out_dtypes[0]

    @property
    def rank(self) -> int:
        return len(self.in_shapes[0])

    def reject(self, attr: str, why: str):
        value = getattr(self.p, attr, None)
        raise OnnxError(f"{self.op} node '{self.name}': attribute {attr}={value!r} has no ONNX "
                        f"mapping ({why})")

    def require(self, condition: bool, attr: str, why: str) -> None:
        if not condition:
            self.reject(attr, why)

    def axis(self, axis: int, rank: int | None = None) -> int:
        rank = self.rank if rank is None else rank
        return axis + rank if axis < 0 else axis


class Emitter:
    """Collects ONNX nodes and initializers for one graph; names never repeat."""

    def __init__(self, onnx, opset: int):
        self.onnx = onnx
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._used: set[str] = set()
        self._consts: dict = {}
        self.scope = "graph"

    def reserve(self, name: str) -> None:
        self._used.add(name)

    def fresh(self, hint: str) -> str:
        base = f"{self.scope}_{hint}"
        name, k = base, 0
        while name in self._used:
            k += 1
            name = f"{base}{k}"
        self._used.add(name)
        return name

    def op(self, op_type: str, inputs, outputs=None, n_out: int = 1, **attrs):
        """Append one node; returns its output name (or the list, when it has several)."""
        if outputs is None:
            outputs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = self.onnx.helper.make_node(op_type, list(inputs), outputs,
                                          name=self.fresh(op_type), **attrs)
        self.nodes.append(node)
        return outputs[0] if len(outputs) == 1 else outputs

    def const(self, value, dtype, hint: str = "const") -> str:
        """An initializer holding ``value`` as ``dtype`` (equal small constants are shared)."""
        array = np.asarray(value, dtype=np.dtype(dtype))
        key = (array.dtype.str, array.shape, array.tobytes())
        if key in self._consts:
            return self._consts[key]
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        self._consts[key] = name
        return name

    def ints(self, values, hint: str = "ints") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), np.int64, hint)

    def add_param(self, name: str, array: np.ndarray) -> None:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array),
                                                                    name))

    def tensor_type(self, dtype) -> int:
        return self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    # ---- shared building blocks (opset differences live here) ------------------------
    def cast(self, x: str, dtype, outputs=None) -> str:
        return self.op("Cast", [x], outputs, to=self.tensor_type(dtype))

    def reduce(self, op_type: str, x: str, axes, keepdims: bool, outputs=None) -> str:
        """Reduce* with axes as an input from opset 18 (13 for ReduceSum), an attribute before."""
        axes = None if axes is None else [int(a) for a in axes]
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if as_input:
            inputs = [x] if axes is None else [x, self.ints(axes, "axes")]
            return self.op(op_type, inputs, outputs, keepdims=int(keepdims))
        return self.op(op_type, [x], outputs, axes=axes, keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes, outputs=None) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes, "axes")], outputs)

    def squeeze(self, x: str, axes, outputs=None) -> str:
        return self.op("Squeeze", [x, self.ints(axes, "axes")], outputs)

    def reshape(self, x: str, shape, dyn=None, outputs=None) -> str:
        return self.op("Reshape", [x, self.shape_const(shape, dyn)], outputs)

    def shape_const(self, shape, dyn=None) -> str:
        """A Reshape target for a static ``shape``: the one dim that varies with the dynamic
        input dims becomes -1 (two such dims cannot be written as a constant)."""
        target = list(shape)
        varying = [i for i, flag in enumerate(dyn or ()) if flag]
        if len(varying) > 1:
            raise OnnxError(f"{self.scope}: a reshape to {tuple(shape)} with dims {varying} "
                            "depending on dynamic inputs cannot be exported; export with "
                            "static shapes (dynamic=False)")
        for i in varying:
            target[i] = -1
        return self.ints(target, "shape")

    def scalar_like(self, value, dtype, hint: str = "scalar") -> str:
        return self.const(np.asarray(value, dtype=np.dtype(dtype)), dtype, hint)
