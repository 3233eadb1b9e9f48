"""Command line: ``fusioncim COMMAND ...`` (also ``python -m fusioncim``).

User errors (bad config, bad file, bad arguments, data that does not fit:
``fusioncim.core.errors.InputError``) print one line ``fusioncim: error: ...`` on
stderr and exit with status 2; nothing is written to stdout or to output
files in that case. Any other exception is a bug: its traceback is printed
and the status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..core import config as config_mod
from ..core.errors import InputError

EXIT_USAGE = 2


class UserError(InputError):
    """A bad command-line argument; reported in one line, exit status 2."""


def _progress(quiet):
    def say(msg):
        if not quiet:
            print(msg, file=sys.stderr, flush=True)
    return say


# -- accuracy --------------------------------------------------------------

def _calibration(path, model):
    """The calibration file ``path``, or the one shipped for ``model``; one line if neither exists."""
    from ..accuracy import calibration
    if path is None:
        path = calibration.shipped(model)
        if path is None:
            raise UserError(f"no calibration shipped for model {model!r}; give --calibration FILE "
                            f"(made by `fusioncim calibrate {model} --text FILE --out FILE`)")
    return calibration.load(path)


def cmd_accuracy(args):
    from ..accuracy import heads as accuracy, attnfile
    cfg = config_mod.load(args.config, args.set)
    say = _progress(args.quiet)
    if args.plot:
        _output_path("--plot", args.plot)
        if args.plot.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise UserError(f"--plot {str(args.plot)!r}: the name must end in .png, .svg or .pdf")
    # Read and validate every file (and the calibration it needs) before computing or printing anything.
    modes = ("dynamic", "static") if args.quant == "both" else (args.quant,)
    if args.calibration and "static" not in modes:
        raise UserError("--calibration gives static scales; add --quant static or --quant both")
    atts = [(str(p), attnfile.load(p)) for p in args.files]
    stats = {}
    if "static" in modes:
        cals = {}
        for name, att in atts:
            if not att.model or att.layer is None:
                raise UserError(f"{name}: the file does not name its model and layer, which static scales need; "
                                f"extract it again with `fusioncim extract`")
            if att.model not in cals:
                cals[att.model] = _calibration(args.calibration, att.model)
            cal = cals[att.model]
            cal.check(att.model, None, att.heads, att.kv_heads, att.head_dim, where=f"for {name}")
            stats[name] = cal.layer(att.layer, where=f"for {name}")
    records = []
    t0 = time.perf_counter()
    for i, (name, att) in enumerate(atts, 1):
        say(f"[{i}/{len(atts)}] {name}: {att.heads} heads, {att.k.shape[1]} keys, d={att.head_dim}")
        for mode in modes:
            records += accuracy.evaluate(att, cfg, name=name, rotate=not args.no_rotate, v_anchor=args.v_anchor,
                                         stats=stats[name] if mode == "static" else None)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    layers = accuracy.per_layer(records)
    if args.plot:
        accuracy.plot_per_layer(layers, args.plot)
        say(f"wrote {args.plot}")
    if args.json:
        json.dump({"heads": records, "layers": layers} if args.per_layer else records, sys.stdout, indent=1)
        print()
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


def cmd_calibrate(args):
    from ..accuracy import calibration
    say = _progress(args.quiet)
    if args.tokens < 1:
        raise UserError(f"--tokens must be a positive integer, not {args.tokens}")
    if args.window < 2:
        raise UserError(f"--window must be at least 2 tokens, not {args.window}")
    calibration.check_headroom(args.headroom)
    _output_path("--out", args.out)
    t0 = time.perf_counter()

    def progress(i, n):
        if not args.quiet:
            print(f"\r{args.model}: window {i}/{n}", end="" if i < n else "\n", file=sys.stderr, flush=True)
    cal = calibration.calibrate(args.model, args.text, tokens=args.tokens, window=args.window,
                                headroom=args.headroom, progress=progress, quiet=args.quiet)
    calibration.save(args.out, cal)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    print(f"{args.out}: {args.model}, {len(cal.layers)} layers, {cal.heads} query heads, {cal.kv_heads} KV heads, "
          f"head_dim {cal.head_dim}; {cal.source}; headroom {cal.headroom}")
    return 0


def cmd_eval_model(args):
    from ..accuracy import evalmodel
    cfg = config_mod.load(args.config, args.set)
    say = _progress(args.quiet)
    if args.tokens is not None and args.tokens < 2:
        raise UserError(f"--tokens must be at least 2 (one prediction needs two tokens), not {args.tokens}")
    if args.calibration and args.quant != "static":
        raise UserError("--calibration gives static scales; it does not apply with --quant dynamic")
    cal = _calibration(args.calibration, args.model) if args.quant == "static" else None
    if cal is not None:
        cal.check(args.model, None, None, None, None)     # the model now; its shape once it is loaded
    texts = args.text or list(evalmodel.TEXTS)
    t0 = time.perf_counter()
    records, source = evalmodel.evaluate(args.model, texts, cfg, tokens=args.tokens, quant_mode=args.quant,
                                         cal=cal, rotate=not args.no_rotate, v_anchor=args.v_anchor, quiet=args.quiet)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    if args.json:
        json.dump({"source": source, "texts": records, "mean": evalmodel.summary(records)}, sys.stdout, indent=1)
        print()
    else:
        print(evalmodel.format_table(records, source))
    return 0


# -- extract ---------------------------------------------------------------

def cmd_extract(args):
    from ..accuracy import extract
    say = _progress(args.quiet)
    layers = None
    if args.layers:
        try:
            layers = [int(x) for x in args.layers.split(",")]
        except ValueError:
            raise UserError(f"--layers must be comma-separated integers, not {args.layers!r}") from None
    if args.tokens < 1:
        raise UserError(f"--tokens must be a positive integer, not {args.tokens}")
    _output_path("--out", args.out, folder=True)
    paths = extract.extract(args.model, args.out, tokens=args.tokens, layers=layers, progress=say, text=args.text,
                            dtype=np.dtype(args.dtype))
    for p in paths:
        print(p)
    return 0


# -- config ----------------------------------------------------------------

# Figures of the hardware's structure (fusioncim/core/schedule.py, which imports Amaranth: loaded only
# by the config command, not at every start), printed beside the widths.
SCHEDULE = {"div_cycles": "norm_group_cycles", "softmax_latency": "softmax_latency"}


def cmd_config(args):
    from ..core import schedule
    cfg = config_mod.load(args.config, args.set)
    doc = {"fields": cfg.to_dict(), "derived": {**{k: getattr(cfg, k) for k in config_mod.DERIVED},
                                                **{k: getattr(schedule, f)(cfg) for k, f in SCHEDULE.items()}}}
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        print(config_mod.to_toml(cfg, doc["derived"]), end="")
    return 0


# -- generate --------------------------------------------------------------

def cmd_generate(args):
    from ..ip import generate
    from ..sim import verilator
    from ..core.files import atomic_write
    cfg = _block_config(args)
    if args.fusesoc is not None:
        return _generate_core(args, cfg)
    out = _output_path("--out", args.out or Path(f"{args.block}{'-flat' if args.flat else ''}.v"))
    _require_cache()
    vlt = out.with_suffix(".vlt")
    if vlt == out:
        raise UserError(f"--out {str(out)!r}: the Verilog file cannot end in .vlt (the waiver file's name)")
    try:
        generate.write_verilog(args.block, cfg, out, flat=args.flat)
        # Beside the Verilog: its Verilator waivers, so `verilator --lint-only -Wall X.v X.vlt` is clean.
        atomic_write(vlt, lambda f: f.write(verilator.waiver_text()))
    except OSError as exc:
        out.unlink(missing_ok=True)
        raise _write_error("--out", out, exc) from None
    print(out)
    print(vlt)
    return 0


def _block_config(args):
    """The block (``--bus axi`` names the AXI top) and its config, checked for an engine."""
    from ..ip import generate
    _bus(args)
    cfg = config_mod.load(args.config, args.set)
    if args.block in generate.ENGINES:
        cfg.check_engine()
    return cfg


def _bus(args):
    """The block ``--bus axi`` names: the engine behind AXI4-Stream/AXI4-Lite (``engine_axi``)."""
    if getattr(args, "bus", "none") == "axi":
        if args.block not in ("engine", "engine_axi"):
            raise UserError(f"--bus axi wraps the engine, not {args.block!r}: use it with `engine`")
        args.block = "engine_axi"
    if args.block == "engine_axi" and getattr(args, "flat", False):
        raise UserError("--flat is not available for the AXI top (engine_axi); generate engine --flat instead")
    return args.block


def _generate_core(args, cfg):
    from ..ip import fusesoc, generate
    from ..sim import verilator
    if args.out is not None:
        raise UserError("--out and --fusesoc cannot be used together: --fusesoc DIR names the files itself")
    folder = _output_path("--fusesoc", args.fusesoc, folder=True)
    _require_cache()
    try:
        written = fusesoc.write_core(folder, args.block, cfg, generate.verilog_text(args.block, cfg, flat=args.flat),
                                     verilator.waiver_text())
    except OSError as exc:
        raise _write_error("--fusesoc", folder, exc) from None
    for path in written:
        print(path)
    print(f"fusesoc --cores-root {folder} run --target lint {fusesoc.core_name(args.block)}")
    return 0


def cmd_ports(args):
    from ..ip import ports
    cfg = _block_config(args)
    if args.json:
        json.dump(ports.to_json(args.block, cfg), sys.stdout, indent=1)
        print()
    else:
        print((ports.markdown if args.markdown else ports.text)(args.block, cfg), end="")
    return 0


def cmd_regmap(args):
    from ..hw import regmap
    cfg = config_mod.load(args.config, args.set)
    cfg.check_engine()
    outputs = {"--rdl": args.rdl, "--c": args.c, "--html": args.html}
    for option, path in outputs.items():
        if path is not None:
            _output_path(option, path, folder=option == "--html")
    if not any(outputs.values()):
        print(regmap.markdown(cfg), end="")
        return 0
    try:
        written = regmap.write_outputs(cfg, rdl_path=args.rdl, c_path=args.c, html_dir=args.html)
    except OSError as exc:
        raise UserError(f"the register map outputs cannot be written ({exc.strerror or exc})") from None
    for path in written:
        print(path)
    return 0


def _output_path(option, path, *, folder=False):
    """Check an output path before anything runs: one line naming the option and the rule, exit 2.

    A file must not be a folder, and its folder must exist and be writable (nothing is created for
    it); a ``folder`` output may be created, but only inside a folder that exists."""
    path = Path(path)
    if not folder and path.is_dir():
        raise UserError(f"{option} {str(path)!r} is a folder; name a file")
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{option} {str(path)!r} exists and is not a folder")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise UserError(f"{option} {str(path)!r}: the folder {str(parent)!r} does not exist (it is not created)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {str(path)!r}: the folder {str(parent)!r} cannot be written")
    return path


def _write_error(option, path, exc):
    """An OSError while writing an output, as one line."""
    return UserError(f"{option} {str(path)!r} cannot be written ({exc.strerror or exc})")


def _require_cache():
    """Fail with one line (exit 2) when the cache folder cannot be written; nothing is created elsewhere."""
    from ..core.files import cache_root
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"the cache folder {str(root)!r} cannot be written ({exc.strerror}); "
                        "set FUSIONCIM_CACHE to a writable folder") from None


# -- simulate ----------------------------------------------------------------

def _int_list(name, text):
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"{name} must be comma-separated integers, not {text!r}") from None
    return vals


def cmd_simulate(args):
    from ..sim import simulate, workload
    cfg = config_mod.load(args.config, args.set)
    say = _progress(args.quiet)
    for name in ("heads", "kv_heads", "queries", "keys"):
        v = getattr(args, name)
        if v is not None and name != "heads" and v < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, not {v}")
    if not 0 <= args.stall < 1:
        raise UserError(f"--stall must be a probability in [0, 1), not {args.stall}")
    if args.path == "native" and (args.sim != "verilator" or args.waves is not None):
        raise UserError("--path native runs Verilator without a trace: it takes neither --sim icarus nor --waves")
    if args.waves is not None:
        # Each simulator writes one format: Verilator VCD, Icarus FST (cocotb's runner); the suffix must say it.
        suffix = {"verilator": ".vcd", "icarus": ".fst"}[args.sim]
        if args.waves.suffix != suffix:
            raise UserError(f"--waves {str(args.waves)!r}: {args.sim} writes {suffix[1:].upper()} traces; name a "
                            f"{suffix} file (Verilator writes .vcd, Icarus .fst)")
        _output_path("--waves", args.waves)
    if args.npz:
        # A bad file fails in simulate(), before anything is built.
        for name in ("queries", "keys", "kv_heads"):
            if getattr(args, name) is not None:
                raise UserError(f"--{name.replace('_', '-')} sets random data; with --npz the file gives them "
                                f"(--tokens keeps its first N tokens, --heads picks its heads)")
        _check_head_dim(args.set, args.npz)
        spec = {"kind": "npz", "path": str(args.npz.resolve()), "heads": _int_list("--heads", args.heads or "0,1")}
        if args.tokens is not None:
            spec["tokens"] = args.tokens
    else:
        d = workload.RANDOM_DEFAULTS
        heads = int(args.heads) if args.heads else d["heads"]
        if heads < 1:
            raise UserError(f"--heads must be a positive integer, not {heads}")
        queries = args.queries or d["queries"]
        spec = {"kind": "random", "heads": heads, "kv_heads": args.kv_heads or d["kv_heads"], "queries": queries,
                "keys": args.keys or queries, "seed": args.seed}
        if heads % spec["kv_heads"]:
            raise UserError(f"--heads {heads} must be a multiple of --kv-heads {spec['kv_heads']}")
        if spec["queries"] > spec["keys"]:
            raise UserError(f"--queries {spec['queries']} cannot exceed --keys {spec['keys']}: the queries are "
                            f"the last tokens of the sequence")
    spec["mode"] = args.mode
    if args.positions is not None:
        spec["positions"] = args.positions
    if args.causal is not None:
        spec["causal"] = args.causal
    if args.stall:
        spec["stall"] = args.stall
    try:
        r = simulate.simulate(cfg, spec, sim=args.sim, waves=args.waves, progress=say, seed=args.seed, path=args.path)
    except RuntimeError as exc:
        print(f"fusioncim: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(r, sys.stdout, indent=1)
        print()
    else:
        print(simulate.format_result(r))
    return 0 if r["bit_exact"] else 1


def _check_head_dim(sets, npz):
    """An explicit ``--set head_dim=N`` that differs from the attention file's head_dim is an error."""
    from ..accuracy import attnfile
    wanted = [item.partition("=")[2].strip() for item in sets if item.partition("=")[0].strip() == "head_dim"]
    if wanted:
        have = attnfile.load(npz).head_dim
        if wanted[-1] != str(have):
            raise UserError(f"--set head_dim={wanted[-1]} conflicts with {str(npz)!r}, whose head_dim is {have}: "
                            f"the engine's head_dim comes from the file; drop --set head_dim")


