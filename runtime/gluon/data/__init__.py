"""``gluon.data``: datasets and the DataLoader."""

from runtime.gluon.data import vision  # noqa: F401
from runtime.gluon.data.dataloader import DataLoader, default_batchify_fn  # noqa: F401
from runtime.gluon.data.dataset import ArrayDataset, Dataset, SimpleDataset  # noqa: F401
