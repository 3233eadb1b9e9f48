"""What every command shares: user errors, progress, output checks, the common options, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..core import config as config_mod
from ..core import configfile
from ..core.errors import InputError

EXIT_USAGE = 2


class UserError(InputError):
    """A bad command-line argument; reported in one line, exit status 2."""


def progress(quiet):
    def say(msg):
        if not quiet:
            print(msg, file=sys.stderr, flush=True)
    return say


def output_path(option, path, *, folder=False):
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
    # os.access says yes to root everywhere, and to file systems that take no files (/proc, a read-only
    # mount): a probe file, removed at once, asks the file system itself.
    import tempfile
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".fusioncim-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"{option} {str(path)!r}: the folder {str(parent)!r} cannot be written "
                        f"({exc.strerror or exc})") from None
    return path


def write_error(option, path, exc):
    """An OSError while writing an output, as one line."""
    return UserError(f"{option} {str(path)!r} cannot be written ({exc.strerror or exc})")


def require_cache():
    """Fail with one line (exit 2) when the cache folder cannot be written; nothing is created elsewhere."""
    from ..core.cache import limit_bytes
    from ..core.files import cache_root
    limit_bytes()                       # a bad FUSIONCIM_CACHE_LIMIT_GB: one line now, not after a build
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"the cache folder {str(root)!r} cannot be written ({exc.strerror}); "
                        "set FUSIONCIM_CACHE to a writable folder") from None


def int_list(name, text):
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"{name} must be comma-separated integers, not {text!r}") from None
    return vals


def positive(name, value):
    if value is not None and not value > 0:
        raise UserError(f"{name} must be a positive number, not {value:g}")


def check_head_dim(sets, npz, have=None):
    """An explicit ``--set head_dim=N`` that differs from the attention file's head_dim is an error
    (``have``: that head_dim, when the caller has read the file already)."""
    from ..accuracy import attnfile
    wanted = [item.partition("=")[2].strip() for item in sets if item.partition("=")[0].strip() == "head_dim"]
    if wanted:
        have = attnfile.load(npz).head_dim if have is None else have
        if wanted[-1] != str(have):
            raise UserError(f"--set head_dim={wanted[-1]} conflicts with {str(npz)!r}, whose head_dim is {have}: "
                            f"the engine's head_dim comes from the file; drop --set head_dim")


def block_config(args):
    """The block (``--bus axi`` names the AXI top) and its config, checked for an engine."""
    from ..ip import generate
    bus(args)
    cfg = configfile.load(args.config, args.set)
    if args.block in generate.ENGINES:
        cfg.check_engine()
    return cfg.check_buildable(args.block)


def bus(args):
    """The block ``--bus axi`` names: the engine behind AXI4-Stream/AXI4-Lite (``engine_axi``)."""
    from ..ip.generate import ENGINES
    if getattr(args, "bus", "none") == "axi":
        if args.block not in ENGINES:
            raise UserError(f"--bus axi wraps the engine, not {args.block!r}: use it with `engine`")
        args.block = "engine_axi"
    if args.block == "engine_axi" and getattr(args, "flat", False):
        raise UserError("--flat is not available for the AXI top (engine_axi); generate engine --flat instead")
    return args.block


def calibration_for(path, model, required=True):
    """The calibration file ``path``, or the one shipped for ``model``; one line if neither exists (None when
    not ``required``: the per-key mode runs without one)."""
    from ..accuracy import calibration
    if path is None:
        path = calibration.shipped(model)
        if path is None and not required:
            return None
        if path is None:
            raise UserError(f"no calibration shipped for model {model!r}; give --calibration FILE "
                            f"(made by `fusioncim calibrate {model} --text FILE --out FILE`)")
    return calibration.load(path)


def print_json(doc):
    """One JSON document on stdout (the form of every ``--json``)."""
    json.dump(doc, sys.stdout, indent=1)
    print()


# -- options shared by several commands ---------------------------------------

def check_texts(option, paths):
    """Every text file readable UTF-8 with words in it, checked before a model loads (which takes half a
    minute): one line naming the option, the file and what is wrong."""
    for path in paths:
        path = Path(path)
        try:
            body = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise UserError(f"{option} {str(path)!r} cannot be read ({reason})") from None
        if not body.strip():
            raise UserError(f"{option} {str(path)!r} is empty; give a text with words in it")


def add_model_arg(sp):
    """The positional model name, one of those :data:`fusioncim.accuracy.extract.MODELS` serves."""
    from ..accuracy.extract import MODELS
    sp.add_argument("model", choices=list(MODELS), help="the model (%(choices)s)")


def finish_parser(sp, run, *, config=True):
    """The options every command shares, ``--config`` and ``--set`` (unless ``config`` is false) and ``-q``,
    then ``run`` as what the parsed command calls."""
    add_config_args(sp, config)
    sp.set_defaults(func=run)


def add_config_args(sp, config=True):
    """``--config`` and ``--set`` (unless ``config`` is false) and ``-q``."""
    if config:
        sp.add_argument("--config", metavar="PRESET|FILE.toml",
                        help=f"engine config: a preset ({', '.join(config_mod.PRESETS)}) or a TOML file "
                             f"(default: the default preset)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field (repeatable), e.g. --set prob_bits=8")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def add_block_args(sp):
    """The block argument and ``--bus`` (generate, ports, area)."""
    from ..ip.generate import BLOCKS
    sp.add_argument("block", choices=sorted(BLOCKS))
    sp.add_argument("--bus", choices=("none", "axi"), default="none",
                    help="axi: the engine behind AXI4-Stream and AXI4-Lite (block engine_axi; "
                         "docs/integration.md)")


QUANT_MODES = ("per-key", "dynamic", "static")
"""The front end's K/V scale modes (docs/numerics.md §1)."""


