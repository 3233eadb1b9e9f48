"""The cache folder (:func:`fusioncim.core.files.cache_root`): what it holds, cleaning, and its size cap.

Five kinds, one folder each: ``verilog`` (a ``.v`` and a ``.vlt`` per design),
``rtl`` (simulator builds, about 150 MB each at the default engine), ``area``
(Yosys results), ``ccache`` (the C++ compiler's cache, which keeps itself under
``CCACHE_MAXSIZE``: 1 GB unless set) and ``demo`` (the demo's last run). An entry
is one file or folder in them; its last use is its modification time, which
the Verilog cache, the builds and the area cache refresh when they reuse it.

The size cap: after each new simulator build, :func:`evict` removes the least
recently used ``verilog``, ``rtl`` and ``area`` entries until the cache is under
``FUSIONCIM_CACHE_LIMIT_GB`` (default :data:`DEFAULT_LIMIT_GB`; 0 turns the
cap off), never the build just made, one used in the last two minutes, nor
one another process is building or running (a run holds a shared lock on the
build's ``.lock`` file; cleaning and eviction take it exclusively, without
waiting, and skip the build if they cannot).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path

from .errors import InputError
from .files import cache_root

__all__ = ["KINDS", "DEFAULT_LIMIT_GB", "Entry", "entries", "usage", "clean", "evict", "limit_bytes", "locked",
           "touch"]

KINDS = {
    "verilog": "generated Verilog and waiver files",
    "rtl": "simulator builds (Verilator, Icarus, the native harness)",
    "area": "Yosys results",
    "ccache": "the C++ compiler's cache of Verilator builds (its own cap: CCACHE_MAXSIZE)",
    "demo": "the demo's last run",
}
EVICTABLE = ("verilog", "rtl", "area")
DEFAULT_LIMIT_GB = 4.0
# Eviction leaves alone what was used this recently: a build between its (re)use and its run's lock.
GRACE_S = 120


class Entry:
    """One cached file or folder: ``kind``, ``path``, ``bytes``, ``last_used`` (seconds since the epoch)."""

    def __init__(self, kind, path):
        self.kind, self.path = kind, path
        self.bytes = _size(path)
        stamp = path / "fusioncim.stamp"
        self.last_used = (stamp if stamp.exists() else path).stat().st_mtime


def _size(path):
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


@contextlib.contextmanager
def locked(path: Path, *, shared=False, wait=True):
    """Hold a lock on the file ``path`` (created if missing) for the block's duration: exclusive (a build,
    a removal) or ``shared`` (a run of a build). With ``wait=False`` yields False at once if another
    process holds a lock that conflicts (and True otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def touch(path):
    """Mark a cache entry used now (best effort: a read-only cache is still a cache)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def entries(kind, root=None):
    """The entries of ``kind``, oldest use first. The ``ccache`` folder is one entry: ccache keeps its own
    files; a build's ``.lock`` file belongs to its folder."""
    folder = Path(root or cache_root()) / kind
    if not folder.is_dir():
        return []
    if kind == "ccache":
        return [Entry(kind, folder)]
    found = []
    for path in folder.iterdir():
        if path.suffix == ".lock":
            continue
        with contextlib.suppress(FileNotFoundError):       # removed by another process meanwhile
            found.append(Entry(kind, path))
    return sorted(found, key=lambda e: e.last_used)


def usage(root=None):
    """``{kind: {"entries", "bytes", "oldest", "newest"}}`` (times in seconds since the epoch, None if empty)."""
    out = {}
    for kind in KINDS:
        es = entries(kind, root)
        out[kind] = {"entries": len(es), "bytes": sum(e.bytes for e in es),
                     "oldest": min((e.last_used for e in es), default=None),
                     "newest": max((e.last_used for e in es), default=None)}
    return out


def _remove(entry):
    # A build folder goes under its lock, and only if no other process holds it: False if in use.
    if entry.kind == "rtl" and entry.path.is_dir():
        with locked(entry.path.with_name(entry.path.name + ".lock"), wait=False) as free:
            if free:
                shutil.rmtree(entry.path, ignore_errors=True)
            # The lock file stays: a process already waiting on it must not find a second one beside it.
        return free
    if entry.path.is_dir() and not entry.path.is_symlink():
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        entry.path.unlink(missing_ok=True)
    return True


def clean(kinds=None, older_than_days=None, root=None, now=None):
    """Remove the entries of ``kinds`` (default all) last used more than ``older_than_days`` ago (None: all).

    Returns ``(removed, bytes freed, skipped)``: skipped entries are builds another process is using."""
    kinds = list(KINDS) if kinds is None else list(kinds)
    for kind in kinds:
        if kind not in KINDS:
            raise InputError(f"cache kind {kind!r} is not one of {', '.join(KINDS)}")
    if older_than_days is not None and not older_than_days >= 0:
        raise InputError(f"--older-than {older_than_days:g} must be a number of days, 0 or more")
    cutoff = None if older_than_days is None else (now or time.time()) - older_than_days * 86400
    removed = freed = skipped = 0
    for kind in kinds:
        for e in entries(kind, root):
            if cutoff is not None and e.last_used >= cutoff:
                continue
            if _remove(e):
                removed, freed = removed + 1, freed + e.bytes
            else:
                skipped += 1
    return removed, freed, skipped


def limit_bytes():
    """The size cap in bytes from ``FUSIONCIM_CACHE_LIMIT_GB`` (default :data:`DEFAULT_LIMIT_GB`); None: no cap."""
    text = os.environ.get("FUSIONCIM_CACHE_LIMIT_GB", "").strip()
    try:
        gb = float(text) if text else DEFAULT_LIMIT_GB
    except ValueError:
        raise InputError(f"FUSIONCIM_CACHE_LIMIT_GB {text!r} is not a number of gigabytes (0: no cap)") from None
    if not gb >= 0:
        raise InputError(f"FUSIONCIM_CACHE_LIMIT_GB {text!r} must be 0 (no cap) or more")
    return None if gb == 0 else int(gb * 1e9)


def evict(keep=None, root=None, limit=None):
    """Remove least recently used ``verilog``, ``rtl`` and ``area`` entries until the cache (every kind
    counted) is under ``limit`` bytes (default :func:`limit_bytes`), never ``keep``, an entry used in the
    last :data:`GRACE_S` seconds, nor a build in use.
    Returns the entries removed."""
    limit = limit_bytes() if limit is None else limit
    if limit is None:
        return []
    found = {kind: entries(kind, root) for kind in KINDS}          # each folder walked once
    total = sum(e.bytes for es in found.values() for e in es)
    gone = []
    candidates = sorted((e for kind in EVICTABLE for e in found[kind]), key=lambda e: e.last_used)
    for e in candidates:
        if total <= limit:
            break
        if (keep is not None and Path(e.path) == Path(keep)) or e.last_used > time.time() - GRACE_S:
            continue
        if _remove(e):
            total -= e.bytes
            gone.append(e)
    return gone
