"""``sg.gluon.model_zoo.vision``: the image classifiers of MXNet 1.9.1's Gluon model zoo,
with its names, constructor arguments, block structure and parameter names, so that
MXNet's pretrained files and ``export`` outputs load by name.

``get_model(name, pretrained=False, classes=1000, ctx=None, root=None, **kwargs)``; every
family also has its own constructors (``resnet18_v1()``, ``get_resnet(1, 18)``,
``mobilenet1_0()``, ...).  One file per family, as in MXNet.
"""

from __future__ import annotations

from runtime.gluon.model_zoo.vision.alexnet import *  # noqa: F401,F403
from runtime.gluon.model_zoo.vision.alexnet import alexnet
from runtime.gluon.model_zoo.vision.densenet import *  # noqa: F401,F403
from runtime.gluon.model_zoo.vision.densenet import (
    densenet121,
    densenet161,
    densenet169,
    densenet201,
)
from runtime.gluon.model_zoo.vision.inception import *  # noqa: F401,F403
from runtime.gluon.model_zoo.vision.inception import inception_v3
from runtime.gluon.model_zoo.vision.mobilenet import *  # noqa: F401,F403
from runtime.gluon.model_zoo.vision.mobilenet import (
    mobilenet0_5,
    mobilenet0_25,
    mobilenet0_75,
    mobilenet1_0,
    mobilenet_v2_0_5,
    mobilenet_v2_0_25,
    mobilenet_v2_0_75,
    mobilenet_v2_1_0,
)
from runtime.gluon.model_zoo.vision.resnet import *  # noqa: F401,F403
from runtime.gluon.model_zoo.vision.resnet import (
    resnet18_v1,
    resnet18_v2,
    resnet34_v1,
    resnet34_v2,
    resnet50_v1,
    resnet50_v2,
    resnet101_v1,
    resnet101_v2,
    resnet152_v1,
    resnet152_v2,
)
from runtime.gluon.model_zoo.vision.squeezenet import *  # noqa: F401,F403
from runtime.gluon.model_zoo.vision.squeezenet import squeezenet1_0, squeezenet1_1
from runtime.gluon.model_zoo.vision.vgg import *  # noqa: F401,F403
from runtime.gluon.model_zoo.vision.vgg import (
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)

#: get_model's names (MXNet's spelling, also the pretrained files' names) -> constructor
MODELS = {
    "resnet18_v1": resnet18_v1, "resnet34_v1": resnet34_v1, "resnet50_v1": resnet50_v1,
    "resnet101_v1": resnet101_v1, "resnet152_v1": resnet152_v1,
    "resnet18_v2": resnet18_v2, "resnet34_v2": resnet34_v2, "resnet50_v2": resnet50_v2,
    "resnet101_v2": resnet101_v2, "resnet152_v2": resnet152_v2,
    "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16, "vgg19": vgg19,
    "vgg11_bn": vgg11_bn, "vgg13_bn": vgg13_bn, "vgg16_bn": vgg16_bn, "vgg19_bn": vgg19_bn,
    "alexnet": alexnet,
    "densenet121": densenet121, "densenet161": densenet161, "densenet169": densenet169,
    "densenet201": densenet201,
    "squeezenet1.0": squeezenet1_0, "squeezenet1.1": squeezenet1_1,
    "inceptionv3": inception_v3,
    "mobilenet1.0": mobilenet1_0, "mobilenet0.75": mobilenet0_75,
    "mobilenet0.5": mobilenet0_5, "mobilenet0.25": mobilenet0_25,
    "mobilenetv2_1.0": mobilenet_v2_1_0, "mobilenetv2_0.75": mobilenet_v2_0_75,
    "mobilenetv2_0.5": mobilenet_v2_0_5, "mobilenetv2_0.25": mobilenet_v2_0_25,
}


def get_model(name, **kwargs):
    """The model ``name`` (case-insensitive; see ``MODELS``), built by its family's
    constructor with ``kwargs`` (``classes``, ``pretrained``, ``ctx``, ``root``, ...)."""
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"Model {name} is not supported. Available options are\n\t"
                         + "\n\t".join(sorted(MODELS)))
    return MODELS[key](**kwargs)
