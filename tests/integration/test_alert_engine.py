"""The alert engine on a real store with an injected clock (nothing sleeps through a `for`): rules
evaluated from the ingested events, pending → firing → resolved with the history, escalation and
acknowledgement, notifications to a real local HTTP receiver through the delivery queue — grouped,
silenced, never doubled, a resolved one after every delivered firing one — a second engine taking
over the state, and a kill -9 of the engine's process between firing and delivery."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import requests

from app.settings import Settings
from services.alerting.engine import AlertEngine
from services.alerting.rules import parse_rules
from services.alerting.silences import Matcher, Silence
from services.alerting.state import acknowledge
from services.container import build_services
from services.scope import system_scope
from tests.conftest import ROOT, wait_until
from tests.integration.test_alert_delivery import Clock, Receiver

pytestmark = pytest.mark.integration

MIN = 60
# a minute an hour ago: the scenario's clock stays in the past (the store's expiries run on real time)
T0 = float(int(time.time() // MIN) * MIN - 3600)


def _rules(receiver_url: str | None, **route) -> dict:
    doc = {"rules": [
        {"name": "LowSuccessRate", "metric": "success_rate", "window": "10m", "op": "<", "threshold": 0.9,
         "for": "5m", "keep_firing_for": "2m", "severity": "warning",
         "summary": "Success rate {{ value }} below {{ threshold }}",
         "escalate": [{"after": "15m", "severity": "critical"}]},
        {"name": "PartnerFailures", "metric": "failed_builds", "window": "10m", "op": ">=", "threshold": 3,
         "for": "0s", "severity": "warning", "per_partner": True},
    ]}
    if receiver_url:
        doc["receivers"] = [{"name": "ops", "webhook_url": receiver_url + "/hook"}]
        doc["route"] = {"receiver": "ops", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m",
                        "repeat_interval": "4h", **route}
    return doc


def _builds(ingest, now: float, partner: str, ok: int, failed: int, tag: str) -> None:
    events = []
    for i in range(ok + failed):
        status = "success" if i < ok else "failed"
        bid = f"{tag}-{partner}-{i}"
        ts = now - 30 - i * 0.01
        events.append({"id": f"{bid}-s", "type": "build.started", "ts": ts - 100, "partner_id": partner,
                       "build_id": bid, "build_type": "release", "app_version": "1.0.0"})
        finished = {"id": f"{bid}-f", "type": "build.finished", "ts": ts, "partner_id": partner, "build_id": bid,
                    "build_type": "release", "status": status, "duration_s": 100.0}
        if status == "failed":
            finished.update(failed_stage="compilation", error_category="gradle", error_message="boom")
        events.append(finished)
    ingest.ingest_batch(events)


@pytest.fixture
def clock():
    return Clock(T0 + 20)


@pytest.fixture
def engine_services(valkey_url, redis_client, tmp_path, clock):
    def make(rules: dict, *, at=None, **overrides):
        settings = Settings(_env_file=None, redis_url=valkey_url, data_dir=tmp_path / "data", alert_rules="off",
                            alert_external_url="http://lulupay.test", **overrides)
        services = build_services(settings, clock=at or clock)
        services.alert_rules = parse_rules(rules, "test rules")
        return services
    return make


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.stop()


def test_pending_firing_escalated_acknowledged_resolved_with_history_and_one_notification_each(
        engine_services, clock, receiver):
    services = engine_services(_rules(receiver.url))
    engine = AlertEngine(services, services.alert_rules)
    delivery = services.delivery()
    _builds(services.ingest, clock(), "acme-bank", ok=6, failed=4, tag="a")  # 60 %

    report = engine.run_once()
    assert [c.kind for c in report.changes if c.alert.rule == "LowSuccessRate"] == ["pending"]
    (alert,) = [a for a in services.alert_store.alerts().values() if a.rule == "LowSuccessRate"]
    assert alert.state == "pending" and alert.value == pytest.approx(0.6)
    # PartnerFailures: 4 failed ≥ 3, for: 0s → firing at once, about acme-bank only
    (partner_alert,) = [a for a in services.alert_store.alerts().values() if a.rule == "PartnerFailures"]
    assert partner_alert.state == "firing" and partner_alert.partner_id == "acme-bank"
    assert partner_alert.labels == {"alertname": "PartnerFailures", "severity": "warning", "partner_id": "acme-bank"}

    clock.advance(5 * MIN)
    _builds(services.ingest, clock(), "acme-bank", ok=1, failed=1, tag="b")  # still 7 of 12 in the window
    report = engine.run_once()
    assert "firing" in [c.kind for c in report.changes if c.alert.rule == "LowSuccessRate"]
    delivery.deliver_due()
    bodies = [r["body"] for r in receiver.requests]
    assert {b["groupLabels"]["alertname"] for b in bodies} == {"LowSuccessRate", "PartnerFailures"}
    low = next(b for b in bodies if b["groupLabels"]["alertname"] == "LowSuccessRate")
    assert low["version"] == "4" and low["status"] == "firing" and low["receiver"] == "ops"
    assert low["alerts"][0]["labels"]["severity"] == "warning"
    assert low["alerts"][0]["annotations"]["summary"].startswith("Success rate 58.3 %")
    assert low["alerts"][0]["generatorURL"].startswith("http://lulupay.test/alerts")

    engine.run_once()  # the same state again: nothing new is queued or sent
    delivery.deliver_due()
    assert len(receiver.requests) == 2

    clock.advance(15 * MIN)  # firing 15 min, unacknowledged: escalates to critical (nothing in the window now)
    _builds(services.ingest, clock(), "acme-bank", ok=2, failed=3, tag="c")
    report = engine.run_once()
    assert [c.kind for c in report.changes if c.alert.rule == "LowSuccessRate"] == ["escalated"]
    (alert,) = [a for a in services.alert_store.alerts().values() if a.rule == "LowSuccessRate"]
    assert alert.severity == "critical" and alert.escalation_level == 1
    delivery.deliver_due()
    escalated = receiver.requests[-1]["body"]
    assert escalated["alerts"][0]["labels"]["severity"] == "critical"

    acked, _ = acknowledge(alert, "alice", "looking", clock())
    services.alert_store.save_alerts([acked])
    # a round a minute: the builds leave the window, the condition turns false, and the alert keeps
    # firing for keep_firing_for (2 min) after the last round that met it
    last_true = clock()
    while services.alert_store.alert(alert.id).state == "firing":
        clock.advance(MIN)
        engine.run_once()
        if services.alert_store.evaluations()["LowSuccessRate|warning"]["conditions_true"]:
            last_true = clock()
        assert clock() - last_true < 20 * MIN
    assert clock() - last_true >= 2 * MIN
    resolved = services.alert_store.alert(alert.id)
    assert resolved.state == "resolved" and not resolved.acknowledged
    clock.advance(MIN)  # group_interval after the last notification
    engine.run_once()
    delivery.deliver_due()
    statuses = [(r["body"]["groupLabels"]["alertname"], r["body"]["status"]) for r in receiver.requests]
    assert ("LowSuccessRate", "resolved") in statuses and ("PartnerFailures", "resolved") in statuses
    keys = receiver.keys()
    assert len(keys) == len(set(keys))  # one notification per state change, each delivered once

    history = [(c["rule"], c["state"], c["severity"]) for c in services.alerts.changes(system_scope(T0, clock() + 1))
               if c["rule"] == "LowSuccessRate"]
    assert history == [("LowSuccessRate", "pending", "warning"), ("LowSuccessRate", "firing", "warning"),
                       ("LowSuccessRate", "firing", "critical"), ("LowSuccessRate", "resolved", "critical")]


def test_a_silence_holds_back_firing_but_not_the_resolved_that_follows_a_delivered_firing(
        engine_services, clock, receiver):
    services = engine_services(_rules(receiver.url))
    engine = AlertEngine(services, services.alert_rules)
    delivery = services.delivery()
    _builds(services.ingest, clock(), "zenith-pay", ok=0, failed=3, tag="s")
    engine.run_once()
    delivery.deliver_due()
    assert [r["body"]["status"] for r in receiver.requests] == ["firing"]  # PartnerFailures, for: 0s
    # the silence covers the alert told as firing and one that fires next
    silence = Silence(id="s1", matchers=(Matcher("alertname", "PartnerFailures"),), starts_at=clock(),
                      ends_at=clock() + 3600, author="bob", comment="known")
    services.alert_store.add_silence(silence)
    clock.advance(MIN)
    _builds(services.ingest, clock(), "orbit-wallet", ok=0, failed=3, tag="t")  # a second partner fires, silenced
    engine.run_once()
    delivery.deliver_due()
    assert len(receiver.requests) == 1
    clock.advance(11 * MIN)  # both resolve (nothing in the window)
    engine.run_once()
    clock.advance(MIN)
    engine.run_once()
    delivery.deliver_due()
    last = receiver.requests[-1]["body"]
    assert last["status"] == "resolved"
    assert [a["labels"]["partner_id"] for a in last["alerts"]] == ["zenith-pay"]  # the one told as firing


def test_a_new_engine_takes_over_the_state(engine_services, clock):
    services = engine_services(_rules(None))
    _builds(services.ingest, clock(), "acme-bank", ok=1, failed=9, tag="n")
    AlertEngine(services, services.alert_rules).run_once()
    clock.advance(5 * MIN)
    _builds(services.ingest, clock(), "acme-bank", ok=0, failed=1, tag="m")
    successor = AlertEngine(engine_services(_rules(None)), services.alert_rules)  # another process, same store
    report = successor.run_once()
    assert [c.kind for c in report.changes if c.alert.rule == "LowSuccessRate"] == ["firing"]
    firing = [c for c in services.alerts.changes(system_scope(T0, clock() + 1)) if c["rule"] == "LowSuccessRate"]
    assert [c["state"] for c in firing] == ["pending", "firing"]
    assert firing[1]["started_at"] == firing[0]["started_at"]


def test_rules_removed_from_the_file_resolve_and_their_evaluations_go(engine_services, clock):
    services = engine_services(_rules(None))
    _builds(services.ingest, clock(), "acme-bank", ok=0, failed=5, tag="r")
    AlertEngine(services, services.alert_rules).run_once()
    assert set(services.alert_store.evaluations()) == {"LowSuccessRate|warning", "PartnerFailures|warning"}
    fewer = _rules(None)
    fewer["rules"] = fewer["rules"][:1]
    clock.advance(MIN)
    report = AlertEngine(services, parse_rules(fewer, "fewer")).run_once()
    assert [(c.alert.rule, c.kind) for c in report.changes if c.alert.rule == "PartnerFailures"] == \
        [("PartnerFailures", "resolved")]
    assert set(services.alert_store.evaluations()) == {"LowSuccessRate|warning"}


def test_a_kill_9_between_firing_and_delivery_loses_nothing_and_doubles_nothing(engine_services, clock, receiver,
                                                                                  valkey_url, tmp_path):
    """The engine's process queues the firing notification and dies (kill -9) before any delivery;
    another process's delivery sends it; the engine's next round queues nothing twice."""
    services = engine_services(_rules(receiver.url))
    _builds(services.ingest, clock(), "acme-bank", ok=0, failed=4, tag="k")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from app.settings import Settings
        from services.alerting.engine import AlertEngine
        from services.alerting.rules import parse_rules
        from services.container import build_services
        settings = Settings(_env_file=None, redis_url={valkey_url!r}, data_dir={str(tmp_path / 'd2')!r},
                            alert_rules="off", alert_external_url="http://lulupay.test")
        services = build_services(settings, clock=lambda: {clock()!r})
        rules = parse_rules({_rules(receiver.url)!r}, "test rules")
        report = AlertEngine(services, rules).run_once()
        assert report.notifications == 1, report
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    assert receiver.requests == []
    services.delivery().deliver_due()
    assert [r["body"]["status"] for r in receiver.requests] == ["firing"]
    AlertEngine(services, services.alert_rules).run_once()  # the same state: the same notification id
    services.delivery().deliver_due()
    assert len(receiver.requests) == 1
    assert receiver.completed_2xx(receiver.keys()[0]) == 1


def test_a_silence_expires_by_itself_and_the_still_firing_alert_is_then_notified(engine_services, clock, receiver):
    services = engine_services(_rules(receiver.url))
    services.alert_store.add_silence(Silence(id="s2", matchers=(Matcher("partner_id", "acme-.*", is_regex=True),),
                                             starts_at=clock(), ends_at=clock() + 2 * MIN, author="bob"))
    engine = AlertEngine(services, services.alert_rules)
    delivery = services.delivery()
    for minute in range(4):  # the partner keeps failing: PartnerFailures stays firing
        _builds(services.ingest, clock(), "acme-bank", ok=0, failed=3, tag=f"x{minute}")
        engine.run_once()
        delivery.deliver_due()
        told = [r["body"]["alerts"][0]["labels"]["partner_id"] for r in receiver.requests
                if r["body"]["groupLabels"]["alertname"] == "PartnerFailures"]
        assert told == ([] if minute < 2 else ["acme-bank"]), minute  # silenced, then told once
        clock.advance(MIN)


@pytest.mark.monitoring
def test_an_alertmanager_receiver_hands_the_engines_alert_to_a_real_alertmanager(engine_services, receiver, tmp_path):
    """The engine's alert, posted to the real Debian Alertmanager's /api/v2/alerts, is listed there with
    its labels and delivered by the Alertmanager's own routing to its webhook."""
    from tests.integration.test_alert_delivery import real_alertmanager

    with real_alertmanager(tmp_path, receiver.url + "/am-hook") as base:
        rules = _rules(None)
        rules["receivers"] = [{"name": "team-am", "alertmanager_url": base}]
        rules["route"] = {"receiver": "team-am", "group_wait": "0s"}
        clock = Clock(time.time())  # an Alertmanager judges endsAt by its own clock
        services = engine_services(rules, at=clock)
        engine = AlertEngine(services, services.alert_rules)
        _builds(services.ingest, clock(), "acme-bank", ok=0, failed=3, tag="am")
        assert engine.run_once().notifications == 1
        assert [a["outcome"] for a in services.delivery().deliver_due()] == ["delivered"]
        listed = requests.get(base + "/api/v2/alerts", timeout=5).json()
        assert [(a["labels"]["alertname"], a["labels"]["partner_id"], a["status"]["state"]) for a in listed] == \
            [("PartnerFailures", "acme-bank", "active")]
        routed = wait_until(lambda: [r for r in receiver.requests if r["path"] == "/am-hook"], timeout=20,
                            message="the Alertmanager's own webhook notification")
        assert routed[0]["body"]["alerts"][0]["labels"]["partner_id"] == "acme-bank"

