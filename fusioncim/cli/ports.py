"""``fusioncim ports``: every port of a block's Verilog with direction and width, and each stream payload's fields with bit offsets (from the hardware's own layouts)."""

from __future__ import annotations


from .common import block_config, finish_parser, add_block_args, print_json


def register(sub):
    po = sub.add_parser("ports", help="every port of a block's Verilog with direction and width, and each "
                                      "stream payload's fields with bit offsets (from the hardware's own layouts)")
    add_block_args(po)
    fmt = po.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="the tables docs/ carries")
    fmt.add_argument("--json", action="store_true", help='one JSON document: {"block", "config", "ports": '
                                                         '[{name, direction, width, description, fields}]}')
    finish_parser(po, run)


def run(args):
    from ..ip import ports
    cfg = block_config(args)
    if args.json:
        print_json(ports.to_json(args.block, cfg))
    else:
        print((ports.markdown if args.markdown else ports.text)(args.block, cfg), end="")
    return 0
