"""MXNet NDArray-list binary format: byte-exact writing, V1/V2/V3/legacy reading, errors."""

import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import atomic, ndarray_io
from symgraph.errors import SerializationError

V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA


def header(n):
    return struct.pack("<QQQ", 0x112, 0, n)


def names_block(names):
    out = struct.pack("<Q", len(names))
    for n in names:
        raw = n.encode("utf-8")
        out += struct.pack("<Q", len(raw)) + raw
    return out


def v2_record(shape, code, data: bytes):
    return (struct.pack("<Iii", V2, 0, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
            + struct.pack("<iii", 1, 0, code) + data)


def test_save_dict_matches_hand_built_bytes(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -2], dtype=np.int64)
    fname = tmp_path / "x.params"
    ndarray_io.save(fname, {"arg:w": w, "aux:b": b})
    expected = (header(2) + v2_record((2, 3), 0, w.tobytes()) + v2_record((2,), 6, b.tobytes())
                + names_block(["arg:w", "aux:b"]))
    assert fname.read_bytes() == expected


def test_save_single_array_and_list_have_no_names(tmp_path):
    a = np.ones(3, dtype=np.uint8)
    ndarray_io.save(tmp_path / "one", a)
    assert (tmp_path / "one").read_bytes() == header(1) + v2_record((3,), 3, a.tobytes()) + \
        struct.pack("<Q", 0)
    ndarray_io.save(tmp_path / "two", [a, a])
    out = ndarray_io.load(tmp_path / "two")
    assert isinstance(out, list) and len(out) == 2


def test_zero_dim_written_as_shape_1():
    raw = ndarray_io.dumps([np.array(2.5, dtype=np.float64)])
    assert raw == header(1) + v2_record((1,), 1, np.float64(2.5).tobytes()) + struct.pack("<Q", 0)
    assert ndarray_io.loads(raw)[0].shape == (1,)


@pytest.mark.parametrize("code,dtype", [(0, np.float32), (1, np.float64), (2, np.float16),
                                        (3, np.uint8), (4, np.int32), (5, np.int8),
                                        (6, np.int64), (7, np.bool_), (8, np.int16),
                                        (9, np.uint16), (10, np.uint32), (11, np.uint64)])
def test_dtype_codes(code, dtype):
    a = (np.arange(4) % 2).astype(dtype)
    raw = ndarray_io.dumps([a])
    assert struct.unpack_from("<i", raw, 24 + 12 + 8 + 8)[0] == code
    back = ndarray_io.loads(raw)[0]
    assert back.dtype == dtype and np.array_equal(back, a)


shapes = st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64, np.int32, np.uint8,
                                            np.int64]), seed=st.integers(0, 2**31))
def test_round_trip_bit_exact(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    raw_bits = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
                            dtype=np.uint8)
    a = raw_bits.view(dtype).reshape(shape)
    back = ndarray_io.loads(ndarray_io.dumps({"x": a, "y": a.T}))
    assert back["x"].tobytes() == a.tobytes() and back["x"].shape == shape
    assert back["y"].tobytes() == np.ascontiguousarray(a.T).tobytes()


def test_loaded_arrays_are_writable_and_independent():
    out = ndarray_io.loads(ndarray_io.dumps([np.zeros(3), np.zeros(3)]))
    out[0][:] = 1
    assert out[1].sum() == 0 and out[0].flags.writeable and out[0].flags.owndata


def test_big_endian_input_stored_little_endian():
    a = np.arange(3, dtype=">i4")
    raw = ndarray_io.dumps([a])
    assert raw.endswith(np.arange(3, dtype="<i4").tobytes() + struct.pack("<Q", 0))


def test_read_v1_record():
    data = np.arange(4, dtype=np.float32)
    rec = struct.pack("<Ii", V1, 1) + struct.pack("<q", 4) + struct.pack("<iii", 1, 0, 0)
    out = ndarray_io.loads(header(1) + rec + data.tobytes() + names_block(["a"]))
    assert np.array_equal(out["a"], data)


def test_read_legacy_record():
    data = np.arange(6, dtype=np.int32)
    rec = struct.pack("<I", 2) + struct.pack("<II", 2, 3) + struct.pack("<iii", 1, 0, 4)
    out = ndarray_io.loads(header(1) + rec + data.tobytes() + names_block([]))
    assert out[0].shape == (2, 3) and np.array_equal(out[0].ravel(), data)


def test_read_v3_scalar_and_none():
    scalar = struct.pack("<Iii", V3, 0, 0) + struct.pack("<iii", 1, 0, 1) + \
        np.float64(7).tobytes()
    none = struct.pack("<Iii", V3, 0, -1)
    out = ndarray_io.loads(header(2) + scalar + none + names_block([]))
    assert out[0].shape == () and out[0] == 7 and out[1] is None


def test_v2_none_record_round_trips_as_none():
    out = ndarray_io.loads(ndarray_io.dumps({"a": None, "b": np.ones(1)}))
    assert out["a"] is None and out["b"][0] == 1


def test_sparse_and_bfloat16_give_clear_errors():
    sparse = struct.pack("<Iii", V2, 1, 1)
    with pytest.raises(SerializationError, match="row_sparse"):
        ndarray_io.loads(header(1) + sparse)
    bf16 = v2_record((1,), 12, b"\0\0")
    with pytest.raises(SerializationError, match="bfloat16"):
        ndarray_io.loads(header(1) + bf16 + names_block([]))


def test_unsupported_dtype_and_bad_input():
    with pytest.raises(SerializationError, match="complex"):
        ndarray_io.dumps([np.zeros(2, dtype=np.complex64)])
    with pytest.raises(SerializationError):
        ndarray_io.dumps("nope")
    with pytest.raises(SerializationError):
        ndarray_io.dumps({1: np.zeros(1)})


def test_bad_magic_names_offset(tmp_path):
    f = tmp_path / "bad.params"
    f.write_bytes(struct.pack("<QQQ", 0x113, 0, 0))
    with pytest.raises(SerializationError, match=r"bad\.params.*magic 0x113.*offset 0"):
        ndarray_io.load(f)


@pytest.mark.parametrize("cut", [5, 30, 60, 100, -3])
def test_truncated_file_error_names_file_and_offset(tmp_path, cut):
    full = ndarray_io.dumps({"arg:w": np.ones((4, 4), np.float32)})
    f = tmp_path / "cut.params"
    f.write_bytes(full[:cut])
    with pytest.raises(SerializationError, match=r"cut\.params.*truncated.*offset \d+"):
        ndarray_io.load(f)


def test_name_count_mismatch():
    raw = header(1) + v2_record((1,), 0, b"\0" * 4) + names_block(["a", "b"])
    with pytest.raises(SerializationError, match="1 arrays but 2 names"):
        ndarray_io.loads(raw)


def test_atomic_save_crash_keeps_old_file(tmp_path, monkeypatch):
    f = tmp_path / "model.params"
    ndarray_io.save(f, {"a": np.zeros(2)})
    before = f.read_bytes()

    def boom(*_args):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        ndarray_io.save(f, {"a": np.ones(1000)})
    assert f.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.params"]


def test_atomic_writer_failure_midway_cleans_up(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"old")

    def writer(fobj):
        fobj.write(b"partial")
        raise RuntimeError("died while writing")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(f, writer)
    assert f.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]


def test_atomic_write_creates_normal_permissions(tmp_path):
    f = tmp_path / "p.bin"
    atomic.atomic_write(f, b"abc")
    assert f.read_bytes() == b"abc"
    assert os.stat(f).st_mode & 0o777 == 0o666 & ~atomic._UMASK
