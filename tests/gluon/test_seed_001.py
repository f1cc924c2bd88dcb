# ruff: noqa  (the tutorial code below is kept as its authors wrote it)
"""Seed 001 (GluonCV "Neural Network Training") as written, ``mxnet`` -> ``symgraph``.

LeNet5 on Fashion-MNIST with MXNet 1.x spelling (``nd``, ``name_scope``, ``metric``), 10
epochs, ``save_parameters``/``load_parameters``, single-image prediction and validation.
Only the matplotlib cells are left out. Must reach >= 0.87 validation accuracy.
"""

import pytest

pytestmark = pytest.mark.slow


def test_seed_001_gluoncv_lenet5(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from symgraph import nd, gluon, init, autograd, metric
    from symgraph.gluon import nn
    from symgraph.gluon.data.vision import datasets, transforms

    from time import time

    mnist_train = datasets.FashionMNIST(train=True)
    x, y = mnist_train[0]

    print('X shape: %s dtype : %s' % (x.shape, x.dtype))
    print('Number of images: %d'%len(mnist_train))
    assert x.shape == (28, 28, 1) and len(mnist_train) == 60000

    for idx in range(6):
        mnist_train[idx][0][:,:,0].asnumpy()
        'Class {}'.format(mnist_train[idx][1])

    transformer = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.13, 0.31)])

    mnist_train = mnist_train.transform_first(transformer)

    batch_size = 256
    train_data = gluon.data.DataLoader(mnist_train, batch_size=batch_size, shuffle=True, num_workers=4)

    for data, label in train_data:
        print(data.shape, label.shape)
        break
    assert data.shape == (256, 1, 28, 28) and label.shape == (256,)

    LeNet5 = nn.Sequential()
    with LeNet5.name_scope():
        LeNet5.add(
                nn.Conv2D(channels=6, kernel_size=5, activation='relu'),
                nn.MaxPool2D(pool_size=2, strides=2),
                nn.Conv2D(channels=16, kernel_size=3, activation='relu'),
                nn.MaxPool2D(pool_size=2, strides=2),
                nn.Flatten(),
                nn.Dense(120, activation='relu'),
                nn.Dense(84, activation='relu'),
                nn.Dense(10)
        )
    LeNet5.initialize(init=init.Xavier())
    names = list(LeNet5.collect_params().keys())
    assert names[0].endswith('_conv0_weight') and names[-1].endswith('_dense2_bias')

    softmax_cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()

    train_acc = metric.Accuracy()

    trainer = gluon.Trainer(LeNet5.collect_params(), 'sgd',{'learning_rate':0.1})

    for epoch in range(10):
        train_loss = 0
        tic = time()
        for data, label in train_data:
            with autograd.record():
                output = LeNet5(data)
                loss = softmax_cross_entropy(output, label)
            loss.backward()

            trainer.step(batch_size)

            train_loss += loss.mean().asscalar()
            train_acc.update(label, output)

        print("Epoch [%d] Loss:%.3f Acc:%.3f"%(epoch, train_loss/len(train_data), train_acc.get()[1]))

    LeNet5.save_parameters("trained_LeNet5.params")

    LeNet5.load_parameters('trained_LeNet5.params')

    mnist_val = datasets.FashionMNIST(train=False)

    transform_fn = transforms.Compose([
                    transforms.ToTensor(),
                    transforms.Normalize(0.13, 0.31)])

    preds = []
    for idx in range(6):
        image, label = mnist_val[idx]
        image = transform_fn(image).expand_dims(axis=0)
        pred = LeNet5(image).argmax(axis=1)
        preds.append(pred.astype('int32').asscalar())
    print(preds)
    assert all(isinstance(p, int) for p in preds)
    assert sum(p == int(mnist_val[i][1]) for i, p in enumerate(preds)) >= 4

    for idx in range(6):
        mnist_val[idx][0][:,:,0].asnumpy()
        'True [{}] \n Predicted [{}]'.format(mnist_val[idx][1], preds[idx])

    batch_size = 256
    val_data =gluon.data.DataLoader(mnist_val.transform_first(transform_fn), batch_size=batch_size, num_workers=4)

    val_acc = metric.Accuracy()

    for data, label in val_data:
        output = LeNet5(data)
        val_acc.update(label, output)
    print("Validation Accuracy: %0.3f"%(val_acc.get()[1]))

    assert val_acc.num_inst == 10000
    assert val_acc.get()[1] >= 0.87
