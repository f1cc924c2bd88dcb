"""A value read inside a hybridized block's forward is a clear error (MXNet: F is the symbol
namespace there, and a Symbol has no value); without hybridize() the same reads force the
graph and work. Shapes may be read in both (the replay cache is keyed by shapes)."""

import numpy as np
import pytest

from runtime.ndarray import HybridizedReadError, state
from symgraph import autograd, gluon, nd
from symgraph.errors import SymgraphError
from symgraph.gluon import nn

X = np.arange(1, 13, dtype=np.float32).reshape(3, 4) / 10

# (name, read of the block's hidden value h (3, 2) and s = h.sum(), what the error names)
READS = [
    ("asnumpy", lambda h, s: h.asnumpy(), "asnumpy()"),
    ("asscalar", lambda h, s: s.asscalar(), "asscalar()"),
    ("item", lambda h, s: s.item(), "item()"),
    ("float", lambda h, s: float(s), "float()"),
    ("int", lambda h, s: int(s), "int()"),
    ("bool", lambda h, s: bool(s > 0), "bool()"),
    ("if", lambda h, s: 1 if s > 100 else 0, "bool()"),
    ("print", lambda h, s: print(h), "printing"),
    ("repr", lambda h, s: repr(s), "printing"),
    ("format", lambda h, s: f"{s:.3f}", "formatting"),
    ("index", lambda h, s: h[0], "indexing"),
    ("iterate", lambda h, s: [row for row in h], "iterating"),
    ("numpy", lambda h, s: np.asarray(h), "numpy array"),
    ("tolist", lambda h, s: h.tolist(), "tolist()"),
    ("numpy attribute", lambda h, s: h.ravel(), "numpy attribute"),
    ("nd.array copy", lambda h, s: nd.array(h), "nd.array()"),
    ("matmul 3-D", lambda h, s: h.reshape((3, 1, 2)) @ h.reshape((3, 2, 1)), "matmul"),
    ("astype int", lambda h, s: h.astype("int32"), "astype(int32)"),
]


class Reader(gluon.HybridBlock):
    """Dense(2) then a Python read of its output; returns the output doubled."""

    def __init__(self, read, **kwargs):
        super().__init__(**kwargs)
        self.read = read
        with self.name_scope():
            self.dense = nn.Dense(2, in_units=4)

    def hybrid_forward(self, F, x):
        h = self.dense(x)
        self.read(h, h.sum())
        return h * 2


def _reader(read):
    block = Reader(read, prefix="reader_")
    block.initialize()
    return block


@pytest.mark.parametrize("name, read, what", READS, ids=[r[0] for r in READS])
def test_a_read_inside_a_hybridized_forward_raises(name, read, what):
    block = _reader(read)
    block.hybridize()
    with pytest.raises(HybridizedReadError, match=r"hybridized block 'reader'") as info:
        block(nd.array(X))
    message = str(info.value)
    assert what in message and "(array of shape (" in message
    assert isinstance(info.value, SymgraphError)
    assert not state.symbolic()  # the flag is restored after the error


@pytest.mark.parametrize("name, read, what", READS, ids=[r[0] for r in READS])
def test_the_same_reads_work_without_hybridize(name, read, what, capsys):
    block = _reader(read)
    out = block(nd.array(X)).asnumpy()
    w = block.dense.weight.data().asnumpy()
    b = block.dense.bias.data().asnumpy()
    np.testing.assert_allclose(out, 2 * (X @ w.T + b), rtol=1e-6)
    with autograd.record():
        loss = block(nd.array(X)).sum()
    loss.backward()
    np.testing.assert_allclose(block.dense.bias.grad().asnumpy(), [6, 6])


def test_reads_raise_inside_record_and_in_a_hybridized_child_of_a_plain_block():
    block = _reader(lambda h, s: float(s))
    block.hybridize()
    x = nd.array(X)
    with autograd.record():
        with pytest.raises(HybridizedReadError, match="float()"):
            block(x)
    first = nn.Dense(4, in_units=4)
    first.initialize()
    outer = nn.Sequential()  # not hybridized: only the child's forward is symbolic
    outer.add(first, block)
    with pytest.raises(HybridizedReadError, match="'reader'"):
        outer(x)
    block.hybridize(False)
    assert outer(x).shape == (3, 2)  # un-hybridized: the read forces and works


def test_mxnet2_forward_style_and_reading_outside_the_block():
    class Net(gluon.HybridBlock):
        def forward(self, x):
            return x * 3 if x.asnumpy().sum() > 0 else x

    net = Net()
    assert net(nd.array(X)).asnumpy().sum() == pytest.approx(3 * X.sum(), rel=1e-6)
    net.hybridize()
    with pytest.raises(HybridizedReadError, match="asnumpy"):
        net(nd.array(X))
    mult = nn.HybridLambda(lambda F, x: x * 3)
    mult.hybridize()
    out = mult(nd.array(X))
    np.testing.assert_allclose(out.asnumpy(), 3 * X, rtol=1e-6)  # outside: a plain read
    assert float(out.sum()) == pytest.approx(3 * X.sum(), rel=1e-6)


def test_hooks_of_a_hybridized_block_see_values():
    seen = []
    net = nn.HybridSequential()
    net.add(nn.Dense(2, in_units=4))
    net.initialize()
    net.hybridize()
    net.register_forward_hook(lambda block, inputs, out: seen.append(out.asnumpy()))
    out = net(nd.array(X))
    np.testing.assert_allclose(seen[0], out.asnumpy())


class ShapeBranch(gluon.HybridBlock):
    """Python that reads shapes: allowed hybridized, and correct for every signature."""

    def hybrid_forward(self, F, x):
        if x.shape[1] > 3:
            return F.sum(x, axis=1) * x.shape[1]
        return F.max(x, axis=1) + len(x)


def test_shape_reads_are_allowed_and_replay_per_shape():
    net = ShapeBranch()
    net.hybridize()
    rng = np.random.default_rng(0)
    for _ in range(3):  # first call traces, later ones replay the segment
        wide = rng.standard_normal((2, 5)).astype(np.float32)
        narrow = rng.standard_normal((4, 3)).astype(np.float32)
        np.testing.assert_allclose(net(nd.array(wide)).asnumpy(), wide.sum(1) * 5, rtol=1e-5)
        np.testing.assert_allclose(net(nd.array(narrow)).asnumpy(), narrow.max(1) + 4,
                                   rtol=1e-6)
    assert len(net._segments) == 2


def test_astype_and_copy_in_a_hybridized_forward_stay_in_the_graph():
    """Not reads: traced nodes, so the replay computes them from the new input."""

    class Cast(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return x.astype("float64").copy() * 2

    net = Cast()
    net.hybridize()
    for seed in range(3):
        xv = np.random.default_rng(seed).standard_normal((2, 3)).astype(np.float32)
        out = net(nd.array(xv))
        assert out.dtype == np.float64
        np.testing.assert_allclose(out.asnumpy(), xv.astype(np.float64) * 2)
