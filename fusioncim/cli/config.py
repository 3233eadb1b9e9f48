"""``fusioncim config``: print a config as TOML that --config reads back, with its derived widths as comments."""

from __future__ import annotations


from ..core import config as config_mod
from ..core import configfile
from .common import finish_parser, print_json


def register(sub):
    c = sub.add_parser("config", help="print a config as TOML that --config reads back, with its derived "
                                      "widths as comments")
    c.add_argument("--json", action="store_true", help='print one JSON document: {"fields": ..., "derived": ...} '
                                                       '(null for a field that is none)')
    finish_parser(c, run)


# Figures of the hardware's structure (fusioncim/core/schedule.py, which imports Amaranth: loaded only
# by the config command, not at every start), printed beside the widths.
SCHEDULE = {"div_cycles": "norm_group_cycles", "softmax_latency": "softmax_latency"}


def run(args):
    from ..core import schedule
    cfg = configfile.load(args.config, args.set)
    doc = {"fields": cfg.to_dict(), "derived": {**{k: getattr(cfg, k) for k in config_mod.DERIVED},
                                                **{k: getattr(schedule, f)(cfg) for k, f in SCHEDULE.items()}}}
    if args.json:
        print_json(doc)
    else:
        print(configfile.to_toml(cfg, doc["derived"]), end="")
    return 0
