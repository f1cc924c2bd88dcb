"""Where pretrained model-zoo weights live on disk, and how they are loaded (never fetched).

MXNet keeps its downloads as ``<root>/<name>-<first 8 hex digits of the sha1>.params``.
symgraph reads the same layout but has no network access of its own: the user copies the
files there (from an MXNet installation's ``~/.mxnet/models`` or MXNet's model store), and
a missing file is an error that names the exact path to put it at.

The root is, in order: the ``root=`` argument, ``$SYMGRAPH_MODEL_DIR``,
``$MXNET_HOME/models``, ``~/.mxnet/models``.  A file carrying MXNet's own hash in its name
must have that content (a truncated copy would otherwise load as wrong numbers); any other
``<name>-*.params`` (for example weights the user fine-tuned and saved) is taken as is.
"""

from __future__ import annotations

import glob
import hashlib
import os

from symgraph.errors import MissingFileError, SerializationError

__all__ = ["ENV_VAR", "ModelFileNotFoundError", "ModelFileMismatchError", "default_root",
           "get_model_file", "load_pretrained", "short_hash"]

ENV_VAR = "SYMGRAPH_MODEL_DIR"

#: The sha1 of every file in MXNet 1.9.1's model store (its file names carry the first 8).
_SHA1 = {
    "alexnet": "44335d1f0046b328243b32a26a4fbd62d9057b45",
    "densenet121": "f27dbf2dbd5ce9a80b102d89c7483342cd33cb31",
    "densenet161": "b6c8a95717e3e761bd88d145f4d0a214aaa515dc",
    "densenet169": "2603f878403c6aa5a71a124c4a3307143d6820e9",
    "densenet201": "1cdbc116bc3a1b65832b18cf53e1cb8e7da017eb",
    "inceptionv3": "ed47ec45a937b656fcc94dabde85495bbef5ba1f",
    "mobilenet0.25": "9f83e440996887baf91a6aff1cccc1c903a64274",
    "mobilenet0.5": "8e9d539cc66aa5efa71c4b6af983b936ab8701c3",
    "mobilenet0.75": "529b2c7f4934e6cb851155b22c96c9ab0a7c4dc2",
    "mobilenet1.0": "6b8c5106c730e8750bcd82ceb75220a3351157cd",
    "mobilenetv2_1.0": "36da4ff1867abccd32b29592d79fc753bca5a215",
    "mobilenetv2_0.75": "e2be7b72a79fe4a750d1dd415afedf01c3ea818d",
    "mobilenetv2_0.5": "aabd26cd335379fcb72ae6c8fac45a70eab11785",
    "mobilenetv2_0.25": "ae8f9392789b04822cbb1d98c27283fc5f8aa0a7",
    "resnet18_v1": "a0666292f0a30ff61f857b0b66efc0228eb6a54b",
    "resnet34_v1": "48216ba99a8b1005d75c0f3a0c422301a0473233",
    "resnet50_v1": "0aee57f96768c0a2d5b23a6ec91eb08dfb0a45ce",
    "resnet101_v1": "d988c13d6159779e907140a638c56f229634cb02",
    "resnet152_v1": "671c637a14387ab9e2654eafd0d493d86b1c8579",
    "resnet18_v2": "a81db45fd7b7a2d12ab97cd88ef0a5ac48b8f657",
    "resnet34_v2": "9d6b80bbc35169de6b6edecffdd6047c56fdd322",
    "resnet50_v2": "ecdde35339c1aadbec4f547857078e734a76fb49",
    "resnet101_v2": "18e93e4f48947e002547f50eabbcc9c83e516aa6",
    "resnet152_v2": "f2695542de38cf7e71ed58f02893d82bb409415e",
    "squeezenet1.0": "264ba4970a0cc87a4f15c96e25246a1307caf523",
    "squeezenet1.1": "33ba0f93753c83d86e1eb397f38a667eaf2e9376",
    "vgg11": "dd221b160977f36a53f464cb54648d227c707a05",
    "vgg11_bn": "ee79a8098a91fbe05b7a973fed2017a6117723a8",
    "vgg13": "6bc5de58a05a5e2e7f493e2d75a580d83efde38c",
    "vgg13_bn": "7d97a06c3c7a1aecc88b6e7385c2b373a249e95e",
    "vgg16": "e660d4569ccb679ec68f1fd3cce07a387252a90a",
    "vgg16_bn": "7f01cf050d357127a73826045c245041b0df7363",
    "vgg19": "ad2f660d101905472b83590b59708b71ea22b2e5",
    "vgg19_bn": "f360b758e856f1074a85abd5fd873ed1d98297c3",
}

_URL = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/gluon/models/{}.zip"


class ModelFileNotFoundError(MissingFileError):
    """No pretrained weights for a model under the model root (nothing is downloaded)."""


class ModelFileMismatchError(SerializationError):
    """A file named with MXNet's hash whose content has another hash (a partial copy)."""


def default_root() -> str:
    """``$SYMGRAPH_MODEL_DIR``, else ``$MXNET_HOME/models``, else ``~/.mxnet/models``."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    mxnet_home = os.environ.get("MXNET_HOME")
    return os.path.join(mxnet_home, "models") if mxnet_home else os.path.join(
        "~", ".mxnet", "models")


def short_hash(name: str) -> str:
    if name not in _SHA1:
        raise ValueError(f"Pretrained model for {name} is not available.")
    return _SHA1[name][:8]


def get_model_file(name: str, root: str | None = None) -> str:
    """The path of ``name``'s weights under ``root``: MXNet's own file if present (its
    content checked against the sha1), else the only other ``<name>-*.params``."""
    folder = os.path.expanduser(root if root is not None else default_root())
    official = os.path.join(folder, f"{name}-{short_hash(name)}.params")
    if os.path.isfile(official):
        _check_sha1(official, _SHA1[name])
        return official
    others = sorted(glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(name)}-*.params")))
    if len(others) == 1:
        return others[0]
    if others:
        raise ModelFileNotFoundError(
            f"pretrained weights for '{name}': several candidates in {folder} "
            f"({', '.join(os.path.basename(p) for p in others)}); keep one, or put MXNet's "
            f"file at {official}")
    raise ModelFileNotFoundError(
        f"pretrained weights for '{name}' not found: symgraph does not download, so put "
        f"MXNet's file at {official} (copy it from an MXNet installation's ~/.mxnet/models, "
        f"or unzip {_URL.format(os.path.basename(official)[:-len('.params')])}); another "
        f"folder can be given with root= or the {ENV_VAR} environment variable")


def _check_sha1(path: str, expected: str):
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ModelFileMismatchError(
            f"'{path}' has sha1 {digest.hexdigest()}, but MXNet's file of that name has "
            f"{expected}: the copy is incomplete or another file; replace it, or rename "
            "your own weights to another '<name>-<tag>.params'")


def load_pretrained(net, name: str, root=None, ctx=None):
    """Read ``name``'s weights into ``net`` with ``Block.load_parameters``, which takes
    both generations of MXNet's store: structural keys (``features.0.weight``) and full
    names with or without the network's prefix (``conv0_weight``, the older
    ``save_params``; ``arg:resnetv10_conv0_weight`` as ``export`` writes)."""
    net.load_parameters(get_model_file(name, root), ctx=ctx)
    return net
