"""The store's breaker (services.store.deadline) on an injected clock."""
import threading

import pytest
import redis

from services.store.deadline import Breaker, StoreOutage


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def breaker(clock):
    return Breaker(cooldown_s=1.0, probe_s=2.5, clock=clock)


def test_closed_until_a_failure_then_every_call_fails_at_once(breaker, clock):
    breaker.check()
    breaker.failure(redis.TimeoutError("Timeout reading"))
    with pytest.raises(StoreOutage, match="Timeout reading"):
        breaker.check()
    assert isinstance(StoreOutage("x"), redis.ConnectionError), "callers treat it as any lost store"
    clock.now += 0.99
    with pytest.raises(StoreOutage):
        breaker.check()
    assert breaker.trips == 1


def test_after_the_cooldown_one_caller_probes_while_the_others_still_fail(breaker, clock):
    breaker.failure(redis.ConnectionError("refused"))
    clock.now += 1.0
    breaker.check()  # this thread is the probe
    breaker.check()  # and may go on (connect, send, read of one call)
    other = []

    def elsewhere():
        try:
            breaker.check()
            other.append("passed")
        except StoreOutage:
            other.append("refused")

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert other == ["refused"]


def test_an_answer_closes_it_and_another_failure_reopens_it(breaker, clock):
    breaker.failure(redis.ConnectionError("refused"))
    clock.now += 1.0
    breaker.check()
    breaker.success()
    assert not breaker.is_open
    breaker.check()
    breaker.failure(redis.TimeoutError("again"))
    assert breaker.is_open and breaker.trips == 2


def test_a_probe_that_never_answers_lets_another_probe_after_its_deadline(breaker, clock):
    breaker.failure(redis.ConnectionError("refused"))
    clock.now += 1.0
    breaker.check()  # the probe, which then hangs
    result = []
    clock.now += 2.5
    thread = threading.Thread(target=lambda: result.append(breaker.check()))
    thread.start()
    thread.join()
    assert result == [None], "the next caller probes once the first probe's deadline passed"
