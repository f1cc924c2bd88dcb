"""Every user mistake is a SymgraphError naming the node, op and key involved."""

import json

import pytest
from sg_helpers import S

import symgraph as sg
from symgraph.graph import Entry, Node, make_op_node, make_variable, topo_order
from symgraph.symbol import Symbol


def raises_named(exc_type, *parts):
    """Context manager: the error is ``exc_type`` (a SymgraphError) and names ``parts``."""
    assert issubclass(exc_type, sg.SymgraphError)
    return pytest.raises(exc_type, match=".*".join(map(_escape, parts)))


def _escape(text):
    import re

    return re.escape(text)


def test_unknown_attribute_names_op_node_and_key():
    with raises_named(sg.OpAttributeError, "FullyConnected", "fc1", "num_hiden"):
        S.FullyConnected(S.Variable("d"), num_hiden=3, name="fc1")
    with raises_named(sg.OpAttributeError, "Activation", "act", "'alpha'"):
        S.Activation(S.Variable("d"), act_type="relu", alpha=1, name="act")


def test_missing_required_attribute():
    with raises_named(sg.OpAttributeError, "FullyConnected", "fc1", "num_hidden", "missing"):
        S.FullyConnected(S.Variable("d"), name="fc1")


def test_bad_attribute_value():
    with raises_named(sg.OpAttributeError, "Activation", "a1", "act_type", "relu"):
        S.Activation(S.Variable("d"), act_type="rleu", name="a1")


def test_unknown_op_in_json():
    text = json.dumps({"nodes": [{"op": "null", "name": "x", "inputs": []},
                                 {"op": "FancyOp", "name": "f1", "inputs": [[0, 0, 0]]}],
                       "heads": [[1, 0, 0]]})
    with raises_named(sg.SerializationError, "f1", "FancyOp"):
        S.load_json(text)


def test_malformed_json_reports_position():
    with raises_named(sg.SerializationError, "malformed", "line 3", "column"):
        S.load_json('{\n  "nodes": [\n    {"op": }\n  ]\n}')


def test_json_forward_reference_is_rejected():
    text = json.dumps({"nodes": [{"op": "tanh", "name": "t", "inputs": [[1, 0, 0]]},
                                 {"op": "null", "name": "x", "inputs": []}]})
    with raises_named(sg.SerializationError, "t", "node 1"):
        S.load_json(text)


def test_cycle_built_by_hand_is_a_graph_error():
    x = make_variable("x")
    first = make_op_node("tanh", "first", [Entry(x, 0)], {})
    second = make_op_node("exp", "second", [Entry(first, 0)], {})
    object.__setattr__(first, "inputs", (Entry(second, 0),))
    with raises_named(sg.GraphError, "cycle", "second"):
        topo_order([Entry(second, 0)])
    with pytest.raises(sg.GraphError):
        Symbol([Entry(second, 0)]).list_arguments()
    with pytest.raises(sg.GraphError):
        Symbol([Entry(second, 0)]).tojson()


def test_duplicate_variable_name():
    with raises_named(sg.GraphError, "duplicate", "'x'"):
        S.Variable("x") * S.Variable("x")


def test_two_layers_with_one_name():
    data = S.Variable("data")
    first = S.FullyConnected(data, num_hidden=3, name="fc1")
    with raises_named(sg.GraphError, "duplicate", "fc1_weight"):
        S.FullyConnected(first, num_hidden=3, name="fc1")


def test_wrong_input_count_names_node():
    x = make_variable("x")
    with raises_named(sg.GraphError, "elemwise_add", "add9", "2 inputs"):
        make_op_node("elemwise_add", "add9", [Entry(x, 0)], {})


def test_multi_output_symbol_as_input():
    group = S.Group([S.Variable("a"), S.Variable("b")])
    with raises_named(sg.GraphError, "exactly one output"):
        S.tanh(group)


def test_node_is_immutable():
    node = Node("null", "v")
    with pytest.raises(Exception):  # noqa: B017  (dataclass FrozenInstanceError)
        node.name = "w"
    with pytest.raises(TypeError):
        node.attrs["k"] = "v"
