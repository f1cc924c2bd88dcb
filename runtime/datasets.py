"""Real data sets for tests, tutorials and benchmarks: MNIST, Fashion-MNIST, CIFAR-10 and
CIFAR-100 (binary versions), UCI Letter.

Where files are looked for (first match wins):

1. the ``root`` argument: ``<root>/<subdir>/<file>``, then ``<root>/<file>``;
2. else the ``SYMGRAPH_DATA`` environment variable, the same two places;
3. else ``~/.cache/symgraph/datasets/<subdir>/<file>``;
4. for the letter data only: the copy shipped inside the package (``runtime/data``), so it
   works offline anywhere.

Subdirs: ``mnist/``, ``fashion-mnist/``, ``cifar-10/``, ``cifar-100/``,
``letter-recognition/``. MNIST files may be gzip'd (``*.gz``, preferred) or raw IDX.
Missing MNIST/Fashion/CIFAR files are downloaded (urllib) into the first of those folders,
checked against a pinned digest and written atomically; offline, the error says exactly
which file to put where.

Local files are verified against pinned digests too (a wrong file gives a clear error instead
of silently training on something else). Hashing all of MNIST takes ~50 ms, so it is done
once per process per file and remembered by (path, size, mtime); pass ``verify=False`` to
skip it (for example for a Fashion-MNIST stand-in).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tarfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from runtime.atomic import atomic_write
from runtime.io import part_slice
from symgraph.errors import SerializationError, SymgraphError

__all__ = ["load_mnist", "load_fashion_mnist", "load_cifar10", "load_cifar100",
           "load_letter_recognition", "get_mnist", "read_idx", "read_cifar10_batch",
           "read_cifar100_batch", "data_dirs", "DatasetNotFoundError",
           "ENV_VAR", "FASHION_MNIST_CLASSES", "CIFAR10_CLASSES"]

ENV_VAR = "SYMGRAPH_DATA"
DEFAULT_CACHE = Path("~/.cache/symgraph/datasets")
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
_DOWNLOAD_TIMEOUT = 60


class DatasetNotFoundError(SymgraphError, FileNotFoundError):
    """A data file is missing locally and could not be downloaded."""


_MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/",
               "https://ossci-datasets.s3.amazonaws.com/mnist/")
_FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                 "data/fashion/")
_SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

#: (subdir, file name) -> (hash algorithm, hex digest). MNIST .gz: SHA-256 of the files in
#: /work/shared/datasets; raw MNIST: the published MD5s; Fashion-MNIST .gz: its official MD5s.
CHECKSUMS = {
    ("mnist", "train-images-idx3-ubyte.gz"):
        ("sha256", "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971"),
    ("mnist", "train-labels-idx1-ubyte.gz"):
        ("sha256", "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203"),
    ("mnist", "t10k-images-idx3-ubyte.gz"):
        ("sha256", "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be"),
    ("mnist", "t10k-labels-idx1-ubyte.gz"):
        ("sha256", "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"),
    ("mnist", "train-images-idx3-ubyte"): ("md5", "6bbc9ace898e44ae57da46a324031adb"),
    ("mnist", "train-labels-idx1-ubyte"): ("md5", "a25bea736e30d166cdddb491f175f624"),
    ("mnist", "t10k-images-idx3-ubyte"): ("md5", "2646ac647ad5339dbf082846283269ea"),
    ("mnist", "t10k-labels-idx1-ubyte"): ("md5", "27ae3e4e09519cfbb04c329615203637"),
    ("fashion-mnist", "train-images-idx3-ubyte.gz"):
        ("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ("fashion-mnist", "train-labels-idx1-ubyte.gz"):
        ("md5", "25c81989df183df01b3e8a0aad5dffbe"),
    ("fashion-mnist", "t10k-images-idx3-ubyte.gz"):
        ("md5", "bef4ecab320f06d8554ea6380940ec79"),
    ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"):
        ("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
    # uncompressed contents (Debian's dataset-fashion-mnist recompresses the .gz files)
    ("fashion-mnist", "train-images-idx3-ubyte"): ("md5", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    ("fashion-mnist", "train-labels-idx1-ubyte"): ("md5", "9018921c3c673c538a1fc5bad174d6f9"),
    ("fashion-mnist", "t10k-images-idx3-ubyte"): ("md5", "8181f5470baa50b63fa0f6fddb340f0a"),
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): ("md5", "15d484375f8d13e6eb1aabb0c3f46965"),
    ("cifar-10", "cifar-10-binary.tar.gz"): ("md5", "c32a1d4ab5d03f1284b67883e8d87530"),
    # the MD5 the CIFAR page publishes for its binary version (not checked here: no network)
    ("cifar-100", "cifar-100-binary.tar.gz"): ("md5", "03b5dce01913d631647c71ecec9e9cb8"),
    ("letter-recognition", "letter-recognition.data"):
        ("sha256", "2b89f3602cf768d3c8355267d2f13f2417809e101fc2b5ceee10db19a60de6e2"),
}

_verified: dict[tuple, bool] = {}
_verified_lock = threading.Lock()


# ----------------------------------------------------------------------------- locating files
def data_dirs(subdir: str, root=None) -> list[Path]:
    """The folders searched for ``subdir``'s files, in order (see the module docstring)."""
    base = root if root is not None else os.environ.get(ENV_VAR) or None
    if base is None:
        return [DEFAULT_CACHE.expanduser() / subdir]
    base = Path(base).expanduser()
    return [base / subdir, base]


