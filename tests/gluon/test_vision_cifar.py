"""gluon.data.vision.CIFAR10 / CIFAR100 over files the test writes in the real binary
layouts (no CIFAR data is on this machine): label byte(s), then the R, G, B 32x32 planes."""

import urllib.error
import urllib.request

import numpy as np
import pytest

from symgraph import gluon
from symgraph.errors import SerializationError
from symgraph.gluon.data import DataLoader
from symgraph.gluon.data.vision import CIFAR10, CIFAR100, transforms


@pytest.fixture
def offline(monkeypatch):
    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def write_records(path, labels, seed):
    """``labels``: one row of label bytes per record (1 for CIFAR-10, 2 for CIFAR-100)."""
    labels = np.array(labels, np.uint8).reshape(len(labels), -1)
    planes = np.random.default_rng(seed).integers(0, 256, (len(labels), 3, 32, 32),
                                                  dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.concatenate([labels, planes.reshape(len(labels), -1)], 1).tobytes())
    return planes


def write_cifar10(root):
    folder = root / "cifar-10" / "cifar-10-batches-bin"
    train = [write_records(folder / f"data_batch_{i}.bin", [i, 9 - i], seed=i)
             for i in range(1, 6)]
    test = write_records(folder / "test_batch.bin", [3, 0, 7], seed=9)
    return np.concatenate(train), test


def test_cifar10_reads_train_and_test_in_hwc_with_int32_labels(tmp_path, offline):
    train_planes, test_planes = write_cifar10(tmp_path)
    train = CIFAR10(root=str(tmp_path), train=True)
    assert len(train) == 10
    assert train._label.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]
    image, label = train[3]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert label == 7 and train._label.dtype == np.int32
    # HWC: pixel (row 5, col 11) of record 3 holds the three planes' values there
    np.testing.assert_array_equal(image.asnumpy()[5, 11], train_planes[3][:, 5, 11])
    test = CIFAR10(root=tmp_path, train=False)
    assert test._label.tolist() == [3, 0, 7]
    np.testing.assert_array_equal(test._data.transpose(0, 3, 1, 2), test_planes)


def test_cifar10_finds_the_files_through_symgraph_data(tmp_path, monkeypatch, offline):
    _, test_planes = write_cifar10(tmp_path)
    monkeypatch.setenv("SYMGRAPH_DATA", str(tmp_path))
    test = gluon.data.vision.CIFAR10(train=False)
    np.testing.assert_array_equal(test._data.transpose(0, 3, 1, 2), test_planes)


def test_cifar10_transform_and_dataloader(tmp_path, offline):
    _, test_planes = write_cifar10(tmp_path)
    seen = []

    def transform(data, label):
        seen.append(int(label))
        return data.astype("float32") / 255, label

    test = CIFAR10(root=tmp_path, train=False, transform=transform)
    image, label = test[2]
    assert seen == [7] and label == 7
    np.testing.assert_allclose(image.asnumpy().transpose(2, 0, 1), test_planes[2] / 255,
                               rtol=1e-6)
    plain = CIFAR10(root=tmp_path, train=False).transform_first(transforms.ToTensor())
    batches = list(DataLoader(plain, batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 3, 32, 32), (1, 3, 32, 32)]
    np.testing.assert_allclose(batches[1][0].asnumpy()[0], test_planes[2] / 255, rtol=1e-6)
    assert batches[0][1].asnumpy().tolist() == [3, 0]


def test_cifar10_short_file_and_bad_label_are_clear_errors(tmp_path, offline):
    folder = tmp_path / "cifar-10"
    write_records(folder / "test_batch.bin", [1, 2], seed=0)
    raw = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(raw[:-10])  # cut inside the second record
    with pytest.raises(SerializationError, match=r"6136 bytes is not a whole number of "
                                                 r"3073-byte CIFAR-10 records"):
        CIFAR10(root=tmp_path, train=False)
    write_records(folder / "test_batch.bin", [4, 10], seed=0)
    with pytest.raises(SerializationError, match=r"record 1 \(byte offset 3073\) has label "
                                                 r"10, expected 0..9"):
        CIFAR10(root=tmp_path, train=False)


def write_cifar100(root):
    folder = root / "cifar-100" / "cifar-100-binary"
    train = write_records(folder / "train.bin", [[3, 31], [19, 99], [0, 5]], seed=1)
    test = write_records(folder / "test.bin", [[7, 70]], seed=2)
    return train, test


def test_cifar100_coarse_by_default_and_fine_labels(tmp_path, offline):
    train_planes, test_planes = write_cifar100(tmp_path)
    coarse = CIFAR100(root=tmp_path)
    assert coarse._label.tolist() == [3, 19, 0] and coarse._label.dtype == np.int32
    fine = CIFAR100(root=tmp_path, fine_label=True)
    assert fine._label.tolist() == [31, 99, 5]
    image, label = fine[1]
    assert label == 99 and image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image.asnumpy().transpose(2, 0, 1), train_planes[1])
    test = CIFAR100(root=tmp_path, fine_label=True, train=False)
    assert test._label.tolist() == [70]
    np.testing.assert_array_equal(test._data.transpose(0, 3, 1, 2), test_planes)


def test_cifar100_short_file_and_bad_labels_are_clear_errors(tmp_path, offline):
    folder = tmp_path / "cifar-100"
    write_records(folder / "test.bin", [[1, 2]], seed=0)
    raw = (folder / "test.bin").read_bytes()
    (folder / "test.bin").write_bytes(raw + b"\x00")
    with pytest.raises(SerializationError, match="3075 bytes is not a whole number of "
                                                 "3074-byte CIFAR-100 records"):
        CIFAR100(root=tmp_path, train=False)
    write_records(folder / "test.bin", [[1, 2], [20, 3]], seed=0)
    with pytest.raises(SerializationError, match=r"record 1 \(byte offset 3074\) has label "
                                                 r"20, expected 0..19"):
        CIFAR100(root=tmp_path, train=False)
    write_records(folder / "test.bin", [[1, 100]], seed=0)
    with pytest.raises(SerializationError, match=r"record 0 \(byte offset 1\) has label "
                                                 r"100, expected 0..99"):
        CIFAR100(root=tmp_path, train=False, fine_label=True)


def test_cifar_missing_files_say_where_to_put_them(tmp_path, offline):
    with pytest.raises(FileNotFoundError, match="cifar-100-binary.tar.gz"):
        CIFAR100(root=tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-10-binary.tar.gz"):
        CIFAR10(root=tmp_path)
