"""The availability record against real parts: the probe over real HTTP (a local server and the
app's own /readyz), the collector writing the counts to the minute/hour/day `sys` buckets of a real
Valkey, probes buffered through a store outage and written to their own minutes when it is back,
and `serve` probing its own address. Clocks are injected; nothing sleeps to synchronise."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.settings import Settings
from services.collector import Collector
from services.probe import Prober
from services.queries.system import system_summary
from services.store.keys import RESOLUTIONS
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.integration


class Target:
    """A real HTTP server whose /readyz answers `status`, or holds the request until released."""

    def __init__(self):
        self.status = 200
        self.hold = threading.Event()
        self.release = threading.Event()
        self.requests = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                target.requests += 1
                if target.hold.is_set():
                    target.release.wait(10)
                body = b'{"status": "ready"}'
                self.send_response(target.status if self.path == "/readyz" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/readyz"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target():
    server = Target()
    yield server
    server.stop()


def test_a_200_is_up_anything_else_is_down(target):
    prober = Prober(target.url, timeout_s=2)
    assert prober.check() is True
    for status in (503, 500, 404, 302, 204):
        target.status = status
        assert prober.check() is False, status
    target.status = 200
    assert prober.check() is True
    assert target.requests == 7
    assert Prober(target.url.replace("/readyz", "/nope")).check() is False  # 404


def test_a_refused_connection_and_a_timeout_are_down(target):
    assert Prober(f"http://127.0.0.1:{free_port()}/readyz", timeout_s=1).check() is False
    target.hold.set()  # the server takes the request and does not answer in time
    assert Prober(target.url, timeout_s=0.2).check() is False
    target.release.set()


def test_probes_are_counted_in_the_minute_they_started(target):
    clock = [1_800_000_010.0]
    prober = Prober(target.url, clock=lambda: clock[0])
    assert prober.probe() is True
    clock[0] += 20
    target.status = 503
    assert prober.probe() is False
    clock[0] += 40  # the next minute
    target.status = 200
    prober.probe()
    assert prober.pending() == {1_800_000_000: (1, 1), 1_800_000_060: (1, 0)}


def test_take_and_restore_lose_nothing():
    prober = Prober("http://127.0.0.1:9/readyz")
    prober.record(120.0, True)
    prober.record(130.0, False)
    taken = prober.take()
    assert taken == {120: (1, 1)} and prober.pending() == {}
    prober.record(125.0, True)  # arrives while the write is being tried
    prober.restore(taken)  # the write failed
    assert prober.pending() == {120: (2, 1)}


def test_the_buffer_keeps_the_newest_minutes():
    prober = Prober("http://127.0.0.1:9/readyz", max_minutes=3)
    for minute in range(5):
        prober.record(minute * 60 + 1, up=minute % 2 == 0)
        prober.record(minute * 60 + 2, up=True)
    assert sorted(prober.pending()) == [120, 180, 240]
    assert prober.dropped == 4  # two probes in each of the two oldest minutes
    prober.restore({0: (5, 5)})  # a failed write cannot grow it past the bound either: the oldest goes
    assert sorted(prober.pending()) == [120, 180, 240]
    assert prober.dropped == 4 + 10


@pytest.mark.parametrize("host, port, url", [
    ("127.0.0.1", 8050, "http://127.0.0.1:8050/readyz"),
    ("0.0.0.0", 9001, "http://127.0.0.1:9001/readyz"),
    ("::", 9002, "http://[::1]:9002/readyz"),
    ("analytics.internal", 80, "http://analytics.internal:80/readyz"),
])
def test_the_default_probe_address_is_where_the_app_serves(host, port, url):
    assert Settings(_env_file=None, host=host, port=port).probe_target == url


def test_the_probe_url_setting_wins(monkeypatch):
    monkeypatch.setenv("LULUPAY_PROBE_URL", "https://analytics.example.com/readyz")
    settings = Settings(_env_file=None)
    assert settings.probe_target == "https://analytics.example.com/readyz" and settings.probe_timeout_s == 2.0
    with pytest.raises(ValueError):
        Settings(_env_file=None, probe_url="ftp://nope")


# -- the collector writes the record ----------------------------------------------------------
T0 = 1_800_000_000.0  # a minute boundary


def _own_services(settings, prefix: str, clock):
    from services.container import build_services
    return build_services(settings.model_copy(update={"key_prefix": prefix}), clock=lambda: clock[0])


def _probes(store, res: str, bucket: float) -> tuple[int, int]:
    fields = store.client.hgetall(store.keys.system(res, int(bucket)))
    return int(fields.get(b"probe_up", 0)), int(fields.get(b"probe_down", 0))


def test_the_leader_records_up_and_down_probes_in_every_resolution(settings, redis_client, target, tmp_path):
    clock = [T0 + 5]
    services = _own_services(settings, "probe-test", clock)
    collector = Collector(services, interval_s=1, disk_path=tmp_path, owner="leader",
                          prober=Prober(target.url, clock=lambda: clock[0]))
    standby = Collector(services, interval_s=1, disk_path=tmp_path, owner="standby",
                        prober=Prober(target.url, clock=lambda: clock[0]))
    assert collector.run_once() is True
    assert standby.run_once() is False  # only the leader probes
    target.status = 503
    clock[0] = T0 + 65
    assert collector.run_once() is True
    target.status = 200
    clock[0] = T0 + 70
    assert collector.run_once() is True
    store = services.store
    assert _probes(store, "m", T0) == (1, 0)
    assert _probes(store, "m", T0 + 60) == (1, 1)
    for res in RESOLUTIONS[1:]:
        assert _probes(store, res.name, res.bucket(T0)) == (2, 1)
        assert store.client.ttl(store.keys.system(res.name, res.bucket(T0))) > 0
    assert target.requests == 3
    summary = system_summary(store, T0, T0 + 120, T0 + 120)
    assert (summary["probes_up"], summary["probes_down"]) == (2, 1)
    assert summary["availability"] == pytest.approx(2 / 3)
    assert system_summary(store, T0 + 120, T0 + 240, T0 + 240)["availability"] is None  # no probe: no figure
    assert collector.prober.pending() == {}
    collector.stop()
    standby.stop()


class Outage:
    """A Valkey this test can stop and start again on the same port, the real app's /readyz on it
    (503 while the store is down), and collectors with a clock the test moves."""

    def __init__(self, tmp_path, settings):
        from services.store.embedded import EmbeddedValkey
        from tests.conftest import InProcessServer

        self.tmp_path, self.port, self.starts = tmp_path, free_port(), 0
        self.valkey = EmbeddedValkey(tmp_path / "v0", port=self.port, persist=True).start()
        self.settings = settings.model_copy(update={"redis_url": self.valkey.url, "key_prefix": "outage",
                                                    "collector_enabled": False, "forecaster_enabled": False})
        self.app = InProcessServer(self.settings)
        self.clock = [T0 + 5]
        self.services = _own_services(self.settings, "outage", self.clock)

    def collector(self, owner: str) -> Collector:
        return Collector(self.services, interval_s=1, disk_path=self.tmp_path, owner=owner,
                         prober=Prober(self.app.url + "/readyz", timeout_s=2, clock=lambda: self.clock[0]))

    def stop_store(self):
        self.valkey.stop()

    def start_store(self):
        from services.store.embedded import EmbeddedValkey
        self.starts += 1
        self.valkey = EmbeddedValkey(self.tmp_path / f"v{self.starts}", port=self.port, persist=True).start()
        # the clients' breakers (services.store.deadline) stay open for their cool-down after the outage
        wait_until(self.services.store.ping, timeout=10, message="the collectors' store answers again")
        wait_until(self.app.services.store.ping, timeout=10, message="the app's store answers again")

    def close(self):
        self.app.stop()
        self.valkey.stop()


@pytest.fixture
def outage(tmp_path, settings):
    world = Outage(tmp_path, settings)
    yield world
    world.close()


def _through_an_outage(outage: Outage, leader: Collector) -> None:
    """The leader probes (up), loses the store for three rounds in two minutes (down, buffered)."""
    assert leader.run_once() is True and leader.prober.pending() == {}
    outage.stop_store()
    for ts in (T0 + 65, T0 + 95, T0 + 125):
        outage.clock[0] = ts
        assert leader.run_once() is False
        # it keeps the probe's pace instead of backing off like a stand-by
        assert leader._wait_s() == leader.interval_s
    assert leader.prober.pending() == {T0 + 60: (0, 2), T0 + 120: (0, 1)}
    outage.start_store()  # an empty store (not persisted): only what is written from now on
    outage.clock[0] = T0 + 185


def test_probes_through_a_store_outage_are_written_to_their_own_minutes(outage):
    leader = outage.collector("leader")
    _through_an_outage(outage, leader)
    assert leader.run_once() is True  # leader again: this round's probe and the buffered ones
    store = outage.services.store
    assert _probes(store, "m", T0 + 60) == (0, 2)
    assert _probes(store, "m", T0 + 120) == (0, 1)
    assert _probes(store, "m", T0 + 180) == (1, 0)
    assert _probes(store, "h", T0) == (1, 3)
    assert leader.prober.pending() == {}
    summary = system_summary(store, T0, T0 + 240, T0 + 240)
    assert summary["availability"] == pytest.approx(1 / 4)
    leader.stop()


def test_a_former_leaders_buffer_is_written_when_another_leads_after_the_outage(outage):
    leader = outage.collector("first")
    _through_an_outage(outage, leader)
    other = outage.collector("second")
    assert other.run_once() is True  # takes the lock first (the restarted store holds none)
    assert leader.run_once() is False  # stands by, and writes what it buffered
    store = outage.services.store
    assert leader.prober.pending() == {} and not leader._probing
    assert _probes(store, "m", T0 + 60) == (0, 2)
    assert _probes(store, "m", T0 + 120) == (0, 1)
    assert _probes(store, "m", T0 + 180) == (1, 0)  # the new leader's own probe
    assert _probes(store, "d", T0 - T0 % 86400) == (1, 3)
    leader.stop()
    other.stop()


def test_a_stand_by_does_not_probe_through_an_outage(outage):
    leader, standby = outage.collector("leader"), outage.collector("standby")
    assert leader.run_once() is True and standby.run_once() is False
    outage.stop_store()
    outage.clock[0] = T0 + 65
    assert leader.run_once() is False and standby.run_once() is False
    assert leader.prober.pending() == {T0 + 60: (0, 1)}
    assert standby.prober.pending() == {}
    assert standby._wait_s() > standby.interval_s  # a stand-by backs off
    outage.start_store()
    leader.stop()
    standby.stop()


def test_serve_probes_the_address_it_serves_on(live_server, redis_client):
    """`serve --port P` probes http://127.0.0.1:P/readyz (up), every collector round."""
    def minutes():
        found = {}
        for key in redis_client.scan_iter(match="{lp}:sys:m:*", count=1000):
            fields = redis_client.hgetall(key)
            if b"probe_up" in fields or b"probe_down" in fields:
                found[key] = (int(fields.get(b"probe_up", 0)), int(fields.get(b"probe_down", 0)))
        return found

    recorded = wait_until(lambda: sum(up for up, _ in minutes().values()) >= 2, timeout=40, message="probes") \
        and minutes()
    assert sum(down for _, down in recorded.values()) == 0, recorded
