# ruff: noqa  (the tutorial code below is kept as its authors wrote it)
"""Seed 003 (MXNet "Handwritten Digit Recognition"), ``mxnet`` -> ``symgraph``, with the two
repairs ``../shared/seeds/README.md`` describes:

1. ``for x, y in zip(data, label)`` walked single rows; the batch is split over the devices
   with ``gluon.utils.split_and_load`` (as the MXNet 1.x version of the tutorial did), and
   the metric gets the matching label slices.
2. The validation ``transform`` kept images HWC (and used ``np`` before importing it); the
   validation set uses ``transform_first(transforms.ToTensor())`` like training.

The MLP trains on two devices ``[cpu(0), cpu(1)]`` (gradients summed by the Trainer), the
LeNet on one. Full 10 epochs each: MLP > 0.947 (MXNet 1.9.1 measured 0.952 here; the
tutorial asserts > 0.94), LeNet > 0.98 test accuracy.
"""

import pytest

pytestmark = pytest.mark.slow


def _data():
    import symgraph as mx
    from symgraph import gluon
    from symgraph.gluon.data.vision import transforms

    mx.np.random.seed(42)
    mnist = mx.test_utils.get_mnist()
    assert mnist['train_data'].shape == (60000, 1, 28, 28)

    batch_size = 100
    num_workers = 8
    train_data = gluon.data.DataLoader(
        gluon.data.vision.MNIST(train=True).transform_first(transforms.ToTensor()),
        batch_size=batch_size, shuffle=True, num_workers=num_workers)

    val_data = gluon.data.DataLoader(
        gluon.data.vision.MNIST(train=False).transform_first(transforms.ToTensor()),
        batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train_data, val_data


def _train(net, trainer, device, train_data, epoch):
    import symgraph as mx
    from symgraph import gluon
    from symgraph import autograd as ag

    metric = mx.gluon.metric.Accuracy()
    softmax_cross_entropy_loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for i in range(epoch):
        # Loop over the train data iterator.
        for batch_num, (data, label) in enumerate(train_data):
            xs = gluon.utils.split_and_load(data, device)
            ys = gluon.utils.split_and_load(label, device)
            outputs = []
            # Inside training scope
            with ag.record():
                for x, y in zip(xs, ys):
                    z = net(x)
                    # Computes softmax cross entropy loss.
                    loss = softmax_cross_entropy_loss(z, y)
                    # Backpropagate the error for one iteration.
                    loss.backward()
                    outputs.append(z)
            # Updates internal evaluation
            metric.update(ys, outputs)
            # Make one step of parameter update. Trainer needs to know the
            # batch size of data to normalize the gradient by 1/batch_size.
            trainer.step(data.shape[0])
        # Gets the evaluation result.
        name, acc = metric.get()
        # Reset evaluation result to initial state.
        metric.reset()
        print('training acc at epoch %d: %s=%f'%(i, name, acc))


def _validate(net, device, val_data):
    import symgraph as mx
    from symgraph import gluon

    metric = mx.gluon.metric.Accuracy()
    for batch_num, (data, label) in enumerate(val_data):
        outputs = []
        for x in gluon.utils.split_and_load(data, device):
            outputs.append(net(x))
        metric.update(gluon.utils.split_and_load(label, device), outputs)
    print('validation acc: %s=%f'%metric.get())
    assert metric.num_inst == 10000
    return metric.get()[1]


def test_seed_003_mlp_two_devices():
    import symgraph as mx
    from symgraph import gluon
    from symgraph.gluon import nn

    train_data, val_data = _data()
    net = nn.Sequential()
    net.add(nn.Dense(128, activation='relu'))
    net.add(nn.Dense(64, activation='relu'))
    net.add(nn.Dense(10))

    gpus = mx.test_utils.list_gpus()
    device =  mx.gpu() if gpus else [mx.cpu(0), mx.cpu(1)]
    net.initialize(mx.init.Xavier(magnitude=2.24), device=device)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.02})

    epoch = 10
    _train(net, trainer, device, train_data, epoch)
    acc = _validate(net, device, val_data)
    assert acc > 0.94  # the tutorial's own assertion
    # The tutorial says "around 0.96"; MXNet 1.9.1 itself reaches 0.952 with this network,
    # these hyper-parameters and these files (../shared/datasets/README.md), so that is the
    # bar: within half a point of MXNet's measured result.
    assert acc > 0.947
    w0, w1 = (net[0].weight.data(c).asnumpy() for c in device)
    assert (w0 == w1).all()  # the devices' copies stay in sync


def test_seed_003_lenet():
    import symgraph as mx
    from symgraph import gluon
    from symgraph.gluon import nn
    from symgraph import np

    train_data, val_data = _data()

    class Net(gluon.Block):
        def __init__(self, **kwargs):
            super(Net, self).__init__(**kwargs)
            self.conv1 = nn.Conv2D(20, kernel_size=(5,5))
            self.pool1 = nn.MaxPool2D(pool_size=(2,2), strides = (2,2))
            self.conv2 = nn.Conv2D(50, kernel_size=(5,5))
            self.pool2 = nn.MaxPool2D(pool_size=(2,2), strides = (2,2))
            self.fc1 = nn.Dense(500)
            self.fc2 = nn.Dense(10)

        def forward(self, x):
            x = self.pool1(np.tanh(self.conv1(x)))
            x = self.pool2(np.tanh(self.conv2(x)))
            # 0 means copy over size from corresponding dimension.
            # -1 means infer size from the rest of dimensions.
            x = x.reshape((-2, -1))
            x = np.tanh(self.fc1(x))
            x = np.tanh(self.fc2(x))
            return x

    net = Net()
    device = [mx.gpu() if mx.test_utils.list_gpus() else mx.cpu()]
    net.initialize(mx.init.Xavier(magnitude=2.24), device=device)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.03})

    epoch = 10
    _train(net, trainer, device, train_data, epoch)
    acc = _validate(net, device, val_data)
    assert acc > 0.98
