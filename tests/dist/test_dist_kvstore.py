"""sg.kv: the kvstore API across 2 real ranks, and in one process (registry, local store,
errors, NDArrayIter sharding, rank-0-only checkpoints)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from mpi_helpers import HERE, launch

import symgraph as sg
from runtime.kvstore import KVStoreBase, KVStoreError, MPIUnavailableError


def test_dist_kvstore_api_on_two_ranks():
    run = launch([str(HERE / "dist_kv_worker.py")])
    assert run.returncode == 0, run.output
    assert "rank 0 kv ok" in run.stdout and "rank 1 kv ok" in run.stdout


def test_local_store_sums_devices_and_updates_with_optimizer():
    kv = sg.kv.create("local")
    assert (kv.type, kv.rank, kv.num_workers) == ("local", 0, 1)
    kv.init([1, 2], [sg.nd.ones((2, 3)), sg.nd.zeros(4)])
    kv.push(1, [sg.nd.ones((2, 3)) * 2, sg.nd.ones((2, 3)) * 3])
    out = sg.nd.zeros((2, 3))
    kv.pull(1, out=out)
    np.testing.assert_array_equal(out.asnumpy(), 5)
    kv.set_optimizer(sg.optimizer.create("sgd", learning_rate=0.1))
    kv.push(1, sg.nd.ones((2, 3)))
    kv.pull(1, out=out)
    np.testing.assert_allclose(out.asnumpy(), 5 - 0.1)
    with pytest.raises(KVStoreError, match="key 'nope' was not initialized"):
        kv.pull("nope", out=out)


def test_registry_and_unknown_type():
    @KVStoreBase.register
    class MyStore(KVStoreBase):
        type = "mystore"

    try:
        assert isinstance(sg.kv.create("MyStore"), MyStore)
    finally:
        del KVStoreBase.kv_registry["mystore"]
    with pytest.raises(KVStoreError, match="unknown kvstore type 'dist_sink'"):
        sg.kv.create("dist_sink")


def test_dist_async_is_synchronous_with_a_warning():
    with pytest.warns(UserWarning) as record:
        kv = sg.kv.create("dist_async")
    text = " ".join(str(w.message) for w in record)
    assert "synchronously" in text and "not started by mpiexec" in text
    assert kv.num_workers == 1 and kv.rank == 0


def test_missing_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(MPIUnavailableError, match=r"pip install 'symgraph-compiler\[dist\]'"):
        sg.kv.create("dist_sync")
    mod = sg.mod.Module(_mlp())
    mod.bind([("data", (4, 5))], [("softmax_label", (4,))])
    mod.init_params()
    with pytest.raises(MPIUnavailableError, match="mpi4py"):
        mod.init_optimizer(kvstore="horovod")
    # a local kvstore never needs MPI
    mod.init_optimizer(kvstore="local")


def _mlp():
    net = sg.sym.FullyConnected(sg.sym.var("data"), num_hidden=3, name="fc")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def test_ndarrayiter_parts_are_equal_contiguous_slices():
    x = np.arange(22 * 2, dtype=np.float32).reshape(22, 2)
    y = np.arange(22, dtype=np.float32)
    parts = [sg.io.NDArrayIter(x, y, 5, num_parts=3, part_index=i, last_batch_handle="discard")
             for i in range(3)]
    labels = [np.concatenate([b.label[0] for b in p]) for p in parts]
    np.testing.assert_array_equal(labels[0], np.arange(0, 5))
    np.testing.assert_array_equal(labels[1], np.arange(7, 12))
    np.testing.assert_array_equal(labels[2], np.arange(14, 19))
    assert all(p.num_data == 7 for p in parts)
    with pytest.raises(ValueError, match="part_index must be in"):
        sg.io.NDArrayIter(x, y, 5, num_parts=2, part_index=2)
    with pytest.raises(ValueError, match="cannot be split into 30 parts"):
        sg.io.NDArrayIter(x, y, 5, num_parts=30, part_index=0)


def test_checkpoints_are_written_by_rank_0_only(tmp_path, monkeypatch):
    from runtime.kvstore import comm

    mod = sg.mod.Module(_mlp())
    mod.bind([("data", (4, 5))], [("softmax_label", (4,))])
    mod.init_params()
    arg, aux = mod.get_params()
    save = sg.callback.do_checkpoint(str(tmp_path / "r1"))
    monkeypatch.setattr(comm, "current_rank", lambda: 1)
    save(0, mod.symbol, arg, aux)
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(comm, "current_rank", lambda: 0)
    save(0, mod.symbol, arg, aux)
    assert (tmp_path / "r1-0001.params").exists()


def test_dataset_loaders_take_a_shard():
    full_x, full_y = sg.datasets.load_mnist(kind="test")
    x1, y1 = sg.datasets.load_mnist(kind="test", num_parts=3, part_index=1)
    assert len(x1) == len(full_x) // 3
    np.testing.assert_array_equal(x1, full_x[len(x1):2 * len(x1)])
    np.testing.assert_array_equal(y1, full_y[len(y1):2 * len(y1)])
    fx, _ = sg.datasets.load_fashion_mnist(kind="test", num_parts=2, part_index=1)
    assert len(fx) == 5000
    with pytest.raises(ValueError, match="part_index must be in"):
        sg.datasets.load_mnist(kind="test", num_parts=2, part_index=-1)
