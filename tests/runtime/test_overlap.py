"""forward_backward as sub-phases cut where gradients are final (codegen/phase_split.py,
runtime/overlap.py): bitwise the gradients of the single phase, every gradient marked
ready is touched by no later sub-phase, and the bucket pieces tile the bucket."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from codegen.phase_split import split_phase
from codegen.program import Ext, describe
from runtime.overlap import overlapped_step

BATCH = 8


def mlp():
    net = sg.sym.var("data")
    for i, width in enumerate((96, 48)):
        net = sg.sym.FullyConnected(net, num_hidden=width, name=f"fc{i + 1}")
        net = sg.sym.Activation(net, act_type="relu", name=f"relu{i + 1}")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc3")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def lenet():
    net = sg.sym.var("data")
    for i, channels in enumerate((6, 12)):
        net = sg.sym.Convolution(net, kernel=(5, 5), num_filter=channels, name=f"conv{i + 1}")
        net = sg.sym.Activation(net, act_type="tanh", name=f"tanh{i + 1}")
        net = sg.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2),
                             name=f"pool{i + 1}")
    net = sg.sym.FullyConnected(sg.sym.Flatten(net), num_hidden=120, name="fc1")
    net = sg.sym.Activation(net, act_type="tanh", name="tanh3")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def bn_dropout():
    """In-place aux updates (BatchNorm) and a seeded random mask (Dropout)."""
    net = sg.sym.FullyConnected(sg.sym.var("data"), num_hidden=64, name="fc1")
    net = sg.sym.BatchNorm(net, name="bn1")
    net = sg.sym.Activation(net, act_type="relu", name="relu1")
    net = sg.sym.Dropout(net, p=0.3, name="drop1")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def deep(layers=16):
    """Equal layers: every layer's gradients complete one after the other."""
    net = sg.sym.var("data")
    for i in range(layers):
        net = sg.sym.FullyConnected(net, num_hidden=32, name=f"fc{i}")
        net = sg.sym.Activation(net, act_type="relu", name=f"relu{i}")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="out")
    return sg.sym.SoftmaxOutput(net, name="softmax")


CASES = {"mlp": (mlp, (BATCH, 200)), "lenet": (lenet, (BATCH, 1, 28, 28)),
         "bn_dropout": (bn_dropout, (BATCH, 300)), "deep": (deep, (BATCH, 32))}


def _bound(case, seed=0, data_grad=True):
    build, shape = CASES[case]
    symbol = build()
    reqs = {n: "null" if n == "softmax_label" or (n == "data" and not data_grad) else "write"
            for n in symbol.list_arguments()}
    exe = symbol.simple_bind(sg.cpu(), grad_req=reqs, data=shape, softmax_label=(BATCH,))
    rng = np.random.default_rng(seed)
    for name, array in exe.arg_dict.items():
        if name == "softmax_label":
            array[:] = rng.integers(0, 10, array.shape)
        else:
            array[:] = rng.standard_normal(array.shape).astype(array.dtype) * 0.3
    return exe


def _state(exe):
    arrays = {f"grad {n}": a for n, a in exe.grad_dict.items()}
    arrays.update({f"aux {n}": a for n, a in exe.aux_dict.items()})
    arrays.update({f"out {i}": a for i, a in enumerate(exe.outputs)})
    return {k: np.array(a, copy=True) for k, a in arrays.items()}


def _step(case):
    exe = _bound(case)
    step = overlapped_step(exe, max_parts=4, min_bytes=1024)
    assert step is not None and step.parts >= 2, case
    return exe, step


@pytest.mark.parametrize("case", sorted(CASES))
def test_sub_phases_give_bitwise_the_gradients_of_one_phase(case):
    plain, (split, step) = _bound(case), _step(case)
    for exe in (plain, split):
        exe.grad_bucket[:] = np.nan  # nothing may rely on what the bucket held
    if plain.random_seed is not None:
        split.random_seed = plain.random_seed  # the same Dropout masks
    for _ in range(2):  # two steps: the aux states and the Dropout seed move on alike
        plain.forward_backward()
        snapshots = []

        def ready(k, step=step, snapshots=snapshots):
            snapshots.append([np.array(piece, copy=True) for piece in step.pieces[k]])

        split.forward_backward_parts(step, ready)
        expected, got = _state(plain), _state(split)
        assert expected.keys() == got.keys()
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{case}: {key}")
        assert not any(np.isnan(a).any() for k, a in got.items() if k.startswith("grad"))
        # what was handed over after sub-phase k is already the final value
        assert len(snapshots) == step.parts
        for k, pieces in enumerate(snapshots):
            for taken, final in zip(pieces, step.pieces[k]):
                np.testing.assert_array_equal(taken, final, err_msg=f"{case} piece {k}")
    assert split.random_seed == plain.random_seed


