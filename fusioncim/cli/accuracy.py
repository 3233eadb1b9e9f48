"""``fusioncim accuracy``: engine numerics vs float64 on attention .npz files."""

from __future__ import annotations

import time
from pathlib import Path

from ..core import configfile
from .common import (check_head_dim, check_per_key_config, UserError, progress, output_path, calibration_for,
                     finish_parser, add_front_end_args, print_json, quant_mode)


def register(sub):
    a = sub.add_parser("accuracy", help="engine numerics vs float64 on attention .npz files")
    a.add_argument("files", nargs="+", metavar="FILE.npz")
    a.add_argument("--json", action="store_true", help="print one JSON document (a list of per-head records; with "
                                                       "--per-layer, {heads, layers})")
    a.add_argument("--summary", action="store_true", help="print the summary only, not every head")
    a.add_argument("--per-layer", action="store_true", help="a table of each layer's median and worst head")
    a.add_argument("--plot", type=Path, metavar="FILE.png|svg",
                   help="plot each layer's median and worst head (PNG, SVG or PDF by the suffix)")
    add_front_end_args(a, both=True)
    finish_parser(a, run)


def _calibrated_stats(args, atts, modes):
    """Each file's calibrated statistics: static scales need them; the per-key mode takes them when the model
    has a calibration (its K centre and V shape) and runs without otherwise."""
    if "static" not in modes and "per-key" not in modes:
        return {}
    need = "static" in modes
    stats, cals = {}, {}
    for name, att in atts:
        if not att.model or att.layer is None:
            if need:
                raise UserError(f"{name}: the file does not name its model and layer, which static scales need; "
                                f"extract it again with `fusioncim extract`")
            continue
        if att.model not in cals:
            cals[att.model] = calibration_for(args.calibration, att.model, required=need)
        cal = cals[att.model]
        if cal is not None:
            cal.check(att.model, None, att.heads, att.kv_heads, att.head_dim, where=f"for {name}")
            stats[name] = cal.layer(att.layer, where=f"for {name}")
    return stats


def run(args):
    from ..accuracy import heads as accuracy, attnfile
    cfg = configfile.load(args.config, args.set)
    say = progress(args.quiet)
    if args.plot:
        output_path("--plot", args.plot)
        if args.plot.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise UserError(f"--plot {str(args.plot)!r}: the name must end in .png, .svg or .pdf")
    # Read and validate every file (and the calibration it needs) before computing or printing anything.
    quant = quant_mode(args, cfg, both=True)
    modes = {"both": ("dynamic", "static"), "all": ("per-key", "dynamic", "static")}.get(quant, (quant,))
    if args.calibration and modes == ("dynamic",):
        raise UserError("--calibration gives static scales and the per-key mode's K centre and V shape; it does "
                        "not apply with --quant dynamic")
    atts = [(str(p), attnfile.load(p)) for p in args.files]
    for name, att in atts:          # head_dim comes from each file, as in simulate: an explicit one must agree
        check_head_dim(args.set, name, have=att.head_dim)
    if "per-key" in modes:
        check_per_key_config(cfg)
    stats = _calibrated_stats(args, atts, modes)
    records = []
    t0 = time.perf_counter()
    for i, (name, att) in enumerate(atts, 1):
        say(f"[{i}/{len(atts)}] {name}: {att.heads} heads, {att.k.shape[1]} keys, d={att.head_dim}")
        for mode in modes:
            records += accuracy.evaluate(att, cfg, name=name, rotate=not args.no_rotate, v_anchor=args.v_anchor,
                                         stats=stats.get(name) if mode != "dynamic" else None,
                                         per_key=mode == "per-key")
    say(f"done in {time.perf_counter() - t0:.1f} s")
    layers = accuracy.per_layer(records)
    if args.plot:
        accuracy.plot_per_layer(layers, args.plot)
        say(f"wrote {args.plot}")
    if args.json:
        print_json({"heads": records, "layers": layers} if args.per_layer else records)
        return 0
    if not args.summary:
        print(accuracy.format_table(records))
        print()
    if args.per_layer:
        print(accuracy.format_per_layer(layers))
        print()
    for mode in modes:
        rs = [r for r in records if r["quant"] == mode]
        print(accuracy.format_summary(accuracy.summarise(rs), label=f"{len(atts)} file(s), {mode} scales, "))
    return 0
