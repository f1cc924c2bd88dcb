"""``sg.gluon.model_zoo.vision`` builds MXNet 1.9.1's networks: the same outputs, names,
shapes and files.

* Numbers: ``tests/modelzoo/data/<name>/`` holds narrowed MXNet networks (exported
  parameters and MXNet's inference output, see ``tests/modelzoo/make_references.py``).
  ``get_model`` builds the same network here under the same narrowing of ``nn.Conv2D`` /
  ``nn.Dense`` / ``nn.BatchNorm``; MXNet's parameters are loaded *by name* (so every name
  must match) and the inference output must equal MXNet's.
* Structure: for every ``get_model`` name at full width, the parameter names, structural
  keys (``save_parameters``) and shapes equal MXNet's (``data/zoo_shapes.json.gz``, written
  once by ``make_zoo_shapes.py`` with MXNet).
* Pretrained: weights are read from MXNet's file layout under ``root`` /
  ``SYMGRAPH_MODEL_DIR``; a missing file is an error naming the path to put it at.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os

import numpy as np
import pytest

import symgraph as sg
from symgraph.gluon import nn
from symgraph.gluon.model_zoo import model_store, vision

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_module(path):
    """The case table shared with the MXNet generator (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location("zoo_narrowing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = os.path.join(HERE, "..", "modelzoo", "data")
SHAPES = os.path.join(HERE, "data", "zoo_shapes.json.gz")
_narrowing = _load_module(os.path.join(HERE, "..", "modelzoo", "narrowing.py"))
CLASSES, DIVISORS = _narrowing.CLASSES, _narrowing.DIVISORS

#: as in tests/modelzoo/test_modelzoo.py: float32 rounding through up to a hundred layers,
#: the largest deviation relative to the largest reference magnitude
TOLERANCE = 2e-4
#: compiling these narrow-but-deep graphs takes 20 s or more each on the shared 2-core
#: machine: they run in the slow suite (the other ones, and the same families, by default)
SLOW_CASES = {"resnet18_v2", "resnet50_v1", "densenet121", "inceptionv3", "mobilenetv2_1.0",
              "mobilenet1.0", "vgg11_bn"}


def narrow(divisor):
    """The generator's narrowing (tests/modelzoo/narrowing.py) on symgraph's layers."""
    return _narrowing.narrow(nn, divisor)


def build(name, **kwargs):
    """``get_model`` with fresh name counters, so the network is ``<family>0_`` as in a
    fresh MXNet process."""
    with sg.name.NameManager():
        return vision.get_model(name, **kwargs)


def load_exported(net, path):
    """MXNet's exported ``arg:``/``aux:`` parameters into ``net``, by parameter name.  The
    generator built several networks in one process, so its top-level counter may differ
    (``mobilenet1_``): that one prefix is swapped for ours, every other part must match.
    Returns that renaming (MXNet's name -> ours)."""
    loaded = {k.split(":", 1)[1]: v for k, v in sg.nd.load(path).items()}
    theirs = next(iter(loaded)).split("_", 1)[0] + "_"
    assert all(k.startswith(theirs) for k in loaded), f"{path}: not one network prefix"

    def rename(key):
        return net.prefix + key[len(theirs):]

    loaded = {rename(k): v for k, v in loaded.items()}
    params = net.collect_params()
    assert sorted(params.keys()) == sorted(loaded), (
        f"names differ: only here {sorted(set(params.keys()) - set(loaded))[:5]}, "
        f"only in MXNet's file {sorted(set(loaded) - set(params.keys()))[:5]}")
    for pname, param in params.items():
        param.set_data(loaded[pname].asnumpy())
    return rename


def assert_close(actual, expected, what, tolerance=TOLERANCE):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max())
    worst = float(np.abs(actual - expected).max())
    assert worst <= tolerance * scale, (
        f"{what}: max |symgraph - MXNet| = {worst:.3g}, {worst / scale:.3g} of the largest "
        f"value {scale:.3g} (tolerance {tolerance:.3g})")


def _cases():
    return [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_CASES else [],
                         id=name) for name in sorted(DIVISORS)]


