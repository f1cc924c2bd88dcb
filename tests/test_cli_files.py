"""The CLI speaks of the user's files: bad --input arrays, damaged symbol and params files
and the compile cache each give one line that names the file and the problem."""

import numpy as np
import pytest

import symgraph as sg
from runtime import cli, ndarray_io


def _error_line(capsys, argv):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("symgraph: error: "), err
    return err[0]


@pytest.mark.parametrize("make,needle", [
    (lambda p: np.save(p, np.float32(3.0)), "single number (a 0-d array)"),
    (lambda p: np.save(p, np.zeros((0, 16), np.float32)), "no samples"),
    (lambda p: np.save(p, np.array(["a", "b"])), "holds <U1 values"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
     "not a readable .npy"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "not a readable .npy"),
    (lambda p: np.save(p, np.array([[1.0, np.nan]], np.float32)), "NaN or infinite"),
])
def test_predict_input_errors_name_the_input(tmp_path, capsys, make, needle):
    path = tmp_path / "X.npy"
    make(path)
    line = _error_line(capsys, ["predict", str(tmp_path / "m"), "--epoch", "1", "--input",
                                str(path), "-o", str(tmp_path / "p.npy")])
    assert needle in line and str(path) in line
    assert "index" not in line  # not "tuple index out of range"


def test_predict_csv_of_text(tmp_path, capsys):
    path = tmp_path / "X.csv"
    path.write_text("1,2,x\n")
    line = _error_line(capsys, ["predict", str(tmp_path / "m"), "--epoch", "1", "--input",
                                str(path), "-o", str(tmp_path / "p.npy")])
    assert "not a CSV of numbers" in line and str(path) in line


def test_summary_of_non_utf8_symbol_file(tmp_path, capsys):
    path = tmp_path / "net-symbol.json"
    path.write_bytes(b'{"nodes": [\xff]}')
    line = _error_line(capsys, ["summary", str(path)])
    assert "not UTF-8" in line and str(path) in line


def test_inspect_of_damaged_params_names_the_file(tmp_path, capsys):
    path = tmp_path / "w.params"
    ndarray_io.save(path, {"arg:w": np.ones((2, 3), np.float32)})
    raw = bytearray(path.read_bytes())
    raw[36:44] = (0).to_bytes(8, "little")  # the record's dims become (0, 2**62):
    raw[44:52] = (2**62).to_bytes(8, "little")  # no data bytes, an impossible shape
    path.write_bytes(bytes(raw))
    line = _error_line(capsys, ["inspect", str(path)])
    assert str(path) in line and "larger than any array" in line


def test_summary_of_symbol_with_negative_shape(tmp_path, capsys):
    path = tmp_path / "net-symbol.json"
    sg.sym.FullyConnected(sg.sym.Variable("data", shape=(4, 5)), num_hidden=3,
                          name="fc").save(str(path))
    path.write_text(path.read_text().replace('"(4, 5)"', '"(-3, 5)"'))
    line = _error_line(capsys, ["summary", str(path)])
    assert "'data'" in line and "__shape__" in line and str(path) in line
