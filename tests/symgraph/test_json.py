"""Symbol JSON: MXNet 1.9 layout, round trips, legacy files, golden text dumps."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from sg_helpers import GOLDEN, MLP_ARGS, S, letter_mlp, random_graphs

import symgraph as sg


def round_trip(symbol):
    text = symbol.tojson()
    assert S.load_json(text).tojson() == text
    return text


def test_mlp_matches_hand_written_mxnet19_file(mlp):
    golden = (GOLDEN / "mxnet19_mlp-symbol.json").read_text()
    assert mlp.tojson() == golden
    loaded = S.load(str(GOLDEN / "mxnet19_mlp-symbol.json"))
    assert loaded.list_arguments() == MLP_ARGS
    assert loaded.infer_shape(data=(32, 16)) == mlp.infer_shape(data=(32, 16))


def test_document_fields(mlp):
    doc = json.loads(round_trip(mlp))
    names = [n["name"] for n in doc["nodes"]]
    assert names == ["data", "fc1_weight", "fc1_bias", "fc1", "relu1", "fc2_weight",
                     "fc2_bias", "fc2", "softmax_label", "softmax"]
    assert doc["arg_nodes"] == [0, 1, 2, 5, 6, 8]
    assert doc["node_row_ptr"] == list(range(11))
    assert doc["heads"] == [[9, 0, 0]]
    assert doc["attrs"] == {"mxnet_version": ["int", 10901]}
    assert "attrs" not in doc["nodes"][0] and "attrs" not in doc["nodes"][9]
    assert list(doc["nodes"][3]) == ["op", "name", "attrs", "inputs"]
    assert all(isinstance(v, str) for n in doc["nodes"] for v in n.get("attrs", {}).values())


def test_string_valued_attrs_and_group_heads():
    x = S.Variable("x", shape=(2, 3), lr_mult=0.5, init='["zero", {}]')
    fc = S.FullyConnected(x, num_hidden=3, no_bias=True, flatten=False, name="fc")
    group = S.Group([fc, S.clip(x, a_min=-1, a_max=1, name="c")])
    doc = json.loads(round_trip(group))
    assert doc["nodes"][0]["attrs"] == {"__init__": '["zero", {}]', "__lr_mult__": "0.5",
                                        "__shape__": "(2, 3)"}
    assert doc["nodes"][2]["attrs"] == {"flatten": "False", "no_bias": "True",
                                        "num_hidden": "3"}
    assert doc["heads"] == [[2, 0, 0], [3, 0, 0]]
    assert S.load_json(group.tojson()).list_outputs() == ["fc_output", "c_output"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs())
def test_random_graphs_round_trip(graph):
    round_trip(graph)
    assert S.load_json(graph.tojson()).list_arguments() == graph.list_arguments()


def test_gradient_and_pickle_round_trip(mlp):
    import copy
    import pickle

    round_trip(S.grad(mlp))
    assert pickle.loads(pickle.dumps(mlp)).tojson() == mlp.tojson()
    assert copy.deepcopy(mlp).tojson() == mlp.tojson()


def test_save_and_load_file(tmp_path, mlp):
    path = tmp_path / "net-symbol.json"
    mlp.save(str(path))
    assert S.load(str(path)).tojson() == mlp.tojson()
    with pytest.raises(sg.SerializationError, match="missing.json"):
        S.load(str(tmp_path / "missing.json"))


LEGACY_ATTR = {  # MXNet 0.9-0.11: node attrs under "attr", plain hidden keys
    "nodes": [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "null", "name": "fc1_weight", "attr": {"lr_mult": "0.1"}, "inputs": []},
        {"op": "null", "name": "fc1_bias", "attr": {"wd_mult": "0"}, "inputs": []},
        {"op": "FullyConnected", "name": "fc1", "attr": {"num_hidden": "8"},
         "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]},
        {"op": "null", "name": "sm_label", "inputs": []},
        {"op": "SoftmaxOutput", "name": "sm", "inputs": [[3, 0, 0], [4, 0, 0]]},
    ],
    "arg_nodes": [0, 1, 2, 4], "heads": [[5, 0, 0]],
    "attrs": {"mxnet_version": ["int", 1100]},
}

LEGACY_PARAM = {  # MXNet <= 0.8: "param", two-item entries, no version, backward_source_id
    "nodes": [
        {"op": "null", "param": {}, "name": "data", "inputs": [], "backward_source_id": -1},
        {"op": "null", "param": {}, "name": "fc1_weight", "inputs": [],
         "backward_source_id": -1},
        {"op": "null", "param": {}, "name": "fc1_bias", "inputs": [],
         "backward_source_id": -1},
        {"op": "FullyConnected", "param": {"no_bias": "False", "num_hidden": "8"},
         "name": "fc1", "inputs": [[0, 0], [1, 0], [2, 0]], "backward_source_id": -1},
        {"op": "Activation", "param": {"act_type": "tanh"}, "name": "act1",
         "inputs": [[3, 0]], "backward_source_id": -1},
        {"op": "null", "param": {}, "name": "sm_label", "inputs": [],
         "backward_source_id": -1},
        {"op": "Softmax", "param": {"grad_scale": "1"}, "name": "sm",
         "inputs": [[4, 0], [5, 0]], "backward_source_id": -1},
    ],
    "arg_nodes": [0, 1, 2, 5], "heads": [[6, 0]],
}


def test_legacy_attr_file_loads_with_hidden_keys():
    sym = S.load_json(json.dumps(LEGACY_ATTR))
    assert sym.list_arguments() == ["data", "fc1_weight", "fc1_bias", "sm_label"]
    assert sym.get_internals()["fc1_weight"].list_attr() == {"__lr_mult__": "0.1"}
    assert sym.attr_dict()["fc1_bias"] == {"__wd_mult__": "0", "wd_mult": "0"}
    assert sym.infer_shape(data=(4, 5))[1] == [(4, 8)]
    assert json.loads(sym.tojson())["attrs"]["mxnet_version"] == ["int", 10901]


def test_legacy_param_file_loads(caplog):
    with caplog.at_level("INFO"):
        sym = S.load_json(json.dumps(LEGACY_PARAM))
    assert "Attempting to upgrade" in caplog.text
    assert sym.list_arguments() == ["data", "fc1_weight", "fc1_bias", "sm_label"]
    doc = json.loads(sym.tojson())
    assert doc["nodes"][6]["op"] == "SoftmaxOutput"
    assert doc["nodes"][6]["attrs"] == {"grad_scale": "1"}
    assert doc["nodes"][3]["inputs"] == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    assert sym.infer_shape(data=(4, 5))[0] == [(4, 5), (8, 5), (8,), (4,)]


def test_legacy_prefixed_lr_mult_moves_to_the_variable():
    doc = json.loads(json.dumps(LEGACY_ATTR))
    doc["nodes"][3]["attr"]["weight_lr_mult"] = "0.25"
    sym = S.load_json(json.dumps(doc))
    assert sym.get_internals()["fc1_weight"].attr("lr_mult") == "0.25"
    assert "weight_lr_mult" not in sym.get_internals()["fc1_output"].list_attr()


def test_golden_text_dump_of_mlp_and_gradient():
    net = letter_mlp()
    assert str(net) == (GOLDEN / "mlp_dump.txt").read_text()
    assert str(S.grad(net)) == (GOLDEN / "mlp_grad_dump.txt").read_text()