@pytest.mark.jit
@pytest.mark.modelzoo
@pytest.mark.parametrize("name", _cases())
def test_narrowed_inference_matches_mxnet(name):
    folder = os.path.join(CASES, name)
    ref = sg.nd.load(os.path.join(folder, "reference.nd"))
    with narrow(DIVISORS[name]):
        net = build(name, classes=CLASSES)
    load_exported(net, os.path.join(folder, "model-0000.params"))
    data = sg.nd.array(ref["data"].asnumpy().astype(np.float32))
    assert_close(net(data).asnumpy(), ref["infer_out"].asnumpy(), f"{name} inference output")


def _dropouts(block):
    if isinstance(block, nn.Dropout):
        yield block
    for child in block._children.values():
        yield from _dropouts(child)


@pytest.mark.jit
@pytest.mark.modelzoo
@pytest.mark.slow
#: the deep cases' training numbers are checked through the symbol path over the same
#: exports (tests/modelzoo: test_training_mode_matches_mxnet) and their Gluon construction
#: by the inference test above; compiling their training graphs a second time here cost
#: about 8 CPU minutes of CI, so the training step runs on the four quick families
@pytest.mark.parametrize("name", sorted(set(DIVISORS) - SLOW_CASES))
def test_narrowed_training_step_matches_mxnet(name):
    """One traced step under ``autograd.record(train_mode=True)``: the output (batch
    statistics), the input gradient of ``sum(out * head)`` and the moving statistics after
    it equal MXNet's (Dropout's rate set to 0, as the reference was made)."""
    folder = os.path.join(CASES, name)
    ref = sg.nd.load(os.path.join(folder, "reference.nd"))
    with narrow(DIVISORS[name]):
        net = build(name, classes=CLASSES)
    renamed = load_exported(net, os.path.join(folder, "model-0000.params"))
    for block in _dropouts(net):
        block._rate = 0.0
    data = sg.nd.array(ref["data"].asnumpy().astype(np.float32))
    data.attach_grad()
    with sg.autograd.record(train_mode=True):
        out = net(data)
        loss = (out * ref["head"]).sum()
    loss.backward()
    assert_close(out.asnumpy(), ref["train_out"].asnumpy(), f"{name} training output")
    rounding = float(ref["train_grad_rounding"].asnumpy()[0])
    assert_close(data.grad.asnumpy(), ref["train_grad"].asnumpy(), f"{name} input gradient",
                 max(TOLERANCE, 2 * rounding))
    params = net.collect_params()
    moved = {renamed(k.split(":", 1)[1]): v for k, v in ref.items() if k.startswith("aux_after:")}
    assert moved or "BatchNorm" not in repr(net)
    for pname, value in moved.items():
        assert_close(params[pname].data().asnumpy(), value.asnumpy(), f"{name} {pname}")


def test_every_reference_case_is_covered():
    assert sorted(DIVISORS) == sorted(os.listdir(CASES))


# ---- structure at full width ---------------------------------------------------------------
with gzip.open(SHAPES, "rt") as _f:
    MXNET_SHAPES = json.load(_f)

#: full-width models whose tracing (placeholder values of 100+ M parameters) takes a second
#: or more each; the default run keeps one of each family
SLOW_SHAPES = {"vgg13", "vgg16", "vgg19", "vgg13_bn", "vgg16_bn", "vgg19_bn"}


class _NoValues(sg.init.Initializer):
    """Leave the (zero) buffers as they are: only shapes are under test."""

    def __call__(self, desc, arr):
        pass


def test_get_model_names_are_mxnets():
    assert sorted(vision.MODELS) == sorted(MXNET_SHAPES)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_SHAPES
                                               else [], id=n) for n in sorted(MXNET_SHAPES)])
def test_full_width_parameters_match_mxnet(name):
    expected = MXNET_SHAPES[name]
    net = build(name)
    net.initialize(_NoValues())
    out = net(sg.nd.zeros(tuple(expected["input"])))  # traced only: fills deferred shapes
    assert out.shape == (1, 1000)
    del out
    structural = {id(p): key for key, p in net._structural_params().items()}
    ours = [[p.name, structural[id(p)], list(p.shape)] for p in net.collect_params().values()]
    assert ours == expected["params"]


