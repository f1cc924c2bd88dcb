"""The symbol JSON loader on the damaged files of issue 10: each is a SerializationError
(a ValueError too) that names the file, the node and the field."""

import json

import pytest

import symgraph as sg
from symgraph.errors import SerializationError


def _doc():
    net = sg.sym.FullyConnected(sg.sym.Variable("data", shape=(4, 16), dtype="float32"),
                                num_hidden=8, name="fc1")
    return json.loads(sg.sym.SoftmaxOutput(net, name="softmax").tojson())


def _node(doc, name):
    return next(n for n in doc["nodes"] if n["name"] == name)


def _set(doc, name, key, value):
    _node(doc, name).setdefault("attrs", {})[key] = value
    return doc


def _inputs(doc, name, inputs):
    _node(doc, name)["inputs"] = inputs
    return doc


CASES = [
    ("num_hidden 1e400", lambda d: _set(d, "fc1", "num_hidden", "1e400"),
     ["'fc1'", "num_hidden"]),
    ("dtype -1", lambda d: _set(d, "data", "__dtype__", "-1"), ["'data'", "__dtype__"]),
    ("dtype text", lambda d: _set(d, "data", "__dtype__", "float32"), ["'data'", "__dtype__"]),
    ("negative shape", lambda d: _set(d, "data", "__shape__", "(-3, 5)"),
     ["'data'", "__shape__", "-3"]),
    ("shape not a tuple", lambda d: _set(d, "data", "__shape__", "(2**62,)"),
     ["'data'", "__shape__"]),
    ("shape too big", lambda d: _set(d, "data", "__shape__", f"({2**62}, {2**62})"),
     ["'data'", "elements"]),
    ("lr_mult inf", lambda d: _set(d, "fc1_weight", "__lr_mult__", "inf"),
     ["'fc1_weight'", "__lr_mult__"]),
    ("negative input node", lambda d: _inputs(d, "fc1", [[-1, 0, 0], [1, 0, 0], [2, 0, 0]]),
     ["'fc1'", "node -1"]),
    ("input node out of range", lambda d: _inputs(d, "fc1", [[99, 0, 0], [1, 0, 0], [2, 0, 0]]),
     ["'fc1'", "node 99"]),
    ("negative output index", lambda d: _inputs(d, "fc1", [[0, -1, 0], [1, 0, 0], [2, 0, 0]]),
     ["'fc1'", "output index -1"]),
    ("output index out of range", lambda d: _inputs(d, "fc1", [[0, 5, 0], [1, 0, 0], [2, 0, 0]]),
     ["'fc1'", "output index 5"]),
    ("input index text", lambda d: _inputs(d, "fc1", [["0", 0, 0], [1, 0, 0], [2, 0, 0]]),
     ["'fc1'"]),
    ("negative head", lambda d: {**d, "heads": [[-1, 0, 0]]}, ["heads[0]", "node -1"]),
    ("head out of range", lambda d: {**d, "heads": [[0, 3, 0]]}, ["heads[0]", "'data'"]),
    ("arg_nodes out of range", lambda d: {**d, "arg_nodes": [0, 70]}, ["arg_nodes", "70"]),
    ("attrs not an object", lambda d: _node(d, "fc1").update(attrs=[1]) or d,
     ["'fc1'", "'attrs'"]),
    ("op not a string", lambda d: _node(d, "fc1").update(op=7) or d, ["node 3", "'op'"]),
    ("version text", lambda d: {**d, "attrs": {"mxnet_version": ["int", "x"]}},
     ["mxnet_version"]),
    ("long name", lambda d: _node(d, "fc1").update(name="n" * 100000) or d, ["100000"]),
]


@pytest.mark.parametrize("mutate,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_fields_name_file_node_and_field(tmp_path, mutate, needles):
    path = tmp_path / "net-symbol.json"
    path.write_text(json.dumps(mutate(_doc())))
    with pytest.raises(SerializationError) as info:
        sg.sym.load(str(path))
    text = str(info.value)
    assert str(path) in text and len(text) < 600
    for needle in needles:
        assert needle in text
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("raw,needle", [
    (b'{"nodes": [\x80]}', "not UTF-8 text: byte 0x80 at offset 11"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'{"nodes": [], "x": ' + b"9" * 5000 + b"}", "malformed symbol JSON"),
    (b'{"nodes": []}', "has no nodes"),
    (b"", "malformed symbol JSON"),
])
def test_unreadable_text(tmp_path, raw, needle):
    path = tmp_path / "x-symbol.json"
    path.write_bytes(raw)
    with pytest.raises(SerializationError, match="x-symbol.json") as info:
        sg.sym.load(str(path))
    assert needle in str(info.value)


def test_zero_dim_in_shape_still_means_unknown(tmp_path):
    """MXNet's legacy shape mode writes 0 for an unknown dimension; such files load."""
    path = tmp_path / "net-symbol.json"
    path.write_text(json.dumps(_set(_doc(), "data", "__shape__", "(0, 16)")))
    net = sg.sym.load(str(path))
    arg_shapes, _, _ = net.infer_shape(data=(4, 16))
    assert arg_shapes[1] == (8, 16)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such symbol file"):
        sg.sym.load(str(tmp_path / "none-symbol.json"))
    with pytest.raises(SerializationError, match="cannot read symbol file"):
        sg.sym.load(str(tmp_path))  # a folder