# -- report ----------------------------------------------------------------

def _positive(name, value):
    if value is not None and not value > 0:
        raise UserError(f"{name} must be a positive number, not {value:g}")


def _buffer_size(name, text, scale):
    # "none": the working set always fits; else a positive integer (KiB or keys).
    if text is None or text == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"{name} must be a positive integer or none, not {text!r}")
    return value * scale


def _buffers(args, default):
    from ..perf.dataflow import Buffers
    return Buffers(
        kv_keys=_buffer_size("--kv-buffer", args.kv_buffer, 1) if args.kv_buffer is not None else default.kv_keys,
        sp_bytes=_buffer_size("--sp-buffer", args.sp_buffer, 1024) if args.sp_buffer is not None else default.sp_bytes,
        qo_bytes=_buffer_size("--qo-buffer", args.qo_buffer, 1024) if args.qo_buffer is not None else default.qo_bytes)


def cmd_report(args):
    from ..perf import dataflow, report
    from ..synth import energy
    cfg = config_mod.load(args.config, args.set)
    say = _progress(args.quiet)
    names = args.workload
    if not names:
        names, notes = report.default_workloads(cfg)
        for note in notes:
            print(f"fusioncim: note: {note}", file=sys.stderr)
    if names == ["all"]:
        names = list(dataflow.WORKLOADS)
    for n in names:
        if n not in dataflow.WORKLOADS:
            raise UserError(f"--workload {n!r} is not one of: all, {', '.join(dataflow.WORKLOADS)}")
    buffers = _buffers(args, report.DEFAULT_BUFFERS)
    _positive("--node", args.node)
    _positive("--vdd", args.vdd)
    try:
        table = energy.load_table(args.energy)
    except energy.EnergyTableError as exc:
        raise UserError(str(exc)) from None
    for f in args.patterns or []:
        if not f.is_file():
            raise UserError(f"--patterns file {str(f)!r} does not exist")
    if args.patterns:
        report.check_rates_file(cfg, args.patterns)
    results = []
    pats = {}
    for i, n in enumerate(names, 1):
        say(f"[{i}/{len(names)}] {n}")
        wl = dataflow.WORKLOADS[n]
        if wl.tokens not in pats:
            pats[wl.tokens] = report.patterns(cfg, args.patterns, tokens=wl.tokens)
        results.append(report.evaluate(cfg, wl, pats[wl.tokens], table=table, node_nm=args.node, vdd=args.vdd,
                                       buffers=buffers))
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    else:
        fmt = report.format_markdown if args.markdown else report.format_table
        print("\n\n".join(fmt(r) for r in results))
        print()
        print(_area_note(cfg))
    return 0