def _split_of(case, **options):
    exe = _bound(case)
    # a warm compile-result cache serves kernel names only; the split needs the kernels,
    # so take the full compile as overlapped_step does
    compiled = exe.compiled.full() if hasattr(exe.compiled, "full") else exe.compiled
    program = compiled.program.program
    names = list(compiled.grads)
    grads = [compiled.grads[n].ext for n in names]
    return program, split_phase(program, "forward_backward", grads, **options), grads


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_later_sub_phase_touches_a_ready_gradient(case):
    program, split, grads = _split_of(case, min_bytes=1024, min_fraction=0.0, balanced=False)
    assert len(split.parts) >= 2
    assert sorted(g for p in split.parts for g in p.ready) == sorted(grads)
    for k, part in enumerate(split.parts):
        later = [c for p in split.parts[k + 1:] for c in split.program.phases[p.name]]
        touched = {a.index for c in later for a in c.args if isinstance(a, Ext)}
        assert not touched & set(part.ready), (case, part.name)
        assert len(split.program.phases[part.name]) == part.calls > 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_reordering_keeps_every_memory_conflict_in_order(case):
    from codegen.phase_split import _accesses, _conflict

    program, split, _ = _split_of(case, min_bytes=1024, min_fraction=0.0, balanced=False)
    source = program.phases["forward_backward"]
    moved = [c for p in split.parts for c in split.program.phases[p.name]]
    assert sorted(map(id, moved)) == sorted(map(id, source))  # every call exactly once
    where = {id(c): i for i, c in enumerate(moved)}
    accesses = [_accesses(c, program.externals) for c in source]
    for j in range(len(source)):
        for i in range(j):
            if _conflict(accesses[i], accesses[j]):
                assert where[id(source[i])] < where[id(source[j])], (case, i, j)


def test_last_layers_gradients_are_ready_first():
    program, split, _ = _split_of("lenet", min_bytes=1024, min_fraction=0.0, balanced=False)
    names = [[program.externals[g].name for g in p.ready] for p in split.parts]
    assert "grad:fc2_weight" in names[0] and "grad:conv1_weight" in names[-1], names


def test_one_part_is_the_source_phase_and_the_split_is_in_the_cache_key():
    program, single, _ = _split_of("mlp", max_parts=1)
    assert len(single.parts) == 1
    assert single.program.phases["forward_backward__0"] == program.phases["forward_backward"]
    _, split, _ = _split_of("mlp", min_bytes=1024, min_fraction=0.0, balanced=False)
    assert describe(split.program) != describe(single.program)
    assert "phase forward_backward__1" in describe(split.program)
    assert split.program.arena_bytes == program.arena_bytes
    assert split.program.externals == program.externals


@pytest.mark.parametrize("case", ["mlp", "lenet"])
def test_pieces_tile_the_bucket(case):
    exe, step = _step(case)
    bucket = exe.grad_bucket
    spans = sorted((p.ctypes.data, p.ctypes.data + p.nbytes) for ps in step.pieces for p in ps)
    assert spans[0][0] == bucket.ctypes.data and spans[-1][1] == bucket.ctypes.data + bucket.nbytes
    assert all(hi == lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
    for names, pieces in zip(step.names, step.pieces):
        for name in names:
            grad = exe.grad_dict[name]
            assert any(p.ctypes.data <= grad.ctypes.data and
                       grad.ctypes.data + grad.nbytes <= p.ctypes.data + p.nbytes
                       for p in pieces), name


def test_no_split_without_a_bucket_or_with_one_part():
    exe = _bound("mlp")
    assert overlapped_step(exe, max_parts=1) is None
    args = {n: np.array(a) for n, a in exe.arg_dict.items()}
    grads = {n: np.zeros_like(a) for n, a in exe.arg_dict.items() if n != "softmax_label"}
    own = mlp().bind(sg.cpu(), args, args_grad=grads)
    assert own.grad_bucket is None and overlapped_step(own) is None


@pytest.mark.parametrize("seed", range(6))
def test_cut_pieces_are_runs_of_any_bucket_layout(seed):
    exe = _bound("mlp")
    program = exe.compiled.program.program
    grads = [s.ext for n, s in exe.compiled.grads.items() if n not in ("data", "softmax_label")]
    layout = list(np.random.default_rng(seed).permutation(grads))
    split = split_phase(program, "forward_backward", layout, min_bytes=1024,
                        min_fraction=0.0, balanced=False)
    rank = {g: i for i, g in enumerate(layout)}
    for part in split.parts[:-1]:
        ranks = sorted(rank[g] for g in part.ready)
        assert ranks == list(range(ranks[0], ranks[0] + len(ranks))), (layout, part)
    assert sorted(g for p in split.parts for g in p.ready) == sorted(grads)


def _param_split(case, **options):
    exe = _bound(case, data_grad=False)
    program = exe.compiled.program.program
    grads = [s.ext for s in exe.compiled.grads.values()]
    return program, split_phase(program, "forward_backward", grads, **options)


def test_a_layer_cut_between_weight_and_bias_does_not_strand_the_rest():
    # a piece must extend the reduced run at the bucket's end: cutting the last layer's
    # weight off alone would leave its bias between two reduced pieces for good
    program, split = _param_split("deep", min_bytes=1024, min_fraction=0.0, balanced=False)
    assert len(split.parts) == 4
    first = {program.externals[g].name for g in split.parts[0].ready}
    assert {"grad:out_weight", "grad:out_bias"} <= first


def test_balanced_cuts_give_a_deep_net_pieces_of_similar_size():
    program, split = _param_split("deep", min_bytes=1024, min_fraction=0.0)
    sizes = [sum(program.externals[g].nbytes for g in p.ready) for p in split.parts]
    assert len(sizes) == 4 and max(sizes) < 2 * min(sizes), sizes
    _, greedy = _param_split("deep", min_bytes=1024, min_fraction=0.0, balanced=False)
    greedy_sizes = [sum(program.externals[g].nbytes for g in p.ready) for p in greedy.parts]
    assert greedy_sizes[-1] > 2 * sizes[-1]  # greedy leaves the bulk to the end