def _find(subdir: str, names, root) -> Path | None:
    for folder in data_dirs(subdir, root):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, subdir: str) -> bytes | None:
    """Check ``path`` against its pinned digest, once per (path, size, mtime).

    A ``.gz`` file passes if either the file or its uncompressed contents match a pinned
    digest: the same data recompressed (Debian's Fashion-MNIST) is the same data. Returns
    the uncompressed contents when it had to read them (so the caller does not decompress
    twice), else None.
    """
    read = []

    def contents_digest(algo):
        read.append(_read_bytes(path))
        return hashlib.new(algo, read[0]).hexdigest()

    pins = [(CHECKSUMS.get((subdir, path.name)), lambda algo: _digest(path, algo))]
    if path.name.endswith(".gz"):
        pins.append((CHECKSUMS.get((subdir, path.name[:-3])), contents_digest))
    pins = [(pin, digest) for pin, digest in pins if pin is not None]
    if not pins:
        return None
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, tuple(pin for pin, _ in pins))
    with _verified_lock:
        if key in _verified:
            return None
    mismatches = []
    for (algo, want), digest in pins:  # stop at the first match: the raw read is costly
        got = digest(algo)
        if got == want:
            with _verified_lock:
                _verified[key] = True
            return read[0] if read else None
        mismatches.append(f"{algo} {got}, expected {want}")
    raise SerializationError(
        f"{path}: {'; '.join(mismatches)} for {subdir}/{path.name} (or its uncompressed "
        "contents); the file is corrupt or a different data set (delete it to re-download, "
        "or pass verify=False)")


def _download(subdir: str, name: str, urls, root) -> Path:
    """Fetch ``name`` from the first working mirror, check its digest, write atomically."""
    dest_dir = data_dirs(subdir, root)[0]
    errors = []
    for base in urls:
        url = base + name
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as resp:
                payload = resp.read()
        except (urllib.error.URLError, OSError) as err:
            errors.append(f"{url}: {err}")
            continue
        algo, want = CHECKSUMS[(subdir, name)]
        got = hashlib.new(algo, payload).hexdigest()
        if got != want:
            errors.append(f"{url}: {algo} {got} != expected {want}")
            continue
        dest_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(dest_dir / name, payload)
        return dest_dir / name
    raise DatasetNotFoundError(_missing_message(subdir, name, urls, errors, root))


def _missing_message(subdir, name, urls, errors, root) -> str:
    searched = ", ".join(str(d) for d in data_dirs(subdir, root))
    target = data_dirs(subdir, root)[0] / name
    lines = [f"{subdir} file {name!r} not found (searched: {searched})."]
    if errors:
        lines.append("Download failed: " + "; ".join(errors) + ".")
    src = f" (from {urls[0]}{name})" if urls else ""
    lines.append(f"Put the file{src} at {target}, or set {ENV_VAR} to a folder holding "
                 f"{subdir}/{name}.")
    return " ".join(lines)


def _locate(subdir: str, name: str, urls, root, download: bool, verify: bool,
            alternatives=()) -> Path:
    """Find ``name`` (or a raw/gz alternative) locally, else download it."""
    path = _find(subdir, (name,) + tuple(alternatives), root)
    if path is None:
        if not download or not urls:
            raise DatasetNotFoundError(_missing_message(subdir, name, urls, [], root))
        path = _download(subdir, name, urls, root)
    if verify:
        _verify(path, subdir)
    return path


# ----------------------------------------------------------------------------- IDX
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise SerializationError(f"{path}: corrupt gzip data ({err})") from None
    return raw


