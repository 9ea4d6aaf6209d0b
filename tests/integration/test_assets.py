"""The Assets page's reads on a real store: asset events ingested through the ingest service, every
figure of the asset service compared with what this test computes from the events themselves
(ratios, quality, bytes saved, format shares, percentiles within 2 %), per window as well; the scope
(a partner's reads and a partner manager's page hold nothing of another partner); the page's export
link; the error state when the store is down."""
from __future__ import annotations

import csv
import io
import random
import time
from collections import defaultdict

import numpy as np
import orjson
import pytest
import requests

from app.settings import Settings
from callbacks.assets import NO_ASSETS
from layouts.ids import ASSETS
from services.scope import system_scope
from services.store.embedded import EmbeddedValkey
from services.vocabulary import ASSET_FORMATS, DENSITIES
from tests.conftest import InProcessServer, free_port, sign_in
from tests.integration.test_first_view import by_id, components

pytestmark = pytest.mark.integration

HOUR, DAY = 3600, 86400
PARTNERS = ("acme-bank", "zenith-pay", "orbit-wallet")
ONLY_ZENITH = ("banner", "jpg", "any")  # a combination no other partner has
TYPES = ("icon", "splash", "logo", "screenshot")
PASSWORD = "correct horse battery"


def asset_events(now: float, n: int = 1500, seed: int = 41) -> list[dict]:
    """Assets of three partners over the last 6 days (clear of the ranges' edges)."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        pid = PARTNERS[i % 3]
        kind, fmt, density = (ONLY_ZENITH if pid == "zenith-pay" and i % 4 == 1 else
                              (rng.choice(TYPES), rng.choice(ASSET_FORMATS), rng.choice(DENSITIES)))
        original = rng.randint(0, 5_000_000)
        ts = now - rng.uniform(2 * HOUR, 6 * DAY) if i % 2 else now - rng.uniform(2 * HOUR, 20 * HOUR)
        events.append({"id": f"asset-{i}", "type": "asset.processed", "ts": ts, "partner_id": pid,
                       "asset_type": kind, "format": fmt, "density": density, "original_bytes": original,
                       "output_bytes": rng.randint(0, original), "quality_score": round(rng.uniform(55, 100), 2),
                       "duration_s": round(rng.lognormvariate(-1.0, 0.9), 4)})
    return events


def expected(events: list[dict]) -> dict:
    """The figures of a set of events, computed straight from them."""
    original = sum(e["original_bytes"] for e in events)
    output = sum(e["output_bytes"] for e in events)
    return {"assets": len(events), "original_bytes": original, "output_bytes": output,
            "saved_bytes": original - output, "compression_ratio": (1 - output / original) if original else None,
            "quality_avg": sum(e["quality_score"] for e in events) / len(events),
            "duration_avg_s": sum(e["duration_s"] for e in events) / len(events)}


def assert_figures(row: dict, events: list[dict], where: str) -> None:
    for key, want in expected(events).items():
        assert row[key] == pytest.approx(want, rel=1e-9), f"{where}: {key}"


def assert_percentiles(row: dict, durations: list[float], where: str) -> None:
    for label, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        exact = float(np.percentile(durations, q))
        got = row[f"{label}_s"] if f"{label}_s" in row else row[label]
        assert abs(got - exact) <= 0.02 * exact, f"{where}: {label} {got} vs exact {exact}"


def assert_breakdown(data: dict, events: list[dict]) -> None:
    """Every figure of AssetService.breakdown against the events of its range."""
    assert_figures(data["total"], events, "total")
    saved_total = sum(e["original_bytes"] - e["output_bytes"] for e in events)
    for name in ("asset_type", "format", "density"):
        values = {e[name] for e in events}
        assert {r["value"] for r in data[f"by_{name}"]} == values, name
        for row in data[f"by_{name}"]:
            mine = [e for e in events if e[name] == row["value"]]
            assert_figures(row, mine, f"{name}={row['value']}")
            assert row["asset_share"] == pytest.approx(len(mine) / len(events))
            assert row["saved_share"] == pytest.approx(sum(e["original_bytes"] - e["output_bytes"]
                                                           for e in mine) / saved_total)
    groups = defaultdict(list)
    for e in events:
        groups[(e["asset_type"], e["format"], e["density"])].append(e)
    assert {(r["asset_type"], r["format"], r["density"]) for r in data["combinations"]} == set(groups)
    for row in data["combinations"]:
        assert_figures(row, groups[(row["asset_type"], row["format"], row["density"])], str(row))
    assert data["format_mix"] == pytest.approx({f: sum(e["format"] == f for e in events) / len(events)
                                                for f in {e["format"] for e in events}})
    times = {r["asset_type"]: r for r in data["times"]}
    assert set(times) == {e["asset_type"] for e in events} | {"all"}
    for kind, row in times.items():
        durations = [e["duration_s"] for e in events if kind == "all" or e["asset_type"] == kind]
        assert row["assets"] == row["timed"] == len(durations), kind
        assert_percentiles(row, durations, kind)


@pytest.fixture
def stored(services):
    now = time.time()
    events = asset_events(now)
    for i in range(0, len(events), 500):
        services.ingest.ingest_batch(events[i:i + 500])
    return services, events, now


@pytest.mark.parametrize("days", [1, 7])
def test_breakdown_equals_the_events_of_the_period(stored, days):
    services, events, now = stored
    start = now - days * DAY
    data = services.assets.breakdown(system_scope(start, now))
    assert data["from"] <= start < now <= data["to"]
    assert_breakdown(data, [e for e in events if data["from"] <= e["ts"] < data["to"]])
    again = services.assets.breakdown(system_scope(start, now))  # read again: from the bucket cache
    assert {k: v for k, v in again.items() if k not in ("from", "to")} == \
        {k: v for k, v in data.items() if k not in ("from", "to")}


def test_trends_per_window_equal_the_events_of_each_window(stored):
    services, events, now = stored
    trends = services.assets.trends(system_scope(now - 7 * DAY, now))
    step = trends["step_s"]
    assert step == HOUR and len(trends["ts"]) >= 7 * 24  # the reader's auto step for 7 days
    windows = defaultdict(list)
    for e in events:
        windows[int(e["ts"] // step * step)].append(e)
    assert sum(trends["assets"]) == len(events)
    checked = 0
    for i, ts in enumerate(trends["ts"]):
        mine = windows.get(ts, [])
        assert trends["assets"][i] == len(mine)
        assert trends["saved_bytes"][i] == sum(e["original_bytes"] - e["output_bytes"] for e in mine)
        for fmt in ASSET_FORMATS:
            count = sum(e["format"] == fmt for e in mine)
            assert trends["formats"][fmt][i] == count
            assert trends["format_shares"][fmt][i] == (pytest.approx(count / len(mine)) if mine else None)
        for kind, series in trends["times"].items():
            durations = [e["duration_s"] for e in mine if e["asset_type"] == kind]
            if durations:
                assert_percentiles({q: series[q][i] for q in ("p50", "p95", "p99")}, durations, f"{kind}@{ts}")
                checked += 1
            else:
                assert series["p95"][i] is None
    assert checked > 100


def test_a_partner_scope_holds_its_partners_assets_only(stored):
    services, events, now = stored
    start = now - 7 * DAY
    data = services.assets.breakdown(system_scope(start, now, ["acme-bank"]))
    mine = [e for e in events if e["partner_id"] == "acme-bank" and data["from"] <= e["ts"] < data["to"]]
    assert_breakdown(data, mine)
    assert ONLY_ZENITH not in {(r["asset_type"], r["format"], r["density"]) for r in data["combinations"]}
    assert "banner" not in {r["value"] for r in data["by_asset_type"]}
    trends = services.assets.trends(system_scope(start, now, ["acme-bank"]))
    assert sum(trends["assets"]) == len([e for e in events if e["partner_id"] == "acme-bank"])
    assert "banner" not in trends["times"]
    both = services.assets.breakdown(system_scope(start, now, ["acme-bank", "zenith-pay"]))
    assert both["total"]["assets"] == len([e for e in events if e["partner_id"] in ("acme-bank", "zenith-pay")])
    assert services.assets.breakdown(system_scope(start, now, []))["total"]["assets"] == 0


def _layout(server, session, page: str) -> dict:
    answer = session.get(server.url + "/_dash-layout", headers={"Referer": server.url + page}, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()


def test_a_partner_manager_sees_their_partners_assets_on_the_page_and_in_its_export(login_server):
    now = time.time()
    events = asset_events(now, n=600, seed=5)
    login_server.services.ingest.ingest_batch(events)
    login_server.services.users.add("pat", "partner_manager", ["acme-bank"], PASSWORD)
    login_server.services.users.add("ada", "admin", [], PASSWORD)
    pat = sign_in(login_server.url, "pat", PASSWORD)
    layout = _layout(login_server, pat, "/assets?range=7d&partner=acme-bank,zenith-pay&refresh=off")
    rows = by_id(layout, ASSETS.TABLE)["rowData"]
    acme = [e for e in events if e["partner_id"] == "acme-bank"]
    assert sum(r["assets"] for r in rows) == len(acme) and rows
    assert ONLY_ZENITH not in {(r["asset_type"], r["format"], r["density"]) for r in rows}
    summary = " ".join(c["props"]["children"] for c in components(by_id(layout, ASSETS.SUMMARY)["children"])
                       if c["props"].get("data-finding") == "total")
    assert summary.startswith(f"{len(acme):,} assets: ")
    href = by_id(layout, ASSETS.EXPORT)["href"]
    assert href.startswith("/api/v1/export/assets.csv?") and "zenith" not in href
    exported = list(csv.DictReader(io.StringIO(pat.get(login_server.url + href, timeout=30).text)))
    assert len(exported) == len(acme) and {r["partner_id"] for r in exported} == {"acme-bank"}
    # asking for zenith-pay alone leaves nothing: the page says so, with no error
    body = {"output": next(k for k in login_server.app.callback_map if ASSETS.TABLE + ".rowData" in k)}
    entry = login_server.app.callback_map[body["output"]]
    body["outputs"] = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
                       for o in body["output"][2:-2].split("...")]
    filters = {"range": "7d", "from": None, "to": None, "partners": ["zenith-pay"], "refresh": "off"}
    values = {("refresh-tick", "n_intervals"): 1, ("theme", "data"): "dark", ("filters", "data"): filters}
    for kind in ("inputs", "state"):
        body[kind] = [{**dep, "value": values[(dep["id"], dep["property"])]} for dep in entry[kind]]
    body["changedPropIds"] = ["refresh-tick.n_intervals"]
    answer = pat.post(login_server.url + "/_dash-update-component", data=orjson.dumps(body), timeout=30,
                      headers={"Content-Type": "application/json", "Referer": login_server.url + "/assets"})
    assert answer.status_code == 200, answer.text[:300]
    assert NO_ASSETS in answer.text and "panel-error" not in answer.text
    assert answer.json()["response"][ASSETS.TABLE]["rowData"] == []
    # an admin's link covers every partner, and its rows are the page's assets
    ada = sign_in(login_server.url, "ada", PASSWORD)
    layout = _layout(login_server, ada, "/assets?range=7d&refresh=off")
    every = list(csv.DictReader(io.StringIO(ada.get(login_server.url + by_id(layout, ASSETS.EXPORT)["href"],
                                                    timeout=30).text)))
    assert len(every) == sum(r["assets"] for r in by_id(layout, ASSETS.TABLE)["rowData"]) == len(events)


def test_store_down_every_panel_shows_its_error_state(tmp_path):
    store = EmbeddedValkey(tmp_path / "valkey", port=free_port(), persist=True).start()
    settings = Settings(_env_file=None, redis_url=store.url, data_dir=tmp_path / "data", collector_enabled=False,
                        forecaster_enabled=False)
    server = InProcessServer(settings)
    try:
        store.stop()
        layout = _layout(server, requests.Session(), "/assets?range=24h")
        bodies = (ASSETS.SUMMARY, ASSETS.BY_TYPE, ASSETS.BY_FORMAT, ASSETS.BY_DENSITY, ASSETS.SAVED,
                  ASSETS.FORMAT_TREND, ASSETS.FORMAT_MIX, ASSETS.TIMES, ASSETS.TIME_TREND, ASSETS.TABLE_NOTE)
        for body in bodies:
            children = by_id(layout, body)["children"]
            assert any("panel-error" in (c["props"].get("className") or "") for c in components(children)), body
        assert by_id(layout, ASSETS.TABLE)["rowData"] == []
    finally:
        server.stop()
        store.stop()
