"""The ``symgraph`` command: plot, summary, inspect, ir, fit, predict, score, launch.

Exit codes: 0 ok, 2 usage error (argparse), 1 any other failure. A failure prints ONE line
``symgraph: error: ...`` because users pipe this into scripts and CI logs; ``--debug``
re-raises so developers still get the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from runtime.cli import commands as cli_commands
from runtime.cli import launch as cli_launch
from runtime.cli import onnx as cli_onnx
from runtime.cli import train as cli_train


class CliError(Exception):
    """A user-facing failure with a complete message (no traceback wanted)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line (exit status 2 as usual)."""

    def error(self, message):
        self.exit(2, f"symgraph: error: {message} (see '{self.prog} --help')\n")


def _add_debug(parser):
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symgraph", description="symgraph: MXNet-1.x-style symbolic graphs "
                     "compiled to native code. Run 'symgraph COMMAND --help' for details.")
    _add_debug(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in (cli_commands, cli_train, cli_onnx, cli_launch):
        for name, (add_args, run, text) in module.COMMANDS.items():
            cmd = sub.add_parser(name, help=text, description=text)
            add_args(cmd)
            _add_debug(cmd)
            cmd.set_defaults(run=run)
    return parser


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if isinstance(err, KeyError) and err.args:
        text = f"not found: {err.args[0]}"
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.strerror or err}: {err.filename}"
    return " ".join(text.split())


def main(argv=None) -> int:
    """Run one command; return the exit status instead of exiting (testable)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # `symgraph ir ... | head`: the reader left, not our failure
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the exit-time flush
        return 0
    except KeyboardInterrupt:
        print("symgraph: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI's single error boundary
        if args.debug:
            raise
        print(f"symgraph: error: {_one_line(err)}", file=sys.stderr)
        return 1

