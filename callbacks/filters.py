"""From the shell's filter state (client-controlled: checked like API input) to the scope of a
page's reads for the signed-in principal."""
from __future__ import annotations

from datetime import date, datetime, timezone

from app.auth import current_principal
from services.scope import MAX_PARTNERS_PER_REQUEST, Scope, ScopeError, earliest_start, scope_for
from layouts.shell import REFRESH_CHOICES
from services.timerange import RANGES
from services.vocabulary import is_partner_id

__all__ = ["resolve_range", "filters_scope", "check_filters", "visible_scope", "date_bounds", "visible_filters"]

_FILTER_KEYS = {"range", "from", "to", "partners", "refresh"}


def date_bounds(now: float) -> tuple[str, str]:
    """(earliest, latest) custom date the pages offer: what the day rollups keep, up to today."""
    first = datetime.fromtimestamp(earliest_start(now), tz=timezone.utc).date()
    today = datetime.fromtimestamp(now, tz=timezone.utc).date()
    return first.isoformat(), today.isoformat()


def resolve_range(filters: dict, now: float) -> tuple[float, float]:
    """[start, end) in epoch seconds. Relative presets end now; custom dates are whole UTC days
    (the end date included), kept inside what the rollups hold (and not past today)."""
    span = RANGES.get(filters.get("range") or "24h")
    if span:
        return now - span, now
    first, last = date_bounds(now)
    start_day = min(max(filters["from"][:10], first), last)
    end_day = min(max(filters["to"][:10], first), last)
    start = datetime.combine(date.fromisoformat(start_day), datetime.min.time(), tzinfo=timezone.utc).timestamp()
    end = datetime.combine(date.fromisoformat(end_day), datetime.min.time(), tzinfo=timezone.utc).timestamp() + 86400
    return min(start, end - 86400), max(end, start + 86400)


def check_filters(filters: object) -> dict:
    """The filter state of a callback request, or ScopeError 400 (`filters`) when it is not the
    shape the shell writes."""
    if filters is None:
        return {"range": "24h", "from": None, "to": None, "partners": [], "refresh": "30s"}
    if not isinstance(filters, dict) or not set(filters) <= _FILTER_KEYS:
        raise ScopeError(400, "filters: not a filter set", "filters")
    rng = filters.get("range") or "24h"
    if not isinstance(rng, str) or rng not in RANGES:
        raise ScopeError(400, f"filters: unknown range {str(rng)[:20]!r}", "filters")
    refresh = filters.get("refresh")
    if refresh is not None and not (isinstance(refresh, str) and refresh in REFRESH_CHOICES):
        raise ScopeError(400, "filters: unknown refresh interval", "filters")
    partners = filters.get("partners") or []
    if not isinstance(partners, list) or len(partners) > MAX_PARTNERS_PER_REQUEST:
        raise ScopeError(400, f"filters: partners must be a list of at most {MAX_PARTNERS_PER_REQUEST} ids", "partner")
    out = {"range": rng, "from": None, "to": None, "partners": partners, "refresh": refresh}
    if rng == "custom":
        for name in ("from", "to"):
            value = filters.get(name)
            try:
                out[name] = date.fromisoformat(value[:10]).isoformat() if isinstance(value, str) else None
            except ValueError:
                out[name] = None
            if out[name] is None:
                raise ScopeError(400, f"filters: {name} must be a date (YYYY-MM-DD)", "filters")
    return out


def filters_scope(filters: object, now: float) -> Scope:
    """The scope of a page's reads: the filters' range and partners ∩ what the signed-in principal
    may see (a partner it may not see is left out: the page shows nothing of it)."""
    checked = check_filters(filters)
    start, end = resolve_range(checked, now)
    return scope_for(current_principal(), requested=checked["partners"], start=start, end=end, now=now,
                     explicit="drop")


def visible_scope() -> Scope:
    """Every partner the signed-in principal may see (the partner picker, the Live page's names)."""
    return scope_for(current_principal())


def visible_filters(filters: dict) -> dict:
    """Filters parsed from a URL with the partners the principal may not see (or that are no
    partner ids) left out, so a page never echoes another partner's id back."""
    principal = current_principal()
    partners = [p for p in filters.get("partners") or [] if is_partner_id(p) and principal.may_see(p)]
    return {**filters, "partners": partners[:MAX_PARTNERS_PER_REQUEST]}
