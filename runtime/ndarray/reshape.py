"""``npx.reshape``'s special codes (numpy mode), resolved to a plain shape for the Reshape op.

-1 infers, -2 copies this dim, -3 drops a dim of size 1, -4 copies all remaining, -5 merges
two, -6 splits one into the next two. The legacy codes (0, -1, -2, -3, -4) are the Reshape
op's own (:func:`symgraph.ops.shape_ops.reshape_target`).
"""

from __future__ import annotations

import numpy as np

from symgraph.errors import ShapeError
from symgraph.ops.shape_ops import reverse_spec


def _finish(src, out, infer_at):
    if infer_at is not None:
        known = int(np.prod([d for i, d in enumerate(out) if i != infer_at], dtype=np.int64))
        total = int(np.prod(src, dtype=np.int64))
        if known == 0 or total % known:
            raise ShapeError(f"reshape: cannot reshape {src} into {tuple(out)}")
        out[infer_at] = total // known
    if int(np.prod(out, dtype=np.int64)) != int(np.prod(src, dtype=np.int64)):
        raise ShapeError(f"reshape: cannot reshape array of shape {src} into {tuple(out)}")
    return tuple(int(d) for d in out)


def np_shape(src, spec, reverse=False):
    src = tuple(src)
    if reverse:  # codes read from the right, as the Reshape op's
        return np_shape(src[::-1], reverse_spec(list(spec), split=-6))[::-1]
    out, infer_at, i, k = [], None, 0, 0
    while k < len(spec):
        code = spec[k]
        if code >= 0:
            out.append(code)
            i += 1
        elif code == -1:
            infer_at = len(out)
            out.append(1)
            i += 1
        elif code == -2:
            out.append(src[i])
            i += 1
        elif code == -3:
            i += 1
        elif code == -4:
            out.extend(src[i:])
            i = len(src)
        elif code == -5:
            out.append(src[i] * src[i + 1])
            i += 2
        elif code == -6:
            a, b = spec[k + 1], spec[k + 2]
            if a == -1:
                a = src[i] // b
            if b == -1:
                b = src[i] // a
            out.extend([a, b])
            i += 1
            k += 2
        else:
            raise ShapeError(f"reshape: unknown special code {code} in {spec}")
        k += 1
    return _finish(src, out, infer_at)