def test_family_functions_and_kwargs():
    net = build("resnet18_v1", classes=10, thumbnail=True)
    assert isinstance(net, vision.ResNetV1) and net.prefix == "resnetv10_"
    assert net.collect_params()["resnetv10_conv0_weight"].shape == (64, 0, 3, 3)
    assert net.output._units == 10
    with sg.name.NameManager():
        assert isinstance(vision.get_resnet(2, 50), vision.ResNetV2)
        assert vision.mobilenet0_25().prefix == "mobilenet0_"
        assert vision.mobilenet_v2_0_5().prefix == "mobilenetv20_"
        assert vision.squeezenet1_0().prefix == "squeezenet0_"
        assert vision.densenet169().prefix == "densenet0_"
        assert vision.vgg16_bn().prefix == "vgg0_"
        assert vision.inception_v3().prefix == "inception30_"
        assert vision.alexnet().prefix == "alexnet0_"
    assert build("VGG11_BN").prefix == "vgg0_"  # names are case-insensitive, as in MXNet


@pytest.mark.parametrize("call, message", [
    (lambda: vision.get_model("resnet19_v1"), "Model resnet19_v1 is not supported"),
    (lambda: vision.get_resnet(3, 18), "Invalid resnet version"),
    (lambda: vision.get_resnet(1, 20), "Invalid number of layers: 20"),
    (lambda: vision.get_densenet(100), "Invalid number of layers: 100"),
    (lambda: vision.get_vgg(12), "Invalid number of layers: 12"),
    (lambda: vision.get_squeezenet("1.2"), "Unsupported SqueezeNet version 1.2"),
])
def test_bad_model_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_import_paths_reach_one_module():
    """``from symgraph.gluon.model_zoo import vision`` and ``sg.gluon.model_zoo.vision`` are
    the runtime module itself, not a second copy made under the alias name (whose Blocks
    would have their own name scopes)."""
    import symgraph.gluon.model_zoo.vision as by_path
    from runtime.gluon.block import Block

    assert by_path is sg.gluon.model_zoo.vision is vision
    assert vision.ResNetV1.__mro__[-2] is Block
    from symgraph.gluon.contrib.nn import HybridConcurrent, Identity

    assert HybridConcurrent is nn.HybridConcurrent and Identity is nn.Identity


# ---- pretrained weights from disk ----------------------------------------------------------
def _saved_model(name, folder, file_name, shape, divisor=1):
    """A (narrowed) model with Xavier weights, traced once on ``shape`` (which fills the
    deferred shapes and values), saved by ``save_parameters`` as ``folder/file_name``."""
    with narrow(divisor):
        net = build(name, classes=CLASSES)
    net.initialize(sg.init.Xavier())
    net(sg.nd.zeros(shape))
    os.makedirs(folder, exist_ok=True)
    net.save_parameters(os.path.join(folder, file_name))
    return net


def _values(net):
    return {k: p.data().asnumpy() for k, p in net.collect_params().items()}


def _assert_loaded(net, values):
    params = net.collect_params()
    assert sorted(params.keys()) == sorted(values)
    for key, value in values.items():
        np.testing.assert_array_equal(params[key].data().asnumpy(), value)


@pytest.mark.jit
def test_pretrained_reads_root(tmp_path):
    """The loaded network runs without initialize() and computes what the saved one did
    (narrowed SqueezeNet 1.1 on the reference case's input: the same compiled graph)."""
    data = sg.nd.load(os.path.join(CASES, "squeezenet1.1", "reference.nd"))["data"]
    data = sg.nd.array(data.asnumpy().astype(np.float32))
    source = _saved_model("squeezenet1.1", str(tmp_path), "squeezenet1.1-0123abcd.params",
                          data.shape, DIVISORS["squeezenet1.1"])
    with narrow(DIVISORS["squeezenet1.1"]):
        net = build("squeezenet1.1", classes=CLASSES, pretrained=True, root=str(tmp_path))
    _assert_loaded(net, _values(source))
    expected = source(data).asnumpy()
    np.testing.assert_array_equal(net(data).asnumpy(), expected)
    assert expected.shape == (1, CLASSES) and np.abs(expected).max() > 0


