from .table import importer  # noqa: F401
