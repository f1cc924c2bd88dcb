# ruff: noqa  (the tutorial code below is kept as its authors wrote it)
"""Seed 000 (Gluon crash course, step 4) as written, with ``mxnet`` replaced by ``symgraph``.

LeNet on Fashion-MNIST, 10 epochs, non-hybridized ``nn.Sequential`` inside
``autograd.record()``, MXNet 2 spelling (``np``, ``npx.set_np()``). Only the plotting cells
(matplotlib/IPython) are left out. Must reach >= 0.87 test accuracy.
"""

import pytest

pytestmark = pytest.mark.slow


def test_seed_000_fashion_mnist_lenet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from symgraph import np, npx, gluon, init, autograd
    from symgraph.gluon import nn
    import time
    npx.set_np()

    mnist_train = gluon.data.vision.datasets.FashionMNIST(train=True)
    X, y = mnist_train[0]
    ('X shape: ', X.shape, 'X dtype', X.dtype, 'y:', y)
    assert X.shape == (28, 28, 1) and X.dtype == np.uint8 and int(y) == 9

    text_labels = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                   'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
    X, y = mnist_train[0:10]
    for x, yi in zip(X, y):
        x.reshape((28, 28)).asnumpy()
        text_labels[int(yi)]

    transformer = gluon.data.vision.transforms.Compose([
        gluon.data.vision.transforms.ToTensor(),
        gluon.data.vision.transforms.Normalize(0.13, 0.31)])
    mnist_train = mnist_train.transform_first(transformer)

    batch_size = 256
    train_data = gluon.data.DataLoader(
        mnist_train, batch_size=batch_size, shuffle=True, num_workers=4)

    for data, label in train_data:
        print(data.shape, label.shape)
        break

    mnist_valid = gluon.data.vision.FashionMNIST(train=False)
    valid_data = gluon.data.DataLoader(
        mnist_valid.transform_first(transformer),
        batch_size=batch_size, num_workers=4)

    net = nn.Sequential()
    net.add(nn.Conv2D(channels=6, kernel_size=5, activation='relu'),
            nn.MaxPool2D(pool_size=2, strides=2),
            nn.Conv2D(channels=16, kernel_size=3, activation='relu'),
            nn.MaxPool2D(pool_size=2, strides=2),
            nn.Dense(120, activation="relu"),
            nn.Dense(84, activation="relu"),
            nn.Dense(10))
    net.initialize(init=init.Xavier())

    softmax_cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()

    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})

    def acc(output, label):
        # output: (batch, num_output) float32 ndarray
        # label: (batch, ) int32 ndarray
        return (output.argmax(axis=1) == label.astype('float32')).mean()

    for epoch in range(10):
        train_loss, train_acc, valid_acc = 0., 0., 0.
        tic = time.time()
        for data, label in train_data:
            # forward + backward
            with autograd.record():
                output = net(data)
                loss = softmax_cross_entropy(output, label)
            loss.backward()
            # update parameters
            trainer.step(batch_size)
            # calculate training metrics
            train_loss += loss.mean()
            train_acc += acc(output, label)
        # calculate validation accuracy
        for data, label in valid_data:
            valid_acc += acc(net(data), label)
        print("Epoch %d: loss %.3f, train acc %.3f, test acc %.3f, in %.1f sec" % (
                epoch, train_loss/len(train_data), train_acc/len(train_data),
                valid_acc/len(valid_data), time.time()-tic))

    net.save_parameters('net.params')

    # the tutorial's claim, checked: the valid loader's batches are equal-weighted as in
    # the tutorial's own average, so compute the exact accuracy over all 10,000 images too
    assert float(valid_acc / len(valid_data)) >= 0.87
    correct = total = 0
    for data, label in valid_data:
        correct += int((net(data).argmax(axis=1) == label.astype('float32')).sum())
        total += data.shape[0]
    assert total == 10000 and correct / total >= 0.87
    reloaded = nn.Sequential()
    reloaded.add(nn.Conv2D(channels=6, kernel_size=5, activation='relu'),
                 nn.MaxPool2D(pool_size=2, strides=2),
                 nn.Conv2D(channels=16, kernel_size=3, activation='relu'),
                 nn.MaxPool2D(pool_size=2, strides=2),
                 nn.Dense(120, activation="relu"),
                 nn.Dense(84, activation="relu"),
                 nn.Dense(10))
    reloaded.load_parameters('net.params')
    data, label = next(iter(valid_data))
    assert (reloaded(data).asnumpy() == net(data).asnumpy()).all()