def read_idx(path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip'd or raw, into a native-endian array."""
    return _parse_idx(_read_bytes(path), path)


def _parse_idx(raw: bytes, path) -> np.ndarray:
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_TYPES:
        raise SerializationError(f"{path}: not an IDX file (bad magic {raw[:4].hex()} at "
                                 "byte offset 0)")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise SerializationError(f"{path}: truncated IDX header (file has {len(raw)} bytes)")
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    offset = 4 + 4 * ndim
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - offset < count * dtype.itemsize:
        raise SerializationError(f"{path}: truncated at byte offset {len(raw)}: shape {shape} "
                                 f"needs {count * dtype.itemsize} data bytes after offset "
                                 f"{offset}")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return arr.astype(dtype.newbyteorder("=")).reshape(shape)


# ----------------------------------------------------------------------------- loaders
def _load_idx_pair(subdir, urls, root, kind, download, verify):
    if kind not in _SPLIT_FILES:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    arrays = []
    for base in _SPLIT_FILES[kind]:
        path = _locate(subdir, base + ".gz", urls, root, download, False, alternatives=(base,))
        raw = _verify(path, subdir) if verify else None
        arrays.append(_parse_idx(_read_bytes(path) if raw is None else raw, path))
    images, labels = arrays
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise SerializationError(f"{subdir} {kind}: images {images.shape} and labels "
                                 f"{labels.shape} don't match")
    return images, labels


def shard(arrays, num_parts=1, part_index=0):
    """The ``part_index``-th of ``num_parts`` equal contiguous slices of each array (as
    MXNet's ``MNISTIter`` takes them): in distributed training each rank loads
    ``num_parts=kv.num_workers, part_index=kv.rank``. The remainder is dropped."""
    cut = part_slice(len(arrays[0]), num_parts, part_index)
    if int(num_parts) == 1:
        return tuple(arrays)
    return tuple(a[cut] for a in arrays)


def load_mnist(root=None, kind="train", download=True, verify=True, num_parts=1,
               part_index=0):
    """MNIST ``kind`` split as raw ``(images uint8 (N,28,28), labels uint8 (N,))``
    (``num_parts``/``part_index``: this rank's shard, see :func:`shard`)."""
    return shard(_load_idx_pair("mnist", _MNIST_URLS, root, kind, download, verify),
                 num_parts, part_index)


def load_fashion_mnist(root=None, kind="train", download=True, verify=True, num_parts=1,
                       part_index=0):
    """Fashion-MNIST, same files and return values as :func:`load_mnist`."""
    return shard(_load_idx_pair("fashion-mnist", _FASHION_URLS, root, kind, download, verify),
                 num_parts, part_index)


def get_mnist(root=None, download=True, verify=True, num_parts=1, part_index=0):
    """MXNet's ``test_utils.get_mnist()``: images (N,1,28,28) float32 / 255, int8 labels
    (``num_parts``/``part_index`` shard the training split only; every rank scores the
    whole test split)."""
    out = {}
    for kind in ("train", "test"):
        images, labels = load_mnist(root, kind, download, verify)
        if kind == "train":
            images, labels = shard((images, labels), num_parts, part_index)
        out[f"{kind}_data"] = images.reshape(-1, 1, 28, 28).astype(np.float32) / 255
        out[f"{kind}_label"] = labels.astype(np.int8)
    return out


def _letter_text(root, verify: bool) -> str:
    path = _find("letter-recognition", ("letter-recognition.data",), root)
    if path is not None:
        if verify:
            _verify(path, "letter-recognition")
        return path.read_text(encoding="ascii")
    shipped = PACKAGE_DATA / "letter-recognition.data.gz"
    if not shipped.is_file():
        raise DatasetNotFoundError(_missing_message("letter-recognition",
                                                    "letter-recognition.data", (), [], root))
    return gzip.decompress(shipped.read_bytes()).decode("ascii")


def load_letter_recognition(root=None, verify=True):
    """UCI Letter Recognition: ``X`` float32 (20000, 16), ``y`` float32 letter index 0..25."""
    rows = _letter_text(root, verify).split()
    try:
        y = np.frombuffer("".join(r[0] for r in rows).encode("ascii"), dtype=np.uint8)
        X = np.array(",".join(r[2:] for r in rows).split(","), dtype=np.float32)
        X = X.reshape(len(rows), 16)
    except ValueError as err:
        raise SerializationError(f"letter-recognition data: malformed rows ({err})") from None
    if y.min() < ord("A") or y.max() > ord("Z"):
        raise SerializationError("letter-recognition data: first column must be a letter A-Z")
    return X, (y - ord("A")).astype(np.float32)


# ----------------------------------------------------------------------------- CIFAR
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
_CIFAR_URLS = ("https://www.cs.toronto.edu/~kriz/",)
_CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                "test": ("test_batch.bin",)}
_CIFAR_SIDE = 32
_CIFAR_RECORD = 1 + 3 * _CIFAR_SIDE * _CIFAR_SIDE


