"""What the op table cannot say about issue 11's ops: MXNet names and output rules, the
decompose pass (composites vanish before lowering and their chains fuse), symbol JSON
round trips, clear errors, and semantics checked against independent definitions
(Deconvolution by its scatter definition, bilinear upsampling with Bilinear weights,
stable sorting, narrowing casts)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import symgraph as sg
from symgraph.errors import NotDifferentiableError
from symgraph.graph import topo_order
from symgraph.passes.pipeline import optimize
from symgraph.reference import evaluate

S = sg.sym


def raises_named(exc_type, *parts):
    assert issubclass(exc_type, sg.SymgraphError)
    return pytest.raises(exc_type, match=".*".join(re.escape(p) for p in parts))


def bind_run(sym, shapes, values, dtype="float64", grad=()):
    reqs = {n: ("write" if n in grad else "null") for n in sym.list_arguments()}
    exe = sym.simple_bind(sg.cpu(), grad_req=reqs,
                          type_dict={n: dtype for n in sym.list_arguments()}, **shapes)
    for name, value in values.items():
        exe.arg_dict[name][:] = value
    return exe, exe.forward(is_train=bool(grad))


# ---- names and outputs ------------------------------------------------------------------------
def test_argument_and_output_names_follow_mxnet():
    x = S.Variable("data")
    assert S.Deconvolution(x, kernel=(2, 2), num_filter=3, name="up").list_arguments() == [
        "data", "up_weight"]  # no_bias defaults to True
    assert S.Deconvolution(x, kernel=(2, 2), num_filter=3, no_bias=False,
                           name="up").list_arguments() == ["data", "up_weight", "up_bias"]
    assert S.UpSampling(x, scale=2, sample_type="bilinear", num_filter=4,
                        name="bi").list_arguments() == ["data", "bi_weight"]
    assert S.LayerNorm(x, name="ln").list_arguments() == ["data", "ln_gamma", "ln_beta"]
    assert S.InstanceNorm(x, name="in").list_outputs() == ["in_output"]
    assert S.LayerNorm(x, output_mean_var=True, name="ln").list_outputs() == [
        "ln_output", "ln_mean", "ln_std"]
    l2 = S.L2Normalization(x, name="l2")
    assert l2.list_outputs() == ["l2_output"]
    assert l2.outputs[0].node.output_names() == ["output", "norm"]
    assert S.LRN(x, nsize=3).outputs[0].node.output_names() == ["output", "tmp_norm"]
    assert S.topk(x, ret_typ="both", name="t").list_outputs() == ["t_output0", "t_output1"]
    assert S.softmax_cross_entropy(x, name="ce").list_arguments() == ["data", "ce_label"]
    assert S.where(x, S.Variable("a"), S.Variable("b"), name="w").list_arguments() == [
        "data", "a", "b"]
    assert S.slice(x, begin=(0,), end=(1,), name="sl").list_outputs() == ["sl_output"]
    assert S.topk(x, ret_typ="value", name="v").list_outputs() == ["v_output0"]


def hidden_shapes(sym, data, n_inputs):
    node = sym.outputs[0].node
    _, outs = node.opdef.infer_shape(node.params, [data] + [None] * (n_inputs - 1))
    return outs


def test_hidden_statistics_have_mxnet_shapes():
    x = S.Variable("data")
    assert hidden_shapes(S.InstanceNorm(x), (2, 3, 4, 5), 3) == [(2, 3, 4, 5), (2, 3), (2, 3)]
    _, out, _ = S.LayerNorm(x, axis=1, output_mean_var=True).infer_shape(data=(2, 3, 4))
    assert out == [(2, 3, 4), (2, 1, 4), (2, 1, 4)]
    for mode, norm in (("instance", (2,)), ("channel", (2, 1, 4, 5)), ("spatial", (2, 3))):
        outs = hidden_shapes(S.L2Normalization(x, mode=mode), (2, 3, 4, 5), 1)
        assert outs == [(2, 3, 4, 5), norm]


# ---- the decompose pass -------------------------------------------------------------------
def layer_norm_net():
    x = S.Variable("data")
    return S.FullyConnected(S.LayerNorm(x, name="ln"), num_hidden=5, name="fc")


def test_composites_are_gone_after_the_pipeline_and_the_gradient_shares_their_nodes():
    net = layer_norm_net()
    grads = S.grad(net, ["data", "ln_gamma"])
    heads = optimize(tuple(net.outputs) + tuple(grads.outputs))
    nodes = topo_order(heads)
    assert not [n for n in nodes if not n.is_variable and n.opdef.is_composite]
    means = [n for n in nodes if n.op == "mean"]
    assert len(means) == 2  # mean and variance, once each, shared by forward and backward


def test_layer_norm_chain_fuses(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    from codegen.compiler import compile_graph

    compiled = compile_graph(layer_norm_net(), {"data": (8, 16)}, {}, {})
    forward = [t.nodes for t in compiled.trace if t.stage == "forward"]
    normalize = next(names for names in forward if "ln_broadcast_div" in names)
    assert {"ln_broadcast_mul", "ln_broadcast_add"} <= set(normalize)
    assert len(forward) < len([n for n in topo_order(optimize(layer_norm_net().outputs))
                               if not n.is_variable])


def test_composite_lowering_without_the_pass_is_a_clear_error():
    from codegen.lower import BufferTable, LowerContext

    node = S.LayerNorm(S.Variable("data"), name="ln").outputs[0].node
    ctx = LowerContext(node, [0, 1, 2], [3, 4, 5], [(2, 3), (3,), (3,)],
                       [(2, 3), (2, 1), (2, 1)], "float32", True, BufferTable(), [])
    with raises_named(sg.CompileError, "LayerNorm", "ln", "decomposed"):
        node.opdef.lower(node.params, ctx)


# ---- JSON ----------------------------------------------------------------------------------------
def every_new_op():
    x, w, y = S.Variable("data"), S.Variable("w"), S.Variable("y")
    img = S.Variable("img")
    return S.Group([
        S.Deconvolution(img, kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 1),
                        target_shape=(7, 7), num_filter=4, num_group=2, no_bias=False,
                        name="dc"),
        S.UpSampling(img, img, scale=2, sample_type="nearest", multi_input_mode="sum"),
        S.UpSampling(img, scale=2, sample_type="bilinear", num_filter=4),
        S.Pad(img, mode="reflect", pad_width=(0, 0, 0, 0, 1, 1, 2, 2)),
        S.LRN(img, nsize=5, alpha=1e-3), S.InstanceNorm(img, eps=1e-4),
        S.LayerNorm(x, axis=0, output_mean_var=True), S.L2Normalization(img, mode="spatial"),
        S.Cast(x, dtype="float64"), S.where(x, w, y), S.batch_dot(x, w, transpose_b=True),
        S.take(x, w, axis=1, mode="wrap"), S.pick(x, w, axis=0, keepdims=True),
        S.slice(x, begin=(None, 1), end=(3, None), step=(1, -1)), S.slice_like(x, w, axes=(0,)),
        S.tile(x, reps=(2, 3)), S.repeat(x, repeats=2, axis=-1), S.stack(x, w, y, axis=1),
        S.smooth_l1(x, scalar=3.0), S.softmax_cross_entropy(x, w),
        S.topk(x, k=3, ret_typ="both", is_ascend=True), S.sort(x, axis=0), S.argsort(x),
    ])


def test_every_new_op_round_trips_through_symbol_json():
    sym = every_new_op()
    text = sym.tojson()
    loaded = S.load_json(text)
    assert loaded.tojson() == text
    assert loaded.list_arguments() == sym.list_arguments()
    assert loaded.list_outputs() == sym.list_outputs()
    ops = {n["op"] for n in json.loads(text)["nodes"]}
    assert {"Deconvolution", "UpSampling", "Pad", "LRN", "InstanceNorm", "LayerNorm",
            "L2Normalization", "Cast", "where", "batch_dot", "take", "pick", "slice",
            "slice_like", "tile", "repeat", "stack", "smooth_l1", "softmax_cross_entropy",
            "topk", "sort", "argsort"} <= ops


def test_mxnet_attribute_strings_load():
    """Attributes as MXNet writes them (None entries, bracketed tuples, lower-case bools)."""
    nodes = [{"op": "null", "name": "data", "inputs": []},
             {"op": "slice", "name": "s", "attrs": {"begin": "(None, 1)", "end": "[None, -1]",
                                                    "step": "(None, 2)"},
              "inputs": [[0, 0, 0]]},
             {"op": "Pad", "name": "p", "attrs": {"mode": "edge",
                                                  "pad_width": "(0,0,0,0,1,1,1,1)"},
              "inputs": [[0, 0, 0]]},
             {"op": "Cast", "name": "c", "attrs": {"dtype": "float64"}, "inputs": [[0, 0, 0]]}]
    doc = {"nodes": nodes, "arg_nodes": [0], "node_row_ptr": [0, 1, 2, 3, 4],
           "heads": [[1, 0, 0], [2, 0, 0], [3, 0, 0]], "attrs": {"mxnet_version":
                                                                  ["int", 10901]}}
    sym = S.load_json(json.dumps(doc))
    _, out, _ = sym.infer_shape(data=(2, 3, 4, 5))
    assert out == [(2, 1, 4, 5), (2, 3, 6, 7), (2, 3, 4, 5)]


# ---- errors name the node, op and shapes ---------------------------------------------------------
def test_bad_attributes_are_op_attribute_errors():
    x = S.Variable("data")
    with raises_named(sg.OpAttributeError, "LRN", "n1", "nsize", "odd"):
        S.LRN(x, nsize=4, name="n1")
    with raises_named(sg.OpAttributeError, "take", "t1", "raise"):
        S.take(x, S.Variable("i"), mode="raise", name="t1")
    with raises_named(sg.OpAttributeError, "slice", "s1", "step"):
        S.slice(x, begin=(0,), end=(2,), step=(0,), name="s1")
    with raises_named(sg.OpAttributeError, "Cast", "c1", "int32", "not supported"):
        S.Cast(x, dtype="int32", name="c1")
    with raises_named(sg.OpAttributeError, "Deconvolution", "d1", "num_group"):
        S.Deconvolution(x, kernel=(3, 3), num_filter=3, num_group=2, name="d1")
    with raises_named(sg.OpAttributeError, "tile", "t2", "reps"):
        S.tile(x, reps=(2, 0), name="t2")
    with raises_named(sg.OpAttributeError, "Pad", "p1", "pad_width"):
        S.Pad(x, pad_width=(0, 0, 0, 0, -1, 1, 1, 1), name="p1")


def test_bad_shapes_are_shape_errors_naming_node_op_and_shapes():
    x = S.Variable("data")
    cases = [
        (S.Deconvolution(x, kernel=(3, 3), stride=(2, 2), adj=(2, 0), num_filter=2,
                         name="d1"), (2, 3, 4, 5),
         ("Deconvolution", "d1", "adj=2", "(2, 3, 4, 5)")),
        (S.Deconvolution(x, kernel=(2, 2), target_shape=(30, 30), num_filter=2, name="d2"),
         (1, 2, 4, 4), ("Deconvolution", "d2", "target_shape", "(1, 2, 4, 4)")),
        (S.UpSampling(x, scale=2, sample_type="bilinear", num_filter=5, name="u1"),
         (2, 3, 4, 4), ("UpSampling", "u1", "num_filter=5", "(2, 3, 4, 4)")),
        (S.Pad(x, pad_width=(1, 0, 0, 0, 1, 1, 1, 1), name="p1"), (2, 3, 4, 4),
         ("Pad", "p1", "batch and channel", "(2, 3, 4, 4)")),
        (S.Pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 4, 0, 0, 0), name="p2"),
         (2, 3, 4, 4), ("Pad", "p2", "reflect", "(2, 3, 4, 4)")),
        (S.topk(x, k=9, name="k1"), (2, 3), ("topk", "k1", "k=9", "(2, 3)")),
        (S.slice(x, begin=(3,), end=(1,), name="s1"), (4, 2), ("slice", "s1", "empty",
                                                              "(4, 2)")),
        (S.slice(x, begin=(0, 0), end=(2, 3), name="s2"), (4, 2), ("slice", "s2", "axis 1",
                                                                  "out of range")),
        (S.batch_dot(x, S.Variable("r"), name="b1"), (2, 3, 4), ("batch_dot", "b1", "(2, 3, 4)")),
        (S.InstanceNorm(x, name="i1"), (2, 3), ("InstanceNorm", "i1", "3-D", "(2, 3)")),
    ]
    for sym, shape, parts in cases:
        with raises_named(sg.ShapeError, *parts):
            extra = {"r": (2, 5, 6)} if "r" in sym.list_arguments() else {}
            sym.infer_shape(data=shape, **extra)
    cond = S.where(S.Variable("c"), x, S.Variable("y"), name="w1")
    with raises_named(sg.ShapeError, "where", "w1", "condition", "(3,)", "(2, 4)"):
        cond.infer_shape(c=(3,), data=(2, 4), y=(2, 4))


def test_topk_and_sort_are_forward_only():
    x = S.Variable("data")
    with raises_named(NotDifferentiableError, "topk", "k"):
        S.grad(S.topk(x, ret_typ="value", name="k"), ["data"])
    with raises_named(NotDifferentiableError, "sort", "s"):
        S.grad(S.sort(x, name="s"), ["data"])


# ---- semantics against independent definitions ------------------------------------------------
def deconv_by_scatter(x, w, stride, pad, dilate, adj, groups):
    """Every input pixel adds weight * value into the output window it spreads over."""
    n, c, h, wd = x.shape
    cg, fg, kh, kw = c // groups, w.shape[1], w.shape[2], w.shape[3]
    oh = stride[0] * (h - 1) + dilate[0] * (kh - 1) + 1 - 2 * pad[0] + adj[0]
    ow = stride[1] * (wd - 1) + dilate[1] * (kw - 1) + 1 - 2 * pad[1] + adj[1]
    out = np.zeros((n, fg * groups, oh, ow))
    for b, ci, i, j, ki, kj, f in np.ndindex(n, c, h, wd, kh, kw, fg):
        r = i * stride[0] - pad[0] + ki * dilate[0]
        s = j * stride[1] - pad[1] + kj * dilate[1]
        if 0 <= r < oh and 0 <= s < ow:
            out[b, (ci // cg) * fg + f, r, s] += x[b, ci, i, j] * w[ci, f, ki, kj]
    return out


@pytest.mark.jit
@pytest.mark.parametrize("groups,stride,pad,dilate,adj", [
    (1, (2, 3), (1, 0), (1, 1), (1, 2)), (2, (1, 2), (0, 1), (2, 1), (0, 1))])
def test_deconvolution_is_the_scatter_definition(groups, stride, pad, dilate, adj):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 3, 5))
    w = rng.standard_normal((4, 3, 3, 2))
    sym = S.Deconvolution(S.Variable("data"), S.Variable("w"), kernel=(3, 2), stride=stride,
                          pad=pad, dilate=dilate, adj=adj, num_filter=3 * groups,
                          num_group=groups)
    expected = deconv_by_scatter(x, w, stride, pad, dilate, adj, groups)
    _, outs = bind_run(sym, {"data": x.shape}, {"data": x, "w": w})
    np.testing.assert_allclose(outs[0], expected, rtol=1e-10, atol=1e-10)


def test_deconvolution_target_shape_derives_pad_and_adj():
    x = S.Variable("data")
    for target in [(8, 8), (7, 9), (6, 10)]:
        sym = S.Deconvolution(x, kernel=(4, 4), stride=(2, 2), target_shape=target,
                              num_filter=1)
        _, out, _ = sym.infer_shape(data=(1, 1, 4, 5))
        assert out == [(1, 1) + target]


@pytest.mark.jit
def test_bilinear_upsampling_with_bilinear_weights_keeps_a_constant_image():
    from runtime.initializer import Bilinear

    sym = S.UpSampling(S.Variable("data"), scale=2, sample_type="bilinear", num_filter=2,
                       name="up")
    weight = np.zeros((2, 1, 4, 4))
    Bilinear()._init_weight("up_weight", weight)
    exe, outs = bind_run(sym, {"data": (1, 2, 5, 6)}, {"data": np.full((1, 2, 5, 6), 3.0),
                                                       "up_weight": weight})
    assert outs[0].shape == (1, 2, 10, 12)
    np.testing.assert_allclose(outs[0][:, :, 1:-1, 1:-1], 3.0, rtol=1e-12)


@pytest.mark.jit
def test_narrowing_cast_rounds_like_numpy():
    x = np.random.default_rng(1).standard_normal((3, 7)) * 1e3
    sym = S.Cast(S.Variable("data"), dtype="float32")
    exe, outs = bind_run(sym, {"data": x.shape}, {"data": x}, grad=("data",))
    assert outs[0].dtype == np.float32
    np.testing.assert_array_equal(outs[0], x.astype(np.float32))
    head = np.random.default_rng(2).standard_normal((3, 7)).astype(np.float32)
    exe.backward(out_grads=[head])
    assert exe.grad_dict["data"].dtype == np.float64
    np.testing.assert_array_equal(exe.grad_dict["data"], head.astype(np.float64))


@pytest.mark.jit
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_topk_both_and_sorting_ties_are_stable(dtype):
    x = np.array([[3.0, 1.0, 3.0, 2.0, 1.0], [0.5, 0.5, 0.5, -1.0, 4.0]])
    data = S.Variable("data")
    sym = S.Group([S.topk(data, k=3, ret_typ="both"), S.argsort(data),
                   S.sort(data, is_ascend=False), S.topk(data, k=2, ret_typ="mask",
                                                         is_ascend=True)])
    _, outs = bind_run(sym, {"data": x.shape}, {"data": x}, dtype=dtype)
    refs = evaluate(sym.outputs, {"data": x})
    np.testing.assert_array_equal(outs[0], [[3, 3, 2], [4, 0.5, 0.5]])
    np.testing.assert_array_equal(outs[1], [[0, 2, 3], [4, 0, 1]])
    np.testing.assert_array_equal(outs[2], [[1, 4, 3, 0, 2], [3, 0, 1, 2, 4]])
    np.testing.assert_array_equal(outs[3], [[3, 3, 2, 1, 1], [4, 0.5, 0.5, 0.5, -1]])
    np.testing.assert_array_equal(outs[4], [[0, 1, 0, 0, 1], [1, 0, 0, 1, 0]])
    for out, ref in zip(outs, refs):
        np.testing.assert_array_equal(out, ref)


@pytest.mark.jit
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sorting_puts_nans_last_in_both_directions(dtype):
    """NaNs sort after every number (numpy's order) whichever way, ties in index order;
    every output position is written (the ranks of a row stay a permutation)."""
    nan = np.nan
    x = np.array([[3.0, nan, 1.0, nan, 2.0, 1.0], [nan, nan, nan, 0.0, -1.0, nan]])
    data = S.Variable("data")
    sym = S.Group([S.sort(data), S.sort(data, is_ascend=False), S.argsort(data),
                   S.argsort(data, is_ascend=False), S.topk(data, k=4, ret_typ="both"),
                   S.topk(data, k=3, ret_typ="mask", is_ascend=True)])
    _, outs = bind_run(sym, {"data": x.shape}, {"data": x}, dtype=dtype)
    np.testing.assert_array_equal(outs[0], [[1, 1, 2, 3, nan, nan], [-1, 0, nan, nan, nan, nan]])
    np.testing.assert_array_equal(outs[3], [[0, 4, 2, 5, 1, 3], [3, 4, 0, 1, 2, 5]])
    np.testing.assert_array_equal(outs[6], [[0, 0, 1, 0, 1, 1], [1, 0, 0, 1, 1, 0]])
    for out, ref in zip(outs, evaluate(sym.outputs, {"data": x})):
        np.testing.assert_array_equal(out, ref)


@pytest.mark.jit
def test_gathers_never_read_outside_whatever_the_indices():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6))
    idx = np.array([-100.0, -7.5, -1.0, 0.0, 5.9, 6.0, 1e6])
    for mode in ("clip", "wrap"):
        sym = S.take(S.Variable("a"), S.Variable("i"), axis=1, mode=mode)
        _, outs = bind_run(sym, {"a": a.shape, "i": idx.shape}, {"a": a, "i": idx})
        np.testing.assert_array_equal(outs[0], evaluate(sym.outputs, {"a": a, "i": idx})[0])
    expected_clip = a[:, [0, 0, 0, 0, 5, 5, 5]]
    sym = S.take(S.Variable("a"), S.Variable("i"), axis=1)
    np.testing.assert_array_equal(evaluate(sym.outputs, {"a": a, "i": idx})[0], expected_clip)


def test_grouped_deconvolution_is_one_kernel_whatever_the_group_count(tmp_path, monkeypatch):
    """Depthwise (bilinear upsampling) must not compile one kernel per channel."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    from codegen.compiler import compile_graph

    calls = []
    for channels in (2, 12):
        sym = S.UpSampling(S.Variable("data"), scale=2, sample_type="bilinear",
                           num_filter=channels, name="up")
        compiled = compile_graph(sym, {"data": (1, channels, 3, 4)}, {},
                                 {"data": "write", "up_weight": "write"})
        calls.append(len(compiled.trace))
    assert calls[0] == calls[1] <= 4


@pytest.mark.jit
def test_sorting_the_flattened_input_and_hidden_topk_indices():
    x = np.random.default_rng(4).standard_normal((3, 4))
    data = S.Variable("data")
    sym = S.Group([S.sort(data, axis=None), S.topk(data, axis=None, k=3, ret_typ="value"),
                   S.argsort(data, axis=None, is_ascend=False)])
    _, outs = bind_run(sym, {"data": x.shape}, {"data": x})
    flat = x.reshape(-1)
    np.testing.assert_array_equal(outs[0], np.sort(flat))
    np.testing.assert_array_equal(outs[1], np.sort(flat)[::-1][:3])
    np.testing.assert_array_equal(outs[2], np.argsort(-flat, kind="stable"))
    topk = S.topk(data, k=2, ret_typ="value").outputs[0].node
    assert topk.num_outputs() == 2 and topk.num_visible_outputs() == 1


@pytest.mark.jit
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_5d_matches_numpy(mode):
    x = np.random.default_rng(6).standard_normal((1, 2, 3, 4, 2))
    width = (0, 0, 0, 0, 1, 2, 2, 1, 1, 1)
    sym = S.Pad(S.Variable("data"), mode=mode, pad_width=width, constant_value=-2.0)
    _, outs = bind_run(sym, {"data": x.shape}, {"data": x})
    pairs = [(width[2 * k], width[2 * k + 1]) for k in range(5)]
    kwargs = {"constant_values": -2.0} if mode == "constant" else {}
    np.testing.assert_array_equal(outs[0], np.pad(x, pairs, mode=mode, **kwargs))


@pytest.mark.jit
def test_module_initializes_an_upsampling_weight_as_bilinear():
    """The auto-created weight carries __init__ = bilinear (MXNet's compose rule), so any
    global initializer leaves it a bilinear kernel."""
    from runtime.initializer import Bilinear

    net = S.UpSampling(S.Variable("data"), scale=2, sample_type="bilinear", num_filter=3,
                       name="up")
    assert net.attr_dict()["up_weight"]["__init__"] == '["bilinear", {}]'
    mod = sg.mod.Module(net, data_names=["data"], label_names=[])
    mod.bind(data_shapes=[("data", (1, 3, 4, 4))], for_training=False)
    mod.init_params(initializer=sg.init.Xavier())
    expected = np.zeros((3, 1, 4, 4), dtype=np.float32)
    Bilinear()._init_weight("up_weight", expected)
    np.testing.assert_allclose(mod.get_params()[0]["up_weight"], expected)
