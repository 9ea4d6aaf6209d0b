"""From the shell's filter store to a concrete [start, end) and partner set."""
from __future__ import annotations

import math
from datetime import date, datetime, timezone

from services.timerange import RANGES

__all__ = ["resolve_range", "resolve_partners", "resolve_scope"]


def resolve_range(filters: dict, now: float) -> tuple[float, float]:
    """[start, end) in epoch seconds. Relative presets end now; custom dates are whole UTC days
    (the end date included)."""
    span = RANGES.get(filters.get("range") or "24h")
    if span:
        return now - span, now
    start = datetime.combine(date.fromisoformat(filters["from"][:10]), datetime.min.time(), tzinfo=timezone.utc)
    end = datetime.combine(date.fromisoformat(filters["to"][:10]), datetime.min.time(), tzinfo=timezone.utc)
    start_ts, end_ts = start.timestamp(), end.timestamp() + 86400
    return min(start_ts, end_ts - 86400), max(end_ts, start_ts + 86400)


def resolve_partners(filters: dict, visible: set[str] | None) -> list[str] | None:
    """The selected partners within what the caller may see (None = all visible)."""
    selected = set(filters.get("partners") or [])
    if not selected:
        return None if visible is None else sorted(visible)
    return sorted(selected if visible is None else selected & visible)


def resolve_scope(filters: dict, services) -> tuple[float, float, list[str] | None, tuple]:
    """(start, end, partners, cache key) of a filter set for the current caller. The cache key is
    minute-aligned: the rollups are no finer, and a board refreshing every 5 s shares one entry
    per minute and filter set."""
    start, end = resolve_range(filters, services.clock())
    partners = resolve_partners(filters, services.visible_partners())
    return start, end, partners, (math.floor(start / 60), math.ceil(end / 60), partners)


