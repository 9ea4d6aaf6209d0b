"""What the rules file's models share: durations ("30m" → 1800), the limits (docs/alerting.md#limits),
and the checks of names, label names, URLs and one-of values."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from services.alerting.catalogue import format_duration
from services.alerting.silences import LABEL_NAME_RE

__all__ = ["parse_duration", "bounded_duration", "one_of", "label_names", "http_url", "Model", "LIMITS", "DAY_S",
           "NAME_RE", "RECEIVER_NAME_RE"]

DAY_S = 86400
LIMITS = {
    "file_bytes": 1 << 20, "rules": 500, "receivers": 50, "routes": 100, "route_depth": 4, "labels": 32,
    "label_value_chars": 1024, "summary_chars": 1024, "description_chars": 4096, "escalation_steps": 10,
    "group_by": 32, "matchers": 32, "url_chars": 2048, "min_builds": 1_000_000,
    "duration_s": 366 * DAY_S, "window_s": 35 * DAY_S, "for_s": 7 * DAY_S, "keep_firing_for_s": 7 * DAY_S,
    "escalation_after_s": 30 * DAY_S, "group_wait_s": 3600, "group_interval_s": DAY_S,
    "repeat_interval_s": 30 * DAY_S,
}
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # rule names
RECEIVER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_DURATION_RE = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?")


class Model(BaseModel):
    """The models' base: unknown fields refused, immutable, fields also settable by their own name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def parse_duration(text: object) -> int:
    """Seconds of a duration string: "30m", "10s", "4h", "1d", "1h30m", "0s" (d, h, m, s in that
    order; at most 366 days). Numbers without a unit, negatives and garbage raise ValueError."""
    total = _seconds(text)
    if total > LIMITS["duration_s"]:
        raise ValueError(f"{text.strip()!r}: at most 366d")
    return total


def _seconds(text: object) -> int:
    """Seconds of a duration string, unbounded (each number at most six digits)."""
    if not isinstance(text, str):
        raise ValueError("must be a duration string like 30s, 5m, 4h or 1d (with its unit)")
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"{stripped[:40]!r}: must not be negative")
    match = _DURATION_RE.fullmatch(stripped)
    if not stripped or match is None:
        raise ValueError(f"{stripped[:40]!r} is not a duration like 30s, 5m, 4h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return days * DAY_S + hours * 3600 + minutes * 60 + seconds


def bounded_duration(value: object, limit: str, lo: int = 0) -> int:
    """A duration with `lo` <= seconds <= LIMITS[limit] (ValueError saying the bounds)."""
    seconds = _seconds(value)
    if not lo <= seconds <= LIMITS[limit]:
        raise ValueError(f"between {format_duration(lo)} and {format_duration(LIMITS[limit])}")
    return seconds


def one_of(value: object, options: tuple[str, ...]) -> str:
    """`value` when it is one of `options` (ValueError listing them)."""
    if value not in options:
        raise ValueError(f"must be one of {', '.join(options)}")
    return value


def label_names(names: list[str]) -> list[str]:
    """`names` when each is a label name ([A-Za-z_][A-Za-z0-9_]*)."""
    for name in names:
        if not isinstance(name, str) or not LABEL_NAME_RE.fullmatch(name):
            raise ValueError(f"{str(name)[:40]!r} is not a label name ([A-Za-z_][A-Za-z0-9_]*)")
    return names


def http_url(value: object) -> str | None:
    """`value` when it is an http(s) URL with a host, one line, at most 2048 characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > LIMITS["url_chars"] or re.search(r"[\s\x00-\x1f]", value):
        raise ValueError(f"must be an http(s) URL of at most {LIMITS['url_chars']} characters, without spaces")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("must be an http:// or https:// URL with a host (and a valid port)") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value
