"""gluon.data: datasets, lazy transforms, DataLoader batching rules, vision sets."""

import numpy as np
import pytest

import symgraph as sg
from symgraph import gluon, nd
from symgraph.gluon.data import ArrayDataset, DataLoader, SimpleDataset
from symgraph.gluon.data.vision import transforms


def _dataset(n=10):
    images = np.arange(n * 4 * 4, dtype=np.uint8).reshape(n, 4, 4, 1)
    return ArrayDataset(images, np.arange(n, dtype=np.int32))


@pytest.mark.parametrize("last_batch,sizes", [("keep", [4, 4, 2]), ("discard", [4, 4])])
def test_last_batch_keep_and_discard(last_batch, sizes):
    loader = DataLoader(_dataset(), batch_size=4, last_batch=last_batch)
    assert [d.shape[0] for d, _ in loader] == sizes and len(loader) == len(sizes)
    labels = np.concatenate([label.asnumpy() for _, label in loader])
    assert labels.tolist() == list(range(sum(sizes)))


def test_rollover_carries_the_rest_into_the_next_epoch():
    loader = DataLoader(_dataset(), batch_size=4, last_batch="rollover")
    first = [label.asnumpy().tolist() for _, label in loader]
    second = [label.asnumpy().tolist() for _, label in loader]
    assert first == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert second[0] == [8, 9, 0, 1] and len(second) == 3


def test_shuffle_is_a_permutation_and_seeded_by_numpy():
    np.random.seed(3)
    loader = DataLoader(_dataset(), batch_size=3, shuffle=True)
    labels = np.concatenate([label.asnumpy() for _, label in loader])
    assert sorted(labels.tolist()) == list(range(10)) and labels.tolist() != list(range(10))


def test_batched_and_per_sample_transforms_agree():
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.13, 0.31)])
    dataset = _dataset().transform_first(transform)
    fast = next(iter(DataLoader(dataset, batch_size=5)))[0].asnumpy()
    slow = np.stack([dataset[i][0].asnumpy() for i in range(5)])
    assert fast.shape == (5, 1, 4, 4) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=1e-6)
    np.testing.assert_allclose(slow[1, 0], (np.arange(16, 32).reshape(4, 4) / 255 - 0.13) / 0.31,
                               rtol=1e-5)


def test_transform_gets_whole_samples_and_custom_batchify():
    dataset = SimpleDataset([(i, 2 * i) for i in range(6)]).transform(lambda a, b: (a + b,))
    assert dataset[2] == (6,)
    loader = DataLoader(dataset, batch_size=3, batchify_fn=lambda s: [x[0] for x in s])
    assert list(loader) == [[0, 3, 6], [9, 12, 15]]
    threaded = DataLoader(_dataset().transform_first(lambda x: x.astype("float32")),
                          batch_size=4, num_workers=2)
    assert [d.shape for d, _ in threaded][0] == (4, 4, 4, 1)


def test_split_and_load():
    devices = [sg.cpu(0), sg.cpu(1)]
    parts = gluon.utils.split_and_load(nd.array(np.arange(8).reshape(4, 2)), devices)
    assert [p.shape for p in parts] == [(2, 2), (2, 2)]
    assert parts[1].context.device_id == 1 and parts[1].asnumpy()[0].tolist() == [4, 5]
    with pytest.raises(ValueError, match="evenly"):
        gluon.utils.split_and_load(nd.ones((3, 2)), devices)


def test_vision_mnist_reads_the_shared_data():
    train = gluon.data.vision.MNIST(train=True)
    image, label = train[0]
    assert len(train) == 60000 and image.shape == (28, 28, 1) and image.dtype == np.uint8
    assert int(label) == 5
    images, labels = train[0:10]
    assert images.shape == (10, 28, 28, 1) and labels.shape == (10,)
    fashion = gluon.data.vision.FashionMNIST(train=False)
    assert len(fashion) == 10000
    assert np.bincount(fashion._label).tolist() == [1000] * 10


def test_resize_crop_and_flip_transforms():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    same = transforms.Resize((6, 4))(nd.array(image, dtype="uint8")).asnumpy()
    np.testing.assert_array_equal(same, image)  # identity size: unchanged
    half = transforms.Resize((3, 2))(nd.array(image, dtype="uint8")).asnumpy()
    assert half.shape == (2, 3, 3) and half.dtype == np.uint8
    # a 2x downscale with half-pixel centers averages each 2x2 block
    expect = image.reshape(2, 2, 3, 2, 3).astype(float).mean(axis=(1, 3))
    np.testing.assert_allclose(half, np.rint(expect), atol=1)
    assert transforms.CenterCrop(2)(nd.array(image)).shape == (2, 2, 3)
    assert transforms.RandomCrop(4, pad=2)(nd.array(image)).shape == (4, 4, 3)
    assert transforms.RandomResizedCrop(5)(nd.array(image, dtype="uint8")).shape == (5, 5, 3)
    flips = {tuple(transforms.RandomFlipLeftRight()(nd.array(image)).asnumpy()[0, 0])
             for _ in range(20)}
    assert flips == {tuple(image[0, 0]), tuple(image[0, -1])}


