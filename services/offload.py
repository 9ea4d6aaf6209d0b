"""A child process for the background's CPU-heavy work — model fits and building the build log's
stored facts — so that work never holds the web process's GIL while a page callback waits for it.

Measured on the 90-day demo: a forecast fit is 1–2 s of Python and a day's facts 0.2 s; run on a
thread of the web process they made a concurrent /builds callback 3–5× slower (p95 719 ms against
a p50 of 151 ms). In a child process at a lower CPU priority (`nice`), the callbacks keep the
cores first and the fits use what is left.

The child is started with `spawn` (a fork of a threaded web process can inherit held locks) on the
first call and kept; a call that does not finish within its timeout, or a child that died, is
answered with `OffloadFailed` and the child is replaced. Only pure functions of picklable arguments
are sent (`services.analytics.forecast.forecast`, `build_facts`).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Offload", "OffloadFailed", "build_facts"]

log = logging.getLogger(__name__)

_SLICE_S = 0.5  # a waiting call looks at close() this often


class OffloadFailed(RuntimeError):
    """The child process did not answer in time or died (it is replaced for the next call)."""


def _lower_priority(nice: int) -> None:
    try:
        os.nice(nice)
    except OSError:  # not permitted: the work still runs, at the same priority
        pass


class Offload:
    """One child process that runs `call(fn, *args)` and returns its result."""

    def __init__(self, *, nice: int = 10, timeout_s: float = 300.0):
        self.nice = nice
        self.timeout_s = timeout_s
        self._pool = None
        self._lock = threading.Lock()
        self._closed = False

    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) in the child; OffloadFailed when it takes longer than `timeout_s`
        (default: the Offload's), the child died, or `close()` was called meanwhile."""
        with self._lock:
            if self._closed:
                raise OffloadFailed("the background process is stopped")
            if self._pool is None:
                self._pool = multiprocessing.get_context("spawn").Pool(
                    1, initializer=_lower_priority, initargs=(self.nice,))
            pool = self._pool
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        pending = pool.apply_async(fn, args, kwargs)
        while True:
            try:  # in slices, so that close() ends the wait
                return pending.get(min(_SLICE_S, max(0.0, deadline - time.monotonic())))
            except multiprocessing.TimeoutError:
                if self._closed:
                    raise OffloadFailed("the background process is stopped") from None
                if time.monotonic() >= deadline:
                    self._replace(pool)
                    raise OffloadFailed(f"{getattr(fn, '__name__', fn)} did not finish within {limit:g} s") from None

    def _replace(self, pool) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        _stop(pool)
        log.warning("background process replaced (a call ran out of time)")

    def pid(self) -> int | None:
        """The child's process id (None before the first call)."""
        pool = self._pool
        processes = getattr(pool, "_pool", None) or []
        return processes[0].pid if processes else None

    def close(self) -> None:
        """Stop the child (a call in progress is abandoned)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            _stop(pool)


def _stop(pool, timeout_s: float = 5.0) -> None:
    """terminate() and join a pool without ever hanging on it: Pool.terminate() can block on its
    handler threads (seen once in the suite: a page test waited 20 min in close()). After
    `timeout_s` the children are killed and the rest is left to a daemon thread."""
    children = list(getattr(pool, "_pool", None) or [])

    def stop():
        pool.terminate()
        pool.join()
    stopper = threading.Thread(target=stop, name="offload-stop", daemon=True)
    stopper.start()
    stopper.join(timeout_s)
    if stopper.is_alive():
        for child in children:
            child.kill()
        log.warning("background process did not stop within %g s: killed", timeout_s)


def build_facts(redis_url: str, key_prefix: str, retention_s: int, days: int, timeout_s: float = 2.0) -> int:
    """In the child: build the stored build-log facts of the last `days` days (BuildLog.warm); the
    number of days built."""
    from services.queries.buildlog import BuildLog
    from services.store import Store, connect
    from services.store.keys import Keys

    store = Store(connect(redis_url, timeout_s=timeout_s), Keys(key_prefix))
    try:
        return BuildLog(store, clock=time.time, retention_s=retention_s, cached_days=0).warm(days)
    finally:
        store.client.close()
