"""Checkpoints that survive kills and re-saves: stale temp files are cleaned on the next
save, and a .params/.states pair from two different saves is refused."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from rt_helpers import letter_mlp

import symgraph as sg
from runtime import checkpoint, ndarray_io
from runtime import module as module_impl
from runtime.atomic import atomic_write, clean_stale_temps
from runtime.datasets import load_letter_recognition
from symgraph.errors import CheckpointMismatchError, MissingFileError, SerializationError

ROOT = Path(__file__).resolve().parents[2]


# ---- stale temporaries ------------------------------------------------------------------
def _start_slow_writer(target: Path):
    """A process that writes 2 MB of ``target``'s temp file and then hangs mid-save."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from runtime.atomic import atomic_write
        def writer(f):
            f.write(b"x" * (2 << 20)); f.flush()
            print("writing", flush=True)
            time.sleep(600)
        atomic_write({str(target)!r}, writer)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def _temps(folder: Path, target: str):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{target}.")
                  and p.name.endswith(".tmp"))


def test_kill_during_save_leaves_temp_that_next_save_removes(tmp_path):
    target = tmp_path / "net-0001.params"
    atomic_write(target, b"old")
    proc = _start_slow_writer(target)
    try:
        leftover = _temps(tmp_path, target.name)
        assert len(leftover) == 1 and f".{proc.pid}-" in leftover[0]
        atomic_write(target, b"new")  # the writer is alive: its temp file stays
        assert _temps(tmp_path, target.name) == leftover
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert target.read_bytes() == b"new"
    other = tmp_path / f".{target.name}x.{proc.pid}-abcdefgh.tmp"  # another target's name
    other.write_bytes(b"keep")
    atomic_write(target, b"newer")
    assert _temps(tmp_path, target.name) == []
    assert other.exists() and target.read_bytes() == b"newer"


def test_legacy_temp_names_removed_once_old(tmp_path):
    target = tmp_path / "m-symbol.json"
    legacy = tmp_path / f".{target.name}.k3j_9x0a.tmp"  # mkstemp name without a pid
    legacy.write_bytes(b"partial")
    assert clean_stale_temps(target) == []  # could be a live writer of an older version
    hour_ago = time.time() - 2 * 3600
    os.utime(legacy, (hour_ago, hour_ago))
    assert clean_stale_temps(target) == [str(legacy)]


def test_own_unfinished_temp_is_stale_but_active_one_is_not(tmp_path):
    target = tmp_path / "a.states"
    mine = tmp_path / f".{target.name}.{os.getpid()}-zzzzzzzz.tmp"
    mine.write_bytes(b"left by an exception path that could not unlink")
    seen = []

    def writer(f):
        seen.append(_temps(tmp_path, target.name))
        f.write(b"ok")

    atomic_write(target, writer)
    assert not mine.exists()
    assert len(seen[0]) == 1 and seen[0][0] != mine.name  # only the live temp was there
    assert target.read_bytes() == b"ok"


# ---- params/states pairing ---------------------------------------------------------------
@pytest.fixture(scope="module")
def letter():
    X, y = load_letter_recognition()
    return X[:1600], y[:1600]


def _trained(letter, epochs=1):
    X, y = letter
    sg.random.seed(1)
    mod = sg.mod.Module(letter_mlp(hidden=32), context=sg.cpu())
    mod.fit(sg.io.NDArrayIter(X, y, 32), optimizer="adam",
            optimizer_params={"learning_rate": 0.01}, num_epoch=epochs)
    return mod


def _resume(prefix, epoch, letter):
    X, y = letter
    mod = sg.mod.Module.load(prefix, epoch, load_optimizer_states=True)
    mod.bind(data_shapes=[("data", (32, 16))], label_shapes=[("softmax_label", (32,))])
    mod.init_optimizer(optimizer="adam", optimizer_params={"learning_rate": 0.01})
    return mod