def test_an_acknowledgement_stored_during_a_round_survives_the_rounds_write(engine_services, clock):
    """The engine read the alert unacknowledged; the page acknowledged it before the round wrote:
    the round's write keeps the acknowledgement (and a resolution still ends it)."""
    services = engine_services(_rules(None))
    _builds(services.ingest, clock(), "acme-bank", ok=0, failed=4, tag="w")
    AlertEngine(services, services.alert_rules).run_once()
    (alert,) = [a for a in services.alert_store.alerts().values() if a.rule == "PartnerFailures"]
    acked, _ = acknowledge(alert, "carol", "on it", clock())
    services.alert_store.save_alerts([acked])  # the page, between the round's read and its write
    services.alert_store.save_alerts([alert])  # the round's write of what it read
    kept = services.alert_store.alert(alert.id)
    assert kept.acknowledged and kept.ack_by == "carol" and kept.ack_comment == "on it"
    from dataclasses import replace
    services.alert_store.save_alerts([replace(alert, state="resolved", resolved_at=clock())])
    assert not services.alert_store.alert(alert.id).acknowledged


def test_an_escalation_step_with_a_receiver_also_notifies_that_receiver(engine_services, clock):
    oncall = Receiver()
    ops = Receiver()
    try:
        rules = _rules(ops.url)
        rules["receivers"].append({"name": "oncall", "slack_url": oncall.url + "/slack"})
        rules["rules"][0]["escalate"] = [{"after": "10m", "receiver": "oncall"}]
        services = engine_services(rules)
        engine = AlertEngine(services, services.alert_rules)
        delivery = services.delivery()
        for minute in range(16):  # the fleet keeps failing: LowSuccessRate pending 5 min, then firing
            _builds(services.ingest, clock(), "acme-bank", ok=1, failed=3, tag=f"e{minute}")
            engine.run_once()
            delivery.deliver_due()
            clock.advance(MIN)
        (alert,) = [a for a in services.alert_store.alerts().values() if a.rule == "LowSuccessRate"]
        assert alert.state == "firing" and alert.escalation_level == 1 and alert.severity == "warning"
        (slack,) = oncall.requests  # the step's receiver, once, in its own format
        assert slack["body"]["text"].startswith("[FIRING:1] LowSuccessRate")
        assert any(r["body"]["groupLabels"].get("alertname") == "LowSuccessRate" for r in ops.requests)
    finally:
        oncall.stop()
        ops.stop()
