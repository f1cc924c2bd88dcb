"""Export and round trip of the ops other issues add (normalization, deconvolution,
upsampling, padding, indexing, replication, casts)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from onnx_helpers import F32, assert_close, export_and_run, reference

from runtime.onnx import import_model
from symgraph import compose
from symgraph import symbol as symbol_mod


def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def indices(count):
    return lambda rng, shape: rng.integers(0, count, shape).astype(float)


@dataclass(frozen=True)
class Case:
    op: str
    note: str
    inputs: tuple  # (name, shape)
    attrs: dict = field(default_factory=dict)
    gens: dict = field(default_factory=dict)
    aux: tuple = ()

    @property
    def id(self):
        return f"{self.op}-{self.note}"

    def symbol(self):
        variables = [symbol_mod.Variable(name) for name, _ in self.inputs]
        return compose.create(self.op, variables, dict(self.attrs), name="node")

    def values(self, rng):
        return {name: self.gens.get(name, normal)(rng, shape).astype(F32)
                for name, shape in self.inputs}


NCHW = ("data", (2, 3, 5, 6))
CH = 3
CASES = [
    Case("Pad", "constant", (NCHW,), {"mode": "constant", "pad_width": (0, 0, 0, 0, 1, 2, 2, 1),
                                      "constant_value": 0.5}),
    Case("Pad", "edge", (NCHW,), {"mode": "edge", "pad_width": (0, 0, 0, 0, 2, 1, 1, 2)}),
    Case("Pad", "reflect", (NCHW,), {"mode": "reflect", "pad_width": (0, 0, 0, 0, 1, 1, 2, 2)}),
    Case("LayerNorm", "last", (("data", (4, 5, 6)), ("gamma", (6,)), ("beta", (6,))),
         {"eps": 1e-5}),
    Case("LayerNorm", "axis1", (("data", (4, 5, 6)), ("gamma", (5,)), ("beta", (5,))),
         {"axis": 1}),
    Case("InstanceNorm", "nchw", (NCHW, ("gamma", (CH,)), ("beta", (CH,))), {"eps": 1e-3}),
    Case("Deconvolution", "stride2-pad", (NCHW, ("weight", (CH, 4, 3, 3)), ("bias", (4,))),
         {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "num_filter": 4,
          "no_bias": False}),
    Case("Deconvolution", "adj-group", (("data", (2, 4, 4, 5)), ("weight", (4, 1, 2, 3))),
         {"kernel": (2, 3), "stride": (2, 1), "adj": (1, 0), "num_filter": 2,
          "num_group": 2}),
    Case("UpSampling", "nearest", (NCHW,), {"scale": 2, "sample_type": "nearest",
                                            "num_args": 1}),
    Case("UpSampling", "bilinear", (NCHW, ("weight", (CH, 1, 4, 4))),
         {"scale": 2, "sample_type": "bilinear", "num_filter": CH, "num_args": 2}),
    Case("LRN", "nsize3", (NCHW,), {"nsize": 3, "alpha": 1e-3, "beta": 0.75, "knorm": 2.0}),
    Case("L2Normalization", "instance", (NCHW,), {"mode": "instance"}),
    Case("L2Normalization", "channel", (NCHW,), {"mode": "channel"}),
    Case("L2Normalization", "spatial", (NCHW,), {"mode": "spatial"}),
    Case("Cast", "float64", (("data", (3, 4)),), {"dtype": "float64"}),
    Case("where", "same-shape", (("condition", (3, 4)), ("x", (3, 4)), ("y", (3, 4))),
         gens={"condition": indices(2)}),
    Case("where", "rows", (("condition", (3,)), ("x", (3, 4)), ("y", (3, 4))),
         gens={"condition": indices(2)}),
    Case("slice", "steps", (("data", (5, 6, 7)),), {"begin": (1, None, 6), "end": (4, 5, 0),
                                                    "step": (1, 2, -2)}),
    Case("tile", "longer", (("data", (2, 3)),), {"reps": (2, 1, 3)}),
    Case("tile", "shorter", (("data", (2, 3, 4)),), {"reps": (2, 2)}),
    Case("repeat", "axis1", (("data", (2, 3, 4)),), {"repeats": 2, "axis": 1}),
    Case("repeat", "flat", (("data", (2, 3)),), {"repeats": 3}),
    Case("stack", "axis1", (("a", (3, 4)), ("b", (3, 4)), ("c", (3, 4))), {"axis": 1}),
    Case("take", "clip", (("a", (5, 4)), ("indices", (2, 3))), {"axis": 0, "mode": "clip"},
         gens={"indices": lambda rng, s: rng.integers(-2, 7, s).astype(float)}),
    Case("take", "wrap-axis1", (("a", (3, 5)), ("indices", (4,))), {"axis": 1, "mode": "wrap"},
         gens={"indices": lambda rng, s: rng.integers(-6, 11, s).astype(float)}),
    Case("pick", "last", (("data", (3, 4, 5)), ("index", (3, 4))), {"axis": -1},
         gens={"index": indices(5)}),
    Case("pick", "axis1-keepdims", (("data", (3, 4, 5)), ("index", (3, 1, 5))),
         {"axis": 1, "keepdims": True}, gens={"index": indices(4)}),
    Case("batch_dot", "plain", (("lhs", (2, 3, 4)), ("rhs", (2, 4, 5)))),
    Case("batch_dot", "transposed", (("lhs", (2, 4, 3)), ("rhs", (2, 5, 4))),
         {"transpose_a": True, "transpose_b": True}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_export_and_roundtrip(tmp_path, case):
    symbol = case.symbol()
    values = case.values(np.random.default_rng(5))
    want = reference(symbol, values)
    _, got = export_and_run(tmp_path, symbol, {}, values)
    back, arg_params, aux_params = import_model(tmp_path / "model.onnx")
    again = reference(back, {**values, **arg_params, **aux_params})
    for k, w in enumerate(want):
        assert got[k].dtype == w.dtype, f"{case.id}: dtype {got[k].dtype} != {w.dtype}"
        assert_close(got[k], w, f"{case.id} onnxruntime")
        assert_close(np.asarray(again[k]), w, f"{case.id} imported")
