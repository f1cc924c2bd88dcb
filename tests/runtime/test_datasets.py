"""Dataset loaders: real files, checksums, shipped letter data, offline failure messages."""

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from runtime import datasets
from symgraph.errors import SerializationError

LETTER_SHA256 = "2b89f3602cf768d3c8355267d2f13f2417809e101fc2b5ceee10db19a60de6e2"
LETTER_COUNTS = [789, 766, 736, 805, 768, 775, 773, 734, 755, 747, 739, 761, 792, 783, 753, 803,
                 783, 758, 748, 796, 813, 764, 752, 787, 786, 734]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def data_root():
    """SYMGRAPH_DATA, else the shared folder on the build machines (skip when neither)."""
    root = os.environ.get("SYMGRAPH_DATA") or "/work/shared/datasets"
    if not (Path(root) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST files not available (set SYMGRAPH_DATA)")
    return Path(root)


@pytest.fixture
def no_network(monkeypatch):
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return calls


def test_mnist_label_counts_match_published_distribution():
    root = data_root()
    images, labels = datasets.load_mnist(root, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == TRAIN_COUNTS
    _, test_labels = datasets.load_mnist(root, "test")
    assert np.bincount(test_labels).tolist() == TEST_COUNTS


def test_mnist_from_env_var(monkeypatch):
    root = data_root()
    monkeypatch.setenv(datasets.ENV_VAR, str(root))
    images, labels = datasets.load_mnist(kind="test")
    assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [7, 2, 1]


def test_get_mnist_matches_mxnet_test_utils():
    out = datasets.get_mnist(data_root())
    assert out["train_data"].shape == (60000, 1, 28, 28)
    assert out["train_data"].dtype == np.float32 and out["train_data"].max() == 1.0
    assert out["test_label"].dtype == np.int8 and out["test_data"].shape == (10000, 1, 28, 28)


def test_raw_idx_files_in_root_verified_by_md5(tmp_path):
    src = data_root() / "mnist"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((src / (name + ".gz")).read_bytes()))
    images, labels = datasets.load_mnist(tmp_path, "test", download=False)
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == TEST_COUNTS


def test_corrupt_local_file_is_rejected(tmp_path):
    src = data_root() / "mnist"
    (tmp_path / "mnist").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "mnist" / name).write_bytes((src / name).read_bytes())
    bad = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:-1] + b"\x03"))
    with pytest.raises(SerializationError, match="sha256"):
        datasets.load_mnist(tmp_path, "test", download=False)
    _, labels = datasets.load_mnist(tmp_path, "test", download=False, verify=False)
    assert labels[-1] == 3


def test_fashion_loader_reads_mnist_format_files(tmp_path):
    src = data_root() / "mnist"
    (tmp_path / "fashion-mnist").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        os.symlink(src / name, tmp_path / "fashion-mnist" / name)
    with pytest.raises(SerializationError, match="md5"):
        datasets.load_fashion_mnist(tmp_path, "test", download=False)
    images, labels = datasets.load_fashion_mnist(tmp_path, "test", download=False, verify=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)


