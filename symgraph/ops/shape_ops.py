"""Ops that only change how memory is viewed: Reshape (MXNet's special codes) and Flatten.

They lower to aliases (no kernel, no copy): the output shares the input's buffer.
"""

from __future__ import annotations

import math

from ..errors import ShapeError, format_shape
from .params import param
from .registry import OpDef, register


def reshape_target(shape, target, reverse=False):
    """Apply MXNet's Reshape codes 0, -1, -2, -3, -4 to ``shape``."""
    src, spec = list(shape), list(target)
    if reverse:
        src, spec = src[::-1], reverse_spec(spec)
    out, i, j, infer = [], 0, 0, None
    while j < len(spec):
        code = spec[j]
        if code == 0:
            out.append(_take(src, i, shape, target))
            i += 1
        elif code == -1:
            if infer is not None:
                raise ShapeError(f"Reshape {tuple(target)}: more than one -1")
            infer = len(out)
            out.append(1)
            i += 1
        elif code == -2:
            out.extend(src[i:])
            i = len(src)
        elif code == -3:
            out.append(_take(src, i, shape, target) * _take(src, i + 1, shape, target))
            i += 2
        elif code == -4:
            d = _take(src, i, shape, target)
            a, b = spec[j + 1], spec[j + 2]
            j += 2
            i += 1
            a = d // b if a == -1 else a
            b = d // a if b == -1 else b
            if a * b != d:
                raise ShapeError(f"Reshape {tuple(target)}: cannot split {d} into {a} x {b}")
            out.extend([a, b])
        elif code > 0:
            out.append(code)
            i += 1
        else:
            raise ShapeError(f"Reshape: invalid code {code} in {tuple(target)}")
        j += 1
    if infer is not None:
        known = math.prod(d for k, d in enumerate(out) if k != infer)
        total = math.prod(shape)
        if known == 0 or total % known:
            raise ShapeError(f"Reshape {tuple(target)}: cannot infer -1 for input "
                             f"{format_shape(tuple(shape))}")
        out[infer] = total // known
    if reverse:
        out = out[::-1]
    if math.prod(out) != math.prod(shape):
        raise ShapeError(f"Reshape {tuple(target)}: input {format_shape(tuple(shape))} has "
                         f"{math.prod(shape)} elements, target {format_shape(tuple(out))} has "
                         f"{math.prod(out)}")
    return tuple(out)


def _take(src, i, shape, target):
    if i >= len(src):
        raise ShapeError(f"Reshape {tuple(target)}: not enough input dimensions in "
                         f"{format_shape(tuple(shape))}")
    return src[i]


def reverse_spec(spec, split=-4):
    """Reverse the code list, keeping each ``split a b`` group (``-4 a b``; npx.reshape's
    ``-6 a b``) in order, as MXNet does."""
    groups, j = [], 0
    while j < len(spec):
        if spec[j] == split:
            groups.append([split, spec[j + 2], spec[j + 1]])
            j += 3
        else:
            groups.append([spec[j]])
            j += 1
    return [c for g in reversed(groups) for c in g]


@register
class Reshape(OpDef):
    name = "Reshape"
    aliases = ("reshape",)
    params = (param("shape", "shape", ()), param("reverse", "bool", False),
              param("target_shape", "shape", ()), param("keep_highest", "bool", False))

    def _target(self, p):
        return p.shape if p.shape else p.target_shape

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        if not self._target(p):
            raise ShapeError("Reshape needs a target shape")
        return in_shapes, [reshape_target(data, self._target(p), p.reverse)]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        return [data.reshape(reshape_target(data.shape, self._target(p), p.reverse))]

    def gradient(self, p, g):
        return [g.op("reshape_like", g.out_grads[0], g.inputs[0])]

    def lower(self, p, ctx):
        ctx.alias()


@register
class Flatten(OpDef):
    name = "Flatten"
    aliases = ("flatten",)

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        return in_shapes, [(data[0], math.prod(data[1:]))]

    def reference(self, p, inputs, ctx):
        return [inputs[0].reshape(inputs[0].shape[0], -1)]

    def gradient(self, p, g):
        return [g.op("reshape_like", g.out_grads[0], g.inputs[0])]

    def lower(self, p, ctx):
        ctx.alias()
