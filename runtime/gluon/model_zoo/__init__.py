"""``sg.gluon.model_zoo``: MXNet's Gluon model zoo (``vision.get_model``), with pretrained
weights read from MXNet's files on disk (see :mod:`.model_store`)."""

from runtime.gluon.model_zoo import model_store, vision  # noqa: F401
from runtime.gluon.model_zoo.model_store import ModelFileMismatchError, ModelFileNotFoundError  # noqa: F401
