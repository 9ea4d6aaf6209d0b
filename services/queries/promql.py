"""Prometheus as a data source (when `PROMETHEUS_URL` is set): `query_range` for the HTTP panels,
so they cover every instance of the deployment."""
from __future__ import annotations

import math

import requests

__all__ = ["Prometheus", "PrometheusUnavailable", "http_queries", "display_url"]

# Requests to /metrics are excluded, as in the app's own HTTP rollups.
_SEL = 'route!="/metrics"'


def display_url(url: str | None) -> str | None:
    """`url` as pages may show it: no user name, password or query string."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PrometheusUnavailable(Exception):
    """Prometheus could not be queried (down, timeout, bad answer)."""


def http_queries(window: str) -> dict[str, str]:
    """The PromQL of the HTTP panels for a rate window like '5m' (also used by the Grafana board)."""
    bucket = f"sum by (le) (rate(lulupay_http_request_duration_seconds_bucket{{{_SEL}}}[{window}]))"
    total = f"sum(rate(lulupay_http_requests_total{{{_SEL}}}[{window}]))"
    return {
        "p50_s": f"histogram_quantile(0.5, {bucket})",
        "p95_s": f"histogram_quantile(0.95, {bucket})",
        "p99_s": f"histogram_quantile(0.99, {bucket})",
        "rate": total,
        "errors_4xx": f'sum(rate(lulupay_http_requests_total{{{_SEL},status=~"4.."}}[{window}]))',
        "errors_5xx": f'sum(rate(lulupay_http_requests_total{{{_SEL},status=~"5.."}}[{window}]))',
    }


class Prometheus:
    """A small client of Prometheus' HTTP API."""

    def __init__(self, url: str, *, timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def query_range(self, query: str, start: float, end: float, step_s: int) -> dict[int, float]:
        """{ts: value} of a single-series query (the first series; NaN points dropped)."""
        try:
            response = self.session.get(f"{self.url}/api/v1/query_range", timeout=self.timeout_s,
                                        params={"query": query, "start": start, "end": end, "step": step_s})
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise PrometheusUnavailable(str(exc)) from exc
        if body.get("status") != "success":
            raise PrometheusUnavailable(body.get("error") or f"HTTP {response.status_code}")
        result = body["data"]["result"]
        if not result:
            return {}
        out = {}
        for ts, value in result[0]["values"]:
            v = float(value)
            if math.isfinite(v):
                out[int(ts)] = v
        return out

    def http_series(self, start: float, end: float, step_s: int) -> dict:
        """The HTTP panels' rows (same shape as services.sysrollups.http_series, with rates per
        second instead of counts: `requests` = requests/s over the window)."""
        window = f"{max(step_s, 60)}s"
        first = int(start // step_s) * step_s + step_s  # each point covers the window ending at it
        series = {name: self.query_range(q, first, end, step_s) for name, q in http_queries(window).items()}
        rows = []
        for ts in range(first, int(end) + 1, step_s):
            rate = series["rate"].get(ts)
            e4, e5 = series["errors_4xx"].get(ts, 0.0), series["errors_5xx"].get(ts, 0.0)
            rows.append({"ts": ts - step_s, "requests_per_s": rate, "errors_4xx_per_s": e4, "errors_5xx_per_s": e5,
                         "error_ratio": ((e4 + e5) / rate) if rate else None,
                         "p50_s": series["p50_s"].get(ts), "p95_s": series["p95_s"].get(ts),
                         "p99_s": series["p99_s"].get(ts)})
        return {"step_s": step_s, "rows": rows, "source": "prometheus"}
