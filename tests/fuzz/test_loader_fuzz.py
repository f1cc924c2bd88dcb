"""Property tests: every loader, fed mutated real files, loads or raises a SymgraphError.

Never a builtin exception, a crash or a hang, and a rejection names the file and stays a
readable size. ``SYMGRAPH_FUZZ_EXAMPLES`` (default 2000) sets the cases per loader; a longer
run is ``SYMGRAPH_FUZZ_EXAMPLES=50000 pytest tests/fuzz``.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import (
    FUZZ,
    TALLY,
    any_file,
    apply_binary,
    apply_json,
    binary_mutations,
    json_mutations,
)

import symgraph as sg
from runtime import checkpoint, ndarray_io
from symgraph.errors import SymgraphError

MAX_MESSAGE = 2000
# Tally only, never fail: measures how many cases escape (for a before/after table).
COUNT_ONLY = bool(os.environ.get("SYMGRAPH_FUZZ_COUNT_ONLY"))


def _attempt(loader: str, call, names=()):
    """Run ``call``; a SymgraphError must name one of ``names``; anything else escapes."""
    tally = TALLY[loader]
    tally["tried"] += 1
    try:
        call()
    except SymgraphError as err:
        tally["rejected"] += 1
        text = str(err)
        assert len(text) < MAX_MESSAGE, f"{loader}: message of {len(text)} characters"
        if names and not COUNT_ONLY:
            assert any(str(n) in text for n in names), f"{loader}: file not named in {text!r}"
    except Exception:
        tally["escaped"] += 1
        if not COUNT_ONLY:
            raise
    else:
        tally["loaded"] += 1


def _mutate_text(original: bytes, mutation) -> bytes:
    kind, ops = mutation
    return apply_binary(original, ops) if kind == "binary" else \
        apply_json(original.decode("utf-8"), ops)


@pytest.fixture(scope="module")
def files(trained):
    prefix = trained["prefix"]
    return {"json": Path(f"{prefix}-symbol.json").read_bytes(),
            "params": Path(f"{prefix}-0001.params").read_bytes(),
            "states": Path(f"{prefix}-0001.states").read_bytes()}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# ---- symbol JSON ------------------------------------------------------------------------
def test_symbol_json_loader(files, scratch):
    """Load (the error names the file), then infer (the error names the node)."""
    path = scratch / "net-symbol.json"
    loaded = []

    def load():
        loaded.append(sg.sym.load(str(path)))

    def infer():
        symbol = loaded.pop()
        if "data" in symbol.list_arguments():  # a renamed input is the file's choice
            symbol.infer_shape(data=(32, 16))
            symbol.infer_type(data="float32")

    @FUZZ
    @given(mutation=any_file)
    def check(mutation):
        path.write_bytes(_mutate_text(files["json"], mutation))
        loaded.clear()
        _attempt("symbol JSON (sym.load)", load, [path])
        if loaded:
            _attempt("loaded symbol, infer_shape", infer)

    check()


# ---- nd.load / .params ------------------------------------------------------------------
def test_params_loader(files, scratch):
    path = scratch / "net-0001.params"

    @FUZZ
    @given(ops=binary_mutations)
    def check(ops):
        path.write_bytes(apply_binary(files["params"], ops))
        _attempt("nd.load (.params)", lambda: sg.nd.load(str(path)), [path])

    check()


# ---- load_checkpoint / Module.load ------------------------------------------------------
def test_checkpoint_loader(files, scratch):
    prefix = scratch / "ckpt"
    json_path, params_path = Path(f"{prefix}-symbol.json"), Path(f"{prefix}-0003.params")

    def load_both():
        symbol, _, _ = sg.model.load_checkpoint(str(prefix), 3)
        # Module's own input-name check (a file may rename 'data') is not a loader's.
        if {"data", "softmax_label"} <= set(symbol.list_arguments()):
            sg.mod.Module.load(str(prefix), 3)

    @FUZZ
    @given(which=st.sampled_from(["json", "params", "both"]), mutation=any_file,
           ops=binary_mutations)
    def check(which, mutation, ops):
        json_path.write_bytes(files["json"] if which == "params"
                              else _mutate_text(files["json"], mutation))
        params_path.write_bytes(files["params"] if which == "json"
                                else apply_binary(files["params"], ops))
        _attempt("load_checkpoint / Module.load", load_both, [json_path, params_path])

    check()


# ---- optimizer-state files --------------------------------------------------------------
_WRONG_ARRAYS = [np.zeros((3, 5), np.float32), np.zeros((), np.float32), np.zeros(0, np.float32),
                 np.zeros((2, 2), np.int64), np.zeros(7, np.uint8), np.array([True])]


def _states_variant(original: bytes, kind: str, ops, record: int, wrong: int) -> bytes:
    if kind == "binary":
        return apply_binary(original, ops)
    content = ndarray_io.loads(original)
    if kind == "meta":
        text = content[checkpoint.META_NAME].tobytes().decode("utf-8")
        content[checkpoint.META_NAME] = np.frombuffer(apply_json(text, ops), np.uint8)
    else:
        names = [n for n in content if n != checkpoint.META_NAME]
        content[names[record % len(names)]] = _WRONG_ARRAYS[wrong % len(_WRONG_ARRAYS)]
    return ndarray_io.dumps(content)


def test_states_file_loader(trained, files, scratch):
    path = scratch / "net-0001.states"
    module = trained["module"]

    def load_both():
        checkpoint.load_states(str(path))
        module.load_optimizer_states(str(path))

    @FUZZ
    @given(kind=st.sampled_from(["binary", "meta", "record"]),
           binary=binary_mutations, meta=json_mutations,
           record=st.integers(0, 99), wrong=st.integers(0, 99))
    def check(kind, binary, meta, record, wrong):
        ops = binary if kind == "binary" else meta
        path.write_bytes(_states_variant(files["states"], kind, ops, record, wrong))
        _attempt("optimizer states file", load_both, [path])

    check()
    module.load_optimizer_states(f"{trained['prefix']}-0001.states")


# ---- Updater.set_states / FusedUpdater.load_states --------------------------------------
def _blob_variant(blob: bytes, kind: str, ops, keep_length: bool) -> bytes:
    if kind == "binary":
        return apply_binary(blob, ops)
    size = int.from_bytes(blob[8:16], "little")
    header = blob[16:16 + size].decode("utf-8")
    new = apply_json(header, ops)
    length = size if keep_length else len(new)
    return blob[:8] + length.to_bytes(8, "little") + new + blob[16 + size:]


def test_updater_set_states(trained):
    blobs = [trained["updater_blob"], trained["updater_blob_plain"]]
    module = trained["module"]
    fused = module._live_fused
    assert fused is not None, "Adam training should leave a fused updater"

    def set_both(data, with_optimizer):
        updater = sg.optimizer.get_updater(sg.optimizer.create("adam"))
        updater.set_states(data)
        if not with_optimizer:  # a fused updater keeps its optimizer
            fused.load_states(data)

    @FUZZ
    @given(which=st.integers(0, 1), kind=st.sampled_from(["binary", "header"]),
           binary=binary_mutations, header=json_mutations, keep_length=st.booleans())
    def check(which, kind, binary, header, keep_length):
        ops = binary if kind == "binary" else header
        data = _blob_variant(blobs[which], kind, ops, keep_length)
        _attempt("Updater.set_states / load_states", lambda: set_both(data, which == 0))

    check()
    fused.load_states(blobs[1])


def test_updater_set_states_rejects_non_bytes():
    updater = sg.optimizer.get_updater(sg.optimizer.create("sgd"))
    for value in (None, 3, "SGOPTST1", {"a": 1}, [b"x"], json.dumps({})):
        with pytest.raises(SymgraphError):
            updater.set_states(value)