def test_offline_download_failure_says_where_to_put_files(tmp_path, no_network):
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load_mnist(tmp_path, "train")
    message = str(info.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "network is unreachable" in message and datasets.ENV_VAR in message
    assert no_network and no_network[0].endswith("train-images-idx3-ubyte.gz")
    assert isinstance(info.value, FileNotFoundError)
    assert not any(tmp_path.rglob("*"))


def test_download_writes_verified_file(tmp_path, monkeypatch):
    payload = (data_root() / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    images = (data_root() / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()

    class Response:
        def __init__(self, body):
            self.body = body

        def read(self):
            return self.body

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout=None):
        if "yann" in url:
            raise urllib.error.URLError("403")
        return Response(images if "images" in url else payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    _, labels = datasets.load_mnist(tmp_path, "test")
    assert np.bincount(labels).tolist() == TEST_COUNTS
    assert (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes() == payload


def test_download_with_wrong_checksum_is_not_kept(tmp_path, monkeypatch):
    class Response:
        def read(self):
            return b"not mnist"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Response())
    with pytest.raises(datasets.DatasetNotFoundError, match="sha256"):
        datasets.load_mnist(tmp_path, "test")
    assert not any(tmp_path.rglob("*.gz"))


def test_letter_recognition_from_shared_root():
    root = data_root()
    X, y = datasets.load_letter_recognition(root)
    assert X.shape == (20000, 16) and X.dtype == np.float32 and y.dtype == np.float32
    assert X.min() == 0 and X.max() == 15
    assert np.bincount(y.astype(int)).tolist() == LETTER_COUNTS
    assert y[0] == ord("T") - ord("A")


def test_letter_recognition_shipped_copy_works_offline(tmp_path, no_network, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "DEFAULT_CACHE", tmp_path / "cache")
    X, y = datasets.load_letter_recognition()
    assert X.shape == (20000, 16) and np.bincount(y.astype(int)).tolist() == LETTER_COUNTS
    assert not no_network


def test_shipped_letter_gz_equals_shared_file():
    shipped = datasets.PACKAGE_DATA / "letter-recognition.data.gz"
    raw = gzip.decompress(shipped.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == LETTER_SHA256
    assert (datasets.PACKAGE_DATA / "ATTRIBUTION.txt").read_text().count("CC BY 4.0") == 1


def test_read_idx_errors(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(SerializationError, match="truncated"):
        datasets.read_idx(f)
    f.write_bytes(b"PK\x03\x04")
    with pytest.raises(SerializationError, match="not an IDX"):
        datasets.read_idx(f)
    f.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x02" + np.array([1.5, -2], ">f4").tobytes())
    assert datasets.read_idx(f).tolist() == [1.5, -2]


def test_data_dirs_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "env"))
    assert datasets.data_dirs("mnist") == [tmp_path / "env" / "mnist", tmp_path / "env"]
    assert datasets.data_dirs("mnist", tmp_path)[0] == tmp_path / "mnist"
    monkeypatch.delenv(datasets.ENV_VAR)
    assert datasets.data_dirs("mnist")[0].parts[-3:] == ("symgraph", "datasets", "mnist")


# ---- Fashion-MNIST (real files), CIFAR-10 binary format, sg.test_utils.download ------------
def fashion_root():
    root = os.environ.get("SYMGRAPH_DATA") or "/work/shared/datasets"
    if not (Path(root) / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST files not available (set SYMGRAPH_DATA)")
    return Path(root)


def test_real_fashion_mnist_verifies_by_uncompressed_contents():
    """The shared copies are recompressed (Debian): the .gz digests differ, the contents
    match the published MD5s of the IDX files."""
    root = fashion_root()
    images, labels = datasets.load_fashion_mnist(root, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(labels).tolist() == [6000] * 10
    _, test_labels = datasets.load_fashion_mnist(root, "test")
    assert np.bincount(test_labels).tolist() == [1000] * 10
    assert len(datasets.FASHION_MNIST_CLASSES) == 10


def test_public_loaders_under_sg():
    import symgraph as sg

    assert sg.datasets.load_fashion_mnist is datasets.load_fashion_mnist
    assert sg.datasets.load_mnist is datasets.load_mnist
    assert sg.datasets.load_cifar10 is datasets.load_cifar10
    assert sg.test_utils.get_mnist is datasets.get_mnist


def write_cifar(path, labels, seed):
    """Records in CIFAR-10's binary layout: label byte, then R, G, B 32x32 planes."""
    rng = np.random.default_rng(seed)
    planes = rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8)
    rows = np.concatenate([np.array(labels, np.uint8)[:, None], planes.reshape(len(labels), -1)],
                          axis=1)
    path.write_bytes(rows.tobytes())
    return planes


def test_cifar10_binary_batches(tmp_path):
    folder = tmp_path / "cifar-10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    planes = [write_cifar(folder / f"data_batch_{i}.bin", [i, 9, 0], seed=i) for i in range(1, 6)]
    test_planes = write_cifar(folder / "test_batch.bin", [3, 4], seed=9)
    images, labels = datasets.load_cifar10(tmp_path, "train", download=False)
    assert images.shape == (15, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [1, 9, 0, 2, 9, 0, 3, 9, 0, 4, 9, 0, 5, 9, 0]
    # HWC: pixel (row 5, col 7) of image 4 has the three planes' values at (5, 7)
    np.testing.assert_array_equal(images[4, 5, 7], planes[1][1, :, 5, 7])
    images, labels = datasets.load_cifar10(tmp_path, "test", download=False)
    assert labels.tolist() == [3, 4]
    np.testing.assert_array_equal(images.transpose(0, 3, 1, 2), test_planes)


def test_cifar10_archive_is_unpacked_safely(tmp_path):
    import io
    import tarfile

    src = tmp_path / "src"
    src.mkdir()
    write_cifar(src / "test_batch.bin", [7], seed=1)
    archive = tmp_path / "cifar-10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "test_batch.bin", arcname="cifar-10-batches-bin/test_batch.bin")
        evil = tarfile.TarInfo("../../escape.bin")
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    images, labels = datasets.load_cifar10(tmp_path, "test", download=False, verify=False)
    assert labels.tolist() == [7] and images.shape == (1, 32, 32, 3)
    assert not (tmp_path.parent / "escape.bin").exists()
    (tmp_path / "cifar-10" / "cifar-10-batches-bin" / "test_batch.bin").unlink()
    with pytest.raises(SerializationError, match="md5"):  # not the published archive
        datasets.load_cifar10(tmp_path, "test", download=False)


def test_cifar10_bad_files_and_offline(tmp_path, no_network):
    folder = tmp_path / "cifar-10"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(SerializationError, match="3073-byte"):
        datasets.load_cifar10(tmp_path, "test")
    write_cifar(folder / "test_batch.bin", [12], seed=0)
    with pytest.raises(SerializationError, match="label 12"):
        datasets.load_cifar10(tmp_path, "test")
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load_cifar10(tmp_path, "train")
    message = str(info.value)
    assert "cifar-10-binary.tar.gz" in message and str(folder) in message
    assert no_network  # it tried the canonical URL first


def test_download_offline_says_where_to_put_the_file(tmp_path, no_network):
    from runtime.test_utils import DownloadError, download

    url = "http://data.mxnet.io/data/letter-recognition.data"
    with pytest.raises(DownloadError) as info:
        download(url, dirname=str(tmp_path / "data"), retries=2)
    target = tmp_path / "data" / "letter-recognition.data"
    assert str(target) in str(info.value) and "offline" in str(info.value)
    assert len(no_network) == 2
    target.write_text("placed by hand")
    assert download(url, dirname=str(tmp_path / "data")) == str(target)
    assert len(no_network) == 2  # an existing file needs no network
    with pytest.raises(DownloadError):
        download(url, dirname=str(tmp_path / "data"), overwrite=True, retries=1)
    assert target.read_text() == "placed by hand"  # a failed overwrite keeps the old file


def test_download_writes_what_the_server_sent(tmp_path, monkeypatch):
    import io

    from runtime.test_utils import download

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: io.BytesIO(b"payload:" + url.encode()))
    path = download("https://example.org/a/b.csv", fname=str(tmp_path / "b.csv"))
    assert path == str(tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_bytes() == b"payload:https://example.org/a/b.csv"
    with pytest.raises(ValueError, match="retries"):
        download("https://example.org/x", retries=-1)
