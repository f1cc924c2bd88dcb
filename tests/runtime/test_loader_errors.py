"""nd.load, load_checkpoint, optimizer-state files and Updater.set_states on the damaged
inputs of issue 10: SerializationError (also ValueError) naming the file and the problem."""

import json
import struct

import numpy as np
import pytest

import symgraph as sg
from runtime import checkpoint, ndarray_io
from symgraph.errors import (
    FileReadError,
    MissingFileError,
    SerializationError,
    SymgraphError,
)


def _params(tmp_path, shape=(2, 3)):
    path = tmp_path / "w.params"
    ndarray_io.save(path, {"arg:w": np.ones(shape, np.float32)})
    return path


def _patch(path, offset, fmt, value):
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("offset,fmt,value,needle", [
    (36, "<q", 0, "1 arrays but"),  # dims (0, 3): the data bytes are then read as names
    (36, "<q", 100, "truncated"),  # dims (100, 3): more data than the file has
    (44, "<q", 2**62, "larger than any array"),  # dims (2, 2**62)
    (32, "<i", 40, "invalid ndim 40"),
    (28, "<i", 2, "csr storage"),
    (-1, "<i", -1, "unknown dtype code -1"),
    (0, "<Q", 0x113, "not an MXNet NDArray file"),
])
def test_params_records(tmp_path, offset, fmt, value, needle):
    path = _params(tmp_path)
    if offset == -1:
        offset = 24 + 12 + 16 + 8  # magic, stype, ndim, dims, dev_type, dev_id -> dtype
    _patch(path, offset, fmt, value)
    with pytest.raises(SerializationError, match=needle) as info:
        sg.nd.load(str(path))
    assert str(path) in str(info.value)


def test_zero_by_huge_dims_is_refused_before_numpy(tmp_path):
    path = _params(tmp_path)
    _patch(path, 36, "<q", 0)
    _patch(path, 44, "<q", 2**62)
    with pytest.raises(SerializationError, match=r"shape \(0, 4611686018427387904\), larger"):
        sg.nd.load(str(path))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MissingFileError) as info:
        sg.nd.load(str(tmp_path / "none.params"))
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, SymgraphError)
    with pytest.raises(FileReadError, match="cannot read NDArray file"):
        sg.nd.load(str(tmp_path))
    with pytest.raises(MissingFileError):
        sg.model.load_checkpoint(str(tmp_path / "none"), 1)


def test_checkpoint_with_none_record(tmp_path):
    prefix = str(tmp_path / "m")
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), num_hidden=2, name="fc")
    checkpoint.save_checkpoint(prefix, 1, net, {"fc_weight": None}, {})
    with pytest.raises(SerializationError, match="'arg:fc_weight' is an empty"):
        sg.model.load_checkpoint(prefix, 1)


# ---- optimizer-state files -----------------------------------------------------------------
def _states_with_meta(tmp_path, edit):
    path = tmp_path / "o.states"
    checkpoint.save_states(path, {0: (np.zeros(3, np.float32), np.ones(3, np.float32)), 1: None})
    content = ndarray_io.load(path)
    meta = json.loads(content[checkpoint.META_NAME].tobytes())
    content[checkpoint.META_NAME] = np.frombuffer(json.dumps(edit(meta)).encode(), np.uint8)
    ndarray_io.save(path, content)
    return path


