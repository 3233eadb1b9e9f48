"""``fusioncim explore``: sweep config parameters: energy/op, utilisation, accuracy and area, with plots; resumable."""

from __future__ import annotations

from pathlib import Path

from ..core import config as config_mod
from ..core import configfile
from .common import UserError, output_path, finish_parser, print_json


def register(sub):
    x = sub.add_parser("explore", help="sweep config parameters: energy/op, utilisation, accuracy and area, "
                                       "with plots; resumable")
    x.add_argument("--sweep", action="append", metavar="KEY=V1,V2,...",
                   help=f"a config field and its values (repeatable; the grid is every combination; default: "
                        f"{' '.join(DEFAULT_SWEEP)})")
    x.add_argument("--workload", default="llama3-8b-prefill-2048",
                   help="workload for energy, cycles and the area's head_dim (default llama3-8b-prefill-2048)")
    x.add_argument("--accuracy-file", type=Path, metavar="FILE.npz",
                   help="real attention for the accuracy figures (default fusioncim/data/real/smollm2-L12-T256.npz)")
    x.add_argument("--out", type=Path, default=Path("explore-out"),
                   help="folder for results.jsonl and the plots (default explore-out); finished points are kept")
    x.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    x.add_argument("--dask", metavar="local:N|tcp://HOST:PORT",
                   help="run the points on Dask: local:N starts N worker processes here; tcp://HOST:PORT joins a "
                        "running scheduler, e.g. on a SLURM or LSF farm through dask-jobqueue (needs the cluster "
                        "extra; docs/energy.md)")
    x.add_argument("--patterns", type=Path, nargs="+", metavar="FILE",
                   help="score-pattern rates for every point: .npz attention files (measured at each point) or one "
                        ".json rates file from `fusioncim patterns --out` (default: the stored rates when every "
                        "point has them for the workload's length, else measured on the shipped 256-token files)")
    x.add_argument("--no-area", action="store_true", help="skip Yosys (no Pareto plot); much faster")
    x.add_argument("--area-head-dim", type=int, metavar="D",
                   help="synthesise the blocks at head_dim D instead of the workload's (a quick study: minutes at "
                        "d = 16 where d = 128 takes an hour)")
    x.add_argument("--json", action="store_true", help="print the records as one JSON document")
    finish_parser(x, run)


DEFAULT_SWEEP = ["rows=8,16", "fine_lut_bits=5,6,7", "skip_threshold=6,10,none"]


def run(args):
    from ..accuracy import attnfile
    from ..perf import dataflow, executors, explore, report
    configfile.load(args.config, args.set)           # a bad base config fails here, before anything runs
    sweeps = explore.parse_sweeps(args.sweep or DEFAULT_SWEEP)
    for sets in explore.grid(sweeps):
        try:
            configfile.load(args.config, args.set + sets)
        except config_mod.ConfigError as exc:
            raise UserError(f"--sweep point {', '.join(sets)}: {str(exc).removeprefix('--set: ')}") from None
    if args.workload not in dataflow.WORKLOADS:
        raise UserError(f"--workload {args.workload!r} is not one of: {', '.join(dataflow.WORKLOADS)}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be a positive integer, not {args.jobs}")
    if args.dask is not None:
        executors.parse_dask(args.dask)
    if args.area_head_dim is not None and args.area_head_dim < 1:
        raise UserError(f"--area-head-dim must be a positive integer, not {args.area_head_dim}")
    acc = args.accuracy_file or report.REAL / "smollm2-L12-T256.npz"
    attnfile.load(acc)                               # a bad file fails before the sweep starts
    output_path("--out", args.out, folder=True)
    base = args.config
    if args.set:
        # The base overrides go in front of each point's.
        sweeps = {**{k: [v] for k, _, v in (s.partition("=") for s in args.set)}, **sweeps}
    errors = [(sets, explore.point_error(base, sets, args.workload)) for sets in explore.grid(sweeps)]
    if all(why for _, why in errors):
        sets, why = errors[0]
        raise UserError(f"no point of the sweep can make an engine for {args.workload} (e.g. "
                        f"{', '.join(sets) or 'the base config'}: {why})")
    for f in args.patterns or []:
        if not f.is_file():
            raise UserError(f"--patterns file {str(f)!r} does not exist")
    if args.patterns:
        for sets in explore.grid(sweeps):        # a rates file must fit every point, checked before anything runs
            if explore.point_error(base, sets, args.workload) is None:
                report.check_rates_file(configfile.load(base, sets), args.patterns)
    records, _ = explore.run(base, sweeps, args.out, workload=args.workload, accuracy_file=acc,
                             area=not args.no_area, jobs=args.jobs, progress=not args.quiet, patterns=args.patterns,
                             dask=args.dask, area_head_dim=args.area_head_dim)
    if args.json:
        print_json(records)
        return 0
    print(explore.rates_heading(records, sweeps, base, args.workload))
    print(f"{'point':<48} {'pJ/op':>7} {'TOPS/W':>7} {'E vs base':>9} {'speed':>6} {'util@2k':>7} "
          f"{'relL2 med':>9} {'logic mm²':>10}")
    for r in records:
        label = ", ".join(r["sets"])[:48] or "base"
        if "error" in r:
            print(f"{label:<48} not buildable: {r['error']}")
            continue
        if "failed" in r:
            print(f"{label:<48} FAILED: {r['failed']} (runs again when the sweep is run again)")
            continue
        tr = f"{r['area_mm2']:.3f}" if "area_mm2" in r else "-"
        print(f"{label:<48} {r['pj_per_op']:>7.3f} {r['tops_w']:>7.2f} {r['energy_ratio']:>8.2f}x "
              f"{r['speed_ratio']:>5.2f}x {100 * r['utilisation']['2048']:>6.1f}% {100 * r['rel_l2_median']:>8.2f}% "
              f"{tr:>10}")
    for name in ("pareto.png", "utilisation.png", "accuracy.png"):
        if (args.out / name).exists():
            print(args.out / name)
    return 0
