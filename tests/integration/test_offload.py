"""The background's child process (services.offload): forecasts fitted there are the same as in
process, a call that runs out of time replaces the child, close() ends a waiting call."""
from __future__ import annotations

import math
import os
import random
import threading
import time

import pytest

from services.analytics.forecast import forecast
from services.container import Background
from services.offload import Offload, OffloadFailed
from tests.conftest import wait_until
from tests.integration.test_intelligence import daily_events, ingest


def test_forecaster_fits_in_a_child_process_and_builds_the_facts_there(services):
    events = daily_events(time.time(), random.Random(41))
    ingest(services, events)
    background = Background(services)
    assert background.offload is not None  # the default: LULUPAY_BACKGROUND_PROCESS=true
    try:
        assert background.forecaster.warm(None) >= 1  # stored facts, built by the child
        child = background.offload.pid()
        assert child is not None and child != os.getpid()
        history = services.forecasts.history("builds", "1d", None)
        offloaded = services.forecasts.compute("builds", "1d", None, fit=background.forecaster.fit)
        here = forecast(history, horizon=30, season=7, kind="count")
        assert offloaded["model"] == here["model"]
        assert [round(p["mean"], 9) for p in offloaded["points"]] == [round(p["mean"], 9) for p in here["points"]]
        assert background.offload.pid() == child  # one child, kept
        assert os.getpriority(os.PRIO_PROCESS, child) >= os.getpriority(os.PRIO_PROCESS, 0) + 1
        # the stored facts the child built are what this process reads
        assert services.intelligence.log.warm(services.settings.retention_days) == 0
    finally:
        background.offload.close()


def test_without_the_setting_the_forecaster_fits_on_its_thread(settings, redis_client):
    from services.container import build_services

    services = build_services(settings.model_copy(update={"background_process": False}))
    background = Background(services)
    assert background.offload is None and background.forecaster.fit is forecast


def test_a_call_out_of_time_replaces_the_child():
    offload = Offload(timeout_s=30)
    try:
        assert offload.call(math.sqrt, 16.0) == 4.0
        first = offload.pid()
        with pytest.raises(OffloadFailed, match="did not finish within 0.5 s"):
            offload.call(time.sleep, 60, timeout_s=0.5)
        wait_until(lambda: not _alive(first), timeout=10, message="the stuck child is stopped")
        assert offload.call(math.sqrt, 9.0) == 3.0
        assert offload.pid() not in (None, first)
    finally:
        offload.close()


def test_close_ends_a_waiting_call_and_refuses_new_ones():
    offload = Offload(timeout_s=120)
    assert offload.call(math.sqrt, 1.0) == 1.0
    outcome: list = []
    waiting = threading.Thread(target=lambda: outcome.append(_try(offload, time.sleep, 60)))
    waiting.start()
    wait_until(lambda: waiting.is_alive(), message="the call is waiting")
    offload.close()
    waiting.join(10)
    assert not waiting.is_alive() and isinstance(outcome[0], OffloadFailed)
    with pytest.raises(OffloadFailed, match="stopped"):
        offload.call(math.sqrt, 4.0)


def _try(offload, fn, *args):
    try:
        return offload.call(fn, *args)
    except OffloadFailed as exc:
        return exc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not reaped yet counts as stopped
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_close_never_waits_long_on_a_pool_that_will_not_stop():
    """A pool whose terminate() blocks (Pool.terminate can hang on its handler threads) is left to a
    daemon thread after the bound, and its child is killed."""
    import threading as _threading
    import time as _time

    from services.offload import _stop

    class Child:
        killed = False

        def kill(self):
            Child.killed = True

    release = _threading.Event()

    class StuckPool:
        _pool = [Child()]

        def terminate(self):
            release.wait(30)

        def join(self):
            pass

    started = _time.monotonic()
    _stop(StuckPool(), timeout_s=0.2)
    assert _time.monotonic() - started < 5 and Child.killed
    release.set()