def _read_cifar_records(path, label_limits, name):
    """Records of one byte per label (each below its limit) then 3072 pixel bytes (the
    red, green and blue 32x32 planes). Returns images (N, 32, 32, 3) HWC uint8 and the
    labels (N, len(label_limits)) uint8."""
    raw = Path(path).read_bytes()
    size = len(label_limits) + 3 * _CIFAR_SIDE * _CIFAR_SIDE
    if not raw or len(raw) % size:
        raise SerializationError(f"{path}: {len(raw)} bytes is not a whole number of "
                                 f"{size}-byte {name} records")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
    labels = records[:, :len(label_limits)].copy()
    for column, limit in enumerate(label_limits):
        if labels[:, column].max() >= limit:
            bad = int(np.argmax(labels[:, column] >= limit))
            raise SerializationError(f"{path}: record {bad} (byte offset {bad * size + column}) "
                                     f"has label {labels[bad, column]}, expected 0..{limit - 1}")
    planes = records[:, len(label_limits):].reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def read_cifar10_batch(path):
    """One CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (the red,
    green and blue 32x32 planes). Returns images (N, 32, 32, 3) HWC uint8 and labels."""
    images, labels = _read_cifar_records(path, (len(CIFAR10_CLASSES),), "CIFAR-10")
    return images, labels[:, 0]


def read_cifar100_batch(path):
    """One CIFAR-100 binary file: records of a coarse label byte (0..19), a fine label byte
    (0..99) and 3072 pixel bytes. Returns images (N, 32, 32, 3), coarse and fine labels."""
    images, labels = _read_cifar_records(path, (20, 100), "CIFAR-100")
    return images, labels[:, 0].copy(), labels[:, 1].copy()


def _cifar_folder(subdir, inner, names, root) -> Path | None:
    """The folder holding all of ``names``: a data dir itself or its ``inner`` folder."""
    for folder in data_dirs(subdir, root):
        for candidate in (folder, folder / inner):
            if all((candidate / n).is_file() for n in names):
                return candidate
    return None


def _extract_cifar(archive: Path, root, spec) -> Path:
    """Unpack only the batch files, by base name (no member path is ever trusted)."""
    wanted = set(spec.files["train"] + spec.files["test"])
    dest = data_dirs(spec.subdir, root)[0] / spec.inner
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name in wanted:
                    atomic_write(dest / name, tar.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError) as err:
        raise SerializationError(f"{archive}: cannot read the {spec.name} archive "
                                 f"({err})") from None
    return dest


class _CifarSpec:
    """Where one CIFAR variant's binary files live and how they are read."""

    def __init__(self, name, subdir, archive, inner, files, reader):
        self.name, self.subdir, self.archive, self.inner = name, subdir, archive, inner
        self.files, self.reader = files, reader


_CIFAR10 = _CifarSpec("CIFAR-10", "cifar-10", _CIFAR_ARCHIVE, _CIFAR_DIR, _CIFAR_FILES,
                      read_cifar10_batch)
_CIFAR100 = _CifarSpec("CIFAR-100", "cifar-100", "cifar-100-binary.tar.gz",
                       "cifar-100-binary", {"train": ("train.bin",), "test": ("test.bin",)},
                       read_cifar100_batch)


def _load_cifar(spec, root, kind, download, verify):
    if kind not in spec.files:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    names = spec.files[kind]
    folder = _cifar_folder(spec.subdir, spec.inner, names, root)
    if folder is None:
        archive = _locate(spec.subdir, spec.archive, _CIFAR_URLS, root, download, verify)
        folder = _extract_cifar(archive, root, spec)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise SerializationError(f"{archive}: the archive has no {missing}")
    parts = [spec.reader(folder / n) for n in names]
    return tuple(np.concatenate(field) for field in zip(*parts))


def load_cifar10(root=None, kind="train", download=True, verify=True):
    """CIFAR-10 (binary version) ``kind`` split: images (N, 32, 32, 3) uint8 HWC (as
    Gluon's ``CIFAR10`` gives them) and uint8 labels 0..9 (see ``CIFAR10_CLASSES``).

    Looks for the ``.bin`` batches in ``cifar-10/`` or ``cifar-10/cifar-10-batches-bin/``,
    else unpacks ``cifar-10-binary.tar.gz`` found there or downloaded (MD5-checked).
    """
    return _load_cifar(_CIFAR10, root, kind, download, verify)


def load_cifar100(root=None, kind="train", download=True, verify=True):
    """CIFAR-100 (binary version) ``kind`` split: images (N, 32, 32, 3) uint8 HWC, coarse
    labels 0..19 and fine labels 0..99 (uint8).

    Looks for ``train.bin``/``test.bin`` in ``cifar-100/`` or ``cifar-100/cifar-100-binary/``,
    else unpacks ``cifar-100-binary.tar.gz`` found there or downloaded (MD5-checked).
    """
    return _load_cifar(_CIFAR100, root, kind, download, verify)
