"""Inspection commands: plot, summary, inspect (.params), ir (graph / loop IR / LLVM IR),
cache (compile cache info / clear)."""

from __future__ import annotations

import os

import numpy as np

from codegen.limits import format_bytes
from runtime.cli.common import add_shape_arg, check_shapes, load_symbol, shape_dict


# ---- plot ------------------------------------------------------------------------------
def _plot_args(p):
    p.add_argument("symbol", help="MODEL-symbol.json")
    add_shape_arg(p)
    p.add_argument("-o", "--output", required=True,
                   help="output file; the format comes from the extension (svg, png, pdf)")
    p.add_argument("--title", default="plot")
    p.add_argument("--show-weights", action="store_true", help="draw weight/bias inputs too")


def _plot(args):
    from runtime import viz

    symbol = load_symbol(args.symbol)
    shapes = shape_dict(args.shape)
    check_shapes(symbol, shapes)
    stem, ext = os.path.splitext(args.output)
    if not ext:
        raise ValueError(f"-o {args.output!r}: give an extension (.svg, .png, .pdf)")
    dot = viz.plot_network(symbol, title=args.title, save_format=ext[1:].lower(),
                           shape=shapes or None, hide_weights=not args.show_weights)
    dot.render(filename=os.path.basename(stem), directory=os.path.dirname(stem) or ".",
               cleanup=True, quiet=True)
    print(f"wrote {args.output}")


# ---- summary ---------------------------------------------------------------------------
def _summary_args(p):
    p.add_argument("symbol", help="MODEL-symbol.json")
    add_shape_arg(p)
    p.add_argument("--line-length", type=int, default=120)


def _summary(args):
    from runtime import viz

    symbol = load_symbol(args.symbol)
    shapes = shape_dict(args.shape)
    check_shapes(symbol, shapes)
    viz.print_summary(symbol, shape=shapes or None, line_length=args.line_length)


# ---- inspect ---------------------------------------------------------------------------
def _inspect_args(p):
    p.add_argument("params", help="a .params / NDArray list file (MXNet binary format)")


def _inspect(args):
    from runtime import ndarray_io

    data = ndarray_io.load(args.params, "params file")
    items = data.items() if isinstance(data, dict) else (
        (f"[{i}]", a) for i, a in enumerate(data))
    rows = [(name, "x".join(map(str, np.shape(a))) or "()", np.asarray(a).dtype.name,
             int(np.size(a)), int(np.asarray(a).nbytes)) for name, a in items]
    width = max([len(r[0]) for r in rows] + [4])
    print(f"{'name':<{width}}  {'shape':<16} {'dtype':<8} {'size':>10} {'bytes':>12}")
    for name, shape, dtype, size, nbytes in rows:
        print(f"{name:<{width}}  {shape:<16} {dtype:<8} {size:>10} {nbytes:>12}")
    total = sum(r[3] for r in rows)
    nbytes = sum(r[4] for r in rows)
    print(f"{len(rows)} arrays, total {total} elements, {nbytes} bytes ({format_bytes(nbytes)})")


# ---- ir --------------------------------------------------------------------------------
def _ir_args(p):
    p.add_argument("symbol", help="MODEL-symbol.json")
    add_shape_arg(p, required=True)
    p.add_argument("--grad", action="store_true", help="include the gradient graph")
    p.add_argument("--stage", choices=("graph", "loop", "llvm"), default="graph",
                   help="optimized graph (default), loop IR of every kernel, or LLVM IR")


def _ir(args):
    from codegen.program import _all_kernels, build_module

    symbol = load_symbol(args.symbol)
    shapes = shape_dict(args.shape)
    check_shapes(symbol, shapes)
    exe = symbol.simple_bind(grad_req="write" if args.grad else "null", **shapes)
    compiled = exe.compiled.full()  # a result read from the cache keeps no kernels' IR
    program = compiled.program.program
    if args.stage == "graph":
        print(compiled.graph_text)
    elif args.stage == "loop":
        print("\n\n".join(_dump_kernel(k) for k in _all_kernels(program)))
    else:
        print(build_module(program, symbol.name or "graph"))


def _dump_kernel(kernel) -> str:
    dump = getattr(kernel, "dump", None)
    return dump() if dump else f"; {kernel.name}: {type(kernel).__name__} (generated)"


# ---- cache -----------------------------------------------------------------------------
def _cache_args(p):
    p.add_argument("action", choices=("info", "clear"),
                   help="info: folder, entries, size and limit; clear: remove every entry")


def _cache(args):
    from codegen import cache

    if args.action == "clear":
        count, nbytes = cache.clear()
        print(f"removed {count} entries ({format_bytes(nbytes)}) from {cache.cache_dir()}")
        return
    facts = cache.info()
    print(f"compile cache: {facts['directory']}")
    kinds = facts["kinds"]
    print(f"  {facts['entries']} entries ({kinds['object']} object code, {kinds['result']} "
          f"compile results), {format_bytes(facts['bytes'])} "
          f"(limit {format_bytes(facts['max_bytes'])}; set SYMGRAPH_CACHE_MAX_BYTES to change)")


COMMANDS = {
    "plot": (_plot_args, _plot, "draw a symbol JSON as a graph (mx.viz.plot_network)"),
    "summary": (_summary_args, _summary, "print the layer table (mx.viz.print_summary)"),
    "inspect": (_inspect_args, _inspect, "list the arrays of a .params file"),
    "ir": (_ir_args, _ir, "print the optimized graph, loop IR or LLVM IR of a symbol"),
    "cache": (_cache_args, _cache, "show or clear the compile cache (SYMGRAPH_CACHE_DIR)"),
}
