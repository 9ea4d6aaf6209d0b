"""`GET /api/v1/export/system.<fmt>` from a real server and Valkey: one row per stored `sys` bucket
at the finest resolution kept (minutes, hours, days), the values of the stored buckets, the three
formats agreeing, and bad parameters answered 400 naming the parameter."""
from __future__ import annotations

import csv
import io
import math
import time
from datetime import datetime, timezone

import orjson
import pytest
import requests

from services.queries.system import write_probe_counts, write_system_sample
from services.queries.system_export import SYSTEM_COLUMNS
from tests.conftest import InProcessServer

pytestmark = pytest.mark.integration

DAY, HOUR = 86400, 3600
_BASE = {"memory_percent": 40.0, "disk_percent": 60.0, "memory_used_bytes": 4e9, "disk_used_bytes": 5e10,
         "load_1m": 0.5}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(math.floor(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def server(settings, redis_client):
    """An open-access server under its own key prefix (no collector of any other process writes there)."""
    server = InProcessServer(settings.model_copy(update={"key_prefix": "export-test", "collector_enabled": False}))
    yield server
    server.stop()


def _sample(ts: float, cpu: float, sent: int = 0) -> dict:
    return {**_BASE, "cpu_percent": cpu, "load_1m": cpu / 100, "net_sent_delta": sent, "net_recv_delta": 2 * sent,
            "net_seconds_delta": 5.0 if sent else 0.0}


@pytest.fixture
def stored(server):
    """Samples at every resolution: 10 recent minutes (and a minute with probes only), two hours 5
    days ago, one day 40 days ago. Returns (now, expected rows by ts)."""
    store = server.services.store
    now = time.time()
    minute0 = math.floor(now / 60) * 60 - 20 * 60
    expected = {}
    for k in range(10):
        ts = minute0 + k * 60 + 7
        write_system_sample(store, _sample(ts, 10.0 + k, sent=1000 * k), ts)
        expected[minute0 + k * 60] = {"resolution": "minute", "samples": 1, "cpu_percent_mean": 10.0 + k,
                                      "cpu_percent_max": 10.0 + k, "net_sent_bytes": 1000 * k,
                                      "net_recv_bytes": 2000 * k, "probes_up": 0, "probes_down": 0}
    write_probe_counts(store, {minute0: (11, 1), minute0 + 60: (12, 0), minute0 + 15 * 60: (3, 9)})
    expected[minute0]["probes_up"], expected[minute0]["probes_down"] = 11, 1
    expected[minute0 + 60]["probes_up"] = 12
    expected[minute0 + 15 * 60] = {"resolution": "minute", "samples": 0, "cpu_percent_mean": None,
                                   "cpu_percent_max": None, "net_sent_bytes": 0, "net_recv_bytes": 0,
                                   "probes_up": 3, "probes_down": 9}
    hour0 = math.floor((now - 5 * DAY) / HOUR) * HOUR
    for hour, cpus in ((hour0, (20.0, 30.0, 70.0)), (hour0 + 2 * HOUR, (50.0,))):
        for i, cpu in enumerate(cpus):
            write_system_sample(store, _sample(hour + 60 * i, cpu), hour + 60 * i)
        expected[hour] = {"resolution": "hour", "samples": len(cpus), "cpu_percent_mean": sum(cpus) / len(cpus),
                          "cpu_percent_max": max(cpus), "net_sent_bytes": 0, "net_recv_bytes": 0, "probes_up": 0,
                          "probes_down": 0}
    day0 = math.floor((now - 40 * DAY) / DAY) * DAY
    for i, cpu in enumerate((5.0, 95.0)):
        write_system_sample(store, _sample(day0 + HOUR * (i + 3), cpu), day0 + HOUR * (i + 3))
    expected[day0] = {"resolution": "day", "samples": 2, "cpu_percent_mean": 50.0, "cpu_percent_max": 95.0,
                      "net_sent_bytes": 0, "net_recv_bytes": 0, "probes_up": 0, "probes_down": 0}
    return now, {iso(ts): row for ts, row in expected.items()}


def export(server, fmt: str, **params) -> requests.Response:
    return requests.get(f"{server.url}/api/v1/export/system.{fmt}", params=params, timeout=30)


def rows_of(fmt: str, text: str) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if fmt == "json":
        return orjson.loads(text)
    return [orjson.loads(line) for line in text.splitlines()]


def _number(cell):
    return None if cell in ("", None) else float(cell)


def test_one_row_per_stored_bucket_with_its_values(server, stored):
    now, expected = stored
    answer = export(server, "json", **{"from": now - 45 * DAY, "to": now})
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    assert [r["ts"] for r in rows] == sorted(expected)  # oldest first, nothing else
    for row in rows:
        want = expected[row["ts"]]
        assert list(row) == list(SYSTEM_COLUMNS)
        for column, value in want.items():
            assert row[column] == (pytest.approx(value) if isinstance(value, float) else value), (row["ts"], column)
        if row["samples"]:
            assert row["memory_percent_mean"] == pytest.approx(40.0) and row["disk_percent_max"] == pytest.approx(60.0)
            assert row["load_1m_max"] == pytest.approx(want["cpu_percent_max"] / 100)
        else:
            assert row["memory_percent_mean"] is None and row["load_1m_max"] is None
    assert {r["resolution"] for r in rows} == {"minute", "hour", "day"}
    assert sum(r["net_seconds"] for r in rows) == pytest.approx(5.0 * 9)
    # a shorter period: only the recent minutes
    recent = export(server, "json", **{"from": now - 3600, "to": now}).json()
    assert [r["ts"] for r in recent] == sorted(ts for ts, r in expected.items() if r["resolution"] == "minute")


def test_the_three_formats_agree(server, stored):
    now, expected = stored
    params = {"from": now - 45 * DAY, "to": now}
    bodies = {fmt: export(server, fmt, **params) for fmt in ("csv", "json", "ndjson")}
    assert bodies["csv"].headers["Content-Type"] == "text/csv; charset=utf-8"
    assert bodies["ndjson"].headers["Content-Type"] == "application/x-ndjson"
    assert bodies["csv"].headers["Content-Disposition"].startswith('attachment; filename="lulupay-system-')
    assert bodies["csv"].text.split("\r\n", 1)[0] == ",".join(SYSTEM_COLUMNS)
    csv_rows, json_rows, nd_rows = (rows_of(fmt, bodies[fmt].text) for fmt in ("csv", "json", "ndjson"))
    assert json_rows == nd_rows and len(csv_rows) == len(json_rows) == len(expected)
    for c, j in zip(csv_rows, json_rows):
        assert (c["ts"], c["resolution"]) == (j["ts"], j["resolution"])
        for column in SYSTEM_COLUMNS[2:]:
            assert _number(c[column]) == (None if j[column] is None else pytest.approx(j[column])), column


def test_an_empty_period_has_no_rows(server, stored):
    now, _ = stored
    empty = {"from": now - 20 * DAY, "to": now - 19 * DAY}
    assert export(server, "csv", **empty).text == ",".join(SYSTEM_COLUMNS) + "\r\n"
    assert export(server, "json", **empty).text == "[]"
    assert export(server, "ndjson", **empty).text == ""


@pytest.mark.parametrize("path, params, field", [
    ("system.csv", {"from": "yesterday"}, "from"),
    ("system.csv", {"to": "not-a-time"}, "to"),
    ("system.json", {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
    ("system.json", {"from": "1990-01-01T00:00:00Z"}, "from"),
    ("system.ndjson", {"to": str(int(time.time()) + 3 * DAY)}, "to"),
    ("system.csv", {"partner": "*"}, "partner"),
    ("systems.csv", {}, "dataset"),
    ("system.xlsx", {}, "format"),
])
def test_bad_parameters_are_400_naming_the_parameter(server, path, params, field):
    answer = requests.get(f"{server.url}/api/v1/export/{path}", params=params, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    if field == "dataset":
        assert "system" in answer.json()["error"]