def test_pretrained_reads_env_dir(tmp_path, monkeypatch):
    source = _saved_model("mobilenet0.25", str(tmp_path / "zoo"), "mobilenet0.25-mine.params",
                          (1, 3, 32, 32))
    monkeypatch.setenv("SYMGRAPH_MODEL_DIR", str(tmp_path / "zoo"))
    _assert_loaded(build("mobilenet0.25", classes=CLASSES, pretrained=True), _values(source))
    # an explicit root wins over the environment
    with pytest.raises(model_store.ModelFileNotFoundError):
        build("mobilenet0.25", pretrained=True, root=str(tmp_path / "elsewhere"))


def test_pretrained_reads_legacy_names(tmp_path):
    """Files of MXNet's older ``save_params`` hold parameter names without the network's
    prefix; ``export`` writes ``arg:``/``aux:`` full names. Both load."""
    source = build("mobilenet0.25", classes=CLASSES)
    source.initialize(sg.init.Xavier())
    source(sg.nd.zeros((1, 3, 32, 32)))
    values = _values(source)
    stripped = {k[len("mobilenet0_"):]: v for k, v in values.items()}
    sg.nd.save(str(tmp_path / "mobilenet0.25-legacy.params"), stripped)
    _assert_loaded(build("mobilenet0.25", classes=CLASSES, pretrained=True,
                         root=str(tmp_path)), values)
    tagged = {("aux:" if "running" in k else "arg:") + k: v for k, v in values.items()}
    os.remove(tmp_path / "mobilenet0.25-legacy.params")
    sg.nd.save(str(tmp_path / "mobilenet0.25-export.params"), tagged)
    _assert_loaded(build("mobilenet0.25", classes=CLASSES, pretrained=True,
                         root=str(tmp_path)), values)


def test_missing_pretrained_file_names_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv("SYMGRAPH_MODEL_DIR", raising=False)
    expected = os.path.join(str(tmp_path), "resnet18_v1-a0666292.params")
    with pytest.raises(model_store.ModelFileNotFoundError) as info:
        vision.resnet18_v1(pretrained=True, root=str(tmp_path))
    assert expected in str(info.value) and "SYMGRAPH_MODEL_DIR" in str(info.value)
    assert isinstance(info.value, sg.SymgraphError) and isinstance(info.value,
                                                                   FileNotFoundError)


def test_default_root_is_mxnets(monkeypatch):
    monkeypatch.delenv("SYMGRAPH_MODEL_DIR", raising=False)
    monkeypatch.delenv("MXNET_HOME", raising=False)
    assert model_store.default_root() == os.path.join("~", ".mxnet", "models")
    monkeypatch.setenv("MXNET_HOME", "/data/mx")
    assert model_store.default_root() == os.path.join("/data/mx", "models")
    monkeypatch.setenv("SYMGRAPH_MODEL_DIR", "/data/zoo")
    assert model_store.default_root() == "/data/zoo"


def test_official_file_name_is_checked_against_its_sha1(tmp_path, monkeypatch):
    (tmp_path / "alexnet-44335d1f.params").write_bytes(b"truncated download")
    with pytest.raises(model_store.ModelFileMismatchError, match="sha1"):
        vision.alexnet(pretrained=True, root=str(tmp_path))
    digest = hashlib.sha1(b"complete").hexdigest()
    monkeypatch.setitem(model_store._SHA1, "alexnet", digest)
    good = tmp_path / f"alexnet-{digest[:8]}.params"
    good.write_bytes(b"complete")  # MXNet's name and content: preferred to the other file
    assert model_store.get_model_file("alexnet", str(tmp_path)) == str(good)


def test_several_candidate_files_are_an_error(tmp_path):
    for tag in ("a", "b"):
        (tmp_path / f"squeezenet1.0-{tag}.params").write_bytes(b"")
    with pytest.raises(model_store.ModelFileNotFoundError, match="several candidates"):
        model_store.get_model_file("squeezenet1.0", str(tmp_path))


def test_pretrained_file_of_other_classes_is_refused(tmp_path):
    """A 7-class file into a 1000-class network: MXNet refuses it; so does symgraph, rather
    than silently resizing the classifier to the file's shape."""
    _saved_model("mobilenet0.25", str(tmp_path), "mobilenet0.25-mine.params", (1, 3, 32, 32))
    with pytest.raises(ValueError, match="mobilenet0_dense0_weight"):
        build("mobilenet0.25", classes=1000, pretrained=True, root=str(tmp_path))
