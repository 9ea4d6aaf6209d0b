"""How the /alerts page writes alerts, rules, silences and deliveries: ages, times, values in their
metric's unit, conditions, matchers — pure functions of their inputs (and `now`)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from services.alerting.catalogue import format_duration as rule_duration
from services.alerting.catalogue import format_value
from services.alerting.silences import Matcher

__all__ = ["age_text", "time_text", "value_text", "condition_text", "rule_scope_text", "matchers_text",
           "parse_matchers", "alert_matcher_lines", "banner_text", "SEVERITY_COLOURS", "DURATIONS"]

SEVERITY_COLOURS = {"critical": "danger", "warning": "warning", "info": "info"}
# The silence form's duration choices (value → seconds, label).
DURATIONS = {"1h": (3600, "1 hour"), "2h": (7200, "2 hours"), "4h": (14400, "4 hours"), "12h": (43200, "12 hours"),
             "1d": (86400, "1 day"), "3d": (3 * 86400, "3 days"), "7d": (7 * 86400, "7 days")}


def age_text(since: float | None, now: float) -> str:
    """'45 s', '12 min', '3 h 5 min', '2 d 4 h' since `since`; '—' without it."""
    if since is None:
        return "—"
    seconds = max(0, int(now - since))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h {rest // 60} min"
    days, rest = divmod(seconds, 86400)
    return f"{days} d {rest // 3600} h"


def time_text(ts: float | None) -> str:
    """'2026-12-01 09:35:00' (UTC) or '—'."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def value_text(metric: str | None, value: float | None) -> str:
    """A value or threshold in its metric's unit ('87.3 %', '612 s'); the bare number for an unknown metric."""
    if value is None:
        return "—"
    if metric is None:
        return f"{value:,.4g}"
    return format_value(metric, value)


def condition_text(rule: dict) -> str:
    """'success_rate < 90 % over 5m for 10m (kept firing 5m)'."""
    text = f"{rule['metric']} {rule['op']} {value_text(rule['metric'], rule['threshold'])}"
    if rule.get("window_s"):
        text += f" over {rule_duration(rule['window_s'])}"
    if rule.get("for_s"):
        text += f" for {rule_duration(rule['for_s'])}"
    if rule.get("keep_firing_for_s"):
        text += f" (kept firing {rule_duration(rule['keep_firing_for_s'])})"
    return text


def rule_scope_text(rule: dict) -> str:
    """'fleet / deployment' (one alert), 'each partner' (per_partner) or 'partner acme-bank'."""
    if rule.get("partner"):
        return f"partner {rule['partner']}"
    if rule.get("per_partner"):
        return "each partner"
    return "fleet / deployment"


def matchers_text(matchers: Iterable[dict]) -> str:
    """`alertname="X", partner_id="acme-bank"` of a silence's matcher dicts."""
    return ", ".join(str(Matcher.from_dict(m)) for m in matchers)


def alert_matcher_lines(labels: dict[str, str]) -> str:
    """The silence form's matchers prefilled from an alert's labels, one per line (alertname first)."""
    names = sorted(labels, key=lambda n: (n != "alertname", n != "severity", n != "partner_id", n))
    return "\n".join(str(Matcher(n, labels[n])) for n in names)


def parse_matchers(text: str | None) -> list[dict]:
    """The form's lines (`name="value"`, `name=~"re"`, `name!="v"`, `name!~"re"`) as matcher dicts;
    ValueError naming the line at fault."""
    out = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Matcher.parse(line.strip()).to_dict())
        except ValueError as exc:
            raise ValueError(f"matchers, line {number}: {exc}") from None
    if not out:
        raise ValueError("matchers: at least one line such as alertname=\"LuluPayBuildsSlow\"")
    return out


def banner_text(critical: int) -> str:
    """'1 critical alert firing' / '3 critical alerts firing'."""
    return f"{critical} critical alert{'' if critical == 1 else 's'} firing"