@pytest.mark.parametrize("edit,needle", [
    (lambda m: {**m, "states": [{"state": None}]}, "bad entry"),  # was KeyError: 'index'
    (lambda m: {**m, "states": [{"index": [1], "state": None}]}, "bad entry"),
    (lambda m: {**m, "states": {"0": None}}, "'states' list"),
    (lambda m: {**m, "states": [{"index": 0, "state": {"array": "nope"}}]}, "'nope' is missing"),
    (lambda m: {**m, "states": [{"index": 0, "state": {"array": "__meta__"}}]}, "missing"),
    (lambda m: {**m, "states": [{"index": 0, "state": {"tuple": 5}}]}, "bad state spec"),
    (lambda m: {**m, "states": [{"index": 0, "state": {"array": "state:0:0", "scalar": 1}}]},
     "marked scalar"),
    (lambda m: {**m, "states": [{"index": 0, "state": 7}]}, "bad state spec"),
    (lambda m: {**m, "states": [{"index": 0, "state": None}] * 2}, "index 0 twice"),
    (lambda m: {**m, "version": 99}, "unsupported format"),
    (lambda m: [m], "unsupported format"),
    (lambda m: {**m, "token": -4}, "bad checkpoint token"),
])
def test_states_file_meta(tmp_path, edit, needle):
    path = _states_with_meta(tmp_path, edit)
    with pytest.raises(SerializationError, match=needle) as info:
        checkpoint.load_states(path)
    assert str(path) in str(info.value)


def test_states_spec_nested_too_deeply(tmp_path):
    deep = None
    for _ in range(50):
        deep = {"tuple": [deep]}
    path = _states_with_meta(tmp_path, lambda m: {**m, "states": [{"index": 0, "state": deep}]})
    with pytest.raises(SerializationError, match="bad state spec"):
        checkpoint.load_states(path)


# ---- Updater.set_states ----------------------------------------------------------------------
def _blob(optimizer="adam", dump=True):
    updater = sg.optimizer.get_updater(sg.optimizer.create(optimizer))
    updater(0, np.ones(3, np.float32), np.ones(3, np.float32))
    return updater.get_states(dump_optimizer=dump)


def _edit_header(blob, edit):
    size = int.from_bytes(blob[8:16], "little")
    head = json.dumps(edit(json.loads(blob[16:16 + size]))).encode()
    return blob[:8] + len(head).to_bytes(8, "little") + head + blob[16 + size:]


@pytest.mark.parametrize("data,needle", [
    (None, "expected the bytes"), ("SGOPTST1", "expected the bytes"), (b"SGOPT", "bad magic"),
    (_blob()[:20], "truncated"),
    (_edit_header(_blob(), lambda h: {**h, "optimizer": {"name": "nope", "attrs": {}}}),
     "unknown optimizer 'nope'"),
    (_edit_header(_blob(), lambda h: {**h, "optimizer": {"name": "adam", "attrs": []}}),
     "bad optimizer block"),
    (_edit_header(_blob(), lambda h: {**h, "optimizer": {"name": "adam",
                                                          "attrs": {"beta1": "x"}}}),
     "'beta1'"),
    (_edit_header(_blob(), lambda h: {**h, "optimizer": {"name": "adam",
                                                          "attrs": {"evil": 1}}}),
     "no attribute 'evil'"),
    (_edit_header(_blob(), lambda h: {**h, "optimizer": {  # found by the fuzz test
        "name": "adam", "attrs": {"_all_index_update_counts": None}}}),
     "'_all_index_update_counts' = null, expected a dict"),
    (_edit_header(_blob(), lambda h: {**h, "arrays": [{"dtype": "|O", "shape": [1],
                                                       "offset": 0}]}), "unsupported dtype"),
    (_edit_header(_blob(), lambda h: {**h, "arrays": [{"dtype": "<f4", "shape": [2**40],
                                                       "offset": 0}]}), "outside"),
    (_edit_header(_blob(), lambda h: {**h, "states": [[{"i": 0}, {"a": 9}]]}), "array 9"),
    (_edit_header(_blob(), lambda h: {**h, "states": [[{"x": 0}, None]]}), "bad state index"),
])
def test_set_states_rejects(data, needle):
    updater = sg.optimizer.get_updater(sg.optimizer.create("adam"))
    before = updater.optimizer
    with pytest.raises(SerializationError, match=needle):
        updater.set_states(data)
    assert updater.optimizer is before and updater.states == {}  # nothing half-applied


def test_set_states_round_trip_still_works():
    updater = sg.optimizer.get_updater(sg.optimizer.create("sgd", momentum=0.9))
    updater.set_states(_blob("sgd"))
    assert updater.optimizer.momentum == 0.0 and set(updater.states) == {0}
