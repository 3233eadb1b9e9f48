"""``fusioncim cache``: what the cache folder holds, by kind, and cleaning it (all, or what is older than N days)."""

from __future__ import annotations

import time

from ..core import cache
from ..core.files import cache_root
from .common import UserError, finish_parser, print_json


def register(sub):
    c = sub.add_parser("cache", help="show the cache folder's size by kind (Verilog, simulator builds, area, "
                                     "ccache, demo), or clean it: all, or entries unused for N days")
    c.add_argument("action", nargs="?", choices=("show", "clean"), default="show",
                   help="show (the default): entries, size and last use per kind; clean: remove entries")
    c.add_argument("--all", action="store_true", help="clean: every entry of the kinds chosen")
    c.add_argument("--older-than", type=float, metavar="DAYS",
                   help="clean: entries last used more than DAYS days ago (0.5 is twelve hours)")
    c.add_argument("--kind", action="append", choices=tuple(cache.KINDS), metavar="KIND",
                   help=f"clean only this kind (repeatable): {', '.join(cache.KINDS)} (default: all kinds)")
    c.add_argument("--json", action="store_true", help="show: one JSON document (bytes, times in seconds since "
                                                       "the epoch); clean: what was removed")
    finish_parser(c, run, config=False)


def run(args):
    limit = cache.limit_bytes()                  # a bad FUSIONCIM_CACHE_LIMIT_GB: one line, before anything
    root = cache_root()
    if root.exists() and not root.is_dir():
        raise UserError(f"the cache folder {str(root)!r} is not a folder; set FUSIONCIM_CACHE to one")
    if args.action == "show":
        if args.all or args.older_than is not None or args.kind:
            raise UserError("--all, --older-than and --kind go with `fusioncim cache clean`")
        return _show(root, limit, args.json)
    if args.all == (args.older_than is not None):
        raise UserError("cache clean needs exactly one of --all or --older-than DAYS")
    removed, freed, skipped = cache.clean(args.kind, None if args.all else args.older_than)
    if args.json:
        print_json({"removed": removed, "bytes_freed": freed, "skipped_in_use": skipped})
        return 0
    what = ", ".join(args.kind) if args.kind else "all kinds"
    print(f"removed {removed} entries ({_size(freed)}) from {root} ({what}"
          + (f", last used more than {args.older_than:g} days ago" if args.older_than is not None else "") + ")")
    if skipped:
        print(f"left {skipped} simulator builds another process is using")
    return 0


def _show(root, limit, as_json):
    use = cache.usage()
    total = sum(u["bytes"] for u in use.values())
    if as_json:
        print_json({"root": str(root), "limit_bytes": limit, "total_bytes": total, "kinds": use})
        return 0
    print(f"cache folder {root} (FUSIONCIM_CACHE): {_size(total)} in all; size cap "
          + (f"{_size(limit)} (FUSIONCIM_CACHE_LIMIT_GB)" if limit else "off (FUSIONCIM_CACHE_LIMIT_GB=0)"))
    print(f"  {'kind':8} {'entries':>7} {'size':>9}  {'last used':>12}  holds")
    now = time.time()
    for kind, u in use.items():
        last = "-" if u["newest"] is None else _age(now - u["newest"])
        print(f"  {kind:8} {u['entries']:7d} {_size(u['bytes']):>9}  {last:>12}  {cache.KINDS[kind]}")
    print("`fusioncim cache clean --older-than DAYS` or `--all` removes entries; each is made again when needed")
    return 0


def _size(n):
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _age(seconds):
    for unit, div in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= div:
            return f"{seconds / div:.1f} {unit} ago"
    return "just now"
