"""Files the tools write: one atomic writer, and the cache folder.

Every output file (Verilog, attention files, rates, cached results) is written
through :func:`atomic_write`, so a failure or a parallel reader never sees
half a file and nothing is left at the path on error.
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["atomic_write", "cache_root", "data_path"]


def data_path(*parts) -> Path:
    """A file or folder shipped in the package (``fusioncim/data``), found through package resources,
    so a checkout and an installed wheel find it alike."""
    return Path(str(resources.files("fusioncim").joinpath("data", *parts)))


def atomic_write(path, write, *, binary=False) -> Path:
    """Create ``path`` (and its folder) by calling ``write(f)`` on a temporary file, then renaming it.

    On any error the temporary file is removed and nothing appears at ``path``.
    The file gets ordinary permissions (``0666`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix + ".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)       # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def cache_root() -> Path:
    """``$FUSIONCIM_CACHE`` or ``~/.cache/fusioncim``: generated Verilog, simulator builds and area results."""
    return Path(os.environ.get("FUSIONCIM_CACHE") or Path.home() / ".cache" / "fusioncim")