def _area_note(cfg):
    # The engine's area and clock if `fusioncim area engine` has synthesised this config; never synthesises.
    from ..synth import area
    r = area.cached_result("engine", cfg)
    if r is None:
        return ("Area and clock of this config: not synthesised yet; `fusioncim area engine` (with the same "
                "--config/--set) makes them, under a minute for the default config.")
    return (f"Area of this config's engine (cached from `fusioncim area engine`): {r['area_um2'] / 1e6:.3f} mm² of "
            f"logic at 45 nm plus {r['sram_um2'] / 1e6:.3f} mm² of KV SRAM (estimate); estimated clock "
            f"{r['clock_mhz']:,.0f} MHz.")


# -- area --------------------------------------------------------------------

def cmd_area(args):
    from ..synth import area
    cfg = _block_config(args)
    if args.liberty is not None and not args.liberty.is_file():
        raise UserError(f"--liberty {str(args.liberty)!r} is not a file")
    if args.liberty is not None:
        area.check_liberty(args.liberty)         # a library lacking a cell: one line, before anything runs
    _require_cache()
    say = _progress(args.quiet)
    say(f"synthesising {args.block} with Yosys (results cached in {area.cache_dir()}) ...")
    try:
        r = area.estimate(args.block, cfg, liberty=args.liberty, cache=not args.no_cache)
    except area.AreaError as exc:
        print(f"fusioncim: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(r, sys.stdout, indent=1)
        print()
        return 0
    for line in area_lines(args.block, r):
        print(line)
    return 0


def area_lines(block, r):
    """The area report of :func:`synth.area.estimate`'s result, as printed by ``fusioncim area`` and the demo."""
    lines = [f"{block}: {r['area_um2']:,.0f} µm² = {r['area_um2'] / 1e6:.3f} mm² of logic, mapped to {r['liberty']} "
             f"({sum(r['lib_cells'].values()):,} cells)",
             f"{block}: {r['transistors']:,}{'+' if r['lower_bound'] else ''} transistors "
             f"(Yosys stat -tech cmos; flip-flops excluded), {r['flip_flops']:,} flip-flops"]
    if r["sram_bits"]:
        lines.append(f"{block}: KV buffer {r['sram_bits']:,} bits of SRAM, estimated {r['sram_um2'] / 1e6:.3f} mm² "
                     f"(45 nm bit cell / array efficiency); total {(r['area_um2'] + r['sram_um2']) / 1e6:.3f} mm²")
    if r["clock_mhz"] is None:
        lines.append(f"{block}: no clock estimate: the liberty file gives no delays")
    else:
        lines.append(f"{block}: estimated clock {r['clock_mhz']:,.0f} MHz ({r['clock_ns']:.2f} ns: longest logic "
                     f"path {r['logic_ns']:.2f} ns in {r['critical_module']}, plus flip-flop clock-to-Q and setup)")
    cells = ", ".join(f"{m['instances']} x {name}" for name, m in sorted(r.get("modules", {}).items()))
    took = "result from the cache" if r["cached"] else f"{r['seconds']:.1f} s"
    lines.append(f"Yosys: {took}" + (f"; cells synthesised once each: {cells}" if cells else ""))
    return lines


# -- patterns ----------------------------------------------------------------

def cmd_patterns(args):
    from ..accuracy import attnfile
    from ..perf import report
    cfg = config_mod.load(args.config, args.set)
    say = _progress(args.quiet)
    lengths = {}
    for f in args.files:
        lengths[str(f)] = attnfile.load(f).k.shape[1]     # a bad file fails here, before anything is written
    if len(set(lengths.values())) != 1:
        raise UserError("the files must all have the same number of tokens; got "
                        + ", ".join(f"{k}: {v}" for k, v in lengths.items()))
    if args.out.suffix != ".json":
        raise UserError(f"--out must name a .json file, not {str(args.out)!r}")
    _output_path("--out", args.out)
    tokens = next(iter(lengths.values()))
    say(f"measuring on {len(args.files)} file(s) of {tokens} tokens (golden model) ...")
    pats = report.measure(cfg, sorted(args.files))
    try:
        report.save_rates(args.out, cfg, sorted(args.files), pats, tokens)
    except OSError as exc:
        raise _write_error("--out", args.out, exc) from None
    for mode, (p, q) in pats.items():
        print(f"{mode:<8} keys skipped {p.key_skip:.1%}; entries fine {p.fine:.1%}, coarse {p.coarse:.1%}, "
              f"skipped {p.skipped:.1%}; rescales per entry {p.rescale:.4f} (no pattern-aware softmax: {q.rescale:.4f})")
    print(args.out)
    return 0


# -- explore -----------------------------------------------------------------

DEFAULT_SWEEP = ["rows=8,16", "fine_lut_bits=4,5,7", "skip_threshold=6,10,none"]


def cmd_explore(args):
    from ..accuracy import attnfile
    from ..perf import dataflow, explore, report
    config_mod.load(args.config, args.set)           # a bad base config fails here, before anything runs
    sweeps = explore.parse_sweeps(args.sweep or DEFAULT_SWEEP)
    for sets in explore.grid(sweeps):
        try:
            config_mod.load(args.config, args.set + sets)
        except config_mod.ConfigError as exc:
            raise UserError(f"--sweep point {', '.join(sets)}: {str(exc).removeprefix('--set: ')}") from None
    if args.workload not in dataflow.WORKLOADS:
        raise UserError(f"--workload {args.workload!r} is not one of: {', '.join(dataflow.WORKLOADS)}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be a positive integer, not {args.jobs}")
    if args.dask is not None:
        explore.parse_dask(args.dask)
    if args.area_head_dim is not None and args.area_head_dim < 1:
        raise UserError(f"--area-head-dim must be a positive integer, not {args.area_head_dim}")
    acc = args.accuracy_file or report.REAL / "smollm2-L12-T256.npz"
    attnfile.load(acc)                               # a bad file fails before the sweep starts
    _output_path("--out", args.out, folder=True)
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
                report.check_rates_file(config_mod.load(base, sets), args.patterns)
    records, _ = explore.run(base, sweeps, args.out, workload=args.workload, accuracy_file=acc,
                             area=not args.no_area, jobs=args.jobs, progress=not args.quiet, patterns=args.patterns,
                             dask=args.dask, area_head_dim=args.area_head_dim)
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        print()
        return 0
    print(explore.rates_heading(records, sweeps, base, args.workload))
    print(f"{'point':<48} {'pJ/op':>7} {'TOPS/W':>7} {'E vs base':>9} {'speed':>6} {'util@2k':>7} "
          f"{'relL2 med':>9} {'transistors':>12}")
    for r in records:
        label = ", ".join(r["sets"])[:48] or "base"
        if "error" in r:
            print(f"{label:<48} not buildable: {r['error']}")
            continue
        if "failed" in r:
            print(f"{label:<48} FAILED: {r['failed']} (runs again when the sweep is run again)")
            continue
        tr = f"{r['transistors']:,}" if "transistors" in r else "-"
        print(f"{label:<48} {r['pj_per_op']:>7.3f} {r['tops_w']:>7.2f} {r['energy_ratio']:>8.2f}x "
              f"{r['speed_ratio']:>5.2f}x {100 * r['utilisation']['2048']:>6.1f}% {100 * r['rel_l2_median']:>8.2f}% "
              f"{tr:>12}")
    for name in ("pareto.png", "utilisation.png", "accuracy.png"):
        if (args.out / name).exists():
            print(args.out / name)
    return 0


# -- demo ------------------------------------------------------------------

def cmd_demo(args):
    from . import demo
    cfg = config_mod.load(args.config, args.set)
    heads = _int_list("--heads", args.heads)
    if args.tokens is not None and args.tokens < 1:
        raise UserError(f"--tokens must be a positive integer, not {args.tokens}")
    _check_head_dim(args.set, args.npz or demo.DEFAULT_FILE)
    _require_cache()                                 # the demo's Verilog goes into the cache folder
    try:
        return demo.main(cfg, npz=args.npz, heads=heads, tokens=args.tokens, synth=not args.no_synth,
                         quiet=args.quiet)
    except RuntimeError as exc:
        print(f"fusioncim: {exc}", file=sys.stderr)
        return 1


def build_parser():
    from ..sim.workload import RANDOM_DEFAULTS
    from ..accuracy.calibration import HEADROOM
    p = argparse.ArgumentParser(prog="fusioncim", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"fusioncim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def block_args(sp):
        sp.add_argument("block", choices=sorted(BLOCKS))
        sp.add_argument("--bus", choices=("none", "axi"), default="none",
                        help="axi: the engine behind AXI4-Stream and AXI4-Lite (block engine_axi; "
                             "docs/integration.md)")

    def common(sp, config=True):
        if config:
            sp.add_argument("--config", metavar="PRESET|FILE.toml",
                            help=f"engine config: a preset ({', '.join(config_mod.PRESETS)}) or a TOML file "
                                 f"(default: the default preset)")
            sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override one config field (repeatable), e.g. --set prob_bits=8")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    def front_end(sp, both):
        sp.add_argument("--no-rotate", action="store_true", help="quantise without the Hadamard rotation of Q and K")
        sp.add_argument("--v-anchor", choices=("sink", "mean"), default="sink", help="V per-channel offset")
        sp.add_argument("--quant", choices=("dynamic", "static", "both") if both else ("dynamic", "static"),
                        default="dynamic" if both else "static",
                        help="K/V scales: dynamic (from the whole evaluated sequence: looks ahead in a causal model), "
                             "static (calibrated on another text: `fusioncim calibrate`)"
                             + (", or both side by side" if both else "") + " (default %(default)s)")
        sp.add_argument("--calibration", type=Path, metavar="FILE.npz",
                        help="static scales from `fusioncim calibrate` (default: the file shipped for the model, "
                             "fusioncim/data/calibration/MODEL.npz)")

    a = sub.add_parser("accuracy", help="engine numerics vs float64 on attention .npz files")
    a.add_argument("files", nargs="+", metavar="FILE.npz")
    a.add_argument("--json", action="store_true", help="print one JSON document (a list of per-head records; with "
                                                       "--per-layer, {heads, layers})")
    a.add_argument("--summary", action="store_true", help="print the summary only, not every head")
    a.add_argument("--per-layer", action="store_true", help="a table of each layer's median and worst head")
    a.add_argument("--plot", type=Path, metavar="FILE.png|svg",
                   help="plot each layer's median and worst head (PNG, SVG or PDF by the suffix)")
    front_end(a, both=True)
    common(a)
    a.set_defaults(func=cmd_accuracy)

    cb = sub.add_parser("calibrate", help="static K/V scales of a model from a calibration text (needs `make models`)")
    cb.add_argument("model", choices=("smollm2", "minilm"))
    cb.add_argument("--text", type=Path, action="append", required=True, metavar="FILE.txt",
                    help="calibration text (repeatable); use other text than you evaluate")
    cb.add_argument("--tokens", type=int, default=4096, help="first tokens of each text (default 4096)")
    cb.add_argument("--window", type=int, default=512,
                    help="tokens per calibration sequence, each from position 0 (default 512: cover the lengths you evaluate)")
    cb.add_argument("--headroom", type=float, default=HEADROOM,
                    help="widen every calibrated range by this factor when it is used (default 1.1)")
    cb.add_argument("--out", required=True, type=Path, help="calibration file to write (.npz)")
    common(cb, config=False)
    cb.set_defaults(func=cmd_calibrate)

    em = sub.add_parser("eval-model", help="a model's loss with every attention layer on the engine's numerics "
                                           "(needs `make models`)")
    em.add_argument("model", choices=("smollm2", "minilm"))
    em.add_argument("--text", type=Path, action="append", metavar="FILE.txt",
                    help="text to evaluate (repeatable; default: the three in fusioncim/data/texts)")
    em.add_argument("--tokens", type=int, help="first tokens of each text (default: all, up to the model's limit)")
    em.add_argument("--json", action="store_true", help="print one JSON document: {source, texts, mean}")
    front_end(em, both=False)
    common(em)
    em.set_defaults(func=cmd_eval_model)

    e = sub.add_parser("extract", help="attention .npz files from a pretrained model (needs `make models`)")
    e.add_argument("model", choices=("smollm2", "minilm"))
    e.add_argument("--out", required=True, type=Path, help="output folder")
    e.add_argument("--tokens", type=int, default=256, help="sequence length (default 256)")
    e.add_argument("--layers", help="comma-separated layer numbers (default: all)")
    e.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    e.add_argument("--text", type=Path, metavar="FILE.txt",
                   help="input text (default: fusioncim/data/passage.txt, about 500 tokens; "
                        "fusioncim/data/long.txt, this project's docs, more than 8,192)")
    common(e, config=False)
    e.set_defaults(func=cmd_extract)

    c = sub.add_parser("config", help="print a config as TOML that --config reads back, with its derived "
                                      "widths as comments")
    c.add_argument("--json", action="store_true", help='print one JSON document: {"fields": ..., "derived": ...} '
                                                       '(null for a field that is none)')
    common(c)
    c.set_defaults(func=cmd_config)

    from ..ip.generate import BLOCKS
    g = sub.add_parser("generate", help="write the Verilog of one block for a config")
    block_args(g)
    g.add_argument("--out", type=Path, help="output file (default: BLOCK.v, or BLOCK-flat.v, in the current folder)")
    g.add_argument("--fusesoc", type=Path, metavar="DIR", help="write the Verilog, its waiver file and a "
                   "FuseSoC core (CAPI2, lint and sim targets) into DIR")
    g.add_argument("--flat", action="store_true", help="one flattened module (default: one module per distinct "
                                                       "cell, instantiated where it is used)")
    common(g)
    g.set_defaults(func=cmd_generate)

    po = sub.add_parser("ports", help="every port of a block's Verilog with direction and width, and each "
                                      "stream payload's fields with bit offsets (from the hardware's own layouts)")
    block_args(po)
    fmt = po.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="the tables docs/ carries")
    fmt.add_argument("--json", action="store_true", help='one JSON document: {"block", "config", "ports": '
                                                         '[{name, direction, width, description, fields}]}')
    common(po)
    po.set_defaults(func=cmd_ports)

    rm = sub.add_parser("regmap", help="the AXI top's register map (generate engine --bus axi): a table, or "
                                       "SystemRDL, a C header and HTML docs made from it with PeakRDL")
    rm.add_argument("--rdl", type=Path, metavar="FILE.rdl", help="write the SystemRDL description")
    rm.add_argument("--c", type=Path, metavar="FILE.h", help="write a C header (peakrdl-cheader)")
    rm.add_argument("--html", type=Path, metavar="DIR", help="write HTML register docs into DIR (peakrdl-html)")
    common(rm)
    rm.set_defaults(func=cmd_regmap)

    s = sub.add_parser("simulate", help="run attention heads on the generated engine (Verilator or Icarus), bit-exact "
                                        "check against golden, cycles and counters")
    s.add_argument("--npz", type=Path, metavar="FILE.npz", help="real attention (accuracy file format); "
                   "default: random data")
    s.add_argument("--heads", help=f"query heads: a count for random data (default {RANDOM_DEFAULTS['heads']}), or comma-separated "
                   "head numbers of the file (default 0,1)")
    s.add_argument("--tokens", type=int, help="keep the first N tokens of the --npz file (default: all)")
    s.add_argument("--kv-heads", type=int, help=f"KV heads of random data (default {RANDOM_DEFAULTS['kv_heads']})")
    s.add_argument("--queries", type=int, help=f"query tokens of random data (default {RANDOM_DEFAULTS['queries']})")
    s.add_argument("--keys", type=int, help="key tokens of random data (default: --queries)")
    s.add_argument("--mode", choices=("prefill", "decode"), default="prefill",
                   help="how query rows form tiles (decode: the GQA group's heads at --positions positions)")
    s.add_argument("--positions", type=int, metavar="P", default=None,
                   help="decode: query positions per tile, each row masked by its own position (multi-token "
                        "decode, speculative verification); P x the GQA group must fit rows (default 1)")
    s.add_argument("--causal", action=argparse.BooleanOptionalAction, default=None,
                   help="causal masking (default: the file's, else the config's)")
    s.add_argument("--seed", type=int, default=1, help="random data and stall pattern seed (default 1)")
    s.add_argument("--stall", type=float, default=0.0,
                   help="probability that each external stream stalls in a cycle (default 0)")
    s.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    s.add_argument("--path", choices=("auto", "cocotb", "native"), default="auto",
                   help="cocotb drives the model cycle by cycle from Python; native runs a C++ harness on a "
                        "Verilator model (no Python per cycle, about 10x faster, built at -O2 once). auto: native "
                        "for workloads over 200,000 cycles on Verilator without --waves (default)")
    s.add_argument("--waves", type=Path, metavar="FILE", help="write a trace: a .vcd file with Verilator, a .fst file with Icarus (its folder must exist)")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    common(s)
    s.set_defaults(func=cmd_simulate)

    r = sub.add_parser("report", help="FusionCIM vs a non-fused CIM baseline and ablations: cycles, energy, "
                                      "TOPS/W, beside the paper's claims")
    r.add_argument("--workload", action="append", metavar="NAME",
                   help="a LLaMA-3 attention workload (repeatable; 'all' for every one; default: "
                        "llama3-8b-prefill-2048, llama3-8b-decode-8192 and llama3-8b-decode-8192-p4, decode at 4 "
                        "query positions per step, left out with a note when rows cannot hold them)")
    r.add_argument("--energy", type=Path, metavar="FILE.toml", help="per-event energy table "
                   "(default: synth/energy.toml, Horowitz ISSCC 2014 at 45 nm)")
    r.add_argument("--node", type=float, metavar="NM", help="process node to scale the table to (default 45)")
    r.add_argument("--vdd", type=float, metavar="V", help="supply voltage to scale the table to (default 0.9)")
    r.add_argument("--kv-buffer", metavar="KEYS", help="keys the KV buffer holds, for every dataflow; a longer "
                   "sequence is fetched again per Q tile (default: the config's kv_depth, raised to the sequence)")
    r.add_argument("--sp-buffer", metavar="KIB", help="S/P buffer of the baselines and no_fusion in KiB, or none "
                      "(always fits); a tile's scores that do not fit go to DRAM and back (default 64)")
    r.add_argument("--qo-buffer", metavar="KIB", help="Q/O buffer (partial O, running max and sum) in KiB, or none "
                      "(default 128)")
    r.add_argument("--patterns", type=Path, nargs="+", metavar="FILE",
                   help="score-pattern rates: .npz attention files to measure them on, or one .json rates file from "
                        "`fusioncim patterns --out` (default: the stored rates in fusioncim/data/patterns for the "
                        "workload's length when the config matches them, else measured on the shipped 256-token "
                        "files fusioncim/data/real/smollm2-*.npz); the output's heading says which")
    out = r.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON document (a list, one entry per workload)")
    out.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs)")
    common(r)
    r.set_defaults(func=cmd_report)

    ar = sub.add_parser("area", help="Yosys area of a block or the engine: µm² at 45 nm, an estimated clock, "
                                     "transistors and flip-flops")
    block_args(ar)
    ar.add_argument("--liberty", type=Path, metavar="FILE.lib",
                    help="map to this cell library instead of the bundled generic 45 nm one")
    ar.add_argument("--no-cache", action="store_true", help="synthesise even if a cached result exists")
    ar.add_argument("--json", action="store_true", help="print the full result as one JSON document (area, "
                    "transistors, flip-flops, cells, clock, SRAM, per-module figures)")
    common(ar)
    ar.set_defaults(func=cmd_area)

    pt = sub.add_parser("patterns", help="measure the softmax's data-dependent rates on attention files "
                                         "(the report's LLaMA-3 workloads use them at the same length)")
    pt.add_argument("files", nargs="+", type=Path, metavar="FILE.npz")
    pt.add_argument("--out", type=Path, required=True, metavar="FILE.json")
    common(pt)
    pt.set_defaults(func=cmd_patterns)

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
    common(x)
    x.set_defaults(func=cmd_explore)

    d = sub.add_parser("demo", help="the main job: generate the engine, simulate a real head bit-exact on "
                                    "Verilator, synthesise it, print the report")
    d.add_argument("--npz", type=Path, default=None, metavar="FILE.npz",
                   help="real attention to simulate (default fusioncim/data/real/smollm2-L12-T256.npz)")
    d.add_argument("--heads", default="0,1", help="comma-separated heads of the file (default 0,1)")
    d.add_argument("--tokens", type=int, help="keep the first N tokens (default: all)")
    d.add_argument("--no-synth", action="store_true", help="skip Yosys")
    common(d)
    d.set_defaults(func=cmd_demo)
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


if __name__ == "__main__":
    sys.exit(main())
