"""The five networks in MXNet's symbol API, written against a namespace argument ``s``
(``mx.sym`` or ``sg.sym``) so MXNet's script needs no symgraph and symgraph's ResNet is the
same graph. Names follow symgraph's own builders (runtime/cli/train.py, bench_devices.py),
which symgraph's script reuses for W1-W4; tests/bench/test_peers_driver.py checks that both
give the same parameters."""

from __future__ import annotations


def mlp(s, hidden, classes):
    net = s.Variable("data")
    for i, units in enumerate(hidden, 1):
        net = s.Activation(s.FullyConnected(net, num_hidden=units, name=f"fc{i}"),
                           act_type="relu", name=f"relu{i}")
    net = s.FullyConnected(net, num_hidden=classes, name=f"fc{len(hidden) + 1}")
    return s.SoftmaxOutput(net, name="softmax")


def lenet(s):
    """20c5-50c5-500-10, tanh, 2x2 max pools (tutorials/mnist_symbol.md)."""
    net = s.Variable("data")
    for i, filters in enumerate((20, 50), 1):
        net = s.Convolution(net, kernel=(5, 5), num_filter=filters, name=f"conv{i}")
        net = s.Activation(net, act_type="tanh", name=f"tanh{i}")
        net = s.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name=f"pool{i}")
    net = s.Activation(s.FullyConnected(s.Flatten(net), num_hidden=500, name="fc1"),
                       act_type="tanh")
    return s.SoftmaxOutput(s.FullyConnected(net, num_hidden=10, name="fc2"), name="softmax")


def lenet5(s):
    """6c5-16c3-120-84-10, ReLU, 2x2 max pools (seed 000's Fashion-MNIST net)."""
    x = s.Variable("data")
    for i, (filters, kernel) in enumerate(((6, 5), (16, 3)), 1):
        x = s.Activation(s.Convolution(x, kernel=(kernel, kernel), num_filter=filters,
                                       name=f"conv{i}"), act_type="relu")
        x = s.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2))
    x = s.Flatten(x)
    for i, units in enumerate((120, 84), 1):
        x = s.Activation(s.FullyConnected(x, num_hidden=units, name=f"fc{i}"), act_type="relu")
    return s.SoftmaxOutput(s.FullyConnected(x, num_hidden=10, name="fc3"), name="softmax")


def _conv_bn(s, x, channels, kernel, stride, name):
    pad = kernel // 2
    x = s.Convolution(x, kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad),
                      num_filter=channels, no_bias=True, name=f"{name}_conv")
    return s.BatchNorm(x, fix_gamma=False, eps=1e-5, momentum=0.9, name=f"{name}_bn")


def _basic_block(s, x, channels, stride, project, name):
    body = s.Activation(_conv_bn(s, x, channels, 3, stride, f"{name}a"), act_type="relu")
    body = _conv_bn(s, body, channels, 3, 1, f"{name}b")
    shortcut = _conv_bn(s, x, channels, 1, stride, f"{name}p") if project else x
    return s.Activation(body + shortcut, act_type="relu", name=f"{name}_relu")


#: ResNet-18 v1 as Gluon's ``resnet18_v1(thumbnail=True)`` builds it for 32x32 images:
#: a 3x3 stem conv, four stages of two basic blocks, global average pool, dense.
RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


def resnet18(s, classes=10):
    x = s.Convolution(s.Variable("data"), kernel=(3, 3), pad=(1, 1), num_filter=64,
                      no_bias=True, name="stem_conv")
    width = 64
    for stage, (channels, stride) in enumerate(RESNET18_STAGES, 1):
        for block in range(2):
            first = block == 0
            x = _basic_block(s, x, channels, stride if first else 1,
                             first and (stride != 1 or channels != width), f"s{stage}b{block}")
        width = channels
    x = s.Flatten(s.Pooling(x, pool_type="avg", global_pool=True, kernel=(1, 1)))
    return s.SoftmaxOutput(s.FullyConnected(x, num_hidden=classes, name="fc"), name="softmax")


BUILDERS = {"mlp-letter": lambda s: mlp(s, (64,), 26), "mlp-mnist": lambda s: mlp(s, (128, 64), 10),
            "lenet": lenet, "lenet5": lenet5, "resnet18": resnet18}
