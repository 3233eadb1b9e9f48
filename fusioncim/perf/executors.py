"""Where a sweep's points run (``fusioncim explore --jobs/--dask``): one interface, one class per backend.

:class:`ProcessPool` runs them in worker processes on this machine; :class:`DaskPool` on a Dask cluster,
a ``LocalCluster`` here (``local:N``) or a running scheduler (``tcp://HOST:PORT``, e.g. one that
dask-jobqueue feeds from SLURM or LSF). :func:`open_pool` picks one.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import re

from ..core.errors import InputError

__all__ = ["Pool", "ProcessPool", "DaskPool", "open_pool", "parse_dask", "DASK_CONNECT_TIMEOUT", "connect_timeout"]

DASK_CONNECT_TIMEOUT = 5
"""Seconds to reach a Dask scheduler before the sweep gives up (with one line, exit 2, nothing written), unless
``FUSIONCIM_DASK_TIMEOUT`` says otherwise (:func:`connect_timeout`)."""


def connect_timeout():
    """The seconds :data:`DASK_CONNECT_TIMEOUT` gives, or ``FUSIONCIM_DASK_TIMEOUT`` (a positive number; a
    scheduler across a slow network may need more, a test of an unreachable one less)."""
    text = os.environ.get("FUSIONCIM_DASK_TIMEOUT")
    if text is None:
        return DASK_CONNECT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise InputError(f"FUSIONCIM_DASK_TIMEOUT must be a positive number of seconds, not {text!r}")
    return seconds


def parse_dask(text):
    """``"local:N"`` -> ``("local", N)``; ``"tcp://HOST:PORT"`` -> ``("tcp", text)``; else one line naming the rule."""
    m = re.fullmatch(r"local:(\d+)", text or "")
    if m and int(m.group(1)) >= 1:
        return "local", int(m.group(1))
    if re.fullmatch(r"tcp://[^\s/:]+:\d{1,5}", text or ""):
        return "tcp", text
    raise InputError(f"--dask {text!r} must be local:N (N >= 1 worker processes on this machine) or "
                     f"tcp://HOST:PORT (a running Dask scheduler)")


class Pool:
    """Where the points run: one subclass per backend (:class:`ProcessPool`, :class:`DaskPool`), made by
    :func:`open_pool`. A context manager; ``label`` says where the points run.

    ``submit(fn, job, key)`` returns a future; ``completed(futures)`` yields them as they finish;
    ``outcome(future)`` is ``(record, None)`` or ``(None, message)`` for a point that failed.
    """
    label = ""

    def submit(self, fn, job, key):
        raise NotImplementedError

    def completed(self, futures):
        raise NotImplementedError

    @staticmethod
    def outcome(fut):
        try:
            return fut.result(), None
        except Exception as exc:       # the point's own exception, or Dask's KilledWorker, BrokenProcessPool
            msg = str(exc).splitlines()[0] if str(exc) else ""
            return None, f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ProcessPool(Pool):
    """Worker processes on this machine (``concurrent.futures``)."""

    def __init__(self, jobs=2):
        self.jobs = max(1, jobs)
        self.executor = None

    def __enter__(self):
        self.executor = cf.ProcessPoolExecutor(max_workers=self.jobs)
        self.label = f"{self.jobs} local process{'es' if self.jobs > 1 else ''}"
        return self

    def submit(self, fn, job, key):
        return self.executor.submit(fn, job)

    def completed(self, futures):
        return cf.as_completed(futures)

    def __exit__(self, *exc):
        self.executor.shutdown(wait=exc[0] is None, cancel_futures=True)
        return False


class DaskPool(Pool):
    """A Dask cluster: ``local:N`` starts N worker processes here, ``tcp://HOST:PORT`` joins a scheduler."""

    def __init__(self, dask):
        self.kind, self.arg = parse_dask(dask)
        self.client = self.cluster = None

    def __enter__(self):
        try:
            import distributed
        except ImportError:
            raise InputError("--dask needs the cluster extra: pip install 'fusioncim[cluster]' "
                             "(distributed, dask-jobqueue)") from None
        import importlib.util
        import logging
        kind, arg = self.kind, self.arg
        if kind == "local":
            # The scheduler's HTTP server (the dashboard, with bokeh) on a free port: two sweeps at once
            # must not race for the default 8787.
            self.cluster = distributed.LocalCluster(n_workers=arg, threads_per_worker=1, processes=True,
                                                    dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            self.client = distributed.Client(self.cluster)
            self.label = f"a Dask LocalCluster of {arg} worker process{'es' if arg > 1 else ''}"
        else:
            limit = connect_timeout()
            _probe_scheduler(arg, limit)
            try:
                self.client = distributed.Client(arg, timeout=limit)
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--dask {arg}: no Dask scheduler answered within {limit:g} s "
                                 f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
            n = len(self.client.scheduler_info().get("workers", {}))
            self.label = f"the Dask scheduler at {arg} ({n} worker{'s' if n != 1 else ''} now)"
        if self.client.dashboard_link and (kind == "tcp" or importlib.util.find_spec("bokeh")):
            self.label += f"; dashboard {self.client.dashboard_link}"
        return self

    def submit(self, fn, job, key):
        return self.client.submit(fn, job, key=f"fusioncim-point-{key}", pure=False)

    def completed(self, futures):
        import distributed
        return distributed.as_completed(futures)

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False


def _probe_scheduler(address, limit):
    """Check end to end, within ``limit`` seconds in all, that a Dask scheduler answers at
    ``address``: the connection, Dask's handshake, and an ``identity`` request whose reply says
    ``Scheduler``. Anything else there (an HTTP server such as the dashboard's port, another service, a
    worker) is one line naming the address; a client alone would wait on the handshake or misread the
    bytes (issue 31, item 3)."""
    import asyncio
    from distributed.comm import connect

    async def identity():
        comm = await connect(address, timeout=limit)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), limit))
    except (asyncio.TimeoutError, TimeoutError):
        raise InputError(f"--dask {address}: no Dask scheduler answered within {limit:g} s "
                         f"(something accepted the connection but did not speak Dask's protocol)") from None
    except Exception as exc:            # refused, reset, or bytes that are not Dask's (a MemoryError among them)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"--dask {address}: no Dask scheduler answered within {limit:g} s "
                         f"({first[:160]})") from None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise InputError(f"--dask {address}: the process there is not a Dask scheduler (it says it is "
                         f"{kind or 'nothing Dask knows'}); give the scheduler's address, not a worker's or the "
                         f"dashboard's")


def open_pool(jobs=2, dask=None) -> Pool:
    """The pool for ``--jobs``/``--dask``: Dask when ``dask`` is given, else local processes."""
    return ProcessPool(jobs) if dask is None else DaskPool(dask)
