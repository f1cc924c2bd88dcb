"""``gluon.data``: datasets and the DataLoader."""

from . import vision  # noqa: F401
from .dataloader import DataLoader, default_batchify_fn  # noqa: F401
from .dataset import ArrayDataset, Dataset, SimpleDataset  # noqa: F401
