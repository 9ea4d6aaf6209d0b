"""The metric catalogue of alert rules (docs/alerting.md#metric-catalogue): the names a rule's
`metric:` may use, each with its unit, range, whether it can be about one partner and whether it
is computed over a window; plus how values, thresholds and durations are written in summaries,
and the summary templates (`{{ value }}`, `{{ labels.team }}` …): checked when the rules load,
rendered for each alert."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["MetricSpec", "METRICS", "PLACEHOLDERS", "format_value", "format_duration", "template_problem",
           "render_template"]

PartnerUse = Literal["none", "optional", "required"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric a rule may watch: unit, definition, partner use, window use and value range."""

    name: str
    unit: str  # ratio (0–1), percent (0–100), seconds, ms, count, per_s, minutes, days
    definition: str
    partner: PartnerUse  # none: the deployment only; optional: per_partner/partner allowed; required: one of them
    window: bool  # True: `window:` required (the value is over the last window); False: `window:` refused
    lo: float = 0.0
    hi: float = math.inf
    build_based: bool = False  # computed from finished builds: `min_builds:` applies


_RATE = dict(lo=0.0, hi=1.0)
_PCT = dict(lo=0.0, hi=100.0)
METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("success_rate", "ratio", "builds that succeeded / builds that completed (succeeded + failed; "
               "cancelled builds do not count, as everywhere in the app) in the window; undefined (no alert) "
               "without completed builds", "optional", True, **_RATE, build_based=True),
    MetricSpec("build_p95_s", "seconds", "95th percentile of the durations of the builds completed in the window",
               "optional", True, build_based=True),
    MetricSpec("failed_builds", "count", "builds that finished with status failed in the window", "optional", True),
    MetricSpec("active_builds", "count", "builds started and not finished now (the window is not used)",
               "optional", False),
    MetricSpec("cpu_percent", "percent", "mean over the window of the collector's CPU samples of its host",
               "none", True, **_PCT),
    MetricSpec("memory_percent", "percent", "mean over the window of the collector's memory-used samples",
               "none", True, **_PCT),
    MetricSpec("disk_percent", "percent", "mean over the window of the collector's data-disk-used samples",
               "none", True, **_PCT),
    MetricSpec("http_error_rate", "ratio", "share of the app's HTTP responses in the window that were 5xx; "
               "undefined without requests", "none", True, **_RATE),
    MetricSpec("http_p95_ms", "ms", "95th percentile of the app's HTTP request durations in the window",
               "none", True),
    MetricSpec("ingest_rate", "per_s", "events accepted by ingest per second, averaged over the window",
               "optional", True),
    MetricSpec("quota_use", "ratio", "the partner's builds this calendar month (UTC) / its monthly build limit",
               "required", False, **_RATE),
    MetricSpec("no_events_minutes", "minutes", "minutes since the last event was ingested", "none", False),
    MetricSpec("quota_days_left", "days", "days until the partner's monthly quota is used up at the pace of the "
               "last 7 days; undefined when the pace would not exhaust it this month", "required", False),
)}

# The placeholders a summary or description may use (besides `labels.<name>`).
PLACEHOLDERS = ("value", "threshold", "window", "partner_id", "rule", "severity")
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_LABEL_REF_RE = re.compile(r"labels\.([A-Za-z_][A-Za-z0-9_]*)")


def _num(value: float, digits: int = 1) -> str:
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(metric: str, value: float | None) -> str:
    """`value` of `metric` as a summary writes it: ratios as percent ("87.5 %"), percents as
    percent, then "612 s", "140 ms", "12", "3.25 events/s", "42 min", "6.5 days"; "n/a" if None."""
    if value is None or not math.isfinite(value):
        return "n/a"
    unit = METRICS[metric].unit if metric in METRICS else "count"
    if unit == "ratio":
        return f"{_num(value * 100)} %"
    if unit == "percent":
        return f"{_num(value)} %"
    if unit == "count":
        return str(int(value)) if float(value).is_integer() else _num(value, 2)
    suffix = {"seconds": " s", "ms": " ms", "per_s": " events/s", "minutes": " min", "days": " days"}[unit]
    return _num(value, 2 if unit == "per_s" else 1) + suffix


def format_duration(seconds: float | None) -> str:
    """Seconds written like the rules file writes durations: 1800 → "30m", 5400 → "1h30m", 0 → "0s"."""
    if seconds is None:
        return "n/a"
    left, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def template_problem(template: str, label_names: Iterable[str], *, partner: bool, window: bool) -> str | None:
    """Why `template` cannot be rendered for a rule (unknown placeholder, stray braces, a partner or
    window placeholder the rule cannot fill), or None when it is fine."""
    known_labels = set(label_names)
    for match in _PLACEHOLDER_RE.finditer(template):
        name = match.group(1)
        label = _LABEL_REF_RE.fullmatch(name)
        if label:
            if label.group(1) not in known_labels:
                return f"{{{{ {name} }}}}: the alert has no label {label.group(1)!r} " \
                       f"(it has: {', '.join(sorted(known_labels))})"
        elif name not in PLACEHOLDERS:
            return f"unknown placeholder {{{{ {name[:40]} }}}} (known: {', '.join(PLACEHOLDERS)}, labels.<name>)"
        elif name == "partner_id" and not partner:
            return "{{ partner_id }} needs per_partner: true or a partner"
        elif name == "window" and not window:
            return "{{ window }}: this metric has no window"
    rest = _PLACEHOLDER_RE.sub("", template)
    if "{{" in rest or "}}" in rest:
        return "unbalanced {{ or }} (placeholders are written {{ name }})"
    return None


def render_template(template: str, values: Mapping[str, str], labels: Mapping[str, str]) -> str:
    """`template` with each `{{ name }}` replaced from `values` and `{{ labels.x }}` from `labels`
    (a missing one renders empty; templates are checked when the rules load)."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        label = _LABEL_REF_RE.fullmatch(name)
        return str(labels.get(label.group(1), "")) if label else str(values.get(name, ""))
    return _PLACEHOLDER_RE.sub(one, template)
