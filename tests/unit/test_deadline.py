"""The store's breaker (services.store.deadline) on an injected clock."""
import threading

import pytest
import redis

from services.store.deadline import Breaker, NodeBreakers, StoreOutage, guarded


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


def test_a_cluster_has_a_breaker_per_node_one_node_out_leaves_the_others_closed(clock):
    class Connection:  # a redis-py connection whose socket work fails on port 2
        def __init__(self, port):
            self.host, self.port = "127.0.0.1", port

        def connect_check_health(self, *args, **kwargs):
            if self.port == 2:
                raise redis.ConnectionError("refused")

        def send_packed_command(self, *args, **kwargs):
            pass

        def read_response(self, *args, **kwargs):
            return b"PONG"

    breakers = NodeBreakers(cooldown_s=1.0, probe_s=2.5, clock=clock)
    Guarded = guarded(Connection, breakers)
    up, out = Guarded(1), Guarded(2)
    with pytest.raises(redis.ConnectionError, match="refused"):
        out.connect_check_health()
    with pytest.raises(StoreOutage):
        Guarded(2).connect_check_health()  # another connection to the node that is out: at once
    up.connect_check_health()
    up.send_packed_command(b"PING")
    assert up.read_response() == b"PONG"
    assert breakers.for_connection(out).is_open and not breakers.for_connection(up).is_open
    assert breakers.for_connection(Guarded(1)) is breakers.for_connection(up), "one breaker per address"