def check_per_key_config(cfg):
    """One line (exit 2) when the config cannot carry per-key scales."""
    from ..accuracy.quant import per_key_default
    if not per_key_default(cfg):
        raise UserError(f"--quant per-key needs a config with per-key scales (k_exp_bits {cfg.k_exp_bits} and "
                        f"v_exp_bits {cfg.v_exp_bits} must both be at least 1): --config per-key, or --set "
                        f"k_exp_bits=3 --set k_mant_bits=2 --set v_exp_bits=2")


def quant_mode(args, cfg, both):
    """``--quant``, or its default for ``cfg``: per-key when the config carries per-key scales (the rule
    simulate and the host reference follow), else dynamic (``both``: accuracy) or static (eval-model)."""
    from ..accuracy.quant import per_key_default
    if args.quant is not None:
        return args.quant
    return "per-key" if per_key_default(cfg) else "dynamic" if both else "static"


def add_front_end_args(sp, both):
    """The quantisation front end's options (accuracy, eval-model); ``both``: ``--quant both`` and ``all`` too
    (and dynamic the default; else static)."""
    sp.add_argument("--no-rotate", action="store_true", help="quantise without the Hadamard rotation of Q and K")
    sp.add_argument("--v-anchor", choices=("sink", "mean"), default="sink",
                    help="V per-channel offset (dynamic and static scales; per-key scales anchor on the sink)")
    sp.add_argument("--quant", choices=QUANT_MODES + (("both", "all") if both else ()),
                    default=None,
                    help="K/V scales: per-key (each key's own, as it is written: needs the config's k_exp_bits "
                         "and v_exp_bits, e.g. --config per-key; the calibration, if there is one, gives K's "
                         "centre and V's channel shape), dynamic (from the whole evaluated sequence: looks ahead in a causal model), "
                         "static (calibrated ranges from another text: `fusioncim calibrate`)"
                         + ("; both: dynamic and static side by side; all: the three" if both else "")
                         + " (default: per-key when the config carries per-key scales, as simulate does; else "
                         + ("dynamic)" if both else "static)"))
    sp.add_argument("--calibration", type=Path, metavar="FILE.npz",
                    help="calibration from `fusioncim calibrate` for static scales and the per-key mode's K centre "
                         "and V shape (default: the file shipped for the model, fusioncim/data/calibration/MODEL.npz)")