def test_metrics_take_ndarrays_and_lists_of_them():
    metric = gluon.metric.Accuracy()
    metric.update(nd.array([0, 2]), nd.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]]))
    metric.update([nd.array([1])], [nd.array([[0.9, 0.1, 0.0]])])
    assert metric.get() == ("accuracy", 2 / 3)


def test_workers_keep_sample_order_on_the_per_sample_path():
    dataset = _dataset(30).transform_first(lambda x: x.astype("float32") * 2)
    plain = [d.asnumpy() for d, _ in DataLoader(dataset, batch_size=12)]
    threaded = [d.asnumpy() for d, _ in DataLoader(dataset, batch_size=12, num_workers=4)]
    assert len(plain) == len(threaded) == 3
    for a, b in zip(plain, threaded):
        np.testing.assert_array_equal(a, b)


def test_resize_transforms_use_sg_image_and_honour_interpolation():
    """Resize and RandomResizedCrop resample through sg.image with the interpolation asked
    for (it used to be ignored: always bilinear)."""
    image = np.random.default_rng(5).integers(0, 256, (7, 9, 3)).astype(np.uint8)
    for interp in (0, 1, 2):
        got = transforms.Resize((4, 3), interpolation=interp)(nd.array(image, dtype="uint8"))
        np.testing.assert_array_equal(got.asnumpy(), sg.image.imresize(image, 4, 3, interp))
    nearest = transforms.Resize((4, 3), interpolation=0)(nd.array(image, dtype="uint8"))
    linear = transforms.Resize((4, 3), interpolation=1)(nd.array(image, dtype="uint8"))
    assert not np.array_equal(nearest.asnumpy(), linear.asnumpy())
    crop = transforms.RandomResizedCrop(5, scale=(1.0, 1.0), ratio=(9 / 7, 9 / 7),
                                        interpolation=0)
    np.testing.assert_array_equal(crop(nd.array(image, dtype="uint8")).asnumpy(),
                                  sg.image.imresize(image, 5, 5, 0))


def _batches(loader):
    return [tuple(part.asnumpy() for part in batch) for batch in loader]


def test_untransformed_arrays_take_the_indexing_path_with_per_sample_results(monkeypatch):
    from runtime.gluon.data import dataloader

    made = []
    real_pool = dataloader.ThreadPoolExecutor
    monkeypatch.setattr(dataloader, "ThreadPoolExecutor",
                        lambda n: made.append(n) or real_pool(n))
    dataset = _dataset(11)
    per_sample = _batches(DataLoader(dataset, batch_size=4,
                                     batchify_fn=lambda s: gluon.data.default_batchify_fn(s)))
    for workers in (0, 4):
        fast = _batches(DataLoader(dataset, batch_size=4, num_workers=workers))
        assert len(fast) == len(per_sample) == 3
        for got, want in zip(fast, per_sample):
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.shape == w.shape
                np.testing.assert_array_equal(g, w)
    known = dataset.transform_first(transforms.ToTensor())
    assert len(_batches(DataLoader(known, batch_size=4, num_workers=4))) == 3
    assert made == []  # neither array path ever starts worker threads


def test_a_subclass_that_overrides_getitem_is_fetched_per_sample():
    class Doubled(ArrayDataset):
        def __getitem__(self, idx):
            data, label = super().__getitem__(idx)
            return data * 2, label

    images = np.arange(6 * 2 * 2, dtype=np.float32).reshape(6, 2, 2, 1)
    dataset = Doubled(images, np.arange(6, dtype=np.int32))
    for loader in (DataLoader(dataset, batch_size=4),
                   DataLoader(dataset.transform_first(transforms.Cast("float64")), 4)):
        data, label = next(iter(loader))
        np.testing.assert_array_equal(data.asnumpy(), images[:4] * 2)
        assert label.asnumpy().tolist() == [0, 1, 2, 3]


def test_workers_give_the_same_batches_every_epoch_whichever_way_fetches():
    """The first batches of an epoch alternate between this thread and the pool (to pick
    the faster); the samples and their order never depend on it."""
    dataset = _dataset(50).transform_first(lambda x: x.astype("float32") + 1)
    np.random.seed(3)
    plain = [_batches(DataLoader(dataset, batch_size=6, shuffle=True)) for _ in range(2)]
    np.random.seed(3)
    loader = DataLoader(dataset, batch_size=6, shuffle=True, num_workers=4)
    threaded = [_batches(loader)]
    assert loader._pool_faster in (True, False)  # decided in epoch 1, kept for epoch 2
    threaded.append(_batches(loader))
    for epoch_plain, epoch_threaded in zip(plain, threaded):
        assert len(epoch_plain) == len(epoch_threaded) == 9
        for got, want in zip(epoch_threaded, epoch_plain):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
