"""``symgraph export-onnx PREFIX EPOCH --shape data=1,3,224,224 -o model.onnx``."""

from __future__ import annotations

import os

from runtime.cli.common import add_shape_arg, check_shapes, load_symbol, shape_dict


def _export_args(p):
    p.add_argument("prefix", help="checkpoint prefix (reads PREFIX-symbol.json)")
    p.add_argument("epoch", type=int, help="reads PREFIX-%%04d.params")
    add_shape_arg(p, required=True)
    p.add_argument("-o", "--output", default="model.onnx", help="the ONNX file to write")
    p.add_argument("--dynamic", action="store_true", help="make the batch axis symbolic")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: the newest onnx and onnxruntime both support)")
    p.add_argument("--dtype", default="float32", help="input dtype (default float32)")


def _export(args):
    from runtime.onnx import export_model

    params = f"{args.prefix}-{args.epoch:04d}.params"
    if not os.path.isfile(params):
        raise FileNotFoundError(f"no such params file: {params}")
    symbol = load_symbol(f"{args.prefix}-symbol.json")
    shapes = shape_dict(args.shape)
    check_shapes(symbol, shapes)
    path = export_model(symbol, params, in_shapes=shapes, in_types=args.dtype,
                        onnx_file_path=args.output, dynamic=args.dynamic,
                        opset_version=args.opset)
    print(f"wrote {path}")


COMMANDS = {
    "export-onnx": (_export_args, _export, "export a checkpoint to ONNX (mx.onnx.export_model)"),
}
