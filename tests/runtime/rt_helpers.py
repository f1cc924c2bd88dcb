"""Shared pieces of the runtime tests."""

import symgraph as sg


def letter_mlp(hidden=64, classes=26, label=None):
    """The letter-recognition MLP (examples/train_letter.py): FullyConnected ``fc1`` ->
    ReLU -> FullyConnected ``fc2`` -> SoftmaxOutput ``softmax``; ``label`` names the
    label variable (default: MXNet's ``softmax_label``)."""
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), name="fc1", num_hidden=hidden)
    net = sg.sym.Activation(net, name="relu1", act_type="relu")
    net = sg.sym.FullyConnected(net, name="fc2", num_hidden=classes)
    if label is None:
        return sg.sym.SoftmaxOutput(net, name="softmax")
    return sg.sym.SoftmaxOutput(net, sg.sym.Variable(label), name="softmax")
