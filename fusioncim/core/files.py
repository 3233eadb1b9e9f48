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

__all__ = ["atomic_write", "cache_root", "data_path", "read_npz"]


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


def read_npz(path, error, what, content):
    """Every array of the ``.npz`` archive ``path`` as a dict, read with ``allow_pickle=False``.

    A missing file, a folder, a single ``.npy`` array, something that is not a
    zip archive, or a damaged one raises ``error`` with one line naming the
    path; ``what`` names the kind of file ("attention file") and ``content``
    what it should hold ("q, k, v arrays").
    """
    import numpy as np
    path = Path(path)
    try:
        # Open the file ourselves: np.load leaks its handle when the archive is broken.
        with open(path, "rb") as fh:
            magic = fh.read(6)
            if magic == b"\x93NUMPY":
                raise error(f"{path}: holds a single array, not an .npz archive of {content}")
            if magic[:2] != b"PK":
                # np.load would take it for a pickle and say so.
                raise error(f"{path}: not an .npz archive of {content} "
                            f"({'an empty file' if not magic else 'not a zip file'})")
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as z:
                return {n: z[n] for n in z.files}
    except error:
        raise
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not an .npz file") from None
    except Exception as exc:
        # Anything else from the container or the decoder is a bad file, not a bug of ours: zipfile
        # errors for truncated archives, zlib errors for corrupted members, ValueError for pickles and
        # unrecognised content, RuntimeError for a member that claims encryption, NotImplementedError
        # for an unsupported compression method (found by `make fuzz`), and whatever a future numpy adds.
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{path}: not a readable .npz {what} ({msg})") from None
