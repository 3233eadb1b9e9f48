"""Command line: ``fusioncim COMMAND ...`` (also ``python -m fusioncim``).

One module per command (``fusioncim/cli/<command>.py``), each with
``register(sub)``, which adds its parser and checks nothing yet, and
``run(args)``, which checks its own options and inputs before anything slow
starts. What several commands share is in ``common.py``.

User errors (bad config, bad file, bad arguments, data that does not fit:
``fusioncim.core.errors.InputError``) print one line ``fusioncim: error: ...`` on
stderr and exit with status 2; nothing is written to stdout or to output
files in that case. Any other exception is a bug: its traceback is printed
and the status is 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..core.errors import InputError
from . import (accuracy, area, cache, calibrate, config, demo, eval_model, explore, extract, generate, patterns, ports,
               regmap, report, simulate)
from .common import EXIT_USAGE

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = [accuracy, calibrate, eval_model, extract, config, generate, ports, regmap, simulate, report, area, patterns,
            explore, demo, cache]
"""The commands in the order ``fusioncim --help`` lists them."""


def build_parser():
    p = argparse.ArgumentParser(prog="fusioncim", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"fusioncim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    # Each command's --help opens with the line the top-level list shows for it.
    for action in sub._choices_actions:
        sub.choices[action.dest].description = action.help
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        # Bad parameters, files or data (fusioncim/core/errors.py); any other
        # exception is a bug and keeps its traceback (exit 1).
        print(f"fusioncim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("fusioncim: interrupted", file=sys.stderr)
        return 130