def test_checkpoint_pair_carries_one_token_mxnet_readable(tmp_path, letter):
    mod = _trained(letter)
    prefix = str(tmp_path / "m")
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    token = ndarray_io.read_token(f"{prefix}-0001.params")
    assert token != 0 and checkpoint.states_token(f"{prefix}-0001.states") == token
    raw = Path(f"{prefix}-0001.params").read_bytes()
    # Only the reserved header word differs from what MXNet writes; the rest is unchanged.
    assert raw[:8] == (0x112).to_bytes(8, "little") and raw[8:16] == token.to_bytes(8, "little")
    plain = ndarray_io.dumps(ndarray_io.load(f"{prefix}-0001.params"))
    assert raw[16:] == plain[16:] and plain[8:16] == bytes(8)
    assert set(ndarray_io.load(f"{prefix}-0001.params")) == \
        {"arg:fc1_weight", "arg:fc1_bias", "arg:fc2_weight", "arg:fc2_bias"}
    resumed = _resume(prefix, 1, letter)
    saved = mod._current_states()
    for index, state in resumed._current_states().items():
        for got, want in zip(state, saved[index]):
            np.testing.assert_array_equal(got, want)


def test_resaving_params_alone_is_a_mismatched_pair(tmp_path, letter):
    mod = _trained(letter)
    prefix = str(tmp_path / "m")
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    mod.save_checkpoint(prefix, 1)  # new params, the old states stay on disk
    with pytest.raises(CheckpointMismatchError, match=r"m-0001\.states.*another save"):
        sg.mod.Module.load(prefix, 1, load_optimizer_states=True)
    assert isinstance(CheckpointMismatchError("x"), ValueError)
    sg.mod.Module.load(prefix, 1)  # the params alone are fine


def test_kill_between_states_and_params_is_detected(tmp_path, letter, monkeypatch):
    mod = _trained(letter)
    prefix = str(tmp_path / "m")
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)

    def killed(self, fname, token=0):
        raise KeyboardInterrupt("killed after the states were written")

    monkeypatch.setattr(module_impl.Module, "save_params", killed)
    with pytest.raises(KeyboardInterrupt):
        mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    monkeypatch.undo()
    with pytest.raises(CheckpointMismatchError):
        sg.mod.Module.load(prefix, 1, load_optimizer_states=True)
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)  # a complete save heals it
    _resume(prefix, 1, letter)


def test_files_without_token_still_load(tmp_path, letter):
    """MXNet's own params (reserved word 0) and states saved one by one are not checked."""
    mod = _trained(letter)
    prefix = str(tmp_path / "m")
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    mod.save_params(f"{prefix}-0001.params")
    assert ndarray_io.read_token(f"{prefix}-0001.params") == 0
    _resume(prefix, 1, letter)


def test_states_of_another_net_name_the_file(tmp_path, letter):
    mod = _trained(letter)
    prefix = str(tmp_path / "m")
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    other = {0: (np.zeros((5, 3), np.float32), np.zeros((5, 3), np.float32))}
    checkpoint.save_states(f"{tmp_path}/x.states", other)
    with pytest.raises(SerializationError, match=r"x\.states.*state 0 \('fc1_weight'\)"):
        mod.load_optimizer_states(f"{tmp_path}/x.states")
    checkpoint.save_states(f"{tmp_path}/y.states", {99: None})
    with pytest.raises(SerializationError, match=r"y\.states.*index 99"):
        mod.load_optimizer_states(f"{tmp_path}/y.states")


def test_missing_states_file_is_named(tmp_path, letter):
    mod = _trained(letter)
    prefix = str(tmp_path / "m")
    mod.save_checkpoint(prefix, 1)
    with pytest.raises(MissingFileError, match=r"no such optimizer states file: .*m-0001\.states"):
        sg.mod.Module.load(prefix, 1, load_optimizer_states=True)
