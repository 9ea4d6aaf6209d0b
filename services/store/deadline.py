"""Deadlines on the store: a hung store becomes an outage after one timeout, like a dead one.

Every socket operation of a client made by `services.store.connect` has the deadline
`LULUPAY_STORE_TIMEOUT_S` (connect, send, read). On its own that is not enough: a page's first view
makes several store calls, and against a store that accepts connections but never answers (paused,
swapping, stuck in a long script) each would wait out its own deadline in turn. So a `Breaker` is
shared by all connections of a process's client: the first timeout or connection error opens it,
and for `cooldown_s` every call fails at once with a `redis.ConnectionError` (which every caller
already treats as "store unavailable": banner, 503, retry later). After the cool-down one call
tries the store again (half-open) while the others keep failing at once: an answer closes the
breaker, another failure opens it for another cool-down. So a request waits at most about one
deadline, whatever the store does, and a hung store costs one waiting call per cool-down.

A cluster client has one breaker per node (`NodeBreakers`): a node that is out fails the calls sent
to it at once, and those to the nodes that answer (topology refreshes, the node serving the
deployment's slot) go on.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

__all__ = ["Breaker", "NodeBreakers", "StoreOutage", "guarded"]


class StoreOutage(redis.ConnectionError):
    """Raised without touching the network while the breaker is open."""


class Breaker:
    """Open for `cooldown_s` after a failure; then one call at a time may try the store (for at most
    `probe_s`, its deadline) while the others still fail at once; an answer closes it."""

    def __init__(self, cooldown_s: float, probe_s: float, clock: Callable[[], float] = time.monotonic):
        self.cooldown_s = cooldown_s
        self.probe_s = probe_s
        self.clock = clock
        self._open_until = 0.0  # 0: closed
        self._reason = ""
        self._lock = threading.Lock()
        self._prober: int | None = None  # the thread whose call is the probe
        self.trips = 0  # how many times it opened from closed (for tests)

    @property
    def is_open(self) -> bool:
        return bool(self._open_until) and self.clock() < self._open_until

    def check(self) -> None:
        """Raise StoreOutage while open; past the cool-down let one caller through as the probe."""
        if not self._open_until:
            return
        with self._lock:
            now = self.clock()
            if not self._open_until or self._prober == threading.get_ident():
                return
            if now < self._open_until:
                raise StoreOutage(f"store unavailable ({self._reason}); trying again in "
                                  f"{self._open_until - now:.1f} s")
            self._open_until = now + self.probe_s  # this caller probes; the others wait for its answer
            self._prober = threading.get_ident()

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            if not self._open_until:
                self.trips += 1
            self._open_until = self.clock() + self.cooldown_s
            self._prober = None
            self._reason = str(exc) or type(exc).__name__

    def success(self) -> None:
        if self._open_until:
            with self._lock:
                self._open_until = 0.0
                self._prober = None

    def for_connection(self, connection) -> "Breaker":
        """The breaker `connection` consults: this one, whatever the server."""
        return self


class NodeBreakers:
    """A `Breaker(**options)` per server address, made on a connection's first use (a cluster's)."""

    def __init__(self, **options):
        self.options = options
        self.breakers: dict[tuple[str, int], Breaker] = {}
        self._lock = threading.Lock()

    def for_connection(self, connection) -> Breaker:
        address = (connection.host, connection.port)
        breaker = self.breakers.get(address)
        if breaker is None:
            with self._lock:
                breaker = self.breakers.setdefault(address, Breaker(**self.options))
        return breaker


_FAILURES = (redis.ConnectionError, redis.TimeoutError, OSError)


def guarded(connection_class: type, breaker: Breaker | NodeBreakers) -> type:
    """A subclass of redis-py's `connection_class` whose socket work consults `breaker` (the one of
    its server, for NodeBreakers): refused while it is open, opening it on a timeout or a lost
    connection, closing it on an answer."""

    def checked(base):
        """`base` refused while the breaker is open, opening it on a timeout or a lost connection."""
        def method(self, *args, **kwargs):
            own = breaker.for_connection(self)
            own.check()
            try:
                return base(self, *args, **kwargs)
            except StoreOutage:
                raise
            except _FAILURES as exc:
                own.failure(exc)
                raise
        return method

    class GuardedConnection(connection_class):
        connect_check_health = checked(connection_class.connect_check_health)
        send_packed_command = checked(connection_class.send_packed_command)

        def read_response(self, *args, **kwargs):
            own = breaker.for_connection(self)
            try:
                response = super().read_response(*args, **kwargs)
            except StoreOutage:
                raise
            except _FAILURES as exc:
                own.failure(exc)
                raise
            except Exception:  # an error reply (ResponseError, NOSCRIPT, …): the store did answer
                own.success()
                raise
            own.success()
            return response

    GuardedConnection.__name__ = GuardedConnection.__qualname__ = f"Guarded{connection_class.__name__}"
    return GuardedConnection
