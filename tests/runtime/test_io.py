"""mx.io semantics: NDArrayIter modes, naming, shuffling; CSV, Resize, Prefetching, MNIST."""

import os
import threading
import timeit
from pathlib import Path

import numpy as np
import pytest

from runtime import io as mio


def data_root():
    """SYMGRAPH_DATA, else the shared folder on the build machines (skip when neither)."""
    root = os.environ.get("SYMGRAPH_DATA") or "/work/shared/datasets"
    if not (Path(root) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST files not available (set SYMGRAPH_DATA)")
    return Path(root)


def labels_of(it):
    return [(b.label[0].tolist(), b.pad) for b in it]


# ----------------------------------------------------------------------------- DataDesc/Batch
def test_datadesc():
    d = mio.DataDesc("data", (10, 3))
    assert d == ("data", (10, 3)) and d.dtype is np.float32 and d.layout == "NCHW"
    assert repr(d) == "DataDesc[data,(10, 3),<class 'numpy.float32'>,NCHW]"
    assert mio.DataDesc.get_batch_axis("TNC") == 1
    assert mio.DataDesc.get_batch_axis(None) == 0
    lst = mio.DataDesc.get_list([("a", (1,)), ("b", (2,))], [("a", np.int32), ("b", np.int8)])
    assert lst[1].dtype is np.int8 and lst[0].shape == (1,)


def test_databatch_requires_lists():
    b = mio.DataBatch([np.zeros((2, 3))], [np.zeros(2)], pad=1)
    assert str(b) == "DataBatch: data shapes: [(2, 3)] label shapes: [(2,)]"
    with pytest.raises(TypeError):
        mio.DataBatch(np.zeros(2))


def test_dataiter_subclass_can_assign_provide_data():
    class It(mio.DataIter):
        def __init__(self):
            super().__init__(2)
            self.provide_data = [mio.DataDesc("x", (2,))]

    assert It().provide_data[0].name == "x"
    assert not hasattr(It(), "provide_label")


# ----------------------------------------------------------------------------- NDArrayIter
def test_pad_mode_wraps_from_start():
    x = np.arange(10).reshape(10, 1)
    it = mio.NDArrayIter(x, np.arange(10), batch_size=4)
    assert labels_of(it) == [([0, 1, 2, 3], 0), ([4, 5, 6, 7], 0), ([8, 9, 0, 1], 2)]
    it.reset()
    assert len(list(it)) == 3


def test_pad_mode_tiles_when_batch_exceeds_twice_the_data():
    it = mio.NDArrayIter(np.arange(3.0), np.arange(3.0), batch_size=8)
    batches = list(it)
    assert len(batches) == 1
    assert batches[0].data[0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1] and batches[0].pad == 5
    it = mio.NDArrayIter(np.arange(3.0), batch_size=9)
    assert next(it).data[0].tolist() == [0, 1, 2] * 3


def test_discard_mode():
    it = mio.NDArrayIter(np.arange(10.0), np.arange(10.0), batch_size=4,
                         last_batch_handle="discard")
    assert labels_of(it) == [([0, 1, 2, 3], 0), ([4, 5, 6, 7], 0)]
    it.reset()
    assert labels_of(it) == [([0, 1, 2, 3], 0), ([4, 5, 6, 7], 0)]


def test_roll_over_reports_held_back_count_as_pad():
    it = mio.NDArrayIter(np.arange(10.0), np.arange(10.0), batch_size=4,
                         last_batch_handle="roll_over")
    assert labels_of(it) == [([0, 1, 2, 3], 0), ([4, 5, 6, 7], 0)]
    it.reset()
    assert labels_of(it) == [([8, 9, 0, 1], 2), ([2, 3, 4, 5], 0), ([6, 7, 8, 9], 0)]
    it.reset()
    assert labels_of(it) == [([0, 1, 2, 3], 0), ([4, 5, 6, 7], 0)]
    it.hard_reset()
    assert labels_of(it)[0] == ([0, 1, 2, 3], 0)


def test_roll_over_hard_reset_drops_cache():
    it = mio.NDArrayIter(np.arange(10.0), batch_size=4, last_batch_handle="roll_over")
    list(it)
    it.hard_reset()
    assert [b.data[0].tolist() for b in it] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_list_and_dict_naming_sorted():
    a, b = np.zeros((4, 2)), np.ones((4, 3))
    it = mio.NDArrayIter([a, b], [np.zeros(4), np.ones(4)], batch_size=2)
    assert [d.name for d in it.provide_data] == ["_0_data", "_1_data"]
    assert [d.name for d in it.provide_label] == ["_0_softmax_label", "_1_softmax_label"]
    it = mio.NDArrayIter({"zeta": a, "alpha": b}, {"y": np.zeros(4)}, batch_size=2)
    assert [d.name for d in it.provide_data] == ["alpha", "zeta"]
    assert [d.shape for d in it.provide_data] == [(2, 3), (2, 2)]
    batch = next(it)
    assert batch.data[0].shape == (2, 3) and batch.data[1].shape == (2, 2)
    it = mio.NDArrayIter([a], data_name="x")
    assert it.provide_data[0].name == "x" and it.provide_data[0].shape == (1, 2)


def test_float32_cast_and_dtype_flag():
    it = mio.NDArrayIter(np.arange(4, dtype=np.int64), np.arange(4), batch_size=2)
    b = next(it)
    assert b.data[0].dtype == np.float32 and b.label[0].dtype == np.float32
    assert it.provide_label[0].dtype == np.float32
    it = mio.NDArrayIter(np.arange(4.0), np.arange(4), batch_size=2, dtype=None)
    assert next(it).label[0].dtype == np.arange(4).dtype


def test_label_less_iterator():
    it = mio.NDArrayIter(np.zeros((5, 2)), batch_size=2)
    assert it.provide_label == []
    batches = list(it)
    assert all(b.label == [] for b in batches) and batches[-1].pad == 1


def test_iterator_copies_input():
    x = np.zeros((4, 1), np.float32)
    it = mio.NDArrayIter(x, batch_size=2)
    x[:] = 5
    assert next(it).data[0].sum() == 0


def test_shuffle_reproducible_and_stacks_across_epochs():
    x = np.arange(20.0)
    np.random.seed(7)
    it = mio.NDArrayIter(x, x, batch_size=5, shuffle=True)
    first = np.concatenate([b.data[0] for b in it])
    it.reset()
    second = np.concatenate([b.data[0] for b in it])
    np.random.seed(7)
    idx = np.arange(20)
    np.random.shuffle(idx)
    expected1 = x[idx]
    np.random.shuffle(idx)
    assert np.array_equal(first, expected1)
    assert np.array_equal(second, expected1[idx])
    assert sorted(second) == list(x)
    np.random.seed(7)
    again = mio.NDArrayIter(x, x, batch_size=5, shuffle=True)
    assert np.array_equal(np.concatenate([b.label[0] for b in again]), first)


def test_shuffle_keeps_one_copy_and_data_reads_in_order():
    """A reshuffle allocates row numbers, not a reordered copy of the data set (which held
    two copies at once); ``data``/``label`` still read as MXNet's reordered arrays, and
    replacing one of them keeps the other in the epoch's order."""
    import tracemalloc

    x = np.arange(4000 * 50, dtype=np.float32).reshape(4000, 50)
    np.random.seed(3)
    it = mio.NDArrayIter(x, x[:, 0].copy(), batch_size=100, shuffle=True)
    tracemalloc.start()
    it.reset()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < x.nbytes // 4, peak  # 32 KB of row numbers, not 800 KB of rows
    rows = np.concatenate([b.data[0] for b in it])
    assert np.array_equal(it.data[0][1], rows) and np.array_equal(it.label[0][1], rows[:, 0])
    it.data = [("data", it.data[0][1] * 2)]
    it.reset()
    pairs = [(b.data[0], b.label[0]) for b in it]
    assert all(np.array_equal(d[:, 0], 2 * lb) for d, lb in pairs)


def test_mismatched_lengths_and_bad_mode():
    with pytest.raises(ValueError):
        mio.NDArrayIter(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        mio.NDArrayIter(np.zeros(3), last_batch_handle="wrap")


def test_getdata_api_matches_next():
    it = mio.NDArrayIter(np.arange(6.0), np.arange(6.0), batch_size=4)
    assert it.iter_next()
    assert it.getdata()[0].tolist() == [0, 1, 2, 3] and it.getpad() == 0
    assert it.iter_next() and it.getpad() == 2 and it.getlabel()[0].tolist() == [4, 5, 0, 1]
    assert it.getindex() is None and not it.iter_next()


def test_subclass_overriding_getdata_is_respected():
    class Doubled(mio.NDArrayIter):
        def getdata(self):
            return [d * 2 for d in super().getdata()]

    it = Doubled(np.arange(4.0), batch_size=2)
    assert next(it).data[0].tolist() == [0, 2]


def test_next_fast_path_is_cheap():
    x = np.zeros((100_000, 10), np.float32)
    it = mio.NDArrayIter(x, np.zeros(100_000, np.float32), batch_size=10)
    per_batch = min(timeit.repeat(it.next, number=2000, repeat=3)) / 2000
    assert per_batch < 20e-6, f"NDArrayIter.next took {per_batch * 1e6:.1f} us"


# ----------------------------------------------------------------------------- CSVIter
@pytest.fixture
def csv_files(tmp_path):
    data = np.arange(20, dtype=np.float64).reshape(10, 2)
    np.savetxt(tmp_path / "d.csv", data, delimiter=",")
    np.savetxt(tmp_path / "l.csv", np.arange(10), delimiter=",")
    return tmp_path / "d.csv", tmp_path / "l.csv"


def test_csv_round_batch_wraps_and_next_epoch_continues(csv_files):
    d, lab = csv_files
    it = mio.CSVIter(d, (2,), label_csv=lab, batch_size=4)
    assert it.provide_data[0] == ("data", (4, 2)) and it.provide_label[0].shape == (4, 1)
    assert [(b.label[0].ravel().tolist(), b.pad) for b in it] == [
        ([0, 1, 2, 3], 0), ([4, 5, 6, 7], 0), ([8, 9, 0, 1], 2)]
    it.reset()
    assert [b.label[0].ravel().tolist() for b in it] == [[2, 3, 4, 5], [6, 7, 8, 9]]
    it.reset()
    assert next(it).label[0].ravel().tolist() == [0, 1, 2, 3]


def test_csv_no_round_batch_keeps_stale_rows(csv_files):
    d, _ = csv_files
    it = mio.CSVIter(d, (2,), batch_size=4, round_batch=False)
    batches = list(it)
    assert batches[-1].pad == 2
    assert batches[-1].data[0][:, 0].tolist() == [16, 18, 12, 14]
    assert batches[0].label[0].shape == (4, 1) and not batches[0].label[0].any()


def test_csv_dtype_and_shape_checks(csv_files):
    d, _ = csv_files
    it = mio.CSVIter(d, (1, 2), batch_size=5, dtype="int32")
    b = next(it)
    assert b.data[0].dtype == np.int32 and b.data[0].shape == (5, 1, 2)
    with pytest.raises(ValueError, match="needs 3"):
        mio.CSVIter(d, (3,))


# ----------------------------------------------------------------------------- ResizeIter
def test_resize_iter_cycles_inner_iterator():
    inner = mio.NDArrayIter(np.arange(6.0), batch_size=2)
    it = mio.ResizeIter(inner, 5)
    assert it.provide_data == inner.provide_data and it.batch_size == 2
    assert [b.data[0].tolist() for b in it] == [[0, 1], [2, 3], [4, 5], [0, 1], [2, 3]]
    it.reset()
    assert next(it).data[0].tolist() == [0, 1]
    short = mio.ResizeIter(mio.NDArrayIter(np.arange(6.0), batch_size=2), 2,
                           reset_internal=False)
    list(short)
    short.reset()
    assert next(short).data[0].tolist() == [4, 5]


# ----------------------------------------------------------------------------- PrefetchingIter
def test_prefetching_concatenates_and_renames():
    a = mio.NDArrayIter(np.arange(6.0), np.arange(6.0), batch_size=4)
    b = mio.NDArrayIter(np.arange(6.0) * 10, np.arange(6.0), batch_size=4)
    with mio.PrefetchingIter([a, b], rename_data=[{"data": "a"}, {"data": "b"}]) as it:
        assert [d.name for d in it.provide_data] == ["a", "b"]
        assert it.batch_size == 4
        for _ in range(2):
            batches = list(it)
            assert len(batches) == 2 and batches[1].pad == 2
            assert batches[0].data[1].tolist() == [0, 10, 20, 30]
            assert len(batches[0].label) == 2
            it.reset()


def test_prefetching_joins_threads_and_propagates_errors():
    before = threading.active_count()

    class Boom(mio.NDArrayIter):
        def next(self):
            raise RuntimeError("inner failure")

    it = mio.PrefetchingIter(Boom(np.arange(4.0), batch_size=2))
    with pytest.raises(RuntimeError, match="inner failure"):
        next(it)
    it.close()
    it.close()
    assert threading.active_count() == before
    single = mio.PrefetchingIter(mio.NDArrayIter(np.arange(4.0), batch_size=2))
    assert len(list(single)) == 2 and not single.iter_next()
    del single
    import gc
    gc.collect()
    assert threading.active_count() == before


# ----------------------------------------------------------------------------- MNISTIter
def test_mnist_iter_on_real_files():
    root = data_root() / "mnist"
    it = mio.MNISTIter(image=str(root / "t10k-images-idx3-ubyte"),
                       label=str(root / "t10k-labels-idx1-ubyte.gz"), batch_size=128,
                       shuffle=False, silent=True)
    batches = list(it)
    assert len(batches) == 10000 // 128
    assert batches[0].data[0].shape == (128, 1, 28, 28)
    assert batches[0].label[0].dtype == np.float32
    assert batches[0].data[0].max() == np.float32(255 / 256)
    assert batches[0].label[0][:3].tolist() == [7, 2, 1]
    flat = mio.MNISTIter(image=str(root / "t10k-images-idx3-ubyte.gz"),
                         label=str(root / "t10k-labels-idx1-ubyte.gz"), batch_size=100,
                         flat=True, seed=3, silent=True)
    assert flat.provide_data[0].shape == (100, 784)
    labels = np.concatenate([b.label[0] for b in flat])
    assert np.bincount(labels.astype(int)).tolist() == \
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
