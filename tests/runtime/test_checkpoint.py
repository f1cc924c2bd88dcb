"""Checkpoints (mx.model.save_checkpoint/load_checkpoint) and optimizer-state files."""

import json
import logging
import struct
import sys
import types

import numpy as np
import pytest

from runtime import checkpoint, ndarray_io
from symgraph.errors import SerializationError


class FakeSymbol:
    """Stands in for symgraph.symbol.Symbol: only tojson() is used by save_checkpoint."""

    def __init__(self, text='{"nodes": []}'):
        self.text = text

    def tojson(self, remove_amp_cast=True):
        return self.text


def test_save_checkpoint_files_and_key_order(tmp_path, caplog):
    prefix = str(tmp_path / "mlp")
    args = {"fc1_weight": np.ones((2, 3), np.float32), "fc1_bias": np.zeros(2, np.float32)}
    aux = {"bn_moving_mean": np.full(3, 0.5, np.float32)}
    with caplog.at_level(logging.INFO):
        checkpoint.save_checkpoint(prefix, 3, FakeSymbol(), args, aux)
    assert (tmp_path / "mlp-symbol.json").read_text() == '{"nodes": []}'
    assert f'Saved checkpoint to "{prefix}-0003.params"' in caplog.text
    loaded = ndarray_io.load(f"{prefix}-0003.params")
    assert list(loaded) == ["arg:fc1_weight", "arg:fc1_bias", "aux:bn_moving_mean"]


def test_symbol_none_writes_params_only(tmp_path):
    prefix = str(tmp_path / "m")
    checkpoint.save_checkpoint(prefix, 12, None, {"w": np.ones(1)}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-0012.params"]


def test_load_params_splits_at_first_colon_and_drops_others(tmp_path):
    prefix = str(tmp_path / "m")
    ndarray_io.save(f"{prefix}-0001.params", {"arg:a:b": np.ones(1), "aux:m": np.zeros(1),
                                              "other:x": np.ones(2), "nocolon": np.ones(3)})
    arg, aux = checkpoint.load_params(prefix, 1)
    assert list(arg) == ["a:b"] and list(aux) == ["m"]


def test_empty_params_file_warns(tmp_path, caplog):
    prefix = str(tmp_path / "m")
    ndarray_io.save(f"{prefix}-0000.params", [])
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load_params(prefix, 0) == ({}, {})
    assert "is empty" in caplog.text


def test_load_checkpoint_uses_symbol_load(tmp_path, monkeypatch):
    prefix = str(tmp_path / "m")
    checkpoint.save_checkpoint(prefix, 2, FakeSymbol('{"x": 1}'), {"w": np.ones(2)},
                               {"s": np.zeros(1)})
    fake = types.ModuleType("symgraph.symbol")
    fake.load = lambda fname: ("loaded", open(fname).read())
    monkeypatch.setitem(sys.modules, "symgraph.symbol", fake)
    import symgraph
    monkeypatch.setattr(symgraph, "symbol", fake, raising=False)
    sym, arg, aux = checkpoint.load_checkpoint(prefix, 2)
    assert sym == ("loaded", '{"x": 1}')
    assert np.array_equal(arg["w"], np.ones(2)) and np.array_equal(aux["s"], np.zeros(1))


def test_states_round_trip_nested_structures(tmp_path):
    f = tmp_path / "opt.states"
    states = {
        0: None,
        1: np.arange(3, dtype=np.float32),
        2: (np.zeros((2, 2)), np.ones(2, np.float16)),
        5: ((np.ones(1), np.full(1, 2.0)), np.array(4.0, np.float32)),
        "named": [None, np.arange(2, dtype=np.int64)],
    }
    checkpoint.save_states(f, states, {"num_update": 7, "optimizer": "adam"})
    back, extra = checkpoint.load_states(f)
    assert extra == {"num_update": 7, "optimizer": "adam"}
    assert list(back) == [0, 1, 2, 5, "named"]
    assert back[0] is None
    assert isinstance(back[2], tuple) and back[2][1].dtype == np.float16
    assert isinstance(back[5][0], tuple) and back[5][1].shape == () and back[5][1] == 4
    assert isinstance(back["named"], list) and back["named"][0] is None
    assert back["named"][1].dtype == np.int64


def test_states_file_is_a_plain_ndarray_list(tmp_path):
    f = tmp_path / "opt.states"
    checkpoint.save_states(f, {3: (np.ones(1), np.zeros(1)), 4: np.ones(2)})
    raw = f.read_bytes()
    assert struct.unpack_from("<Q", raw)[0] == 0x112
    assert b"pickle" not in raw and not raw.startswith(b"\x80")
    content = ndarray_io.load(f)
    assert list(content) == ["__meta__", "state:3:0", "state:3:1", "state:4"]
    meta = json.loads(content["__meta__"].tobytes())
    assert meta["format"] == "symgraph.optimizer_states" and meta["version"] == 1


def test_states_errors(tmp_path):
    with pytest.raises(SerializationError, match="JSON"):
        checkpoint.save_states(tmp_path / "a", {0: None}, {"bad": object()})
    ndarray_io.save(tmp_path / "plain", {"x": np.ones(1)})
    with pytest.raises(SerializationError, match="not a symgraph optimizer-states"):
        checkpoint.load_states(tmp_path / "plain")
    with pytest.raises(SerializationError, match="index"):
        checkpoint.save_states(tmp_path / "b", {(1, 2): None})
